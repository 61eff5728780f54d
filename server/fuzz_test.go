package server

// Fuzz targets for request validation. Each compares ignetcd's check
// functions with a verbatim copy of etcd 3.6.16's (etcdserver/api/v3rpc/
// key.go, using etcd's own interval tree): any input on which they disagree,
// or on which either panics, is a failure.
//
//	go test ./server/ -run '^$' -fuzz FuzzCheckRequests -fuzztime 30s
//	go test ./server/ -run '^$' -fuzz FuzzCheckIntervals -fuzztime 30s
//
// The seed corpus is in testdata/fuzz/<target>/.

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/pkg/v3/adt"
)

// --- etcd 3.6.16's validation, copied verbatim (only renamed) ---

func etcdCheckRangeRequest(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

func etcdCheckPutRequest(r *pb.PutRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if r.IgnoreValue && len(r.Value) != 0 {
		return rpctypes.ErrGRPCValueProvided
	}
	if r.IgnoreLease && r.Lease != 0 {
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

func etcdCheckDeleteRequest(r *pb.DeleteRangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	return nil
}

func etcdCheckTxnRequest(r *pb.TxnRequest, maxTxnOps int) error {
	opc := len(r.Compare)
	if opc < len(r.Success) {
		opc = len(r.Success)
	}
	if opc < len(r.Failure) {
		opc = len(r.Failure)
	}
	if opc > maxTxnOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	for _, u := range r.Success {
		if err := etcdCheckRequestOp(u, maxTxnOps-opc); err != nil {
			return err
		}
	}
	for _, u := range r.Failure {
		if err := etcdCheckRequestOp(u, maxTxnOps-opc); err != nil {
			return err
		}
	}
	return nil
}

func etcdCheckRequestOp(u *pb.RequestOp, maxTxnOps int) error {
	switch uv := u.Request.(type) {
	case *pb.RequestOp_RequestRange:
		return etcdCheckRangeRequest(uv.RequestRange)
	case *pb.RequestOp_RequestPut:
		return etcdCheckPutRequest(uv.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		return etcdCheckDeleteRequest(uv.RequestDeleteRange)
	case *pb.RequestOp_RequestTxn:
		return etcdCheckTxnRequest(uv.RequestTxn, maxTxnOps)
	default:
		return rpctypes.ErrGRPCKeyNotFound
	}
}

func etcdCheckIntervals(reqs []*pb.RequestOp) (map[string]struct{}, adt.IntervalTree, error) {
	dels := adt.NewIntervalTree()
	for _, req := range reqs {
		tv, ok := req.Request.(*pb.RequestOp_RequestDeleteRange)
		if !ok {
			continue
		}
		dreq := tv.RequestDeleteRange
		if dreq == nil {
			continue
		}
		var iv adt.Interval
		if len(dreq.RangeEnd) != 0 {
			iv = adt.NewStringAffineInterval(string(dreq.Key), string(dreq.RangeEnd))
		} else {
			iv = adt.NewStringAffinePoint(string(dreq.Key))
		}
		dels.Insert(iv, struct{}{})
	}
	puts := make(map[string]struct{})
	for _, req := range reqs {
		tv, ok := req.Request.(*pb.RequestOp_RequestTxn)
		if !ok {
			continue
		}
		putsThen, delsThen, err := etcdCheckIntervals(tv.RequestTxn.Success)
		if err != nil {
			return nil, dels, err
		}
		putsElse, delsElse, err := etcdCheckIntervals(tv.RequestTxn.Failure)
		if err != nil {
			return nil, dels, err
		}
		for k := range putsThen {
			if _, ok := puts[k]; ok {
				return nil, dels, rpctypes.ErrGRPCDuplicateKey
			}
			if dels.Intersects(adt.NewStringAffinePoint(k)) {
				return nil, dels, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range putsElse {
			if _, ok := puts[k]; ok {
				if _, isSafe := putsThen[k]; !isSafe {
					return nil, dels, rpctypes.ErrGRPCDuplicateKey
				}
			}
			if dels.Intersects(adt.NewStringAffinePoint(k)) {
				return nil, dels, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels.Union(delsThen, adt.NewStringAffineInterval("\x00", ""))
		dels.Union(delsElse, adt.NewStringAffineInterval("\x00", ""))
	}
	for _, req := range reqs {
		tv, ok := req.Request.(*pb.RequestOp_RequestPut)
		if !ok || tv.RequestPut == nil {
			continue
		}
		k := string(tv.RequestPut.Key)
		if _, ok := puts[k]; ok {
			return nil, dels, rpctypes.ErrGRPCDuplicateKey
		}
		if dels.Intersects(adt.NewStringAffinePoint(k)) {
			return nil, dels, rpctypes.ErrGRPCDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}

// --- the targets ---

func sameErr(a, b error) bool { return a == b || errors.Is(a, b) }

// validateTxn runs what kvServer.Txn runs before touching the store, in
// its order, for ignetcd and for etcd.
func validateTxn(r *pb.TxnRequest, maxOps int) (ign, etcd error) {
	ign = checkTxnRequest(r, maxOps)
	if ign == nil {
		if ign = checkBranch(r.Success); ign == nil {
			ign = checkBranch(r.Failure)
		}
	}
	etcd = etcdCheckTxnRequest(r, maxOps)
	if etcd == nil {
		if _, _, etcd = etcdCheckIntervals(r.Success); etcd == nil {
			_, _, etcd = etcdCheckIntervals(r.Failure)
		}
	}
	return ign, etcd
}

// FuzzCheckRequests decodes the input as each request type the KV service
// validates and compares ignetcd's verdict with etcd's.
func FuzzCheckRequests(f *testing.F) {
	seeds := []interface{ Marshal() ([]byte, error) }{
		&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), SortOrder: 1, SortTarget: 3, Limit: 10},
		&pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 5, IgnoreLease: true},
		&pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00")},
		&pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte("k"), Target: pb.Compare_MOD, TargetUnion: &pb.Compare_ModRevision{ModRevision: 0}}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}}}},
			Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k")}}}},
		},
		&pb.TxnRequest{Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("c")}}},
			{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b")}}}}}}},
		}},
	}
	for _, s := range seeds {
		b, err := s.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(128))
	}
	f.Fuzz(func(t *testing.T, data []byte, maxOps uint8) {
		var rr pb.RangeRequest
		if rr.Unmarshal(data) == nil {
			if a, b := checkRangeRequest(&rr), etcdCheckRangeRequest(&rr); !sameErr(a, b) {
				t.Fatalf("range %v: ignetcd %v, etcd %v", &rr, a, b)
			}
		}
		var pr pb.PutRequest
		if pr.Unmarshal(data) == nil {
			if a, b := checkPutRequest(&pr), etcdCheckPutRequest(&pr); !sameErr(a, b) {
				t.Fatalf("put %v: ignetcd %v, etcd %v", &pr, a, b)
			}
		}
		var dr pb.DeleteRangeRequest
		if dr.Unmarshal(data) == nil {
			if a, b := checkDeleteRequest(&dr), etcdCheckDeleteRequest(&dr); !sameErr(a, b) {
				t.Fatalf("delete %v: ignetcd %v, etcd %v", &dr, a, b)
			}
		}
		var tr pb.TxnRequest
		if tr.Unmarshal(data) == nil {
			if a, b := validateTxn(&tr, int(maxOps)); !sameErr(a, b) {
				t.Fatalf("txn %v (max ops %d): ignetcd %v, etcd %v", &tr, maxOps, a, b)
			}
		}
	})
}

