package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Table names, appended to the store's prefix so that two ignetcd clusters
// can share one engine (design brief section 2).
const (
	tableKV      = "kv"      // user key → mvccpb.KeyValue, the latest version; absent when deleted
	tableHistory = "history" // historyKey(rev, sub) → mvccpb.Event: below the compacted revision, the versions compaction kept (compact.go)
	tableRevlog  = "revlog"  // revlogKey(rev, nonce) → the group's span and every event of that revision (encodeRevlogEntry), from the compacted revision on
	tableMeta    = "meta"    // metaRevision → the last committed group (encodeCounter), metaCompact → 8-byte big-endian revision
	tableLeases  = "leases"  // revisionKey(lease id) → encodeLease
)

var (
	metaRevision = []byte("revision")
	metaCompact  = []byte("compact")
)

// revisionKey encodes a revision (or lease id) as 8 big-endian bytes.
func revisionKey(rev int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(rev))
	return b
}

// The revision counter (meta "revision") records the last committed write
// group: its last and first revision and its nonce, a random number every
// revlog entry of that group carries in its key (revlogKey). A revision is
// trusted only as written by a group a committed counter value names, so
// a write the engine applies late, outside a transaction that was rolled
// back (ignite/NOTES.md), is never mistaken for a committed one: its nonce
// is one no committed counter ever held.
//
// A fourth field, the claim, is set by the group holding the counter's lock
// first thing in its transaction (writer.go, claimCounter); the group's final
// compare-and-swap expects it, so that operation, applied late, changes
// nothing. The forms of earlier versions (8 bytes: the revision; 16 bytes:
// revision and claim) are read as counters of nonce 0, whose revisions are
// in revlog under the 8-byte keys of those versions (legacy entries).

// counterValue is the decoded revision counter.
type counterValue struct {
	last, first int64 // the last group's revisions (first 0: unknown, a legacy counter)
	nonce       uint64
	claim       uint64
}

const counterSize = 32

// encodeCounter is the counter's stored form.
func encodeCounter(c counterValue) []byte {
	b := make([]byte, counterSize)
	binary.BigEndian.PutUint64(b, uint64(c.last))
	binary.BigEndian.PutUint64(b[8:], uint64(c.first))
	binary.BigEndian.PutUint64(b[16:], c.nonce)
	binary.BigEndian.PutUint64(b[24:], c.claim)
	return b
}

// decodeCounterValue decodes the revision counter; an empty store is at
// revision 1, as etcd's is, so the first write gets revision 2.
func decodeCounterValue(b []byte) (counterValue, error) {
	switch len(b) {
	case 0:
		if b == nil {
			return counterValue{last: 1}, nil
		}
	case 8, 16: // earlier versions: revision, then a claim
		return counterValue{last: int64(binary.BigEndian.Uint64(b))}, nil
	case counterSize:
		c := counterValue{
			last:  int64(binary.BigEndian.Uint64(b)),
			first: int64(binary.BigEndian.Uint64(b[8:])),
			nonce: binary.BigEndian.Uint64(b[16:]),
			claim: binary.BigEndian.Uint64(b[24:]),
		}
		if c.nonce != 0 && (c.first < 2 || c.first > c.last) {
			return counterValue{}, fmt.Errorf("mvcc: bad revision counter: revisions %d..%d", c.first, c.last)
		}
		return c, nil
	}
	return counterValue{}, fmt.Errorf("mvcc: bad revision counter of %d bytes", len(b))
}

// newNonce returns a random nonce; 0 is reserved for legacy entries.
func newNonce() uint64 {
	for {
		if n := rand.Uint64(); n != 0 {
			return n
		}
	}
}

// revlogKey names revision rev as written by the group of nonce: a
// rolled-back group's entry, written late, lands beside the committed one
// instead of over it.
func revlogKey(rev int64, nonce uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(rev))
	binary.BigEndian.PutUint64(b[8:], nonce)
	return b
}

// decodeRevlogKey decodes a revlog key; an 8-byte key is a legacy entry
// (nonce 0).
func decodeRevlogKey(b []byte) (rev int64, nonce uint64, err error) {
	switch len(b) {
	case 8:
		rev = int64(binary.BigEndian.Uint64(b))
	case 16:
		rev, nonce = int64(binary.BigEndian.Uint64(b)), binary.BigEndian.Uint64(b[8:])
		if nonce == 0 {
			return 0, 0, fmt.Errorf("mvcc: revlog key of nonce 0")
		}
	default:
		return 0, 0, fmt.Errorf("mvcc: bad revlog key of %d bytes", len(b))
	}
	if rev <= 0 {
		return 0, 0, fmt.Errorf("mvcc: revlog key of revision %d", rev)
	}
	return rev, nonce, nil
}

// groupSpan is what every revlog entry of a write group says about it: its
// revisions and the nonce of the group before it (the one the counter
// named when this group took it; 0 if legacy). Following prev from the
// counter walks the committed groups back, which is how a node that missed
// notifications finds the nonces of the revisions it lacks.
type groupSpan struct {
	first, last int64
	prev        uint64
}

