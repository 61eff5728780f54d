package mvcc_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/mvcc"
)

// Write groups do not write the history table; compaction writes the
// versions a load needs below the compacted revision (compact.go). These
// tests stop a compaction between its steps, or overtake it, and load the
// store again.

// historyHooks is the memory engine with two hooks: history removals can be
// made to fail (the node stops before its purge), and a function can run
// just before the first transaction that reads the compacted revision
// (a compaction's guarded history write).
type historyHooks struct {
	*memengine.Engine
	mu            sync.Mutex
	failRemovals  bool
	beforeGuarded func()
}

func (e *historyHooks) Begin(ctx context.Context) (mvcc.Txn, error) {
	tx, err := e.Engine.Begin(ctx)
	return &hookedTxn{Txn: tx, e: e}, err
}

type hookedTxn struct {
	mvcc.Txn
	e *historyHooks
}

func (t *hookedTxn) GetAll(ctx context.Context, table string, keys [][]byte) ([][]byte, error) {
	if table == "meta" && len(keys) == 1 && string(keys[0]) == "compact" {
		t.e.mu.Lock()
		hook := t.e.beforeGuarded
		t.e.beforeGuarded = nil
		t.e.mu.Unlock()
		if hook != nil {
			hook()
		}
	}
	return t.Txn.GetAll(ctx, table, keys)
}

func (t *hookedTxn) RemoveAll(ctx context.Context, table string, keys [][]byte) error {
	t.e.mu.Lock()
	fail := t.e.failRemovals && table == "history"
	t.e.mu.Unlock()
	if fail {
		return errors.New("test: the node stopped before its purge")
	}
	return t.Txn.RemoveAll(ctx, table, keys)
}

func mustPut(t *testing.T, s *mvcc.Store, key, val string) int64 {
	t.Helper()
	r, err := s.Put(context.Background(), &pb.PutRequest{Key: []byte(key), Value: []byte(val)})
	if err != nil {
		t.Fatal(err)
	}
	return r.Header.Revision
}

func mustDelete(t *testing.T, s *mvcc.Store, key string) int64 {
	t.Helper()
	r, err := s.DeleteRange(context.Background(), &pb.DeleteRangeRequest{Key: []byte(key)})
	if err != nil || r.Deleted != 1 {
		t.Fatalf("delete %s: %+v %v", key, r, err)
	}
	return r.Header.Revision
}

