package mvcc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// txnView is the state one request is evaluated against: the keyspace at
// beginRev (read locked from the kv table, or from the index once it has
// caught up with beginRev) with this request's own writes laid over it.
// A read-only request gets a view with no engine transaction at all.
type txnView struct {
	s          *Store
	ctx        context.Context
	etx        Txn // nil for read-only requests
	beginRev   int64
	compactRev int64

	base       map[string]*mvccpb.KeyValue // pre-request state of keys read; nil value: absent
	overlay    map[string]*mvccpb.KeyValue // this request's writes; tombstones for deletes
	changes    []*mvccpb.Event
	indexReady bool // the index holds every revision <= beginRev
	// otherWrites is set when the request wrote to the engine beyond the
	// keyspace (a lease removed, the compacted revision): it commits even
	// if it changed no key, and takes no revision then.
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

// useIndex waits until the index has every revision <= beginRev. No writer
// can commit while this request holds the counter lock, so from then on the
// index at beginRev is exactly the current keyspace.
func (v *txnView) useIndex() error {
	if v.indexReady {
		return nil
	}
	if err := v.s.waitFor(v.ctx, v.beginRev); err != nil {
		return err
	}
	v.indexReady = true
	return nil
}

// prefetch reads and locks the current record of every single key the
// request may touch, in one round trip.
func (v *txnView) prefetch(keys [][]byte) error {
	var missing [][]byte
	seen := map[string]bool{}
	for _, k := range keys {
		if _, ok := v.base[string(k)]; ok || seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		missing = append(missing, k)
	}
	if len(missing) == 0 {
		return nil
	}
	if v.etx == nil || v.indexReady {
		v.s.mu.RLock()
		for _, k := range missing {
			var kv *mvccpb.KeyValue
			if ki := v.s.ix.get(k); ki != nil {
				kv = ki.at(v.beginRev)
			}
			v.base[string(k)] = kv
		}
		v.s.mu.RUnlock()
		return nil
	}
	vals, err := v.etx.GetAll(v.ctx, v.s.tables.kv, missing)
	if err != nil {
		return err
	}
	for i, k := range missing {
		if vals[i] == nil {
			v.base[string(k)] = nil
			continue
		}
		kv := &mvccpb.KeyValue{}
		if err := kv.Unmarshal(vals[i]); err != nil {
			return fmt.Errorf("mvcc: malformed kv record: %w", err)
		}
		v.base[string(k)] = kv
	}
	return nil
}

// before returns key's record at beginRev (nil when absent).
func (v *txnView) before(key []byte) (*mvccpb.KeyValue, error) {
	if err := v.prefetch([][]byte{key}); err != nil {
		return nil, err
	}
	return v.base[string(key)], nil
}

// get returns key's current record, this request's writes included.
func (v *txnView) get(key []byte) (*mvccpb.KeyValue, error) {
	if kv, ok := v.overlay[string(key)]; ok {
		if isTombstone(kv) {
			return nil, nil
		}
		return kv, nil
	}
	return v.before(key)
}

// rangeBefore returns the live records of [key, end) at beginRev, by key.
func (v *txnView) rangeBefore(key, end []byte) ([]*mvccpb.KeyValue, error) {
	if end == nil {
		kv, err := v.before(key)
		if kv == nil || err != nil {
			return nil, err
		}
		return []*mvccpb.KeyValue{kv}, nil
	}
	if err := v.useIndex(); err != nil {
		return nil, err
	}
	v.s.mu.RLock()
	kvs, _ := v.s.ix.rangeAt(key, end, v.beginRev, 0, false)
	v.s.mu.RUnlock()
	return kvs, nil
}

// rangeNow returns the live records of [key, end) with this request's writes.
func (v *txnView) rangeNow(key, end []byte) ([]*mvccpb.KeyValue, error) {
	kvs, err := v.rangeBefore(key, end)
	if err != nil || len(v.overlay) == 0 {
		return kvs, err
	}
	merged := map[string]*mvccpb.KeyValue{}
	for _, kv := range kvs {
		merged[string(kv.Key)] = kv
	}
	for k, kv := range v.overlay {
		if !inRange([]byte(k), key, end) {
			continue
		}
		if isTombstone(kv) {
			delete(merged, k)
		} else {
			merged[k] = kv
		}
	}
	out := make([]*mvccpb.KeyValue, 0, len(merged))
	for _, kv := range merged {
		out = append(out, kv)
	}
	slices.SortFunc(out, func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Key, b.Key) })
	return out, nil
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

