package server

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func put(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k)}}}
}

func del(k, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(end)}}}
}

func txn(then, els []*pb.RequestOp) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: then, Failure: els}}}
}

// TestCheckIntervals follows etcd's v3rpc checkIntervals case by case.
func TestCheckIntervals(t *testing.T) {
	cases := []struct {
		name string
		ops  []*pb.RequestOp
		dup  bool
	}{
		{"distinct puts", []*pb.RequestOp{put("a"), put("b")}, false},
		{"same key twice", []*pb.RequestOp{put("a"), put("a")}, true},
		{"put inside a deleted range", []*pb.RequestOp{del("a", "c"), put("b")}, true},
		{"put at a range's end", []*pb.RequestOp{del("a", "c"), put("c")}, false},
		{"put and delete of one key", []*pb.RequestOp{del("a", ""), put("a")}, true},
		{"delete to the end (\\x00) is inverted and matches nothing, as in etcd", []*pb.RequestOp{del("a", "\x00"), put("b")}, false},
		{"nested then and else may put the same key", []*pb.RequestOp{txn([]*pb.RequestOp{put("a")}, []*pb.RequestOp{put("a")})}, false},
		{"nested put clashes with an outer put", []*pb.RequestOp{txn([]*pb.RequestOp{put("a")}, nil), put("a")}, true},
		{"nested delete covers an outer put", []*pb.RequestOp{txn([]*pb.RequestOp{del("a", "z")}, nil), put("m")}, true},
		{"else put clashes with another txn's then put", []*pb.RequestOp{txn([]*pb.RequestOp{put("a")}, nil), txn(nil, []*pb.RequestOp{put("a")})}, true},
	}
	for _, c := range cases {
		_, _, err := checkIntervals(c.ops)
		if (err != nil) != c.dup {
			t.Errorf("%s: err = %v, want duplicate: %v", c.name, err, c.dup)
		}
	}
}

func TestCheckTxnRequestLimits(t *testing.T) {
	var ops []*pb.RequestOp
	for i := 0; i < 3; i++ {
		ops = append(ops, put(string(rune('a'+i))))
	}
	if err := checkTxnRequest(&pb.TxnRequest{Success: ops}, 3); err != nil {
		t.Fatalf("3 ops with a limit of 3: %v", err)
	}
	if err := checkTxnRequest(&pb.TxnRequest{Success: ops}, 2); err == nil {
		t.Fatal("3 ops with a limit of 2 accepted")
	}
	// A nested txn counts against what the outer one leaves.
	nested := &pb.TxnRequest{Success: []*pb.RequestOp{txn(ops, nil)}}
	if err := checkTxnRequest(nested, 3); err == nil {
		t.Fatal("nested txn exceeding the remaining budget accepted")
	}
	if err := checkTxnRequest(&pb.TxnRequest{Compare: []*pb.Compare{{}}}, 3); err == nil {
		t.Fatal("compare with an empty key accepted")
	}
}
