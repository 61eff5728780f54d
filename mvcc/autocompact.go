package mvcc

import (
	"context"
	"errors"
	"time"
)

// Auto-compaction, as etcd's --auto-compaction-mode/-retention: without it
// history grows forever when clients (kube-apiserver with its compaction
// turned off, etcdctl users) never compact. Every node runs the compactor;
// a node that finds the keyspace already compacted further just moves on.

// AutoCompaction configures the compactor; zero values turn it off.
type AutoCompaction struct {
	// Periodic keeps about this much time of history (etcd's "periodic"
	// mode): the revision seen Periodic ago is compacted, checked every
	// Periodic/10 (at most hourly).
	Periodic time.Duration
	// Revisions keeps this many revisions (etcd's "revision" mode),
	// checked every CheckInterval (default 5 minutes, as etcd).
	Revisions     int64
	CheckInterval time.Duration
}

func (a AutoCompaction) enabled() bool { return a.Periodic > 0 || a.Revisions > 0 }

func (s *Store) autoCompactLoop(a AutoCompaction) {
	defer s.stopped.Done()
	interval := a.CheckInterval
	if interval == 0 {
		interval = 5 * time.Minute
		if a.Periodic > 0 {
			interval = min(a.Periodic/10, time.Hour)
		}
	}
	type sample struct {
		at  time.Time
		rev int64
	}
	var samples []sample
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		now, cur := time.Now(), s.Revision()
		var target int64
		if a.Periodic > 0 {
			samples = append(samples, sample{now, cur})
			// The newest sample at least Periodic old is the target; older
			// ones are no longer needed.
			i := -1
			for j, sm := range samples {
				if now.Sub(sm.at) >= a.Periodic {
					i = j
				}
			}
			if i >= 0 {
				target = samples[i].rev
				samples = samples[i:]
			}
		} else {
			target = cur - a.Revisions
		}
		if target <= s.CompactRevision() || target <= 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := s.Compact(ctx, target, false)
		cancel()
		switch {
		case err == nil:
			s.lg.Info().Int64("revision", target).Msg("auto-compacted")
		case errors.Is(err, ErrCompacted):
		default:
			s.lg.Warn().Err(err).Int64("revision", target).Msg("auto-compaction failed; will retry")
		}
	}
}