// keyValues is every current key=value of s, in key order.
func keyValues(t *testing.T, s *mvcc.Store) []string {
	t.Helper()
	r, err := s.Range(context.Background(), &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range r.Kvs {
		out = append(out, string(kv.Key)+"="+string(kv.Value))
	}
	return out
}

// historyEntries lists the history table as "key@rev" ("-key@rev" for a
// tombstone), sorted.
func historyEntries(t *testing.T, eng mvcc.Engine) []string {
	t.Helper()
	var out []string
	err := eng.Scan(context.Background(), "history", func(_, value []byte) error {
		ev := &mvccpb.Event{}
		if err := ev.Unmarshal(value); err != nil {
			return err
		}
		e := string(ev.Kv.Key) + "@" + strconv.FormatInt(ev.Kv.ModRevision, 10)
		if ev.Type == mvccpb.DELETE {
			e = "-" + e
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestLoadAfterCompactionStoppedBeforePurge: the compacted revision is
// recorded but nothing superseded was removed from history (the node
// stopped). A node loading the store must find the versions kept at the
// compacted revision (written before it was recorded), and must not bring
// back a key deleted since the previous compaction, whose older version is
// still in history (the tombstone written with them says it is gone).
func TestLoadAfterCompactionStoppedBeforePurge(t *testing.T) {
	eng := &historyHooks{Engine: memengine.New()}
	s := openStore(t, eng)
	ctx := context.Background()
	mustPut(t, s, "a", "1") // 2
	mustPut(t, s, "k", "1") // 3
	mustPut(t, s, "x", "1") // 4
	if _, err := s.Compact(ctx, 4, true); err != nil {
		t.Fatal(err)
	}
	if got, want := historyEntries(t, eng), []string{"a@2", "k@3"}; !slices.Equal(got, want) {
		t.Fatalf("history after the first compaction: %v, want %v", got, want)
	}
	mustDelete(t, s, "k")   // 5
	mustPut(t, s, "a", "2") // 6
	mustPut(t, s, "y", "1") // 7
	eng.mu.Lock()
	eng.failRemovals = true
	eng.mu.Unlock()
	if _, err := s.Compact(ctx, 7, true); err != nil {
		t.Fatal(err)
	}
	want := []string{"a=2", "x=1", "y=1"}
	if got := keyValues(t, s); !slices.Equal(got, want) {
		t.Fatalf("keys on the compacting node: %v, want %v", got, want)
	}
	s.Close()

	s2 := openStore(t, eng)
	if got := keyValues(t, s2); !slices.Equal(got, want) {
		t.Fatalf("keys after a load with the purge undone: %v, want %v (history %v)", got, want, historyEntries(t, eng))
	}
	if r, err := s2.Range(ctx, &pb.RangeRequest{Key: []byte("a"), Revision: 6}); !errors.Is(err, mvcc.ErrCompacted) {
		t.Fatalf("read below the compacted revision after the load: %+v %v, want ErrCompacted", r, err)
	}

	// The next compaction purges: superseded puts and every tombstone go.
	eng.mu.Lock()
	eng.failRemovals = false
	eng.mu.Unlock()
	mustPut(t, s2, "z", "1") // 8
	if _, err := s2.Compact(ctx, 8, true); err != nil {
		t.Fatal(err)
	}
	if got, want := historyEntries(t, eng), []string{"a@6", "x@4", "y@7"}; !slices.Equal(got, want) {
		t.Fatalf("history after a full compaction: %v, want %v", got, want)
	}
	s2.Close()
	s3 := openStore(t, eng)
	if got, want := keyValues(t, s3), []string{"a=2", "x=1", "y=1", "z=1"}; !slices.Equal(got, want) {
		t.Fatalf("keys after the last load: %v, want %v", got, want)
	}
}

// TestOvertakenCompactionWritesNoHistory: a compaction at an older revision
// passes its first check, then another node compacts further and purges.
// The older compaction's history writes are refused under the compacted
// revision's lock, so its version of a key deleted in between does not
// come back at the next load.
func TestOvertakenCompactionWritesNoHistory(t *testing.T) {
	eng := &historyHooks{Engine: memengine.New()}
	a := openStore(t, eng)
	b := openStore(t, eng)
	ctx := context.Background()
	mustPut(t, a, "k", "1") // 2
	mustPut(t, a, "x", "1") // 3
	mustDelete(t, a, "k")   // 4
	mustPut(t, a, "w", "1") // 5
	var overtaking error
	eng.beforeGuarded = func() {
		_, overtaking = a.Compact(ctx, 5, true)
	}
	// b would keep k@2, the newest version of k at or below 3.
	if _, err := b.Compact(ctx, 3, true); !errors.Is(err, mvcc.ErrCompacted) {
		t.Fatalf("overtaken compaction: %v, want ErrCompacted", err)
	}
	if overtaking != nil {
		t.Fatalf("overtaking compaction: %v", overtaking)
	}
	if got, want := historyEntries(t, eng), []string{"x@3"}; !slices.Equal(got, want) {
		t.Fatalf("history: %v, want %v", got, want)
	}
	a.Close()
	b.Close()
	s := openStore(t, eng)
	if got, want := keyValues(t, s), []string{"w=1", "x=1"}; !slices.Equal(got, want) {
		t.Fatalf("keys after a load: %v, want %v", got, want)
	}
}
