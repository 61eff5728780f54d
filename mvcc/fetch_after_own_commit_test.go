package mvcc_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/mvcc"
)

// slowCommitReply applies a transaction's commit at once but returns from
// Commit only when the test lets it: the commit's reply is late, as over a
// busy connection, while other nodes already see the commit and write after it.
type slowCommitReply struct {
	*memengine.Engine
	armed   atomic.Bool   // only commits while armed are held
	applied chan struct{} // one value per commit applied
	reply   chan struct{} // one value lets one Commit return
}

func (e *slowCommitReply) Begin(ctx context.Context) (mvcc.Txn, error) {
	tx, err := e.Engine.Begin(ctx)
	return slowCommitTxn{Txn: tx, e: e}, err
}

type slowCommitTxn struct {
	mvcc.Txn
	e *slowCommitReply
}

func (t slowCommitTxn) Commit(ctx context.Context) error {
	err := t.Txn.Commit(ctx)
	if !t.e.armed.Load() {
		return err
	}
	t.e.applied <- struct{}{}
	select {
	case <-t.e.reply:
	case <-ctx.Done():
	}
	return err
}

// TestOtherNodesGroupAfterOwnCommitIsFetched: node B's own group is committed
// but its commit's reply is late; node A writes the next revision meanwhile,
// and B is notified of it while its own revisions are still in flight. Once
// B's reply comes, B must read A's group at once. It used to wait for the
// next notification or the counter poll (100 ms by default; an hour here),
// which showed as 80-100 ms write stalls with two nodes on one Ignite.
func TestOtherNodesGroupAfterOwnCommitIsFetched(t *testing.T) {
	eng := memengine.New()
	slow := &slowCommitReply{Engine: eng, applied: make(chan struct{}, 16), reply: make(chan struct{}, 16)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	open := func(e mvcc.Engine) *mvcc.Store {
		s, err := mvcc.Open(ctx, e, mvcc.Config{PollInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	a, b := open(eng), open(slow)

	slow.armed.Store(true)
	bDone := make(chan error, 1)
	go func() {
		_, err := b.Put(ctx, &pb.PutRequest{Key: []byte("b"), Value: []byte("1")})
		bDone <- err
	}()
	select {
	case <-slow.applied: // revision 2 is B's, committed; B does not know yet
	case <-ctx.Done():
		t.Fatal("B's commit was not applied")
	}
	resp, err := a.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("2")})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Revision; got != 3 {
		t.Fatalf("A's put got revision %d, want 3", got)
	}
	time.Sleep(100 * time.Millisecond) // B is notified of revision 3 while 2 is in flight
	slow.reply <- struct{}{}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(5 * time.Second)
	for b.Revision() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("B's view stayed at revision %d after its own commit returned; A's revision 3 was never fetched", b.Revision())
		}
		time.Sleep(5 * time.Millisecond)
	}
	got, err := b.Range(ctx, &pb.RangeRequest{Key: []byte("a"), Serializable: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "2" || got.Kvs[0].ModRevision != 3 {
		t.Fatalf("B serves a = %v, want value 2 at revision 3", got.Kvs)
	}
}
