package mvcc

import (
	"bytes"
	"context"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
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
//
// The history entries it keeps are what a node loads below the compacted
// revision, so each is checked against the index and rewritten if it
// differs: a rolled-back group's history write, applied late outside its
// transaction (ignite/NOTES.md), can have overwritten a committed one.
func (s *Store) purgeHistory(ctx context.Context, rev int64) error {
	const batch = 512
	kept := map[string]*mvccpb.KeyValue{}
	s.mu.RLock()
	s.ix.tree.Ascend(func(ki *keyIndex) bool {
		for _, v := range ki.versions {
			if v.kv.ModRevision < rev {
				kept[string(historyKey(v.kv.ModRevision, int(v.sub)))] = v.kv
			}
		}
		return true
	})
	s.mu.RUnlock()
	var hist, revs [][]byte
	var repairs []Entry
	err := s.eng.Scan(ctx, s.tables.history, func(key, value []byte) error {
		r, _, err := decodeHistoryKey(key)
		if err != nil || r >= rev {
			return nil
		}
		kv, ok := kept[string(key)]
		if !ok {
			hist = append(hist, append([]byte(nil), key...))
			return nil
		}
		if want, _ := (&mvccpb.Event{Type: mvccpb.PUT, Kv: kv}).Marshal(); !bytes.Equal(value, want) {
			repairs = append(repairs, Entry{Key: append([]byte(nil), key...), Value: want})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.removeBatched(ctx, s.tables.history, hist, batch); err != nil {
		return err
	}
	if len(repairs) > 0 {
		s.lg.Warn().Int("entries", len(repairs)).Msg("compaction rewrote history entries that differed from the committed versions (operations applied outside their transaction; ignite/NOTES.md)")
		if err := s.putBatched(ctx, s.tables.history, repairs, batch); err != nil {
			return err
		}
	}
	err = s.eng.Scan(ctx, s.tables.revlog, func(key, _ []byte) error {
		if r, _, err := decodeRevlogKey(key); err == nil && r < rev {
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
	return s.inBatches(ctx, len(keys), batch, func(etx Txn, lo, hi int) error {
		return etx.RemoveAll(ctx, table, keys[lo:hi])
	})
}

func (s *Store) putBatched(ctx context.Context, table string, entries []Entry, batch int) error {
	return s.inBatches(ctx, len(entries), batch, func(etx Txn, lo, hi int) error {
		return etx.PutAll(ctx, table, entries[lo:hi])
	})
}

// inBatches runs fn over the items [0, n) in transactions of at most batch
// items each.
func (s *Store) inBatches(ctx context.Context, n, batch int, fn func(etx Txn, lo, hi int) error) error {
	for lo := 0; lo < n; lo += batch {
		etx, err := s.eng.Begin(ctx)
		if err != nil {
			return err
		}
		if err := fn(etx, lo, min(lo+batch, n)); err != nil {
			_ = etx.Rollback(context.Background())
			return err
		}
		if err := etx.Commit(ctx); err != nil {
			return err
		}
	}
	return nil
}
