package it

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// robustOp is one recorded KV operation.
type robustOp struct {
	client    int
	frontend  int
	in        mInput
	out       mOutput
	call, ret int64 // nanoseconds since the run started; ret is set to infinity for unknown outcomes
	// unavailable: the server itself answered codes.Unavailable
	// ("etcdserver: storage unavailable"), which ignetcd documents as
	// "nothing was committed".
	unavailable bool
}

// robustClient issues kube-apiserver's request shapes plus plain
// Put/Delete/Get on the key set, one at a time, recording each.
type robustClient struct {
	id, frontend int
	h            *robustHarness
	cli          *clientv3.Client
	rng          *rand.Rand
	seq          int
	known        [nRobustKeys]mKV // last record seen per key (for CAS expectations)
	compactVer   int64            // last seen version of compact_rev_key
	compactPrev  int64            // header revision of the previous compaction tick
	lastCompact  time.Time
	ops          []robustOp
	errs         map[string]int
}

// opTimeout bounds one request: an answer later than this is an unknown
// outcome.
const opTimeout = 5 * time.Second

func (c *robustClient) run(ctx context.Context) {
	c.errs = map[string]int{}
	for ctx.Err() == nil {
		c.step(ctx)
	}
}

func (c *robustClient) nextVal() string {
	c.seq++
	return fmt.Sprintf("c%d-%d", c.id, c.seq)
}

// pick chooses the next operation, weighted roughly as kube-apiserver's
// traffic (updates and reads dominate), plus plain Put/Delete/DeleteRange.
func (c *robustClient) pick() mInput {
	k := c.rng.Intn(nRobustKeys - 1) // compact_rev_key only through the compaction CAS
	n := c.rng.Intn(100)
	switch {
	case time.Since(c.lastCompact) > 300*time.Millisecond && c.rng.Intn(20) == 0:
		c.lastCompact = time.Now()
		return mInput{kind: rCompactCAS, key: compactKeyIdx, val: strconv.FormatInt(c.compactPrev, 10), expect: c.compactVer}
	case n < 20:
		return mInput{kind: rGet, key: k}
	case n < 25:
		return mInput{kind: rRange}
	case n < 35:
		return mInput{kind: rPut, key: k, val: c.nextVal()}
	case n < 40:
		return mInput{kind: rDelete, key: k}
	case n < 43:
		return mInput{kind: rDeleteRange}
	case n < 58:
		return mInput{kind: rCreate, key: k, val: c.nextVal()}
	case n < 88:
		exp := c.known[k].mod
		if c.rng.Intn(10) == 0 {
			exp = max(0, exp-int64(c.rng.Intn(3))) // a stale cache, now and then
		}
		return mInput{kind: rUpdate, key: k, val: c.nextVal(), expect: exp}
	default:
		return mInput{kind: rOptDelete, key: k, expect: c.known[k].mod}
	}
}

func (c *robustClient) step(ctx context.Context) {
	in := c.pick()
	rctx, cancel := context.WithTimeout(ctx, opTimeout)
	call := c.h.now()
	out, err := c.do(rctx, in)
	ret := c.h.now()
	cancel()
	if err != nil && ctx.Err() != nil && !in.kind.writes() {
		return // the run ended under it
	}
	op := robustOp{client: c.id, frontend: c.frontend, in: in, out: out, call: call, ret: ret}
	if err != nil {
		c.errs[errClass(err)]++
		if !in.kind.writes() {
			return // a failed read observed nothing
		}
		op.out = mOutput{unknown: true, err: errClass(err)}
		if s, ok := status.FromError(err); ok && s.Code() == codes.Unavailable && strings.Contains(s.Message(), "storage unavailable") {
			op.unavailable = true
		}
		time.Sleep(time.Duration(5+c.rng.Intn(20)) * time.Millisecond) // back off a little
	} else {
		c.learn(in, out)
		c.h.sawRevision(out.rev)
	}
	c.ops = append(c.ops, op)
	if err == nil && in.kind == rCompactCAS && out.succeeded {
		// As kube-apiserver's compactor: the winner compacts to the
		// revision it saw on the previous tick (bounded by what every
		// watcher has been delivered, so that resuming stays possible).
		if target := min(c.compactPrev, c.h.compactBound()); target > 0 {
			c.h.compact(ctx, c.cli, target)
		}
		c.compactPrev = out.rev
	}
}

// learn updates the client's cache of key records from a response, as the
// apiserver's cacher would.
func (c *robustClient) learn(in mInput, out mOutput) {
	for _, k := range readKeys(in, out.succeeded) {
		c.known[k] = out.got[k]
	}
	switch in.kind {
	case rPut, rCreate, rUpdate, rCompactCAS:
		if in.kind == rPut || out.succeeded {
			c.known[in.key] = mKV{val: in.val, mod: out.rev, ver: c.known[in.key].ver + 1}
		}
	case rDelete, rOptDelete:
		if in.kind == rDelete || out.succeeded {
			c.known[in.key] = mKV{}
		}
	}
	if in.kind == rCompactCAS {
		if out.succeeded {
			c.compactVer = in.expect + 1
		} else {
			c.compactVer = out.got[compactKeyIdx].ver
			if v, err := strconv.ParseInt(out.got[compactKeyIdx].val, 10, 64); err == nil && v > c.compactPrev {
				c.compactPrev = v
			}
		}
	}
}

