package mvcc_test

import (
	"context"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/ignetcd/ignetcd/memengine"
)

// TestKVTableHoldsEachKeysLatestRecord: the kv table, which the store never
// reads back but writes for Ignite users, holds each live key's latest
// KeyValue exactly as the store serves it, and no deleted key. The writes
// run in one group, where a key is written twice, one revision writes two
// keys, and keys are deleted that the group or an earlier one put; then
// a few alone.
func TestKVTableHoldsEachKeysLatestRecord(t *testing.T) {
	eng := &slowCounterLock{Engine: memengine.New(), claiming: make(chan struct{}, 8), release: make(chan struct{})}
	s := openStore(t, eng)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	put := func(k, v string) func() error {
		return func() error {
			_, err := s.Put(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte(v)})
			return err
		}
	}
	del := func(k string) func() error {
		return func() error {
			_, err := s.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte(k)})
			return err
		}
	}
	putOp := func(k, v string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
	}
	for _, fn := range []func() error{put("x", "0"), put("gone", "0")} {
		if err := fn(); err != nil {
			t.Fatal(err)
		}
	}
	before := s.WriterStats()

	eng.armed.Store(true)
	group := []func() error{
		put("a", "1"),
		put("a", "2"),
		func() error {
			_, err := s.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{putOp("b", "1"), putOp("c", "1")}})
			return err
		},
		del("c"),
		del("gone"),
		put("x", "1"),
	}
	errs := make(chan error, len(group))
	requests := make([]func(), len(group))
	for i, fn := range group {
		requests[i] = func() { errs <- fn() }
	}
	startBehindHeldClaim(ctx, t, s, eng, requests)
	close(eng.release)
	for range group {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if groups := s.WriterStats().Groups - before.Groups; groups != 1 {
		t.Fatalf("the writes ran in %d groups, want 1", groups)
	}
	checkKVTable(t, s, eng.Engine, map[string]string{"a": "2", "b": "1", "x": "1"})

	eng.armed.Store(false)
	for _, fn := range []func() error{put("a", "3"), del("b"), put("c", "2")} {
		if err := fn(); err != nil {
			t.Fatal(err)
		}
	}
	checkKVTable(t, s, eng.Engine, map[string]string{"a": "3", "c": "2", "x": "1"})
}

// checkKVTable compares the kv table with the store's answer for every key
// and with the values the test expects.
func checkKVTable(t *testing.T, s interface {
	Range(context.Context, *pb.RangeRequest) (*pb.RangeResponse, error)
}, eng *memengine.Engine, want map[string]string) {
	t.Helper()
	ctx := context.Background()
	table := map[string]*mvccpb.KeyValue{}
	err := eng.Scan(ctx, "kv", func(key, value []byte) error {
		kv := &mvccpb.KeyValue{}
		if err := kv.Unmarshal(value); err != nil {
			t.Errorf("kv table entry %q: %v", key, err)
			return nil
		}
		if string(kv.Key) != string(key) {
			t.Errorf("kv table entry %q holds the record of %q", key, kv.Key)
		}
		table[string(key)] = kv
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != len(table) || len(table) != len(want) {
		t.Errorf("kv table has %d keys, the store %d, want %d", len(table), len(r.Kvs), len(want))
	}
	for _, kv := range r.Kvs {
		got := table[string(kv.Key)]
		if got == nil || got.String() != kv.String() {
			t.Errorf("kv table record of %q: %v, the store serves %v", kv.Key, got, kv)
		}
		if string(kv.Value) != want[string(kv.Key)] {
			t.Errorf("%q = %q, want %q", kv.Key, kv.Value, want[string(kv.Key)])
		}
	}
}
