package mvcc

import (
	"context"
	"fmt"
	"time"
)

// HealthStatus is what one Health check measured.
type HealthStatus struct {
	// Revision is the revision counter read from the engine.
	Revision int64
	// Lag is Revision minus the safe point right after the read: how many
	// committed revisions this node had not yet released.
	Lag int64
	// RoundTrip is how long the engine read took.
	RoundTrip time.Duration
}

// Health checks that this node could answer a linearizable read now, as
// etcd's /health does with a quorum read: it reads the revision counter from
// the engine and waits for the safe point to reach it, both within ctx. It
// fails when the engine is unreachable or the change feed stays behind.
func (s *Store) Health(ctx context.Context) (HealthStatus, error) {
	started := time.Now()
	counter, _, err := s.readMeta(ctx)
	st := HealthStatus{RoundTrip: time.Since(started)}
	if err != nil {
		return st, fmt.Errorf("reading the revision counter from storage: %w", err)
	}
	st.Revision, st.Lag = counter, max(counter-s.Revision(), 0)
	if err := s.waitFor(ctx, counter); err != nil {
		return st, fmt.Errorf("change feed behind: safe point %d, revision counter %d: %w", s.Revision(), counter, err)
	}
	return st, nil
}
