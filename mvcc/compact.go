package mvcc

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The history table holds what a node loads below the compacted revision:
// for each key, the version compaction kept (the newest at or below the
// compacted revision, if it was a put). Revisions from the compacted one on
// are read from revlog, whose entries carry their events, so write groups
// never write history; compaction does, in three steps that keep history
// loadable should the node stop between any two of them:
//
//  1. keepHistory writes, before rev is recorded, each key's newest version
//     below rev written since the last compaction: the puts a load at rev
//     needs, and the tombstones that tell it an older kept put is gone. A
//     load before step 2 reads only below the old compacted revision, so
//     these entries change nothing yet.
//  2. The compacted revision is recorded, under the revision counter's lock.
//  3. purgeHistory removes the superseded puts, then the tombstones (they
//     are needed only while a put they supersede may remain), then revlog
//     below rev.
//
// Every history write checks the recorded compacted revision in its own
// transaction, under its lock (writeHistoryGuarded): an entry written for a
// compaction that has been overtaken could otherwise land after the later
// compaction's purge and bring back a key that was deleted.

// Compact records rev as the compacted revision, drops history below it from
// this node's index (other nodes follow within a poll interval), and removes
// the superseded history from the engine: before returning when physical,
// in the background otherwise. It returns the current revision.
func (s *Store) Compact(ctx context.Context, rev int64, physical bool) (int64, error) {
	if err := s.keepHistory(ctx, rev); err != nil {
		return 0, err
	}
	var cur int64
	_, err := s.update(ctx, true, func(v *txnView) error {
		cur = v.beginRev
		if err := checkCompactRev(rev, v.compactRev, v.beginRev); err != nil {
			return err
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

// checkCompactRev is etcd's check of a compaction at rev, given the
// compacted and the current revision.
func checkCompactRev(rev, compacted, current int64) error {
	switch {
	case rev <= compacted:
		return ErrCompacted
	case rev > current:
		return ErrFutureRev
	}
	return nil
}

// historyBatch bounds the entries of one transaction of compaction's.
const historyBatch = 512

// keepHistory is compaction's step 1 (above): it writes to history, for
// every key, its newest version at or below rev, if that was written below
// rev and at or after the compacted revision. It fails with the error the
// compaction itself would give (ErrCompacted, ErrFutureRev) when rev is not
// above the compacted revision or not at or below the current one.
func (s *Store) keepHistory(ctx context.Context, rev int64) error {
	counter, compact, err := s.readMeta(ctx)
	if err != nil {
		return err
	}
	if err := checkCompactRev(rev, compact, counter); err != nil {
		return err
	}
	if err := s.waitFor(ctx, rev); err != nil {
		return err
	}
	var versions []keyVersion // shared and immutable: marshalled after the lock
	s.mu.RLock()
	s.ix.tree.Ascend(func(ki *keyIndex) bool {
		i := ki.upTo(rev) // the newest version at or below rev is i-1
		if i == 0 {
			return true
		}
		v := ki.versions[i-1]
		if r := v.kv.ModRevision; r >= rev || r < compact {
			return true // in revlog at rev, or kept by an earlier compaction
		}
		versions = append(versions, v)
		return true
	})
	s.mu.RUnlock()
	keep := make([]Entry, len(versions))
	for i, v := range versions {
		keep[i] = Entry{Key: historyKey(v.kv.ModRevision, int(v.sub)), Value: historyEvent(v.kv)}
	}
	return s.writeHistoryGuarded(ctx, keep, func(recorded int64) error {
		if recorded >= rev {
			return ErrCompacted
		}
		return nil
	})
}

// historyEvent is a version's history entry: the event that wrote it.
func historyEvent(kv *mvccpb.KeyValue) []byte {
	ev := &mvccpb.Event{Type: mvccpb.PUT, Kv: kv}
	if isTombstone(kv) {
		ev.Type = mvccpb.DELETE
	}
	b, _ := ev.Marshal()
	return b
}

// writeHistoryGuarded writes entries to history in batches, each in a
// transaction that first locks and reads the recorded compacted revision
// and writes nothing if check rejects it.
func (s *Store) writeHistoryGuarded(ctx context.Context, entries []Entry, check func(recorded int64) error) error {
	return s.inBatches(ctx, len(entries), historyBatch, func(etx Txn, lo, hi int) error {
		vals, err := etx.GetAll(ctx, s.tables.meta, [][]byte{metaCompact})
		if err != nil {
			return err
		}
		recorded, err := decodeCompact(vals[0])
		if err != nil {
			return err
		}
		if err := check(recorded); err != nil {
			return err
		}
		return etx.PutAll(ctx, s.tables.history, entries[lo:hi])
	})
}

// purgeHistory is compaction's step 3 (above): it deletes from the engine
// the history entries below rev that this node's index no longer holds
// (superseded at rev — and any entry a write applied outside its
// transaction, or an overtaken compaction, may have left), then the
// tombstones below rev, then the revlog entries below rev. Both tables only
// change below the counter by compaction, so no lock on the counter is
// needed.
//
// The entries it keeps are what a node loads below the compacted revision,
// so each is checked against the index and written again if it differs or
// is missing: a rolled-back group's history write of an earlier version of
// ignetcd, applied late outside its transaction (ignite/NOTES.md), could
// have overwritten one.
func (s *Store) purgeHistory(ctx context.Context, rev int64) error {
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
	var superseded, tombstones, revs [][]byte
	var repairs []Entry
	seen := map[string]bool{}
	err := s.eng.Scan(ctx, s.tables.history, func(key, value []byte) error {
		r, _, err := decodeHistoryKey(key)
		if err != nil || r >= rev {
			return nil
		}
		kv, ok := kept[string(key)]
		if !ok {
			ev := &mvccpb.Event{}
			if ev.Unmarshal(value) == nil && ev.Type == mvccpb.DELETE {
				tombstones = append(tombstones, append([]byte(nil), key...))
			} else {
				superseded = append(superseded, append([]byte(nil), key...))
			}
			return nil
		}
		seen[string(key)] = true
		if want := historyEvent(kv); !bytes.Equal(value, want) {
			repairs = append(repairs, Entry{Key: append([]byte(nil), key...), Value: want})
		}
		return nil
	})
	if err != nil {
		return err
	}
	missing := 0
	for key, kv := range kept {
		if !seen[key] {
			repairs = append(repairs, Entry{Key: []byte(key), Value: historyEvent(kv)})
			missing++
		}
	}
	if err := s.removeBatched(ctx, s.tables.history, superseded, historyBatch); err != nil {
		return err
	}
	if len(repairs) > 0 {
		s.lg.Warn().Int("entries", len(repairs)).Int("missing", missing).Msg("compaction rewrote history entries that were missing or differed from the committed versions (operations applied outside their transaction; ignite/NOTES.md)")
		err := s.writeHistoryGuarded(ctx, repairs, func(recorded int64) error {
			if recorded != rev {
				return fmt.Errorf("mvcc: compaction at revision %d was overtaken by one at %d", rev, recorded)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := s.removeBatched(ctx, s.tables.history, tombstones, historyBatch); err != nil {
		return err
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
	return s.removeBatched(ctx, s.tables.revlog, revs, historyBatch)
}

func (s *Store) removeBatched(ctx context.Context, table string, keys [][]byte, batch int) error {
	return s.inBatches(ctx, len(keys), batch, func(etx Txn, lo, hi int) error {
		return etx.RemoveAll(ctx, table, keys[lo:hi])
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
