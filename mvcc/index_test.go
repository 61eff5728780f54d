package mvcc

import (
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func put(ix *index, key string, rev, create, version int64, value string) {
	ix.apply(&mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value), CreateRevision: create, ModRevision: rev, Version: version}}, 0)
}

func del(ix *index, key string, rev int64) {
	ix.apply(&mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}, 0)
}

func keysAt(ix *index, key, end string, rev int64) string {
	var e []byte
	if end != "" {
		e = []byte(end)
	}
	if end == "\x00" {
		e = []byte{}
	}
	kvs, total := ix.rangeAt([]byte(key), e, rev, 0, false)
	s := fmt.Sprint(total, ":")
	for _, kv := range kvs {
		s += fmt.Sprintf(" %s=%s", kv.Key, kv.Value)
	}
	return s
}

func TestIndexHistoryAndTombstones(t *testing.T) {
	ix := newIndex()
	put(ix, "a", 2, 2, 1, "1")
	put(ix, "b", 3, 3, 1, "x")
	put(ix, "a", 4, 2, 2, "2")
	del(ix, "a", 5)
	put(ix, "a", 6, 6, 1, "3")
	cases := []struct {
		key, end string
		rev      int64
		want     string
	}{
		{"a", "", 1, "0:"},
		{"a", "", 2, "1: a=1"},
		{"a", "", 4, "1: a=2"},
		{"a", "", 5, "0:"},
		{"a", "", 6, "1: a=3"},
		{"a", "c", 5, "1: b=x"},
		{"a", "\x00", 6, "2: a=3 b=x"},
		{"b", "a", 6, "0:"}, // inverted range
	}
	for _, c := range cases {
		if got := keysAt(ix, c.key, c.end, c.rev); got != c.want {
			t.Errorf("range [%q,%q) at %d = %q, want %q", c.key, c.end, c.rev, got, c.want)
		}
	}
}

func TestIndexCompactKeepsLatestAtRevision(t *testing.T) {
	ix := newIndex()
	put(ix, "a", 2, 2, 1, "1")
	put(ix, "a", 3, 2, 2, "2")
	put(ix, "b", 4, 4, 1, "x")
	del(ix, "b", 5)
	put(ix, "a", 6, 2, 3, "3")
	dropped := ix.compact(5)
	// a@2 is superseded by a@3 (kept: newest <= 5); b@4 and its tombstone
	// at 5 both go, and b leaves the index.
	if len(dropped) != 3 {
		t.Fatalf("compact(5) dropped %d versions, want 3", len(dropped))
	}
	if got := keysAt(ix, "a", "\x00", 5); got != "1: a=2" {
		t.Fatalf("at the compacted revision: %q", got)
	}
	if got := keysAt(ix, "a", "\x00", 6); got != "1: a=3" {
		t.Fatalf("after it: %q", got)
	}
	if ix.get([]byte("b")) != nil {
		t.Fatal("a key deleted at or before the compacted revision stayed in the index")
	}
}

func TestIndexLeaseKeys(t *testing.T) {
	ix := newIndex()
	ix.apply(&mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("k1"), CreateRevision: 2, ModRevision: 2, Version: 1, Lease: 7}}, 0)
	ix.apply(&mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("k2"), CreateRevision: 2, ModRevision: 2, Version: 1, Lease: 7}}, 1)
	// k1 moves to another lease, k2 is deleted: lease 7 holds nothing.
	ix.apply(&mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("k1"), CreateRevision: 2, ModRevision: 3, Version: 2, Lease: 8}}, 0)
	if got := fmt.Sprintf("%q", ix.keysOfLease(7)); got != `["k2"]` {
		t.Fatalf("lease 7 keys = %s", got)
	}
	del(ix, "k2", 4)
	if got := len(ix.keysOfLease(7)); got != 0 {
		t.Fatalf("lease 7 still holds %d keys", got)
	}
	if got := fmt.Sprintf("%q", ix.keysOfLease(8)); got != `["k1"]` {
		t.Fatalf("lease 8 keys = %s", got)
	}
}
