package mvcc_test

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/mvcc"
)

// These tests play what Ignite may do when a connection drops with a
// transaction's operation in flight: run that one operation later, outside
// the transaction (shared/docs/ignite-thin-protocol.md 6.3).

func rev8(r int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(r))
	return b
}

// leak applies fn in a transaction of its own, as an operation run outside
// the writer's transaction would be.
func leak(t *testing.T, eng *memengine.Engine, fn func(ctx context.Context, tx mvcc.Txn) error) {
	t.Helper()
	ctx := context.Background()
	tx, err := eng.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// newLeakStore opens a store on a fresh memory engine, and a context for
// the test's requests.
func newLeakStore(t *testing.T) (*memengine.Engine, *mvcc.Store, context.Context) {
	eng := memengine.New()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return eng, openStore(t, eng), ctx
}

// historyKey12 is a history table key: revision and sub-revision.
func historyKey12(rev int64, sub uint32) []byte {
	h := make([]byte, 12)
	binary.BigEndian.PutUint64(h, uint64(rev))
	binary.BigEndian.PutUint32(h[8:], sub)
	return h
}

func openStore(t *testing.T, eng mvcc.Engine) *mvcc.Store {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := mvcc.Open(ctx, eng, mvcc.Config{PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestLateCounterWriteCannotRegress: the writer sets the counter by
// compare-and-swap, so a write of an old counter value applied late does
// not move it back.
func TestLateCounterWriteCannotRegress(t *testing.T) {
	eng, s, ctx := newLeakStore(t)
	for i := 0; i < 3; i++ {
		if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	// The write of revision 3 "arrives late": it expects counter 2.
	leak(t, eng, func(ctx context.Context, tx mvcc.Txn) error {
		ok, err := tx.Replace(ctx, "meta", []byte("revision"), rev8(2), rev8(3))
		if ok {
			t.Error("a late compare-and-swap of the counter succeeded")
		}
		return err
	})
	p, err := s.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("y")})
	if err != nil || p.Header.Revision != 5 {
		t.Fatalf("next put: %+v %v, want revision 5", p, err)
	}
}

// TestStaleKVAndHistoryAreIgnored: kv and history records of a write that
// never committed (its operations applied outside their transaction) do not
// change what a node answers, writes, or loads at start-up.
func TestStaleKVAndHistoryAreIgnored(t *testing.T) {
	eng, s, ctx := newLeakStore(t)
	if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	garbage, _ := (&pb.PutRequest{Key: []byte("zz")}).Marshal()
	leak(t, eng, func(ctx context.Context, tx mvcc.Txn) error {
		// A kv record claiming version 7, and history for revisions 2 and 3.
		kv, _ := (&mvccpb.KeyValue{Key: []byte("a"), CreateRevision: 2, ModRevision: 3, Version: 7}).Marshal()
		if err := tx.PutAll(ctx, "kv", []mvcc.Entry{{Key: []byte("a"), Value: kv}}); err != nil {
			return err
		}
		return tx.PutAll(ctx, "history", []mvcc.Entry{{Key: historyKey12(2, 5), Value: garbage}, {Key: historyKey12(3, 0), Value: garbage}})
	})
	p, err := s.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("2"), PrevKv: true})
	if err != nil || p.PrevKv == nil || p.PrevKv.Version != 1 || p.Header.Revision != 3 {
		t.Fatalf("put over a stale kv record: %+v %v; want prev version 1 at revision 3", p, err)
	}
	s.Close()
	s2 := openStore(t, eng)
	r, err := s2.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Count != 1 || string(r.Kvs[0].Value) != "2" || r.Kvs[0].Version != 2 || r.Header.Revision != 3 {
		t.Fatalf("after restart: %+v", r)
	}
	// Compaction removes the stray history entry below it.
	if _, err := s2.Compact(ctx, 3, true); err != nil {
		t.Fatal(err)
	}
	got, _ := eng.GetAll(ctx, "history", [][]byte{historyKey12(2, 5)})
	if got[0] != nil {
		t.Fatal("compaction left a stray history entry below the compacted revision")
	}
}

// finalCASLeaks makes the first write group's final compare-and-swap of the
// counter fail as a dropped connection would, with the operation then
// applied by the engine outside the transaction, after its rollback
// (ignite/NOTES.md; the double does this when a connection drops).
type finalCASLeaks struct {
	*memengine.Engine
	mu     sync.Mutex
	leaked bool
}

func (e *finalCASLeaks) Begin(ctx context.Context) (mvcc.Txn, error) {
	tx, err := e.Engine.Begin(ctx)
	return &leakyTxn{Txn: tx, e: e}, err
}

type leakyTxn struct {
	mvcc.Txn
	e       *finalCASLeaks
	replace func() // the operation to apply late, after Rollback
}

func (t *leakyTxn) Replace(ctx context.Context, table string, key, expected, value []byte) (bool, error) {
	if table == "meta" && string(key) == "revision" {
		// The group's final compare-and-swap is the one that moves the
		// revision (the first 8 bytes of the counter).
		before := int64(1)
		if len(expected) >= 8 {
			before = int64(binary.BigEndian.Uint64(expected))
		}
		t.e.mu.Lock()
		leak := !t.e.leaked && len(value) >= 8 && int64(binary.BigEndian.Uint64(value)) > before
		t.e.leaked = t.e.leaked || leak
		t.e.mu.Unlock()
		if leak {
			t.replace = func() {
				tx, err := t.e.Engine.Begin(context.Background())
				if err != nil {
					return
				}
				_, _ = tx.Replace(context.Background(), table, key, expected, value)
				_ = tx.Commit(context.Background())
			}
			return false, mvcc.ErrEngineUnavailable
		}
	}
	return t.Txn.Replace(ctx, table, key, expected, value)
}

func (t *leakyTxn) Rollback(ctx context.Context) error {
	err := t.Txn.Rollback(ctx)
	if t.replace != nil {
		t.replace()
	}
	return err
}

// TestLeakedFinalCounterWriteIsInert: a group's final write of the counter,
// applied after its transaction rolled back, must not move the counter (it
// expects the nonce the group set inside the transaction, which the
// rollback undid), so no revision is left without its revlog entry.
func TestLeakedFinalCounterWriteIsInert(t *testing.T) {
	eng := &finalCASLeaks{Engine: memengine.New()}
	s := openStore(t, eng)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("1")}); !errors.Is(err, mvcc.ErrEngineUnavailable) {
		t.Fatalf("put whose final counter write failed: %v, want unavailable", err)
	}
	if !eng.leaked {
		t.Fatal("the final compare-and-swap was not intercepted")
	}
	p, err := s.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("2")})
	if err != nil || p.Header.Revision != 2 {
		t.Fatalf("next put: %+v %v, want revision 2 (the failed put's revision, never committed)", p, err)
	}
	r, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("a")})
	if err != nil || r.Header.Revision != 2 || string(r.Kvs[0].Value) != "2" {
		t.Fatalf("read after: %+v %v", r, err)
	}
}

// TestLeakedHistoryWriteIsRepairedByCompaction: a history entry that
// compaction keeps (the version a key had at the compacted revision) was
// overwritten by a rolled-back group's history write applied late;
// compaction rewrites it from the index, so a node loading the store
// afterwards reads the committed version.
func TestLeakedHistoryWriteIsRepairedByCompaction(t *testing.T) {
	eng, s, ctx := newLeakStore(t)
	for _, k := range []string{"a", "b"} { // a at revision 2, b at 3
		if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte("1")}); err != nil {
			t.Fatal(err)
		}
	}
	evil, _ := (&mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("lost"), CreateRevision: 2, ModRevision: 2, Version: 1}}).Marshal()
	leak(t, eng, func(ctx context.Context, tx mvcc.Txn) error {
		return tx.PutAll(ctx, "history", []mvcc.Entry{{Key: historyKey12(2, 0), Value: evil}})
	})
	if _, err := s.Compact(ctx, 3, true); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := openStore(t, eng)
	r, err := s2.Range(ctx, &pb.RangeRequest{Key: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "1" {
		t.Fatalf("a after compaction and restart: %+v, want the committed value 1", r.Kvs)
	}
}