// leaseExists reads (and locks) a lease record.
func (v *txnView) leaseExists(id int64) (bool, error) {
	if v.etx == nil {
		return false, errors.New("mvcc: lease lookup in a read-only view")
	}
	vals, err := v.etx.GetAll(v.ctx, v.s.tables.leases, [][]byte{revisionKey(id)})
	if err != nil {
		return false, err
	}
	return vals[0] != nil, nil
}

// update runs fn inside one pessimistic engine transaction that holds the
// revision counter, and commits what fn changed as revision counter+1.
// Requests that change nothing take no revision and commit nothing.
func (s *Store) update(ctx context.Context, fn func(v *txnView) error) (*txnView, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	etx, err := s.eng.Begin(ctx)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			// Rollback with a fresh context: the request's may be done.
			_ = etx.Rollback(context.Background())
		}
	}()
	// The counter is read and locked first by every writer, on every node:
	// that one lock orders all writes, so revisions are unique and
	// contiguous, and nothing else can commit while fn evaluates.
	meta, err := etx.GetAll(ctx, s.tables.meta, [][]byte{metaRevision, metaCompact})
	if err != nil {
		return nil, err
	}
	v := &txnView{s: s, ctx: ctx, etx: etx, base: map[string]*mvccpb.KeyValue{}, overlay: map[string]*mvccpb.KeyValue{}}
	if v.beginRev, err = decodeCounter(meta[0]); err != nil {
		return nil, err
	}
	if v.compactRev, err = decodeCompact(meta[1]); err != nil {
		return nil, err
	}
	if err := fn(v); err != nil {
		return nil, err
	}
	if len(v.changes) == 0 && !v.otherWrites {
		return v, nil
	}
	if len(v.changes) > 0 {
		if err := v.write(); err != nil {
			return nil, err
		}
	}
	if err := etx.Commit(ctx); err != nil {
		committed = true // the engine finished the transaction either way
		return nil, err
	}
	committed = true
	return v, nil
}

// write stages the request's changes: latest records, history, the revision's
// revlog entry (which the change feed delivers) and the counter.
func (v *txnView) write() error {
	rev := v.rev()
	var puts []Entry
	var removes [][]byte
	for k, kv := range v.overlay {
		if isTombstone(kv) {
			removes = append(removes, []byte(k))
			continue
		}
		b, _ := kv.Marshal()
		puts = append(puts, Entry{Key: []byte(k), Value: b})
	}
	// A stable key order keeps lock acquisition deterministic.
	slices.SortFunc(puts, func(a, b Entry) int { return bytes.Compare(a.Key, b.Key) })
	slices.SortFunc(removes, bytes.Compare)
	hist := make([]Entry, len(v.changes))
	for sub, ev := range v.changes {
		b, _ := ev.Marshal()
		hist[sub] = Entry{Key: historyKey(rev, sub), Value: b}
	}
	ctx, etx, t := v.ctx, v.etx, &v.s.tables
	if len(puts) > 0 {
		if err := etx.PutAll(ctx, t.kv, puts); err != nil {
			return err
		}
	}
	if len(removes) > 0 {
		if err := etx.RemoveAll(ctx, t.kv, removes); err != nil {
			return err
		}
	}
	if err := etx.PutAll(ctx, t.history, hist); err != nil {
		return err
	}
	if err := etx.PutAll(ctx, t.revlog, []Entry{{Key: revisionKey(rev), Value: encodeEvents(v.changes)}}); err != nil {
		return err
	}
	return etx.PutAll(ctx, t.meta, []Entry{{Key: metaRevision, Value: revisionKey(rev)}})
}

