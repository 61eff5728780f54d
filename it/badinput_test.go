package it

// TestBadInput: malformed and abusive requests through the gRPC API, sent
// raw (no clientv3 retries or client-side checks) to ignetcd and to a real
// etcd 3.6: ignetcd must answer each as etcd does (same status code and
// message, or the same response), write nothing, and keep serving. Raw
// malformed protobuf on unary calls and on the Watch stream, and garbage on
// the TCP port, must not disturb the server either.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ignetcd/ignetcd/it/etcdbin"
)

// rawCodec sends and receives message bytes as they are, so a test can put
// arbitrary bytes on the wire where a protobuf message belongs.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// badTarget is one server under test.
type badTarget struct {
	name     string
	endpoint string
	cc       *grpc.ClientConn
	kv       pb.KVClient
	lease    pb.LeaseClient
}

func newBadTarget(t *testing.T, name, endpoint string) *badTarget {
	cc := rawConn(t, endpoint)
	return &badTarget{name: name, endpoint: endpoint, cc: cc, kv: pb.NewKVClient(cc), lease: pb.NewLeaseClient(cc)}
}

// snapshot is everything a bad request must leave unchanged.
func (b *badTarget) snapshot(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := b.kv.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		t.Fatalf("%s: the server no longer serves a Range: %v", b.name, err)
	}
	var s strings.Builder
	fmt.Fprintf(&s, "revision %d:", r.Header.Revision)
	for _, kv := range r.Kvs {
		fmt.Fprintf(&s, " %s=%.20s(c%d m%d v%d l%d)", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
	}
	leases, err := b.lease.LeaseLeases(ctx, &pb.LeaseLeasesRequest{})
	if err != nil {
		t.Fatalf("%s: LeaseLeases: %v", b.name, err)
	}
	fmt.Fprintf(&s, " leases %d", len(leases.Leases))
	return s.String()
}

// outcome renders a response or error for comparison: code and message of
// an error, or the response fields that do not depend on the server's
// identity.
func outcome(resp any, err error) string {
	if err != nil {
		s, _ := status.FromError(err)
		return fmt.Sprintf("error %s: %s", s.Code(), s.Message())
	}
	switch r := resp.(type) {
	case *pb.RangeResponse:
		var keys []string
		for _, kv := range r.Kvs {
			keys = append(keys, string(kv.Key))
		}
		return fmt.Sprintf("range rev %d count %d more %v keys %q", r.Header.Revision, r.Count, r.More, keys)
	case *pb.PutResponse:
		return fmt.Sprintf("put rev %d", r.Header.Revision)
	case *pb.DeleteRangeResponse:
		return fmt.Sprintf("delete rev %d deleted %d", r.Header.Revision, r.Deleted)
	case *pb.TxnResponse:
		return fmt.Sprintf("txn rev %d succeeded %v responses %d", r.Header.Revision, r.Succeeded, len(r.Responses))
	case *pb.CompactionResponse:
		return fmt.Sprintf("compact rev %d", r.Header.Revision)
	case *pb.LeaseGrantResponse:
		return fmt.Sprintf("grant ttl %d error %q", r.TTL, r.Error)
	case *pb.LeaseRevokeResponse:
		return "revoked"
	case *pb.LeaseTimeToLiveResponse:
		return fmt.Sprintf("ttl %d granted %d", r.TTL, r.GrantedTTL)
	case string:
		return r
	}
	return fmt.Sprintf("%T", resp)
}

func putOp(key, val string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: []byte(val)}}}
}

