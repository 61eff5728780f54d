package mvcc

import (
	"bytes"
	"encoding/json"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Fuzz targets, beyond records_test.go's FuzzDecodeEvents, for the decoders
// of what ignetcd reads back from the engine (Ignite caches): revlog
// entries, history entries and keys, revisions, leases and member records.
// Corrupt storage must give an error, never a panic, and whatever decodes
// must re-encode to the same bytes.

func FuzzDecodeEventsRoundTrip(f *testing.F) {
	f.Add(encodeEvents([]*mvccpb.Event{{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("k"), Value: []byte("v"), CreateRevision: 2, ModRevision: 2, Version: 1}}}))
	f.Add(encodeEvents([]*mvccpb.Event{
		{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("a"), ModRevision: 9}},
		{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("b"), Value: []byte("x"), CreateRevision: 3, ModRevision: 9, Version: 4, Lease: 77}, PrevKv: &mvccpb.KeyValue{Key: []byte("b")}},
	}))
	f.Add([]byte{0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := decodeEvents(b)
		if err != nil {
			return
		}
		for _, ev := range evs {
			if ev.Kv == nil {
				t.Fatal("decoded an event without a kv")
			}
		}
		again, err := decodeEvents(encodeEvents(evs))
		if err != nil || len(again) != len(evs) {
			t.Fatalf("re-decoding %d events: %d, %v", len(evs), len(again), err)
		}
		for i := range evs {
			if evs[i].Kv.String() != again[i].Kv.String() || evs[i].PrevKv.String() != again[i].PrevKv.String() || evs[i].Type != again[i].Type {
				t.Fatalf("event %d changed in a round trip: %v → %v", i, evs[i], again[i])
			}
		}
	})
}

func FuzzDecodeRecords(f *testing.F) {
	f.Add(revisionKey(42))
	f.Add(historyKey(7, 3))
	f.Add(encodeCounter(counterValue{last: 9, first: 4, nonce: 1, claim: 2}))
	f.Add(revlogKey(5, 8))
	entry, _ := encodeRevlogEntry(groupSpan{first: 2, last: 4, prev: 1}, nil)
	f.Add(entry)
	f.Add(encodeLease(leaseRecord{ttl: 60, renewed: 1 << 50}))
	f.Add([]byte(`{"ID":1,"Name":"n","ClientURLs":["http://a"],"Expires":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if rev, err := decodeRevision(b); err == nil && b != nil && !bytes.Equal(revisionKey(rev), b) {
			t.Fatalf("revision % X decodes to %d, which encodes differently", b, rev)
		}
		if cv, err := decodeCounterValue(b); err == nil && len(b) == counterSize && !bytes.Equal(encodeCounter(cv), b) {
			t.Fatalf("counter % X decodes to %+v, which encodes differently", b, cv)
		}
		if rev, nonce, err := decodeRevlogKey(b); err == nil && len(b) == 16 && !bytes.Equal(revlogKey(rev, nonce), b) {
			t.Fatalf("revlog key % X decodes to %d/%d, which encodes differently", b, rev, nonce)
		}
		decodeRevlogEntry(3, 1, b)
		decodeCompact(b)
		if rev, sub, err := decodeHistoryKey(b); err == nil && !bytes.Equal(historyKey(rev, sub), b) {
			t.Fatalf("history key % X decodes to %d/%d, which encodes differently", b, rev, sub)
		}
		if l, err := decodeLease(b); err == nil && !bytes.Equal(encodeLease(l), b) {
			t.Fatalf("lease % X decodes to %+v, which encodes differently", b, l)
		}
		var m Member
		json.Unmarshal(b, &m)
		var ev mvccpb.Event
		ev.Unmarshal(b) // a history entry
	})
}
