package server

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// checkBranch is checkIntervals for a top-level txn branch. A branch of one
// op that is not a nested txn cannot conflict with itself; most txns are
// that, and are spared building checkIntervals' sets.
func checkBranch(ops []*pb.RequestOp) error {
	if len(ops) == 0 || len(ops) == 1 && ops[0].GetRequestTxn() == nil {
		return nil
	}
	_, _, err := checkIntervals(ops)
	return err
}

// checkIntervals rejects a txn branch that puts a key twice or puts a key a
// delete in the same branch covers, descending into nested txns, exactly as
// etcd's v3rpc checkIntervals does. Keys are compared as etcd's "affine"
// strings, where an empty end means +infinity; a delete whose range_end is
// "\x00" is thereby an inverted interval that matches nothing, a quirk of
// etcd's that is kept because clients can observe it.
func checkIntervals(reqs []*pb.RequestOp) (map[string]struct{}, []interval, error) {
	var dels []interval
	for _, req := range reqs {
		d := req.GetRequestDeleteRange()
		if d == nil {
			continue
		}
		if len(d.RangeEnd) != 0 {
			dels = append(dels, interval{string(d.Key), string(d.RangeEnd)})
		} else {
			dels = append(dels, point(string(d.Key)))
		}
	}
	puts := map[string]struct{}{}
	for _, req := range reqs {
		t := req.GetRequestTxn()
		if t == nil {
			continue
		}
		putsThen, delsThen, err := checkIntervals(t.Success)
		if err != nil {
			return nil, dels, err
		}
		putsElse, delsElse, err := checkIntervals(t.Failure)
		if err != nil {
			return nil, dels, err
		}
		for k := range putsThen {
			if _, ok := puts[k]; ok || intersectsAny(dels, k) {
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
			if intersectsAny(dels, k) {
				return nil, dels, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels = append(dels, delsThen...)
		dels = append(dels, delsElse...)
	}
	for _, req := range reqs {
		p := req.GetRequestPut()
		if p == nil {
			continue
		}
		k := string(p.Key)
		if _, ok := puts[k]; ok || intersectsAny(dels, k) {
			return nil, dels, rpctypes.ErrGRPCDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}

// interval is [begin, end) over affine strings ("" end: +infinity).
type interval struct{ begin, end string }

func point(k string) interval { return interval{k, k + "\x00"} }

func affineCompare(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "":
		return 1
	case b == "":
		return -1
	case a < b:
		return -1
	}
	return 1
}

// overlaps is etcd's adt.Interval.Compare(...) == 0.
func (iv interval) overlaps(o interval) bool {
	if affineCompare(iv.begin, o.begin) < 0 && affineCompare(iv.end, o.begin) <= 0 {
		return false // iv left of o
	}
	if affineCompare(iv.begin, o.end) >= 0 {
		return false // iv right of o
	}
	return true
}

func intersectsAny(dels []interval, key string) bool {
	p := point(key)
	for _, d := range dels {
		if p.overlaps(d) {
			return true
		}
	}
	return false
}
