package mvcc_test

import (
	"context"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/mvcc"
)

// igniteQuirks is the memory engine with two behaviours of a real Ignite
// 2.17 node that the store must work around (ignite/NOTES.md):
//   - a table used first inside a transaction is an error here; on Ignite,
//     creating its cache waits for every open transaction, this one included,
//     until the transaction times out;
//   - a key put-if-absent and then replaced in the same transaction is not
//     written by the commit.
type igniteQuirks struct {
	*memengine.Engine
	t       *testing.T
	mu      sync.Mutex
	created map[string]bool
}

func (e *igniteQuirks) CreateTables(ctx context.Context, tables ...string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range tables {
		e.created[t] = true
	}
	return e.Engine.CreateTables(ctx, tables...)
}

func (e *igniteQuirks) check(table string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.created[table] {
		e.t.Errorf("table %q first used inside a transaction: on Ignite its creation would wait for that transaction", table)
	}
}

func (e *igniteQuirks) Begin(ctx context.Context) (mvcc.Txn, error) {
	tx, err := e.Engine.Begin(ctx)
	return &quirkyTxn{Txn: tx, e: e, ifAbsent: map[string]bool{}, lost: map[string][]string{}}, err
}

type quirkyTxn struct {
	mvcc.Txn
	e        *igniteQuirks
	ifAbsent map[string]bool     // table+key put-if-absent in this transaction
	lost     map[string][]string // table -> keys the commit must not write
}

func (t *quirkyTxn) GetAll(ctx context.Context, table string, keys [][]byte) ([][]byte, error) {
	t.e.check(table)
	return t.Txn.GetAll(ctx, table, keys)
}

func (t *quirkyTxn) PutAll(ctx context.Context, table string, entries []mvcc.Entry) error {
	t.e.check(table)
	return t.Txn.PutAll(ctx, table, entries)
}

func (t *quirkyTxn) RemoveAll(ctx context.Context, table string, keys [][]byte) error {
	t.e.check(table)
	return t.Txn.RemoveAll(ctx, table, keys)
}

func (t *quirkyTxn) Replace(ctx context.Context, table string, key, expected, value []byte) (bool, error) {
	t.e.check(table)
	ok, err := t.Txn.Replace(ctx, table, key, expected, value)
	if err == nil && ok {
		id := table + "\x00" + string(key)
		if expected == nil {
			t.ifAbsent[id] = true
		} else if t.ifAbsent[id] {
			t.lost[table] = append(t.lost[table], string(key))
		}
	}
	return ok, err
}

func (t *quirkyTxn) Commit(ctx context.Context) error {
	for table, keys := range t.lost {
		bs := make([][]byte, len(keys))
		for i, k := range keys {
			bs[i] = []byte(k)
		}
		if err := t.Txn.RemoveAll(ctx, table, bs); err != nil {
			return err
		}
	}
	return t.Txn.Commit(ctx)
}

// TestStoreWorksAroundIgniteQuirks: on an engine that behaves as Ignite 2.17
// did when checked (igniteQuirks), a new keyspace takes writes with etcd's
// revisions and a second node reads them. Before the store created its
// tables at Open and wrote the counter of an empty keyspace there, the first
// write group used tables inside its transaction (on Ignite: every write
// timed out) and its put-if-absent claim of the counter took the counter
// with it at commit.
func TestStoreWorksAroundIgniteQuirks(t *testing.T) {
	eng := &igniteQuirks{Engine: memengine.New(), t: t, created: map[string]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := openStore(t, eng)
	for i, want := range []int64{2, 3, 4} {
		resp, err := s.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte{byte('0' + i)}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Revision != want {
			t.Fatalf("put %d got revision %d, want %d", i, resp.Header.Revision, want)
		}
	}
	if _, _, err := s.LeaseGrant(ctx, 7, 60); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte("l"), Value: []byte("x"), Lease: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Compact(ctx, 4, true); err != nil {
		t.Fatal(err)
	}
	other := openStore(t, eng)
	got, err := other.Range(ctx, &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z")})
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Revision != 6 || len(got.Kvs) != 1 || string(got.Kvs[0].Key) != "l" {
		t.Fatalf("second node: revision %d, kvs %v; want revision 6 and only key l", got.Header.Revision, got.Kvs)
	}
}
