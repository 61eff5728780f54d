package mvcc

import (
	"sort"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// keyIndex is one key's versions since the compacted revision, oldest first.
// Each version is the KeyValue written at that revision, shared with the
// event log and never mutated; a deletion is a tombstone (CreateRevision 0).
type keyIndex struct {
	key      []byte
	versions []keyVersion
}

type keyVersion struct {
	kv  *mvccpb.KeyValue
	sub int32 // position of the write within its revision (etcd's sub-revision)
}

func isTombstone(kv *mvccpb.KeyValue) bool { return kv.CreateRevision == 0 }

// upTo returns how many of the key's versions were written at or before
// rev; the last of them is the one visible at rev.
func (ki *keyIndex) upTo(rev int64) int {
	return sort.Search(len(ki.versions), func(i int) bool { return ki.versions[i].kv.ModRevision > rev })
}

// at returns the key's live KeyValue at revision rev, or nil when the key did
// not exist then.
func (ki *keyIndex) at(rev int64) *mvccpb.KeyValue {
	i := ki.upTo(rev)
	if i == 0 {
		return nil
	}
	kv := ki.versions[i-1].kv
	if isTombstone(kv) {
		return nil
	}
	return kv
}

// latest returns the newest live KeyValue, or nil.
func (ki *keyIndex) latest() *mvccpb.KeyValue {
	if len(ki.versions) == 0 {
		return nil
	}
	kv := ki.versions[len(ki.versions)-1].kv
	if isTombstone(kv) {
		return nil
	}
	return kv
}

// compact drops every version superseded at or before rev: the newest version
// at or below rev survives unless it is a tombstone, as in etcd, so reads at
// any revision >= rev answer as before. It returns the dropped versions.
func (ki *keyIndex) compact(rev int64) []keyVersion {
	i := ki.upTo(rev)
	if i == 0 {
		return nil
	}
	keep := i - 1
	if isTombstone(ki.versions[keep].kv) {
		keep = i
	}
	dropped := append([]keyVersion(nil), ki.versions[:keep]...)
	ki.versions = append(ki.versions[:0:0], ki.versions[keep:]...)
	return dropped
}