// afterWrite lets the node's own view catch up with a write it committed, so
// that a serializable read or a watch on this node right after the response
// sees it. The write is committed either way: failing to wait is not an error.
func (s *Store) afterWrite(ctx context.Context, v *txnView) {
	if v != nil && len(v.changes) > 0 {
		_ = s.waitFor(ctx, v.rev())
	}
}

// rangeEnd maps an etcd request's range_end to the index's form: nil for a
// single key, empty for "every key from key on" ("\x00").
func rangeEnd(end []byte) []byte {
	if len(end) == 0 {
		return nil
	}
	if len(end) == 1 && end[0] == 0 {
		return []byte{}
	}
	return end
}

// Put applies an etcd PutRequest.
func (s *Store) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	var resp *pb.PutResponse
	v, err := s.update(ctx, func(v *txnView) error {
		// A plain Put looks up its lease before anything else (etcd's
		// txn.Put); inside a Txn, checkPut tests ignore_* first.
		if r.Lease != 0 {
			ok, err := v.leaseExists(r.Lease)
			if err != nil {
				return err
			}
			if !ok {
				return ErrLeaseNotFound
			}
		}
		var err error
		resp, err = v.execPut(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.afterWrite(ctx, v)
	return resp, nil
}

// DeleteRange applies an etcd DeleteRangeRequest.
func (s *Store) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	var resp *pb.DeleteRangeResponse
	v, err := s.update(ctx, func(v *txnView) error {
		var err error
		resp, err = v.execDeleteRange(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.afterWrite(ctx, v)
	return resp, nil
}

// Txn applies an etcd TxnRequest. A request without writes in either branch
// is served from the index, without an engine transaction.
func (s *Store) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if isTxnReadOnly(r) {
		return s.readOnlyTxn(ctx, r)
	}
	var resp *pb.TxnResponse
	v, err := s.update(ctx, func(v *txnView) error {
		if err := v.prefetch(txnKeys(r, nil)); err != nil {
			return err
		}
		var err error
		resp, err = v.execTxn(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.afterWrite(ctx, v)
	return resp, nil
}

func (s *Store) readOnlyTxn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	rev, compact, err := s.readRevision(ctx, isTxnSerializable(r))
	if err != nil {
		return nil, err
	}
	v := &txnView{s: s, ctx: ctx, beginRev: rev, compactRev: compact, indexReady: true,
		base: map[string]*mvccpb.KeyValue{}, overlay: map[string]*mvccpb.KeyValue{}}
	return v.execTxn(r)
}

// txnKeys lists every single key a txn compares or touches, in both branches.
func txnKeys(r *pb.TxnRequest, keys [][]byte) [][]byte {
	for _, c := range r.Compare {
		if len(c.RangeEnd) == 0 {
			keys = append(keys, c.Key)
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			switch o := op.Request.(type) {
			case *pb.RequestOp_RequestRange:
				if len(o.RequestRange.RangeEnd) == 0 && o.RequestRange.Revision == 0 {
					keys = append(keys, o.RequestRange.Key)
				}
			case *pb.RequestOp_RequestPut:
				keys = append(keys, o.RequestPut.Key)
			case *pb.RequestOp_RequestDeleteRange:
				if len(o.RequestDeleteRange.RangeEnd) == 0 {
					keys = append(keys, o.RequestDeleteRange.Key)
				}
			case *pb.RequestOp_RequestTxn:
				keys = txnKeys(o.RequestTxn, keys)
			}
		}
	}
	return keys
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
		result = cmpInt64(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmpInt64(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		result = cmpInt64(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		result = cmpInt64(kv.Lease, c.GetLease())
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

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
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
		if err := v.useIndex(); err != nil {
			return nil, err
		}
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
