package mvcc_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/mvcc"
)

// claimWatch wraps an engine to see whether the next write group asks for
// the revision counter while the group before it is still writing. Once
// armed, the first revlog write holds (up to a bound) until another
// transaction calls Replace on the meta table, and records whether one did.
type claimWatch struct {
	mvcc.Engine
	ids     atomic.Int64
	armed   atomic.Bool
	writing chan struct{} // closed when the held group reaches its revlog write

	mu      sync.Mutex
	holder  int64         // the transaction held at its revlog write (0: none)
	claimed chan struct{} // closed at another transaction's Replace on meta while holder waits
	saw     bool
}

func newClaimWatch() *claimWatch {
	return &claimWatch{Engine: memengine.New(), writing: make(chan struct{}), claimed: make(chan struct{})}
}

func (e *claimWatch) Begin(ctx context.Context) (mvcc.Txn, error) {
	tx, err := e.Engine.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &claimWatchTxn{Txn: tx, e: e, id: e.ids.Add(1)}, nil
}

type claimWatchTxn struct {
	mvcc.Txn
	e  *claimWatch
	id int64
}

func (t *claimWatchTxn) PutAll(ctx context.Context, table string, entries []mvcc.Entry) error {
	e := t.e
	if strings.HasSuffix(table, "revlog") && e.armed.CompareAndSwap(true, false) {
		e.mu.Lock()
		e.holder = t.id
		e.mu.Unlock()
		close(e.writing)
		select {
		case <-e.claimed:
		case <-time.After(3 * time.Second):
		}
		e.mu.Lock()
		e.holder = 0 // a claim from now on comes after this group's writes
		e.mu.Unlock()
	}
	return t.Txn.PutAll(ctx, table, entries)
}

func (t *claimWatchTxn) Replace(ctx context.Context, table string, key, expected, value []byte) (bool, error) {
	e := t.e
	if strings.HasSuffix(table, "meta") {
		// Recorded before the call: the claim then waits for the lock.
		e.mu.Lock()
		if e.holder != 0 && e.holder != t.id && !e.saw {
			e.saw = true
			close(e.claimed)
		}
		e.mu.Unlock()
	}
	return t.Txn.Replace(ctx, table, key, expected, value)
}

// TestNextGroupClaimsWhileThisOneWrites: a write group lets the next one
// start as soon as it knows the counter it will leave, before its writes, so
// that the next group's claim is already waiting at the counter's lock when
// this one commits (writer.go). Were the next group started only at the
// commit, its claim would reach the engine a round trip late, every group.
// Revisions must come out in request order all the same.
func TestNextGroupClaimsWhileThisOneWrites(t *testing.T) {
	eng := newClaimWatch()
	s := openStore(t, eng)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("0")}); err != nil {
		t.Fatal(err)
	}
	eng.armed.Store(true)
	first := make(chan *pb.PutResponse, 1)
	errs := make(chan error, 2)
	go func() {
		r, err := s.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("1")})
		if err != nil {
			errs <- err
		}
		first <- r
	}()
	select {
	case <-eng.writing:
	case err := <-errs:
		t.Fatal(err)
	case <-ctx.Done():
		t.Fatal("the first group never wrote its revlog entries")
	}
	second, err := s.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("2")})
	if err != nil {
		t.Fatal(err)
	}
	var r1 *pb.PutResponse
	select {
	case r1 = <-first:
	case err := <-errs:
		t.Fatal(err)
	}
	eng.mu.Lock()
	saw := eng.saw
	eng.mu.Unlock()
	if !saw {
		t.Fatal("the next group asked for the revision counter only after the group before it had written")
	}
	if r1.Header.Revision != 3 || second.Header.Revision != 4 {
		t.Fatalf("revisions %d, %d; want 3, 4 (request order)", r1.Header.Revision, second.Header.Revision)
	}
	got, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	if kv := got.Kvs[0]; string(kv.Value) != "2" || kv.Version != 3 || kv.ModRevision != 4 {
		t.Fatalf("a = %q version %d mod %d; want \"2\" version 3 mod 4", kv.Value, kv.Version, kv.ModRevision)
	}
}
