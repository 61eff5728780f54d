package mvcc

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"slices"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Leases live in the engine's leases table as {granted TTL, last renewal}, so a
// keep-alive through any node extends them for all. Which keys a lease holds
// is not stored: it follows from the keys' own records, which the index
// tracks. Every node looks for expired leases; revoking re-checks the deadline
// under the lease's lock inside the counter-holding transaction, so a lease
// is revoked once however many nodes try.

// LeaseGrant creates a lease. id 0 asks for a server-chosen id.
func (s *Store) LeaseGrant(ctx context.Context, id, ttl int64) (int64, int64, error) {
	if ttl > MaxLeaseTTL {
		return 0, 0, ErrLeaseTTLTooLarge
	}
	ttl = max(ttl, s.cfg.MinLeaseTTL)
	chosen := id == 0
	for attempt := 0; ; attempt++ {
		if chosen {
			id = randomLeaseID()
		}
		err := s.leaseTxn(ctx, id, func(etx Txn, rec *leaseRecord) error {
			if rec != nil {
				return ErrLeaseExists
			}
			return etx.PutAll(ctx, s.tables.leases, []Entry{{Key: revisionKey(id), Value: encodeLease(leaseRecord{ttl: ttl, renewed: time.Now().UnixNano()})}})
		})
		if err == ErrLeaseExists && chosen && attempt < 8 {
			continue
		}
		return id, ttl, err
	}
}

func randomLeaseID() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := int64(binary.BigEndian.Uint64(b[:]) &^ (1 << 63))
	if id == 0 {
		id = 1
	}
	return id
}

// A lease records when it was last renewed, not its deadline: etcd's
// largest TTL (9e9 s) would overflow a deadline in int64 nanoseconds, while
// elapsed time compared with ttl*1e9 never does.

// remaining is how long l has left at now (negative once expired).
func (l leaseRecord) remaining(now int64) time.Duration {
	return time.Duration(l.ttl*int64(time.Second) - (now - l.renewed))
}

// leaseTxn runs fn in a transaction holding lease id's lock; rec is nil when
// the lease does not exist.
func (s *Store) leaseTxn(ctx context.Context, id int64, fn func(etx Txn, rec *leaseRecord) error) error {
	etx, err := s.eng.Begin(ctx)
	if err != nil {
		return err
	}
	vals, err := etx.GetAll(ctx, s.tables.leases, [][]byte{revisionKey(id)})
	if err == nil {
		var rec *leaseRecord
		if vals[0] != nil {
			r, derr := decodeLease(vals[0])
			if derr != nil {
				err = derr
			}
			rec = &r
		}
		if err == nil {
			err = fn(etx, rec)
		}
	}
	if err != nil {
		_ = etx.Rollback(context.Background())
		return err
	}
	return etx.Commit(ctx)
}

// LeaseKeepAlive extends a lease by its granted TTL and returns that TTL.
func (s *Store) LeaseKeepAlive(ctx context.Context, id int64) (int64, error) {
	var ttl int64
	err := s.leaseTxn(ctx, id, func(etx Txn, rec *leaseRecord) error {
		if rec == nil {
			return ErrLeaseNotFound
		}
		ttl = rec.ttl
		return etx.PutAll(ctx, s.tables.leases, []Entry{{Key: revisionKey(id), Value: encodeLease(leaseRecord{ttl: rec.ttl, renewed: time.Now().UnixNano()})}})
	})
	return ttl, err
}

// LeaseRevoke deletes a lease and every key attached to it, in one revision.
func (s *Store) LeaseRevoke(ctx context.Context, id int64) (*pb.LeaseRevokeResponse, error) {
	v, err := s.revoke(ctx, id, false)
	if err != nil {
		return nil, err
	}
	s.afterWrite(ctx, v)
	return &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: v.curRev()}}, nil
}

// revoke takes the counter lock first, as every writer does, then the
// lease's; onlyExpired makes it a no-op for a lease extended meanwhile.
func (s *Store) revoke(ctx context.Context, id int64, onlyExpired bool) (*txnView, error) {
	return s.update(ctx, true, func(v *txnView) error {
		vals, err := v.etx.GetAll(v.ctx, s.tables.leases, [][]byte{revisionKey(id)})
		if err != nil {
			return err
		}
		if vals[0] == nil {
			return ErrLeaseNotFound
		}
		if onlyExpired {
			rec, err := decodeLease(vals[0])
			if err != nil {
				return err
			}
			if rec.remaining(time.Now().UnixNano()) > 0 {
				return nil
			}
		}

		s.mu.RLock()
		keys := s.ix.keysOfLease(id)
		s.mu.RUnlock()
		// Sorted keys, one revision, as etcd's lessor revokes.
		for _, k := range keys {
			if _, err := v.deleteRange(k, nil); err != nil {
				return err
			}
		}
		v.otherWrites = true
		return v.etx.RemoveAll(v.ctx, s.tables.leases, [][]byte{revisionKey(id)})
	})
}

// LeaseTimeToLive reports a lease's remaining and granted TTL, and its keys
// when asked. A missing lease gives TTL -1, as etcd.
func (s *Store) LeaseTimeToLive(ctx context.Context, id int64, withKeys bool) (*pb.LeaseTimeToLiveResponse, error) {
	rev, _, err := s.readRevision(ctx, false)
	if err != nil {
		return nil, err
	}
	vals, err := s.eng.GetAll(ctx, s.tables.leases, [][]byte{revisionKey(id)})
	if err != nil {
		return nil, err
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{Revision: rev}, ID: id, TTL: -1}
	if vals[0] == nil {
		return resp, nil
	}
	rec, err := decodeLease(vals[0])
	if err != nil {
		return nil, err
	}
	resp.TTL = max(int64(rec.remaining(time.Now().UnixNano()).Seconds()), 0)
	resp.GrantedTTL = rec.ttl
	if withKeys {
		s.mu.RLock()
		resp.Keys = s.ix.keysOfLease(id)
		s.mu.RUnlock()
	}
	return resp, nil
}

// Leases lists every lease id, ascending.
func (s *Store) Leases(ctx context.Context) ([]int64, error) {
	var ids []int64
	err := s.eng.Scan(ctx, s.tables.leases, func(key, _ []byte) error {
		id, err := decodeRevision(key)
		if err == nil {
			ids = append(ids, id)
		}
		return err
	})
	slices.Sort(ids)
	return ids, err
}

// leaseLoop revokes expired leases.
func (s *Store) leaseLoop() {
	defer s.stopped.Done()
	t := time.NewTicker(s.cfg.LeaseCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.revokeExpired()
	}
}

func (s *Store) revokeExpired() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now().UnixNano()
	var expired []int64
	err := s.eng.Scan(ctx, s.tables.leases, func(key, value []byte) error {
		id, err := decodeRevision(key)
		if err != nil {
			return err
		}
		if rec, err := decodeLease(value); err == nil && rec.remaining(now) <= 0 {
			expired = append(expired, id)
		}
		return nil
	})
	if err != nil {
		s.lg.Debug().Err(err).Msg("scanning leases failed")
		return
	}
	for _, id := range expired {
		v, err := s.revoke(ctx, id, true)
		if err != nil && err != ErrLeaseNotFound {
			s.lg.Warn().Err(err).Int64("lease", id).Msg("revoking an expired lease failed; will retry")
			continue
		}
		if err == nil && len(v.changes) > 0 {
			s.lg.Debug().Int64("lease", id).Int("keys", len(v.changes)).Msg("lease expired")
		}
	}
}
