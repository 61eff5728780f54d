package server

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/ignetcd/ignetcd/mvcc"
)

type leaseServer struct{ s *Server }

func (l *leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	id, ttl, err := l.s.store.LeaseGrant(ctx, r.ID, r.TTL)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.LeaseGrantResponse{Header: l.s.header(nil), ID: id, TTL: ttl}, nil
}

func (l *leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	resp, err := l.s.store.LeaseRevoke(ctx, r.ID)
	if err != nil {
		return nil, toGRPCError(err)
	}
	l.s.header(resp.Header)
	return resp, nil
}

// LeaseKeepAlive answers each keep-alive with the lease's granted TTL, or
// TTL 0 for a lease that does not exist (etcd's answer, which clientv3
// reads as the lease being gone).
func (l *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		ttl, err := l.s.store.LeaseKeepAlive(stream.Context(), req.ID)
		if errors.Is(err, mvcc.ErrLeaseNotFound) {
			ttl, err = 0, nil
		}
		if err != nil {
			return toGRPCError(err)
		}
		if err := stream.Send(&pb.LeaseKeepAliveResponse{Header: l.s.header(nil), ID: req.ID, TTL: ttl}); err != nil {
			return err
		}
	}
}

func (l *leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	resp, err := l.s.store.LeaseTimeToLive(ctx, r.ID, r.Keys)
	if err != nil {
		return nil, toGRPCError(err)
	}
	l.s.header(resp.Header)
	return resp, nil
}

func (l *leaseServer) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	ids, err := l.s.store.Leases(ctx)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp := &pb.LeaseLeasesResponse{Header: l.s.header(nil), Leases: make([]*pb.LeaseStatus, len(ids))}
	for i, id := range ids {
		resp.Leases[i] = &pb.LeaseStatus{ID: id}
	}
	return resp, nil
}
