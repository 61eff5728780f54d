package mvcc

import (
	"cmp"
	"context"
	"encoding/binary"
	"hash/crc32"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// HashKV computes etcd's HashKV over the versions at or below rev (0: the
// current revision): a CRC-32C of the bucket name "key" followed by every
// version in revision order, each as etcd stores it in its backend (the
// 17-byte revision key, "t"-suffixed for tombstones, and the marshalled
// KeyValue). Versions at or below the compacted revision count only where
// compaction at rev would keep them, as etcd's keep set does. The aim is
// that ignetcd and etcd agree on the hash of the same history.
func (s *Store) HashKV(ctx context.Context, rev int64) (hash uint32, cur, compact int64, err error) {
	cur, compact, err = s.readRevision(ctx, false)
	if err != nil {
		return 0, 0, 0, err
	}
	switch {
	case rev > 0 && rev < compact:
		return 0, 0, 0, ErrCompacted
	case rev > cur:
		return 0, 0, 0, ErrFutureRev
	case rev == 0:
		rev = cur
	}
	type entry struct {
		v    keyVersion
		kept bool
	}
	var all []entry
	s.mu.RLock()
	s.ix.tree.Ascend(func(ki *keyIndex) bool {
		latest := -1
		for i, v := range ki.versions {
			if v.kv.ModRevision <= rev {
				latest = i
			}
		}
		for i, v := range ki.versions {
			if v.kv.ModRevision > rev {
				break
			}
			all = append(all, entry{v, i == latest && !isTombstone(v.kv)})
		}
		return true
	})
	s.mu.RUnlock()
	slices.SortFunc(all, func(a, b entry) int {
		if c := cmp.Compare(a.v.kv.ModRevision, b.v.kv.ModRevision); c != 0 {
			return c
		}
		return cmp.Compare(int64(a.v.sub), int64(b.v.sub))
	})
	anyKept := false
	for _, e := range all {
		anyKept = anyKept || e.kept
	}
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	h.Write([]byte("key"))
	key := make([]byte, 18)
	for _, e := range all {
		kv := e.v.kv
		tomb := isTombstone(kv)
		if kv.ModRevision <= compact && anyKept && !e.kept {
			continue
		}
		if kv.ModRevision == compact && tomb {
			continue
		}
		binary.BigEndian.PutUint64(key, uint64(kv.ModRevision))
		key[8] = '_'
		binary.BigEndian.PutUint64(key[9:], uint64(e.v.sub))
		k := key[:17]
		val := kv
		if tomb {
			k = append(key[:17], 't')
			val = &mvccpb.KeyValue{Key: kv.Key}
		}
		b, _ := val.Marshal()
		h.Write(k)
		h.Write(b)
	}
	return h.Sum32(), cur, compact, nil
}