func TestBadInput(t *testing.T) {
	etcdEP := etcdbin.StartEtcd(t)
	env := newEnv(t, "ignite")
	node := env.startNode(t, nodeOptions{name: "badinput"})
	targets := []*badTarget{newBadTarget(t, "etcd", etcdEP), newBadTarget(t, "ignetcd", node.Endpoints()[0])}
	ctx := testCtx(t)
	for _, b := range targets {
		for _, k := range []string{"a", "b", "c"} {
			if _, err := b.kv.Put(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte("v")}); err != nil {
				t.Fatalf("%s: %v", b.name, err)
			}
		}
	}
	big := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	const mib = 1 << 20
	manyOps := make([]*pb.RequestOp, 129)
	for i := range manyOps {
		manyOps[i] = putOp(fmt.Sprint("many", i), "v")
	}
	nested := &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: manyOps[:120]}}}

	cases := []struct {
		name string
		do   func(ctx context.Context, b *badTarget) (any, error)
	}{
		{"put empty key", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Put(ctx, &pb.PutRequest{Value: []byte("v")})
		}},
		{"put value over max-request-bytes", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Put(ctx, &pb.PutRequest{Key: []byte("big"), Value: big(3 * mib / 2)})
		}},
		{"put key over max-request-bytes", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Put(ctx, &pb.PutRequest{Key: big(3 * mib / 2), Value: []byte("v")})
		}},
		{"put over gRPC's receive limit", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Put(ctx, &pb.PutRequest{Key: []byte("huge"), Value: big(3 * mib)})
		}},
		{"txn over max-request-bytes", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{putOp("t1", string(big(mib))), putOp("t2", string(big(mib/2)))}})
		}},
		{"range key over max-request-bytes", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Range(ctx, &pb.RangeRequest{Key: big(3 * mib / 2)})
		}},
		{"range empty key", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Range(ctx, &pb.RangeRequest{})
		}},
		{"range inverted", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Range(ctx, &pb.RangeRequest{Key: []byte("c"), RangeEnd: []byte("a")})
		}},
		{"range huge limit", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Range(ctx, &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), Limit: math.MaxInt64})
		}},
		{"range negative limit", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Range(ctx, &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), Limit: -5})
		}},
		{"range future revision", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Range(ctx, &pb.RangeRequest{Key: []byte("a"), Revision: math.MaxInt64})
		}},
		{"range negative revision", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Range(ctx, &pb.RangeRequest{Key: []byte("a"), Revision: -3})
		}},
		{"range bad sort order", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Range(ctx, &pb.RangeRequest{Key: []byte("a"), SortOrder: 7})
		}},
		{"range bad sort target", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Range(ctx, &pb.RangeRequest{Key: []byte("a"), SortTarget: 9})
		}},
		{"range inverted mod revision bounds", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Range(ctx, &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), MinModRevision: 10, MaxModRevision: 2})
		}},
		{"delete inverted range", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte("c"), RangeEnd: []byte("a")})
		}},
		{"delete empty key", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.DeleteRange(ctx, &pb.DeleteRangeRequest{})
		}},
		{"put unknown lease", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("leased"), Lease: 0x1234567})
		}},
		{"put ignore_value with a value", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("x"), IgnoreValue: true})
		}},
		{"put ignore_lease with a lease", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Put(ctx, &pb.PutRequest{Key: []byte("a"), Lease: 5, IgnoreLease: true})
		}},
		{"put ignore_value on a missing key", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Put(ctx, &pb.PutRequest{Key: []byte("missing"), IgnoreValue: true})
		}},
		{"txn too many ops", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Txn(ctx, &pb.TxnRequest{Success: manyOps})
		}},
		{"txn too many ops nested", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{nested, putOp("n1", "v"), putOp("n2", "v")}, Compare: make([]*pb.Compare, 0)})
		}},
		{"txn too many compares", func(ctx context.Context, b *badTarget) (any, error) {
			cmps := make([]*pb.Compare, 129)
			for i := range cmps {
				cmps[i] = &pb.Compare{Key: []byte("a"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL}
			}
			return b.kv.Txn(ctx, &pb.TxnRequest{Compare: cmps})
		}},
		{"txn duplicate put", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{putOp("d", "1"), putOp("d", "2")}})
		}},
		{"txn put under a delete", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{
				{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("z")}}}, putOp("b", "1")}})
		}},
		{"txn compare empty key", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Txn(ctx, &pb.TxnRequest{Compare: []*pb.Compare{{Target: pb.Compare_VALUE, TargetUnion: &pb.Compare_Value{Value: []byte("v")}}}, Success: []*pb.RequestOp{putOp("a", "x")}})
		}},
		{"txn empty op", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{}}})
		}},
		{"txn op with empty key", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{putOp("ok", "v"), putOp("", "v")}})
		}},
		{"txn put unknown lease", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{putOp("ok", "v"),
				{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("l"), Lease: 0x7777}}}}})
		}},
		{"txn bad compare target", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Txn(ctx, &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a"), Target: 42, Result: 9}}, Success: []*pb.RequestOp{putOp("a", "x")}})
		}},
		{"compact future revision", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Compact(ctx, &pb.CompactionRequest{Revision: 1 << 40})
		}},
		{"compact negative revision", func(ctx context.Context, b *badTarget) (any, error) {
			return b.kv.Compact(ctx, &pb.CompactionRequest{Revision: -1})
		}},
		{"lease grant TTL too large", func(ctx context.Context, b *badTarget) (any, error) {
			return b.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: math.MaxInt64})
		}},
		{"lease grant negative id", func(ctx context.Context, b *badTarget) (any, error) {
			return b.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 3600, ID: -7})
		}},
		{"lease revoke unknown", func(ctx context.Context, b *badTarget) (any, error) {
			return b.lease.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: 0x4242})
		}},
		{"lease time-to-live unknown", func(ctx context.Context, b *badTarget) (any, error) {
			return b.lease.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: 0x4242})
		}},
		{"malformed protobuf on KV.Put", func(ctx context.Context, b *badTarget) (any, error) {
			return nil, rawInvoke(ctx, b.cc, "/etcdserverpb.KV/Put", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01})
		}},
		{"malformed protobuf on KV.Txn", func(ctx context.Context, b *badTarget) (any, error) {
			return nil, rawInvoke(ctx, b.cc, "/etcdserverpb.KV/Txn", []byte{0x12, 0x05, 0x0a, 0x03, 0x0a, 0x80})
		}},
		{"wrong wire type on KV.Range", func(ctx context.Context, b *badTarget) (any, error) {
			return nil, rawInvoke(ctx, b.cc, "/etcdserverpb.KV/Range", []byte{0x0d, 0x01, 0x02, 0x03, 0x04, 0x18, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
		}},
		{"unknown method", func(ctx context.Context, b *badTarget) (any, error) {
			return nil, rawInvoke(ctx, b.cc, "/etcdserverpb.KV/RangeStream", []byte{0x0a, 0x01, 0x61})
		}},
		{"malformed protobuf on the Watch stream", func(ctx context.Context, b *badTarget) (any, error) {
			return nil, rawWatch(ctx, b.cc, []byte{0x0a, 0x10, 0x0a, 0xff})
		}},
		{"watch inverted range", func(ctx context.Context, b *badTarget) (any, error) {
			return watchCreate(ctx, b.cc, &pb.WatchCreateRequest{Key: []byte("c"), RangeEnd: []byte("a")})
		}},
		{"watch future revision", func(ctx context.Context, b *badTarget) (any, error) {
			return watchCreate(ctx, b.cc, &pb.WatchCreateRequest{Key: []byte("a"), StartRevision: 1 << 40})
		}},
		{"watch empty key", func(ctx context.Context, b *badTarget) (any, error) {
			return watchCreate(ctx, b.cc, &pb.WatchCreateRequest{})
		}},
		{"watch bad filter", func(ctx context.Context, b *badTarget) (any, error) {
			return watchCreate(ctx, b.cc, &pb.WatchCreateRequest{Key: []byte("a"), Filters: []pb.WatchCreateRequest_FilterType{7}})
		}},
		{"watch cancel unknown id", func(ctx context.Context, b *badTarget) (any, error) {
			return watchSend(ctx, b.cc, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: 99}}})
		}},
		{"watch request of unknown kind", func(ctx context.Context, b *badTarget) (any, error) {
			return nil, rawWatch(ctx, b.cc, []byte{0xa2, 0x06, 0x00})
		}},
	}
	before := map[string]string{}
	for _, b := range targets {
		before[b.name] = b.snapshot(t)
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			var got, changed []string
			for _, b := range targets {
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				resp, err := tc.do(rctx, b)
				cancel()
				got = append(got, outcome(resp, err))
				after := b.snapshot(t)
				if err != nil && after != before[b.name] {
					t.Errorf("%s: the request failed (%v) but changed the store:\nbefore %s\nafter  %s", b.name, err, before[b.name], after)
				}
				changed = append(changed, fmt.Sprintf("%v", after != before[b.name]))
				before[b.name] = after
			}
			if got[0] != got[1] {
				t.Errorf("etcd answers    %s\nignetcd answers %s", got[0], got[1])
			} else {
				t.Logf("both: %s (store changed: %s)", got[0], changed[0])
			}
			if changed[0] != changed[1] {
				t.Errorf("the store changed on etcd: %s, on ignetcd: %s", changed[0], changed[1])
			}
			if before["etcd"] != before["ignetcd"] {
				t.Errorf("the stores differ:\netcd    %s\nignetcd %s", before["etcd"], before["ignetcd"])
			}
		})
	}
	t.Run("garbage_on_the_port", func(t *testing.T) {
		for _, garbage := range [][]byte{
			[]byte("\x00\x01\x02\x03 garbage \xff\xfe\r\n\r\n"),
			[]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff"), // HTTP/2 preface, then a bogus frame
			[]byte("GET /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{{{{{"),
			[]byte("POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{\"key\":1}"),
			bytes.Repeat([]byte{0x16, 0x03, 0x01, 0xff, 0xff}, 50), // a TLS record header, over and over
		} {
			var got []string
			for _, b := range targets {
				got = append(got, sendGarbage(t, b.endpoint, garbage))
				if after := b.snapshot(t); after != before[b.name] {
					t.Errorf("%s: garbage %q changed the store:\nbefore %s\nafter  %s", b.name, garbage, before[b.name], after)
					before[b.name] = after
				}
			}
			t.Logf("garbage %.30q: etcd %s; ignetcd %s", garbage, got[0], got[1])
			if strings.HasPrefix(got[1], "open") && !strings.HasPrefix(got[0], "open") {
				t.Errorf("ignetcd kept a connection that sent garbage %.30q open; etcd closed it", garbage)
			}
		}
	})
	// Still serving: a write and a watch work.
	ctx = testCtx(t)
	for _, b := range targets {
		if _, err := b.kv.Put(ctx, &pb.PutRequest{Key: []byte("after"), Value: []byte("v")}); err != nil {
			t.Errorf("%s: a put after the bad input: %v", b.name, err)
		}
	}
	c := newClient(t, targets[1].endpoint)
	wch := c.Watch(ctx, "after", clientv3.WithRev(1))
	select {
	case wr := <-wch:
		if len(wr.Events) != 1 {
			t.Errorf("watch after the bad input: %+v %v", wr.Events, wr.Err())
		}
	case <-time.After(10 * time.Second):
		t.Error("watch after the bad input delivered nothing")
	}
}

