package mvcc

import (
	"bytes"
	"slices"
	"unsafe"

	"github.com/google/btree"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// index is the node's ordered view of the keyspace: every key's versions since
// the compacted revision, in a btree ordered by key, so that a range costs
// O(log N + keys visited). It also tracks which current keys each lease holds.
// Not safe for concurrent use; Store guards it.
type index struct {
	tree *btree.BTreeG[*keyIndex]
	// byKey finds a key without walking the tree: point lookups (every
	// write's read of its keys, every released event) are most of the
	// index's work, and a btree descent over 100k random keys costs a
	// cache miss per level. Its string keys share ki.key's bytes.
	byKey     map[string]*keyIndex
	leaseKeys map[int64]map[string]struct{}
	// bytes approximates the data held (keys and values of every version),
	// reported as the database size.
	bytes int64
}

func newIndex() *index {
	return &index{
		tree:      btree.NewG(32, func(a, b *keyIndex) bool { return bytes.Compare(a.key, b.key) < 0 }),
		byKey:     map[string]*keyIndex{},
		leaseKeys: map[int64]map[string]struct{}{},
	}
}

// sharedString views an index key as a string without copying it; keys in
// the index are never modified (they come from KeyValues, which are shared
// and immutable once written).
func sharedString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (ix *index) get(key []byte) *keyIndex {
	return ix.byKey[string(key)]
}

// apply records one event written at (kv.ModRevision, sub).
func (ix *index) apply(ev *mvccpb.Event, sub int) {
	kv := ev.Kv
	ki := ix.get(kv.Key)
	if ki == nil {
		if ev.Type == mvccpb.DELETE {
			return // deleting a key the index never had (history before a restart's load)
		}
		ki = &keyIndex{key: kv.Key}
		ix.tree.ReplaceOrInsert(ki)
		ix.byKey[sharedString(ki.key)] = ki
	}
	if prev := ki.latest(); prev != nil && prev.Lease != 0 {
		ix.detachLease(prev.Lease, kv.Key)
	}
	ki.versions = append(ki.versions, keyVersion{kv: kv, sub: int32(sub)})
	ix.bytes += int64(len(kv.Key) + len(kv.Value))
	if ev.Type == mvccpb.PUT && kv.Lease != 0 {
		set := ix.leaseKeys[kv.Lease]
		if set == nil {
			set = map[string]struct{}{}
			ix.leaseKeys[kv.Lease] = set
		}
		set[string(kv.Key)] = struct{}{}
	}
}

func (ix *index) detachLease(lease int64, key []byte) {
	if set := ix.leaseKeys[lease]; set != nil {
		delete(set, string(key))
		if len(set) == 0 {
			delete(ix.leaseKeys, lease)
		}
	}
}

// visit calls fn for each key in [key, end) in key order until fn returns
// false. end == nil means the single key; an empty non-nil end means every
// key from key on (etcd's "\x00" range_end).
func (ix *index) visit(key, end []byte, fn func(ki *keyIndex) bool) {
	if end == nil {
		if ki := ix.get(key); ki != nil {
			fn(ki)
		}
		return
	}
	if len(end) > 0 && bytes.Compare(key, end) >= 0 {
		return
	}
	pivot := &keyIndex{key: key}
	if len(end) == 0 {
		ix.tree.AscendGreaterOrEqual(pivot, fn)
		return
	}
	ix.tree.AscendRange(pivot, &keyIndex{key: end}, fn)
}

// rangeAt returns the live KeyValues of [key, end) at rev, at most limit of
// them (limit <= 0: all), and how many there are in all.
func (ix *index) rangeAt(key, end []byte, rev int64, limit int, countOnly bool) (kvs []*mvccpb.KeyValue, total int) {
	ix.visit(key, end, func(ki *keyIndex) bool {
		if kv := ki.at(rev); kv != nil {
			total++
			if !countOnly && (limit <= 0 || len(kvs) < limit) {
				kvs = append(kvs, kv)
			}
		}
		return true
	})
	return kvs, total
}

// compact drops history superseded at or before rev and returns what it
// dropped, so that the caller can remove it from storage too.
func (ix *index) compact(rev int64) []keyVersion {
	var dropped []keyVersion
	var empty []*keyIndex
	ix.tree.Ascend(func(ki *keyIndex) bool {
		d := ki.compact(rev)
		for _, v := range d {
			ix.bytes -= int64(len(v.kv.Key) + len(v.kv.Value))
		}
		dropped = append(dropped, d...)
		if len(ki.versions) == 0 {
			empty = append(empty, ki)
		}
		return true
	})
	for _, ki := range empty {
		ix.tree.Delete(ki)
		delete(ix.byKey, sharedString(ki.key))
	}
	return dropped
}

// keysOfLease returns the current keys attached to lease, sorted.
func (ix *index) keysOfLease(lease int64) [][]byte {
	set := ix.leaseKeys[lease]
	keys := make([][]byte, 0, len(set))
	for k := range set {
		keys = append(keys, []byte(k))
	}
	sortKeys(keys)
	return keys
}

func sortKeys(keys [][]byte) {
	slices.SortFunc(keys, bytes.Compare)
}
