package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Table names, appended to the store's prefix so that two ignetcd clusters
// can share one engine (design brief section 2).
const (
	tableKV      = "kv"      // user key → mvccpb.KeyValue, the latest version; absent when deleted
	tableHistory = "history" // historyKey(rev, sub) → mvccpb.Event as written at that revision
	tableRevlog  = "revlog"  // revisionKey(rev) → every event of that revision (encodeEvents)
	tableMeta    = "meta"    // metaRevision → revision and nonce (encodeCounter), metaCompact → 8-byte big-endian revision
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

// The revision counter is stored as the revision (8 bytes, big-endian)
// followed by a nonce (8 bytes) that the write group holding the counter's
// lock sets first thing in its transaction (writer.go, claimCounter). The
// group's final compare-and-swap expects its own nonce: should the engine
// apply that operation late, outside a transaction that was rolled back
// (ignite/NOTES.md), the counter no longer holds the nonce and nothing
// changes. A counter of 8 bytes (no nonce) is read as well.

// encodeCounter is the stored form of revision rev with nonce.
func encodeCounter(rev int64, nonce uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(rev))
	binary.BigEndian.PutUint64(b[8:], nonce)
	return b
}

// decodeCounter decodes the revision counter; an empty store is at
// revision 1, as etcd's is, so the first write gets revision 2.
func decodeCounter(b []byte) (int64, error) {
	if b == nil {
		return 1, nil
	}
	if len(b) == 16 {
		b = b[:8]
	}
	return decodeRevision(b)
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

// encodeEvents writes a revision's events as a count followed by
// length-prefixed mvccpb.Event messages, in sub-revision order.
func encodeEvents(evs []*mvccpb.Event) []byte {
	ms := make([][]byte, len(evs))
	for i, ev := range evs {
		ms[i], _ = ev.Marshal()
	}
	return joinEvents(ms)
}

// joinEvents is encodeEvents of events already marshalled (the write path
// marshals each event once, for its history entry and its revlog entry).
func joinEvents(ms [][]byte) []byte {
	size := binary.MaxVarintLen64
	for _, m := range ms {
		size += binary.MaxVarintLen64 + len(m)
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for _, m := range ms {
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	return b
}

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