// rawInvoke sends payload as the request message of a unary method.
func rawInvoke(ctx context.Context, cc *grpc.ClientConn, method string, payload []byte) error {
	var reply []byte
	return cc.Invoke(ctx, method, &payload, &reply, grpc.ForceCodec(rawCodec{}))
}

// rawWatch opens a Watch stream, sends payload as a message and returns
// how the stream ends (nil if it stays open without answering).
func rawWatch(ctx context.Context, cc *grpc.ClientConn, payload []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/etcdserverpb.Watch/Watch", grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return err
	}
	if err := st.SendMsg(&payload); err != nil && err != io.EOF {
		return err
	}
	var reply []byte
	err = st.RecvMsg(&reply)
	if status.Code(err) == codes.DeadlineExceeded {
		return nil
	}
	if err == nil {
		return fmt.Errorf("answered %d bytes", len(reply))
	}
	return err
}

// watchCreate opens a Watch stream with one create request and describes
// the first answer.
func watchCreate(ctx context.Context, cc *grpc.ClientConn, req *pb.WatchCreateRequest) (any, error) {
	return watchSend(ctx, cc, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: req}})
}

func watchSend(ctx context.Context, cc *grpc.ClientConn, req *pb.WatchRequest) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	wc, err := pb.NewWatchClient(cc).Watch(ctx)
	if err != nil {
		return nil, err
	}
	if err := wc.Send(req); err != nil {
		return nil, err
	}
	r, err := wc.Recv()
	if status.Code(err) == codes.DeadlineExceeded {
		return "no answer", nil
	}
	if err != nil {
		return nil, err
	}
	return fmt.Sprintf("watch created %v canceled %v reason %q compact %d events %d", r.Created, r.Canceled, r.CancelReason, r.CompactRevision, len(r.Events)), nil
}

// sendGarbage writes garbage to a fresh TCP connection and reports what
// the server did within a second.
func sendGarbage(t *testing.T, endpoint string, garbage []byte) string {
	nc, err := net.DialTimeout("tcp", endpoint, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", endpoint, err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(time.Second))
	if _, err := nc.Write(garbage); err != nil {
		return "write failed: " + err.Error()
	}
	var got bytes.Buffer
	_, err = io.Copy(&got, nc)
	reply := got.String()
	if i := strings.IndexAny(reply, "\r\n"); i >= 0 {
		reply = reply[:i]
	}
	if len(reply) > 40 {
		reply = reply[:40]
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return fmt.Sprintf("open after 1s (answered %d bytes %q)", got.Len(), reply)
	}
	return fmt.Sprintf("closed (answered %d bytes %q)", got.Len(), reply)
}
