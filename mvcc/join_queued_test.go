package mvcc_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/mvcc"
)

// slowCounterLock holds a group at its claim of the revision counter (the
// first compare-and-swap of meta in a transaction) until the test lets it
// go, as when another node's group holds the lock.
type slowCounterLock struct {
	*memengine.Engine
	armed    atomic.Bool
	claiming chan struct{} // one value per claim held
	release  chan struct{} // closed to let the held claims go
}

func (e *slowCounterLock) Begin(ctx context.Context) (mvcc.Txn, error) {
	tx, err := e.Engine.Begin(ctx)
	return &slowClaimTxn{Txn: tx, e: e}, err
}

type slowClaimTxn struct {
	mvcc.Txn
	e       *slowCounterLock
	claimed bool
}

func (t *slowClaimTxn) Replace(ctx context.Context, table string, key, expected, value []byte) (bool, error) {
	if table == "meta" && string(key) == "revision" && !t.claimed && t.e.armed.Load() {
		t.claimed = true
		t.e.claiming <- struct{}{}
		select {
		case <-t.e.release:
		case <-ctx.Done():
		}
	}
	return t.Txn.Replace(ctx, table, key, expected, value)
}

// TestRequestsQueuedDuringCounterWaitJoinTheGroup: requests that arrive
// while a group waits for the counter's lock join that group, in arrival
// order, instead of waiting for a group of their own; a solo request (a
// lease revoke here) among them ends the joining and runs right after, before
// the requests behind it. Each request in "order" is sent once the one
// before is queued, the first one's group being held at its claim.
func TestRequestsQueuedDuringCounterWaitJoinTheGroup(t *testing.T) {
	for _, tc := range []struct {
		order  string // p: a put, r: a lease revoke (solo)
		groups int64
	}{
		{"pprp", 3},  // {p p} {r} {p}
		{"ppp", 1},   // {p p p}
		{"rprp", 4},  // a solo group takes no one; {p} then finds r queued behind it
		{"prrpp", 4}, // {p} {r} {r} {p p}
	} {
		t.Run(tc.order, func(t *testing.T) {
			eng := &slowCounterLock{Engine: memengine.New(), claiming: make(chan struct{}, 8), release: make(chan struct{})}
			s := openStore(t, eng)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// One lease per revoke, each holding a key, so that each revoke
			// takes a revision.
			var leases []int64
			for i, op := range tc.order {
				if op != 'r' {
					continue
				}
				id, _, err := s.LeaseGrant(ctx, 0, 60)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte(fmt.Sprint("l", i)), Value: []byte("1"), Lease: id}); err != nil {
					t.Fatal(err)
				}
				leases = append(leases, id)
			}
			first := int64(len(leases)) + 2 // the revision of the first request
			before := s.WriterStats()

			eng.armed.Store(true)
			revs := make([]chan int64, len(tc.order))
			requests := make([]func(), len(tc.order))
			for i, op := range tc.order {
				revs[i] = make(chan int64, 1)
				var fn func() (*pb.ResponseHeader, error)
				if op == 'r' {
					id := leases[0]
					leases = leases[1:]
					fn = func() (*pb.ResponseHeader, error) {
						r, err := s.LeaseRevoke(ctx, id)
						if err != nil {
							return nil, err
						}
						return r.Header, nil
					}
				} else {
					fn = func() (*pb.ResponseHeader, error) {
						r, err := s.Put(ctx, &pb.PutRequest{Key: []byte(fmt.Sprint("k", i)), Value: []byte("v")})
						if err != nil {
							return nil, err
						}
						return r.Header, nil
					}
				}
				requests[i] = func() {
					h, err := fn()
					if err != nil {
						t.Errorf("request %d (%c): %v", i, op, err)
						revs[i] <- 0
						return
					}
					revs[i] <- h.Revision
				}
			}
			startBehindHeldClaim(ctx, t, s, eng, requests)
			close(eng.release)

			for i := range tc.order {
				if got, want := <-revs[i], first+int64(i); got != want {
					t.Errorf("request %d (%c) at revision %d, want %d", i, tc.order[i], got, want)
				}
			}
			after := s.WriterStats()
			if groups, reqs := after.Groups-before.Groups, after.Requests-before.Requests; groups != tc.groups || reqs != int64(len(tc.order)) {
				t.Errorf("%d requests in %d groups, want %d in %d", reqs, groups, len(tc.order), tc.groups)
			}
		})
	}
}

// startBehindHeldClaim starts each request in a goroutine of its own, in
// order: the first one's group is held at its claim of the counter (eng is
// armed), and each later one is started once the one before it is queued
// behind that group. The caller lets the group go (close(eng.release)).
func startBehindHeldClaim(ctx context.Context, t *testing.T, s *mvcc.Store, eng *slowCounterLock, requests []func()) {
	t.Helper()
	for i, request := range requests {
		go request()
		if i == 0 {
			select {
			case <-eng.claiming: // the first group waits for the counter's lock
			case <-ctx.Done():
				t.Fatal("the first group never claimed the counter")
			}
			continue
		}
		for s.QueuedWrites() < i {
			if ctx.Err() != nil {
				t.Fatalf("request %d never queued", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
}