func errClass(err error) string {
	if s, ok := status.FromError(err); ok {
		msg := s.Message()
		if i := strings.Index(msg, ": "); i > 0 && strings.HasPrefix(msg, "etcdserver: storage unavailable") {
			msg = "etcdserver: storage unavailable"
		}
		if len(msg) > 60 {
			msg = msg[:60]
		}
		return s.Code().String() + " " + msg
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "deadline exceeded"
	}
	msg := err.Error()
	if len(msg) > 60 {
		msg = msg[:60]
	}
	return msg
}

// kvOf converts a returned key-value to the model's record.
func kvOf(kv *mvccpb.KeyValue) mKV {
	return mKV{val: string(kv.Value), create: kv.CreateRevision, mod: kv.ModRevision, ver: kv.Version}
}

// fillGot records returned kvs in out.got; an unknown key makes an error.
func fillGot(out *mOutput, kvs []*mvccpb.KeyValue) error {
	for _, kv := range kvs {
		i := keyIndex(string(kv.Key))
		if i < 0 {
			return fmt.Errorf("a read returned key %q, never written by the traffic", kv.Key)
		}
		out.got[i] = kvOf(kv)
	}
	return nil
}

var errBadResponse = errors.New("malformed response")

func (c *robustClient) do(ctx context.Context, in mInput) (mOutput, error) {
	var out mOutput
	key := robustKeys[in.key]
	switch in.kind {
	case rGet:
		r, err := c.cli.Get(ctx, key)
		if err != nil {
			return out, err
		}
		out.rev = r.Header.Revision
		if len(r.Kvs) > 1 {
			c.h.violation("get %s returned %d kvs", key, len(r.Kvs))
		}
		return out, c.check(fillGot(&out, r.Kvs))
	case rRange:
		r, err := c.cli.Get(ctx, robustPrefixRange, clientv3.WithPrefix())
		if err != nil {
			return out, err
		}
		out.rev = r.Header.Revision
		if r.Count != int64(len(r.Kvs)) || r.More {
			c.h.violation("range %s: count %d, %d kvs, more=%v", robustPrefixRange, r.Count, len(r.Kvs), r.More)
		}
		return out, c.check(fillGot(&out, r.Kvs))
	case rPut:
		r, err := c.cli.Put(ctx, key, in.val)
		if err != nil {
			return out, err
		}
		out.rev = r.Header.Revision
	case rDelete:
		r, err := c.cli.Delete(ctx, key)
		if err != nil {
			return out, err
		}
		out.rev, out.deleted = r.Header.Revision, r.Deleted
	case rDeleteRange:
		r, err := c.cli.Delete(ctx, robustPrefixRange, clientv3.WithPrefix())
		if err != nil {
			return out, err
		}
		out.rev, out.deleted = r.Header.Revision, r.Deleted
	default:
		var cmp clientv3.Cmp
		var then, els []clientv3.Op
		switch in.kind {
		case rCreate:
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", 0)
			then = []clientv3.Op{clientv3.OpPut(key, in.val)}
		case rUpdate:
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", in.expect)
			then = []clientv3.Op{clientv3.OpPut(key, in.val)}
			els = []clientv3.Op{clientv3.OpGet(key)}
		case rOptDelete:
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", in.expect)
			then = []clientv3.Op{clientv3.OpDelete(key)}
			els = []clientv3.Op{clientv3.OpGet(key)}
		case rCompactCAS:
			cmp = clientv3.Compare(clientv3.Version(key), "=", in.expect)
			then = []clientv3.Op{clientv3.OpPut(key, in.val)}
			els = []clientv3.Op{clientv3.OpGet(key)}
		}
		r, err := c.cli.Txn(ctx).If(cmp).Then(then...).Else(els...).Commit()
		if err != nil {
			return out, err
		}
		out.rev, out.succeeded = r.Header.Revision, r.Succeeded
		branch := len(then)
		if !r.Succeeded {
			branch = len(els)
		}
		if len(r.Responses) != branch {
			c.h.violation("%s: %d responses for a branch of %d ops", in, len(r.Responses), branch)
			return out, c.check(errBadResponse)
		}
		for _, resp := range r.Responses {
			switch x := resp.Response.(type) {
			case *pb.ResponseOp_ResponseRange:
				if err := fillGot(&out, x.ResponseRange.Kvs); err != nil {
					return out, c.check(err)
				}
			case *pb.ResponseOp_ResponseDeleteRange:
				out.deleted = x.ResponseDeleteRange.Deleted
			case *pb.ResponseOp_ResponsePut:
				if x.ResponsePut.Header != nil && x.ResponsePut.Header.Revision != 0 && x.ResponsePut.Header.Revision != r.Header.Revision {
					c.h.violation("%s: put response header %d, txn header %d", in, x.ResponsePut.Header.Revision, r.Header.Revision)
				}
			}
		}
	}
	return out, nil
}

// check turns a malformed answer into a violation (and an unknown outcome,
// so that the history stays checkable).
func (c *robustClient) check(err error) error {
	if err != nil {
		c.h.violation("client %d: %v", c.id, err)
	}
	return err
}

// maxAcked is the highest revision any response carried.
type maxRev struct{ v atomic.Int64 }

func (m *maxRev) observe(r int64) {
	for {
		cur := m.v.Load()
		if r <= cur || m.v.CompareAndSwap(cur, r) {
			return
		}
	}
}