// txnBuilder turns fuzz bytes into a (possibly nested) txn over a tiny key
// alphabet, so that puts and deletes collide often: what checkIntervals is
// about. Random protobuf bytes almost never do.
type txnBuilder struct {
	data []byte
	ops  int
}

var fuzzKeys = []string{"", "\x00", "a", "a\x00", "b", "ba", "c", "\xff"}

func (b *txnBuilder) next() byte {
	if len(b.data) == 0 {
		return 0
	}
	c := b.data[0]
	b.data = b.data[1:]
	return c
}

func (b *txnBuilder) key() []byte { return []byte(fuzzKeys[int(b.next())%len(fuzzKeys)]) }

func (b *txnBuilder) ops_(depth int) []*pb.RequestOp {
	n := int(b.next() % 6)
	var ops []*pb.RequestOp
	for i := 0; i < n && b.ops < 200; i++ {
		b.ops++
		switch c := b.next(); c % 5 {
		case 0:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: b.key()}}})
		case 1:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: b.key()}}})
		case 2:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: b.key(), RangeEnd: b.key()}}})
		case 3:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: b.key(), RangeEnd: b.key()}}})
		case 4:
			if depth < 4 {
				ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: b.txn(depth + 1)}})
			} else {
				ops = append(ops, &pb.RequestOp{})
			}
		}
	}
	return ops
}

func (b *txnBuilder) txn(depth int) *pb.TxnRequest {
	return &pb.TxnRequest{Success: b.ops_(depth), Failure: b.ops_(depth)}
}

// FuzzCheckIntervals compares ignetcd's and etcd's verdicts (too many ops,
// empty keys, duplicate keys across nested txns and delete ranges) on
// generated txns.
func FuzzCheckIntervals(f *testing.F) {
	f.Add([]byte{2, 0, 2, 1, 2, 2}, uint8(128))
	f.Add([]byte{3, 2, 2, 1, 4, 2, 0, 2, 0}, uint8(128))
	f.Add([]byte{3, 4, 1, 0, 4, 1, 0, 4, 2, 0, 2, 0, 3}, uint8(3))
	f.Add([]byte{2, 2, 0, 1, 4, 1, 0, 4, 0}, uint8(128)) // delete [\x00, "") and a nested put
	f.Fuzz(func(t *testing.T, data []byte, maxOps uint8) {
		b := &txnBuilder{data: data}
		r := b.txn(0)
		a, e := validateTxn(r, int(maxOps))
		if !sameErr(a, e) {
			t.Fatalf("txn %v (max ops %d): ignetcd %v, etcd %v", r, maxOps, a, e)
		}
	})
}
