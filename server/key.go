package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

type kvServer struct{ s *Server }

func (k *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRangeRequest(r); err != nil {
		return nil, err
	}
	resp, err := k.s.store.Range(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	k.s.header(resp.Header)
	return resp, nil
}

func (k *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := checkPutRequest(r); err != nil {
		return nil, err
	}
	resp, err := k.s.store.Put(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	k.s.header(resp.Header)
	return resp, nil
}

func (k *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := checkDeleteRequest(r); err != nil {
		return nil, err
	}
	resp, err := k.s.store.DeleteRange(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	k.s.header(resp.Header)
	return resp, nil
}

func (k *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := checkTxnRequest(r, k.s.cfg.MaxTxnOps); err != nil {
		return nil, err
	}
	if err := checkBranch(r.Success); err != nil {
		return nil, err
	}
	if err := checkBranch(r.Failure); err != nil {
		return nil, err
	}
	resp, err := k.s.store.Txn(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	k.s.header(resp.Header)
	return resp, nil
}

func (k *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	rev, err := k.s.store.Compact(ctx, r.Revision, r.Physical)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.CompactionResponse{Header: k.s.header(&pb.ResponseHeader{Revision: rev})}, nil
}

func checkRangeRequest(r *pb.RangeRequest) error {
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

func checkPutRequest(r *pb.PutRequest) error {
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

func checkDeleteRequest(r *pb.DeleteRangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	return nil
}

// checkTxnRequest bounds the ops of a txn and of each nested txn by what is
// left of maxTxnOps, as etcd does.
func checkTxnRequest(r *pb.TxnRequest, maxTxnOps int) error {
	opc := max(len(r.Compare), len(r.Success), len(r.Failure))
	if opc > maxTxnOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if err := checkRequestOp(op, maxTxnOps-opc); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkRequestOp(op *pb.RequestOp, maxTxnOps int) error {
	switch o := op.Request.(type) {
	case *pb.RequestOp_RequestRange:
		return checkRangeRequest(o.RequestRange)
	case *pb.RequestOp_RequestPut:
		return checkPutRequest(o.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		return checkDeleteRequest(o.RequestDeleteRange)
	case *pb.RequestOp_RequestTxn:
		return checkTxnRequest(o.RequestTxn, maxTxnOps)
	}
	// An op with no request is what etcd answers this way.
	return rpctypes.ErrGRPCKeyNotFound
}

// requestSizeInterceptor rejects writes larger than MaxRequestBytes with
// etcd's error. etcd measures the raft entry, which wraps the request in a
// small header; raftEntryOverhead approximates that wrapping.
func (s *Server) requestSizeInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	const raftEntryOverhead = 16
	switch req.(type) {
	case *pb.PutRequest, *pb.DeleteRangeRequest, *pb.TxnRequest, *pb.CompactionRequest, *pb.LeaseGrantRequest, *pb.LeaseRevokeRequest:
		if m, ok := req.(interface{ Size() int }); ok && m.Size()+raftEntryOverhead > s.cfg.MaxRequestBytes {
			return nil, rpctypes.ErrGRPCRequestTooLarge
		}
	}
	return handler(ctx, req)
}
