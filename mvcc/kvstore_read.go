package mvcc

import (
	"bytes"
	"context"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// readRevision returns the revision a read answers at. A linearizable read
// reads the counter from the engine and waits until this node has released
// it, so it sees every write acknowledged before it began, on any node. A
// serializable read answers at the local safe point at once.
func (s *Store) readRevision(ctx context.Context, serializable bool) (rev, compact int64, err error) {
	compact = -1 // never compacted, as etcd's compactMainRev
	if !serializable {
		counter, metaCompact, err := s.counters.read(ctx)
		if err != nil {
			return 0, 0, err
		}
		if err := s.waitFor(ctx, counter); err != nil {
			return 0, 0, err
		}
		compact = metaCompact
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.safePoint, max(compact, s.compactRev), nil
}

// Range serves an etcd RangeRequest from the index.
func (s *Store) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	cur, compact, err := s.readRevision(ctx, r.Serializable)
	if err != nil {
		return nil, err
	}
	rev := r.Revision
	switch {
	case rev > cur:
		return nil, ErrFutureRev
	case rev <= 0:
		rev = cur
	case rev < compact:
		return nil, ErrCompacted
	}
	return s.rangeIndex(r, rev, cur), nil
}

// rangeIndex reads [key, end) at rev from the index; cur is the header revision.
func (s *Store) rangeIndex(r *pb.RangeRequest, rev, cur int64) *pb.RangeResponse {
	s.mu.RLock()
	kvs, total := s.ix.rangeAt(r.Key, rangeEnd(r.RangeEnd), rev, effectiveLimit(r), r.CountOnly)
	s.mu.RUnlock()
	return buildRangeResponse(r, kvs, total, cur)
}

// effectiveLimit is how many records to read, as etcd's executeRange: none
// when sorting or filtering (they need all), else one more than asked, to
// tell whether there are more.
func effectiveLimit(r *pb.RangeRequest) int {
	if r.SortOrder != pb.RangeRequest_NONE || r.MinModRevision != 0 || r.MaxModRevision != 0 ||
		r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 || r.Limit <= 0 {
		return 0
	}
	return int(r.Limit) + 1
}

// buildRangeResponse filters, sorts and limits kvs (live records in key order,
// total of them in the range) exactly in etcd's order of steps.
func buildRangeResponse(r *pb.RangeRequest, kvs []*mvccpb.KeyValue, total int, cur int64) *pb.RangeResponse {
	prune := func(drop func(kv *mvccpb.KeyValue) bool) {
		kept := kvs[:0:0]
		for _, kv := range kvs {
			if !drop(kv) {
				kept = append(kept, kv)
			}
		}
		kvs = kept
	}
	if r.MaxModRevision != 0 {
		prune(func(kv *mvccpb.KeyValue) bool { return kv.ModRevision > r.MaxModRevision })
	}
	if r.MinModRevision != 0 {
		prune(func(kv *mvccpb.KeyValue) bool { return kv.ModRevision < r.MinModRevision })
	}
	if r.MaxCreateRevision != 0 {
		prune(func(kv *mvccpb.KeyValue) bool { return kv.CreateRevision > r.MaxCreateRevision })
	}
	if r.MinCreateRevision != 0 {
		prune(func(kv *mvccpb.KeyValue) bool { return kv.CreateRevision < r.MinCreateRevision })
	}

	order := r.SortOrder
	if r.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND // etcd: a non-key target without order sorts ascending
	} else if r.SortTarget == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND {
		order = pb.RangeRequest_NONE // already in key order
	}
	if order != pb.RangeRequest_NONE {
		// sort.Sort (not a stable sort) on the same input, as etcd does, so
		// that ties come out in the same order.
		sorter := kvSorter{kvs: kvs, target: r.SortTarget}
		if order == pb.RangeRequest_DESCEND {
			sort.Sort(sort.Reverse(sorter))
		} else {
			sort.Sort(sorter)
		}
	}

	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: cur}, Count: int64(total)}
	if r.Limit > 0 && len(kvs) > int(r.Limit) {
		kvs = kvs[:r.Limit]
		resp.More = true
	}
	if r.CountOnly {
		kvs = nil
	}
	resp.Kvs = make([]*mvccpb.KeyValue, len(kvs))
	for i, kv := range kvs {
		if r.KeysOnly {
			c := *kv // records are shared; never mutate them
			c.Value = nil
			kv = &c
		}
		resp.Kvs[i] = kv
	}
	return resp
}

type kvSorter struct {
	kvs    []*mvccpb.KeyValue
	target pb.RangeRequest_SortTarget
}

func (s kvSorter) Len() int      { return len(s.kvs) }
func (s kvSorter) Swap(i, j int) { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }
func (s kvSorter) Less(i, j int) bool {
	a, b := s.kvs[i], s.kvs[j]
	switch s.target {
	case pb.RangeRequest_VERSION:
		return a.Version-b.Version < 0
	case pb.RangeRequest_CREATE:
		return a.CreateRevision-b.CreateRevision < 0
	case pb.RangeRequest_MOD:
		return a.ModRevision-b.ModRevision < 0
	case pb.RangeRequest_VALUE:
		return bytes.Compare(a.Value, b.Value) < 0
	}
	return bytes.Compare(a.Key, b.Key) < 0
}
