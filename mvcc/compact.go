package mvcc

import (
	"context"
	"time"
)

// Compact records rev as the compacted revision, drops history below it from
// this node's index (other nodes follow within a poll interval), and removes
// the superseded history from the engine: before returning when physical,
// in the background otherwise. It returns the current revision.
func (s *Store) Compact(ctx context.Context, rev int64, physical bool) (int64, error) {
	var cur int64
	_, err := s.update(ctx, true, func(v *txnView) error {
		cur = v.beginRev
		switch {
		case rev <= v.compactRev:
			return ErrCompacted
		case rev > v.beginRev:
			return ErrFutureRev
		}
		v.otherWrites = true
		return v.etx.PutAll(v.ctx, s.tables.meta, []Entry{{Key: metaCompact, Value: revisionKey(rev)}})
	})
	if err != nil {
		return 0, err
	}
	if err := s.waitFor(ctx, rev); err != nil {
		return 0, err
	}
	s.applyCompaction(rev)
	purge := func(ctx context.Context) {
		if err := s.purgeHistory(ctx, rev); err != nil {
			s.lg.Warn().Err(err).Int64("revision", rev).Msg("removing compacted history from storage failed; it stays until a later compaction")
		}
	}
	if physical {
		purge(ctx)
	} else {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			purge(ctx)
		}()
	}
	return cur, nil
}

// purgeHistory deletes from the engine the history entries below rev that
// this node's index no longer holds (superseded at rev — and any entry a
// write applied outside its transaction may have left) and the revlog
// entries below rev. Both tables only change below the counter by
// compaction, so no lock on the counter is needed.
func (s *Store) purgeHistory(ctx context.Context, rev int64) error {
	const batch = 512
	kept := map[string]struct{}{}
	s.mu.RLock()
	s.ix.tree.Ascend(func(ki *keyIndex) bool {
		for _, v := range ki.versions {
			if v.kv.ModRevision < rev {
				kept[string(historyKey(v.kv.ModRevision, int(v.sub)))] = struct{}{}
			}
		}
		return true
	})
	s.mu.RUnlock()
	var hist, revs [][]byte
	err := s.eng.Scan(ctx, s.tables.history, func(key, _ []byte) error {
		if r, _, err := decodeHistoryKey(key); err == nil && r < rev {
			if _, ok := kept[string(key)]; !ok {
				hist = append(hist, append([]byte(nil), key...))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.removeBatched(ctx, s.tables.history, hist, batch); err != nil {
		return err
	}
	err = s.eng.Scan(ctx, s.tables.revlog, func(key, _ []byte) error {
		if r, err := decodeRevision(key); err == nil && r < rev {
			revs = append(revs, append([]byte(nil), key...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.removeBatched(ctx, s.tables.revlog, revs, batch)
}

func (s *Store) removeBatched(ctx context.Context, table string, keys [][]byte, batch int) error {
	for len(keys) > 0 {
		n := min(batch, len(keys))
		etx, err := s.eng.Begin(ctx)
		if err != nil {
			return err
		}
		if err := etx.RemoveAll(ctx, table, keys[:n]); err != nil {
			_ = etx.Rollback(context.Background())
			return err
		}
		if err := etx.Commit(ctx); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}
