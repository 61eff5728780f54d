package mvcc

import (
	"bytes"
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
	if c, _ := decodeCounterValue(nil); c.last != 1 {
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

func TestCounterAndRevlogRecords(t *testing.T) {
	cv := counterValue{last: 41, first: 30, nonce: 7, claim: 9}
	if got, err := decodeCounterValue(encodeCounter(cv)); err != nil || got != cv {
		t.Fatalf("counter round trip: %+v %v", got, err)
	}
	// Earlier versions' forms: the revision alone, then with a claim; both
	// read as a counter of nonce 0 (legacy revlog entries).
	for _, b := range [][]byte{revisionKey(41), append(revisionKey(41), revisionKey(5)...)} {
		if got, err := decodeCounterValue(b); err != nil || got != (counterValue{last: 41}) {
			t.Fatalf("legacy counter % X: %+v %v", b, got, err)
		}
	}
	if got, err := decodeCounterValue(nil); err != nil || got != (counterValue{last: 1}) {
		t.Fatalf("empty store: %+v %v", got, err)
	}
	for _, bad := range []counterValue{{last: 10, first: 11, nonce: 1}, {last: 10, first: 1, nonce: 1}} {
		if _, err := decodeCounterValue(encodeCounter(bad)); err == nil {
			t.Fatalf("counter %+v accepted", bad)
		}
	}
	if rev, nonce, err := decodeRevlogKey(revlogKey(12, 99)); err != nil || rev != 12 || nonce != 99 {
		t.Fatalf("revlog key round trip: %d %d %v", rev, nonce, err)
	}
	if rev, nonce, err := decodeRevlogKey(revisionKey(12)); err != nil || rev != 12 || nonce != 0 {
		t.Fatalf("legacy revlog key: %d %d %v", rev, nonce, err)
	}
	if _, _, err := decodeRevlogKey(revlogKey(12, 0)); err == nil {
		t.Fatal("a 16-byte revlog key of nonce 0 accepted")
	}
	evs := []*mvccpb.Event{{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("k"), Value: []byte("v"), CreateRevision: 11, ModRevision: 11, Version: 1}}}
	sp := groupSpan{first: 10, last: 12, prev: 5}
	b, kvs := encodeRevlogEntry(sp, evs)
	got, gotEvs, err := decodeRevlogEntry(11, 3, b)
	if err != nil || got != sp || len(gotEvs) != 1 || gotEvs[0].Kv.String() != evs[0].Kv.String() {
		t.Fatalf("revlog entry round trip: %+v %v %v", got, gotEvs, err)
	}
	// The kv table stores the record's encoding as found in the entry.
	if want, _ := evs[0].Kv.Marshal(); len(kvs) != 1 || !bytes.Equal(kvs[0], want) {
		t.Fatalf("the entry's record encoding: % X, want % X", kvs, want)
	}
	if _, _, err := decodeRevlogEntry(13, 3, b); err == nil {
		t.Fatal("an entry outside the span it names accepted")
	}
	if _, legacyEvs, err := decodeRevlogEntry(11, 0, encodeEvents(evs)); err != nil || len(legacyEvs) != 1 {
		t.Fatalf("legacy entry: %v %v", legacyEvs, err)
	}
}

// encodeEvents is a revision's events in the form of an earlier version's
// revlog entry (and the part after the span of this version's).
func encodeEvents(evs []*mvccpb.Event) []byte {
	entry, _ := encodeRevlogEntry(groupSpan{}, evs)
	return entry[spanSize:]
}
