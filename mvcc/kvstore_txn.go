package mvcc

import (
	"bytes"
	"cmp"
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// write runs exec as one request of the node's writer and, once its group
// has committed, lets this node's view catch up with it.
func write[R any](ctx context.Context, s *Store, solo bool, exec func(v *txnView) (R, error)) (R, error) {
	var resp R
	v, err := s.update(ctx, solo, func(v *txnView) error {
		var err error
		resp, err = exec(v)
		return err
	})
	if err != nil {
		var none R
		return none, err
	}
	s.afterWrite(ctx, v)
	return resp, nil
}

// Put applies an etcd PutRequest.
func (s *Store) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	return write(ctx, s, false, func(v *txnView) (*pb.PutResponse, error) {
		// A plain Put looks up its lease before anything else (etcd's
		// txn.Put); inside a Txn, checkPut tests ignore_* first.
		if r.Lease != 0 {
			ok, err := v.leaseExists(r.Lease)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, ErrLeaseNotFound
			}
		}
		return v.execPut(r)
	})
}

// DeleteRange applies an etcd DeleteRangeRequest.
func (s *Store) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	return write(ctx, s, false, func(v *txnView) (*pb.DeleteRangeResponse, error) { return v.execDeleteRange(r) })
}

// Txn applies an etcd TxnRequest. A request without writes in either branch
// is served from the index, without an engine transaction.
func (s *Store) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if isTxnReadOnly(r) {
		return s.readOnlyTxn(ctx, r)
	}
	return write(ctx, s, hasHistoricalRange(r), func(v *txnView) (*pb.TxnResponse, error) { return v.execTxn(r) })
}

func (s *Store) readOnlyTxn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	rev, compact, err := s.readRevision(ctx, isTxnSerializable(r))
	if err != nil {
		return nil, err
	}
	v := &txnView{s: s, base: indexReader{s, rev}, beginRev: rev, compactRev: compact, ctx: ctx,
		overlay: map[string]*mvccpb.KeyValue{}}
	return v.execTxn(r)
}

// hasHistoricalRange reports whether a txn reads at an explicit revision;
// such a txn runs in a group of its own, since within a group the revisions
// of the requests before it are not committed, so not in the index.
func hasHistoricalRange(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if rr := op.GetRequestRange(); rr != nil && rr.Revision > 0 {
				return true
			}
			if t := op.GetRequestTxn(); t != nil && hasHistoricalRange(t) {
				return true
			}
		}
	}
	return false
}

func isTxnReadOnly(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if op.GetRequestRange() == nil {
				return false
			}
		}
	}
	return true
}

func isTxnSerializable(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if rr := op.GetRequestRange(); rr == nil || !rr.Serializable {
				return false
			}
		}
	}
	return true
}

func (v *txnView) checkPut(r *pb.PutRequest) error {
	if r.IgnoreValue || r.IgnoreLease {
		kv, err := v.before(r.Key)
		if err != nil {
			return err
		}
		if kv == nil {
			return ErrKeyNotFound
		}
	}
	if r.Lease != 0 {
		ok, err := v.leaseExists(r.Lease)
		if err != nil {
			return err
		}
		if !ok {
			return ErrLeaseNotFound
		}
	}
	return nil
}

func (v *txnView) execPut(r *pb.PutRequest) (*pb.PutResponse, error) {
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{}}
	value, lease := r.Value, r.Lease
	if r.IgnoreValue || r.IgnoreLease || r.PrevKv {
		prev, err := v.get(r.Key)
		if err != nil {
			return nil, err
		}
		if (r.IgnoreValue || r.IgnoreLease) && prev == nil {
			return nil, ErrKeyNotFound
		}
		if r.IgnoreValue {
			value = prev.Value
		}
		if r.IgnoreLease {
			lease = prev.Lease
		}
		if r.PrevKv && prev != nil {
			resp.PrevKv = prev
		}
	}
	if err := v.put(r.Key, value, lease); err != nil {
		return nil, err
	}
	resp.Header.Revision = v.rev()
	return resp, nil
}

func (v *txnView) execDeleteRange(r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}}
	end := rangeEnd(r.RangeEnd)
	if r.PrevKv {
		kvs, err := v.rangeNow(r.Key, end)
		if err != nil {
			return nil, err
		}
		resp.PrevKvs = kvs
	}
	n, err := v.deleteRange(r.Key, end)
	if err != nil {
		return nil, err
	}
	resp.Deleted = n
	if n != 0 || len(v.changes) > 0 {
		resp.Header.Revision = v.rev()
	} else {
		resp.Header.Revision = v.beginRev
	}
	return resp, nil
}

// execTxn follows etcd's apply order: every compare on the chosen path
// (nested ones included) is evaluated against the state before the request,
// then the chosen requests are checked, then executed in order.
func (v *txnView) execTxn(r *pb.TxnRequest) (*pb.TxnResponse, error) {
	path, err := v.comparePath(r)
	if err != nil {
		return nil, err
	}
	if _, err := v.checkTxn(r, path); err != nil {
		return nil, err
	}
	resp, _ := newTxnResp(r, path)
	if _, err := v.executeTxn(r, path, resp); err != nil {
		return nil, err
	}
	resp.Header.Revision = v.curRev()
	return resp, nil
}

