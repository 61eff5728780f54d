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
	_, err := s.update(ctx, nil, true, func(v *txnView) error {
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
	dropped := s.applyCompaction(rev)
	purge := func(ctx context.Context) {
		if err := s.purgeHistory(ctx, rev, dropped); err != nil {
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

// purgeHistory deletes superseded history entries and revlog entries below
// rev from the engine, in batches. Both tables are append-only below the
// counter, so no lock on the counter is needed.
func (s *Store) purgeHistory(ctx context.Context, rev int64, dropped []keyVersion) error {
	const batch = 512
	var keys [][]byte
	for _, v := range dropped {
		keys = append(keys, historyKey(v.kv.ModRevision, int(v.sub)))
	}
	if err := s.removeBatched(ctx, s.tables.history, keys, batch); err != nil {
		return err
	}
	var revs [][]byte
	err := s.eng.Scan(ctx, s.tables.revlog, func(key, _ []byte) error {
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
