package mvcc

import (
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestEventsRoundTrip(t *testing.T) {
	evs := []*mvccpb.Event{
		{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte{0, 0xff}, Value: []byte("v"), CreateRevision: 2, ModRevision: 9, Version: 3, Lease: 5}},
		{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("gone"), ModRevision: 9}},
	}
	got, err := decodeEvents(encodeEvents(evs))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Kv.String() != evs[0].Kv.String() || got[1].Kv.String() != evs[1].Kv.String() || got[1].Type != mvccpb.DELETE {
		t.Fatalf("round trip: %v", got)
	}
}

func TestDecodeEventsRejectsMalformed(t *testing.T) {
	good := encodeEvents([]*mvccpb.Event{{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("k")}}})
	for _, b := range [][]byte{nil, {}, {5}, good[:len(good)-1], append(append([]byte{}, good...), 0), {1, 200, 1}} {
		if _, err := decodeEvents(b); err == nil {
			t.Errorf("decodeEvents(%x) accepted malformed input", b)
		}
	}
}

func FuzzDecodeEvents(f *testing.F) {
	f.Add(encodeEvents([]*mvccpb.Event{{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("k"), Value: []byte("v")}}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := decodeEvents(b)
		if err == nil {
			for _, ev := range evs {
				if ev.Kv == nil {
					t.Fatal("decoded an event without a KeyValue")
				}
			}
		}
	})
}

func TestRevisionAndLeaseRecords(t *testing.T) {
	for _, rev := range []int64{0, 1, 1 << 40} {
		if got, err := decodeRevision(revisionKey(rev)); err != nil || got != rev {
			t.Fatalf("revision %d round trip: %d %v", rev, got, err)
		}
	}
	if c, _ := decodeCounter(nil); c != 1 {
		t.Fatalf("empty store counter = %d, want 1 (etcd's first revision)", c)
	}
	if c, _ := decodeCompact(nil); c != -1 {
		t.Fatalf("never-compacted store = %d, want -1", c)
	}
	if _, err := decodeRevision([]byte{1, 2}); err == nil {
		t.Fatal("short revision accepted")
	}
	l := leaseRecord{ttl: 9000000000, renewed: 12345}
	if got, err := decodeLease(encodeLease(l)); err != nil || got != l {
		t.Fatalf("lease round trip: %+v %v", got, err)
	}
	// etcd's largest TTL must not overflow: remaining stays positive.
	if l.remaining(12345+1e9) <= 0 {
		t.Fatal("a 9e9 s lease expired after one second")
	}
}