func (v *txnView) comparePath(r *pb.TxnRequest) ([]bool, error) {
	ok, err := v.compares(r.Compare)
	if err != nil {
		return nil, err
	}
	path := []bool{ok}
	ops := r.Success
	if !ok {
		ops = r.Failure
	}
	for _, op := range ops {
		if t := op.GetRequestTxn(); t != nil {
			sub, err := v.comparePath(t)
			if err != nil {
				return nil, err
			}
			path = append(path, sub...)
		}
	}
	return path, nil
}

func (v *txnView) compares(cmps []*pb.Compare) (bool, error) {
	for _, c := range cmps {
		kvs, err := v.rangeBefore(c.Key, rangeEnd(c.RangeEnd))
		if err != nil {
			return false, err
		}
		if len(kvs) == 0 {
			if c.Target == pb.Compare_VALUE {
				return false, nil // no value to compare with
			}
			if !compareKV(c, &mvccpb.KeyValue{}) {
				return false, nil
			}
			continue
		}
		for _, kv := range kvs {
			if !compareKV(c, kv) {
				return false, nil
			}
		}
	}
	return true, nil
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var result int
	switch c.Target {
	case pb.Compare_VALUE:
		result = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_CREATE:
		result = cmp.Compare(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmp.Compare(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		result = cmp.Compare(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		result = cmp.Compare(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true
}

// checkTxn validates the chosen path against the pre-request state: range
// revisions, puts' ignore_* keys and leases.
func (v *txnView) checkTxn(r *pb.TxnRequest, path []bool) (int, error) {
	ops := r.Success
	if !path[0] {
		ops = r.Failure
	}
	count := 0
	for _, op := range ops {
		var err error
		switch o := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			switch rev := o.RequestRange.Revision; {
			case rev == 0:
			case rev > v.beginRev:
				err = ErrFutureRev
			case rev < v.compactRev:
				err = ErrCompacted
			}
		case *pb.RequestOp_RequestPut:
			err = v.checkPut(o.RequestPut)
		case *pb.RequestOp_RequestTxn:
			var n int
			n, err = v.checkTxn(o.RequestTxn, path[1:])
			count += n + 1
			path = path[n+1:]
		}
		if err != nil {
			return 0, err
		}
	}
	return count, nil
}

func newTxnResp(r *pb.TxnRequest, path []bool) (*pb.TxnResponse, int) {
	ops := r.Success
	if !path[0] {
		ops = r.Failure
	}
	resps := make([]*pb.ResponseOp, len(ops))
	resp := &pb.TxnResponse{Responses: resps, Succeeded: path[0], Header: &pb.ResponseHeader{}}
	count := 0
	for i, op := range ops {
		switch o := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			resps[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{}}
		case *pb.RequestOp_RequestPut:
			resps[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{}}
		case *pb.RequestOp_RequestDeleteRange:
			resps[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{}}
		case *pb.RequestOp_RequestTxn:
			sub, n := newTxnResp(o.RequestTxn, path[1:])
			resps[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: sub}}
			path = path[1+n:]
			count += n + 1
		}
	}
	return resp, count
}

func (v *txnView) executeTxn(r *pb.TxnRequest, path []bool, resp *pb.TxnResponse) (int, error) {
	ops := r.Success
	if !path[0] {
		ops = r.Failure
	}
	count := 0
	for i, op := range ops {
		switch o := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			rr, err := v.execRange(o.RequestRange)
			if err != nil {
				return 0, err
			}
			resp.Responses[i].Response.(*pb.ResponseOp_ResponseRange).ResponseRange = rr
		case *pb.RequestOp_RequestPut:
			pr, err := v.execPut(o.RequestPut)
			if err != nil {
				return 0, err
			}
			resp.Responses[i].Response.(*pb.ResponseOp_ResponsePut).ResponsePut = pr
		case *pb.RequestOp_RequestDeleteRange:
			dr, err := v.execDeleteRange(o.RequestDeleteRange)
			if err != nil {
				return 0, err
			}
			resp.Responses[i].Response.(*pb.ResponseOp_ResponseDeleteRange).ResponseDeleteRange = dr
		case *pb.RequestOp_RequestTxn:
			sub := resp.Responses[i].Response.(*pb.ResponseOp_ResponseTxn).ResponseTxn
			n, err := v.executeTxn(o.RequestTxn, path[1:], sub)
			if err != nil {
				return 0, err
			}
			// etcd sets no header revision on nested txn responses.
			count += n + 1
			path = path[n+1:]
		}
	}
	return count, nil
}

// execRange serves a Range inside a txn: revision 0 reads the current view
// (this request's writes included); an explicit revision, already checked
// to be at most beginRev, reads the index's history.
func (v *txnView) execRange(r *pb.RangeRequest) (*pb.RangeResponse, error) {
	cur := v.curRev()
	end := rangeEnd(r.RangeEnd)
	if r.Revision > 0 && r.Revision != cur {
		return v.s.rangeIndex(r, r.Revision, cur), nil
	}
	kvs, err := v.rangeNow(r.Key, end)
	if err != nil {
		return nil, err
	}
	total := len(kvs)
	if r.CountOnly {
		kvs = nil
	} else if limit := effectiveLimit(r); limit > 0 && len(kvs) > limit {
		kvs = kvs[:limit]
	}
	return buildRangeResponse(r, kvs, total, cur), nil
}
