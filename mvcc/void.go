package mvcc

import (
	"context"
	"fmt"
)

// voidRevision records rev as a revision without changes, if it is still
// absent from revlog although the counter has passed it. It runs as a solo
// write, so it holds the counter lock: every write of revlog[rev] by a
// writer happened under that lock before the counter passed rev, so none
// can still be on its way — only a write applied outside its transaction
// could, and that is what this repairs.
func (s *Store) voidRevision(ctx context.Context, rev int64) error {
	_, err := s.submit(ctx, &writeReq{ctx: ctx, solo: true, blind: true, done: make(chan struct{}), fn: func(v *txnView) error {
		if rev > v.beginRev {
			return fmt.Errorf("mvcc: revision %d is above the counter %d", rev, v.beginRev)
		}
		vals, err := v.etx.GetAll(v.ctx, s.tables.revlog, [][]byte{revisionKey(rev)})
		if err != nil || vals[0] != nil {
			return err
		}
		s.lg.Error().Int64("revision", rev).Msg("the revision counter passed a revision that revlog lacks (an Ignite operation applied outside its transaction?); recording it as a revision without changes")
		v.otherWrites = true
		return v.etx.PutAll(v.ctx, s.tables.revlog, []Entry{{Key: revisionKey(rev), Value: encodeEvents(nil)}})
	}})
	return err
}

// RevlogConflicts reports how many released revisions were later seen
// overwritten in revlog with different changes (should stay 0).
func (s *Store) RevlogConflicts() int64 { return s.revlogConflicts.Load() }
