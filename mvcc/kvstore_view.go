package mvcc

import (
	"bytes"
	"context"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// baseReader is the state a request starts from: for a write, the keyspace
// at the counter its write group locked plus the effects of the requests
// before it in the group (writeGroup); for a read-only txn, the index at a
// fixed revision (indexReader). Either way the index holds every revision up
// to the base's, so a txn's historical reads go to it directly.
type baseReader interface {
	get(key []byte) (*mvccpb.KeyValue, error)
	// rangeKeys returns the live records of [key, end), by key.
	rangeKeys(key, end []byte) ([]*mvccpb.KeyValue, error)
	leaseExists(id int64) (bool, error)
}

// txnView is one request being evaluated: its base state with the
// request's own writes laid over it.
type txnView struct {
	s          *Store
	base       baseReader
	beginRev   int64 // revision before this request
	compactRev int64
	overlay    map[string]*mvccpb.KeyValue // this request's writes; tombstones for deletes
	changes    []*mvccpb.Event
	// etx is the engine transaction of the request's group (nil when read
	// only); only solo requests (lease revoke, compaction) write through it
	// directly, and they set otherWrites so that the group commits even if
	// no key changed.
	etx         Txn
	ctx         context.Context
	otherWrites bool
}

func (v *txnView) rev() int64 { return v.beginRev + 1 }

// curRev is the revision reads inside the request observe, as etcd's
// storeTxnWrite.Range: beginRev, or the new revision once something changed.
func (v *txnView) curRev() int64 {
	if len(v.changes) > 0 {
		return v.beginRev + 1
	}
	return v.beginRev
}

// before returns key's record before this request (nil when absent).
func (v *txnView) before(key []byte) (*mvccpb.KeyValue, error) { return v.base.get(key) }

// get returns key's current record, this request's writes included.
func (v *txnView) get(key []byte) (*mvccpb.KeyValue, error) {
	if kv, ok := lookupWrite(v.overlay, key); ok {
		return kv, nil
	}
	return v.before(key)
}

// lookupWrite looks key up in a set of writes (tombstones for deletes):
// ok reports whether the writes decide it, kv is nil when they deleted it.
func lookupWrite(writes map[string]*mvccpb.KeyValue, key []byte) (kv *mvccpb.KeyValue, ok bool) {
	kv, ok = writes[string(key)]
	if ok && isTombstone(kv) {
		return nil, true
	}
	return kv, ok
}

// rangeBefore returns the live records of [key, end) before this request.
func (v *txnView) rangeBefore(key, end []byte) ([]*mvccpb.KeyValue, error) {
	return v.base.rangeKeys(key, end)
}

// rangeNow returns the live records of [key, end) with this request's writes.
func (v *txnView) rangeNow(key, end []byte) ([]*mvccpb.KeyValue, error) {
	kvs, err := v.rangeBefore(key, end)
	if err != nil {
		return nil, err
	}
	return mergeOverlay(kvs, v.overlay, key, end), nil
}

// mergeOverlay lays writes (tombstones delete) over kvs, the live records of
// [key, end) in key order, and returns the result in key order.
func mergeOverlay(kvs []*mvccpb.KeyValue, writes map[string]*mvccpb.KeyValue, key, end []byte) []*mvccpb.KeyValue {
	if len(writes) == 0 {
		return kvs
	}
	merged := make(map[string]*mvccpb.KeyValue, len(kvs))
	for _, kv := range kvs {
		merged[string(kv.Key)] = kv
	}
	touched := false
	for k, kv := range writes {
		if !inRange([]byte(k), key, end) {
			continue
		}
		touched = true
		if isTombstone(kv) {
			delete(merged, k)
		} else {
			merged[k] = kv
		}
	}
	if !touched {
		return kvs
	}
	out := make([]*mvccpb.KeyValue, 0, len(merged))
	for _, kv := range merged {
		out = append(out, kv)
	}
	slices.SortFunc(out, func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Key, b.Key) })
	return out
}

// inRange reports whether k is in [key, end) with the index's end rules.
func inRange(k, key, end []byte) bool {
	if end == nil {
		return bytes.Equal(k, key)
	}
	return bytes.Compare(k, key) >= 0 && (len(end) == 0 || bytes.Compare(k, end) < 0)
}

func (v *txnView) put(key, value []byte, lease int64) error {
	prev, err := v.get(key)
	if err != nil {
		return err
	}
	rev := v.rev()
	kv := &mvccpb.KeyValue{Key: key, Value: value, CreateRevision: rev, ModRevision: rev, Version: 1, Lease: lease}
	if prev != nil {
		kv.CreateRevision = prev.CreateRevision
		kv.Version = prev.Version + 1
	}
	v.overlay[string(key)] = kv
	v.changes = append(v.changes, &mvccpb.Event{Type: mvccpb.PUT, Kv: kv})
	return nil
}

func (v *txnView) deleteRange(key, end []byte) (int64, error) {
	kvs, err := v.rangeNow(key, end)
	if err != nil {
		return 0, err
	}
	for _, kv := range kvs {
		tomb := &mvccpb.KeyValue{Key: kv.Key, ModRevision: v.rev()}
		v.overlay[string(kv.Key)] = tomb
		v.changes = append(v.changes, &mvccpb.Event{Type: mvccpb.DELETE, Kv: tomb})
	}
	return int64(len(kvs)), nil
}

func (v *txnView) leaseExists(id int64) (bool, error) { return v.base.leaseExists(id) }

// indexReader is the base of read-only requests: the index at rev, which
// the node has released.
type indexReader struct {
	s   *Store
	rev int64
}

func (r indexReader) get(key []byte) (*mvccpb.KeyValue, error) {
	r.s.mu.RLock()
	defer r.s.mu.RUnlock()
	if ki := r.s.ix.get(key); ki != nil {
		return ki.at(r.rev), nil
	}
	return nil, nil
}

func (r indexReader) rangeKeys(key, end []byte) ([]*mvccpb.KeyValue, error) {
	if end == nil {
		kv, _ := r.get(key)
		if kv == nil {
			return nil, nil
		}
		return []*mvccpb.KeyValue{kv}, nil
	}
	r.s.mu.RLock()
	defer r.s.mu.RUnlock()
	kvs, _ := r.s.ix.rangeAt(key, end, r.rev, 0, false)
	return kvs, nil
}

func (r indexReader) leaseExists(int64) (bool, error) {
	panic("mvcc: lease lookup in a read-only request") // only puts look leases up
}