const spanSize = 24

// encodeRevlogEntry is a revlog entry of a group: its span, then the
// revision's events as decodeEvents reads them. It marshals each event
// straight into the entry, and returns with it where each event's KeyValue
// lies in it (nil for an event carrying a prev_kv): the kv table stores that
// same encoding, so a write marshals each record once and allocates one
// buffer per revision.
func encodeRevlogEntry(sp groupSpan, evs []*mvccpb.Event) (entry []byte, kvs [][]byte) {
	size := spanSize + binary.MaxVarintLen64
	for _, ev := range evs {
		size += binary.MaxVarintLen64 + ev.Size()
	}
	b := make([]byte, spanSize, size)
	binary.BigEndian.PutUint64(b, uint64(sp.first))
	binary.BigEndian.PutUint64(b[8:], uint64(sp.last))
	binary.BigEndian.PutUint64(b[16:], sp.prev)
	b = binary.AppendUvarint(b, uint64(len(evs)))
	kvs = make([][]byte, len(evs))
	for i, ev := range evs {
		n := ev.Size()
		b = binary.AppendUvarint(b, uint64(n))
		at := len(b)
		b = b[:at+n]
		// Cannot fail: the buffer has exactly the size Size reported.
		_, _ = ev.MarshalToSizedBuffer(b[at:])
		// An Event is type, kv, prev_kv in field order, so without a
		// prev_kv its KeyValue's encoding is the tail of its own.
		if ev.PrevKv == nil && ev.Kv != nil {
			end := at + n
			kvs[i] = b[end-ev.Kv.Size() : end : end]
		}
	}
	return b, kvs
}

// decodeRevlogEntry decodes the entry of revision rev; a legacy entry
// (nonce 0) is the events alone.
func decodeRevlogEntry(rev int64, nonce uint64, b []byte) (groupSpan, []*mvccpb.Event, error) {
	if nonce == 0 {
		evs, err := decodeEvents(b)
		return groupSpan{first: rev, last: rev}, evs, err
	}
	if len(b) < spanSize {
		return groupSpan{}, nil, errBadEvents
	}
	sp := groupSpan{
		first: int64(binary.BigEndian.Uint64(b)),
		last:  int64(binary.BigEndian.Uint64(b[8:])),
		prev:  binary.BigEndian.Uint64(b[16:]),
	}
	if sp.first < 2 || sp.first > rev || rev > sp.last {
		return groupSpan{}, nil, fmt.Errorf("mvcc: revlog entry of revision %d names revisions %d..%d", rev, sp.first, sp.last)
	}
	evs, err := decodeEvents(b[spanSize:])
	return sp, evs, err
}

// decodeCompact decodes the compacted revision; a store never compacted is
// at -1, as etcd's compactMainRev, so that Compact(0) succeeds once.
func decodeCompact(b []byte) (int64, error) {
	if b == nil {
		return -1, nil
	}
	return decodeRevision(b)
}

func decodeRevision(b []byte) (int64, error) {
	if b == nil {
		return 0, nil
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("mvcc: bad revision encoding of %d bytes", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// historyKey names one event: its main revision and its position in the
// revision (etcd's sub-revision), which is unique without the user key.
func historyKey(rev int64, sub int) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, uint64(rev))
	binary.BigEndian.PutUint32(b[8:], uint32(sub))
	return b
}

func decodeHistoryKey(b []byte) (rev int64, sub int, err error) {
	if len(b) != 12 {
		return 0, 0, fmt.Errorf("mvcc: bad history key of %d bytes", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), int(binary.BigEndian.Uint32(b[8:])), nil
}

var errBadEvents = errors.New("mvcc: malformed revlog entry")

// decodeEvents reads a revision's events, stored as their count followed by
// each mvccpb.Event message prefixed with its length (uvarints), in
// sub-revision order. An entry of an earlier version is that alone; one of
// this version has its group's span before it (encodeRevlogEntry).
func decodeEvents(b []byte) ([]*mvccpb.Event, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errBadEvents
	}
	b = b[k:]
	evs := make([]*mvccpb.Event, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, errBadEvents
		}
		ev := &mvccpb.Event{}
		if err := ev.Unmarshal(b[k : k+int(l)]); err != nil || ev.Kv == nil {
			return nil, errBadEvents
		}
		evs = append(evs, ev)
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, errBadEvents
	}
	return evs, nil
}

// leaseRecord is a lease as stored in the leases table.
type leaseRecord struct {
	ttl     int64 // granted TTL in seconds
	renewed int64 // last grant or keep-alive, unix nanoseconds
}

func encodeLease(l leaseRecord) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(l.ttl))
	binary.BigEndian.PutUint64(b[8:], uint64(l.renewed))
	return b
}

func decodeLease(b []byte) (leaseRecord, error) {
	if len(b) != 16 {
		return leaseRecord{}, fmt.Errorf("mvcc: bad lease record of %d bytes", len(b))
	}
	return leaseRecord{ttl: int64(binary.BigEndian.Uint64(b)), renewed: int64(binary.BigEndian.Uint64(b[8:]))}, nil
}
