package it

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// side is one server (reference etcd or subject) seen through clientv3's
// gRPC connection and the raw etcdserverpb stubs, so every request field can
// be set and every response field is seen.
type side struct {
	name   string // "etcd" or "subject"
	ep     string
	cli    *clientv3.Client
	kv     pb.KVClient
	lease  pb.LeaseClient
	watch  pb.WatchClient
	curRev int64 // latest header.revision seen in a unary response
}

func newSide(name, ep string) (*side, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{ep},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("%s: clientv3.New(%s): %w", name, ep, err)
	}
	conn := cli.ActiveConnection()
	return &side{
		name: name, ep: ep, cli: cli,
		kv: pb.NewKVClient(conn), lease: pb.NewLeaseClient(conn), watch: pb.NewWatchClient(conn),
	}, nil
}

const rpcTimeout = 15 * time.Second

// call sends one unary request and returns the (normalized) response or the
// error.
func (s *side) call(req any) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	var resp any
	var err error
	switch r := req.(type) {
	case *pb.PutRequest:
		resp, err = s.kv.Put(ctx, r)
	case *pb.RangeRequest:
		resp, err = s.kv.Range(ctx, r)
	case *pb.DeleteRangeRequest:
		resp, err = s.kv.DeleteRange(ctx, r)
	case *pb.TxnRequest:
		resp, err = s.kv.Txn(ctx, r)
	case *pb.CompactionRequest:
		resp, err = s.kv.Compact(ctx, r)
	case *pb.LeaseGrantRequest:
		resp, err = s.lease.LeaseGrant(ctx, r)
	case *pb.LeaseRevokeRequest:
		resp, err = s.lease.LeaseRevoke(ctx, r)
	case *pb.LeaseTimeToLiveRequest:
		resp, err = s.lease.LeaseTimeToLive(ctx, r)
	case *pb.LeaseLeasesRequest:
		resp, err = s.lease.LeaseLeases(ctx, r)
	case *pb.LeaseKeepAliveRequest:
		// One request on a fresh stream; the stream dies with ctx.
		var st pb.Lease_LeaseKeepAliveClient
		if st, err = s.lease.LeaseKeepAlive(ctx); err == nil {
			if err = st.Send(r); err == nil {
				resp, err = st.Recv()
			}
		}
	default:
		panic(fmt.Sprintf("unknown request %T", req))
	}
	if err != nil {
		return nil, err
	}
	if h := headerOf(resp); h != nil && h.Revision > s.curRev {
		s.curRev = h.Revision
	}
	normalize(resp)
	return resp, nil
}

func headerOf(m any) *pb.ResponseHeader {
	if h, ok := m.(interface{ GetHeader() *pb.ResponseHeader }); ok {
		return h.GetHeader()
	}
	return nil
}

// zeroHeader clears the fields that legitimately differ between two
// servers: cluster_id, member_id, raft_term. header.revision is compared.
func zeroHeader(h *pb.ResponseHeader) {
	if h != nil {
		h.ClusterId, h.MemberId, h.RaftTerm = 0, 0, 0
	}
}

// normalize zeroes server identity fields (recursively in txn responses) and
// puts unordered lists in a canonical order:
//   - LeaseTimeToLive.keys: etcd returns them in Go map order (random).
//   - LeaseLeases.leases: etcd sorts them by expiry time, which depends on
//     when each side received the grant.
func normalize(m any) {
	zeroHeader(headerOf(m))
	switch r := m.(type) {
	case *pb.TxnResponse:
		for _, ro := range r.Responses {
			switch x := ro.Response.(type) {
			case *pb.ResponseOp_ResponseRange:
				normalize(x.ResponseRange)
			case *pb.ResponseOp_ResponsePut:
				normalize(x.ResponsePut)
			case *pb.ResponseOp_ResponseDeleteRange:
				normalize(x.ResponseDeleteRange)
			case *pb.ResponseOp_ResponseTxn:
				normalize(x.ResponseTxn)
			}
		}
	case *pb.LeaseTimeToLiveResponse:
		sort.Slice(r.Keys, func(i, j int) bool { return bytes.Compare(r.Keys[i], r.Keys[j]) < 0 })
	case *pb.LeaseLeasesResponse:
		sort.Slice(r.Leases, func(i, j int) bool { return r.Leases[i].ID < r.Leases[j].ID })
	}
}

type marshaler interface{ Marshal() ([]byte, error) }

func wire(m any) []byte {
	mm, ok := m.(marshaler)
	if !ok {
		panic(fmt.Sprintf("%T is not a gogo message", m))
	}
	b, err := mm.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// errText renders an error as "<grpc code>: <message>" (both compared).
func errText(err error) string {
	if st, ok := status.FromError(err); ok {
		return fmt.Sprintf("error %s: %q", st.Code(), st.Message())
	}
	return fmt.Sprintf("non-gRPC error %T: %v", err, err)
}

// isTransportErr reports errors that do not come from the server's request
// handling: lost connections, timeouts. Every etcd API error message starts
// with "etcdserver: ".
func isTransportErr(err error) bool {
	if err == nil {
		return false
	}
	st, ok := status.FromError(err)
	if !ok {
		return true
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown, codes.Internal:
		return !strings.HasPrefix(st.Message(), "etcdserver: ")
	}
	return false
}

func resultText(resp any, err error) string {
	if err != nil {
		return errText(err)
	}
	return fmt.Sprintf("%T %s", resp, clip(textOf(resp)))
}

// sameResult reports whether two results are equal; the subject's response
// may be adjusted for documented tolerances first.
func sameResult(refResp any, refErr error, subResp any, subErr error) bool {
	if refErr != nil || subErr != nil {
		if refErr == nil || subErr == nil {
			return false
		}
		return errText(refErr) == errText(subErr)
	}
	// LeaseTimeToLive.TTL is the remaining time, truncated to seconds, at the
	// moment each server answered: allow a little slack (requests reach the
	// two servers a few ms apart, but a truncation boundary may fall between).
	if r, ok := refResp.(*pb.LeaseTimeToLiveResponse); ok {
		if s, ok := subResp.(*pb.LeaseTimeToLiveResponse); ok && r.TTL > 0 && s.TTL > 0 && abs(r.TTL-s.TTL) <= 2 {
			s.TTL = r.TTL
		}
	}
	return bytes.Equal(wire(refResp), wire(subResp))
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
