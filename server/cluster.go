package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type clusterServer struct{ s *Server }

func (c *clusterServer) member() *pb.Member {
	return &pb.Member{ID: c.s.cfg.MemberID, Name: c.s.cfg.Name, ClientURLs: c.s.cfg.ClientURLs}
}

// MemberList reports the live ignetcd nodes registered in storage (this
// one at least, even if storage cannot be read right now).
func (c *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	resp := &pb.MemberListResponse{Header: c.s.header(nil)}
	registered, err := c.s.store.Members(ctx)
	if err != nil {
		c.s.lg.Debug().Err(err).Msg("listing registered members failed; reporting this member only")
	}
	self := false
	for _, m := range registered {
		self = self || m.ID == c.s.cfg.MemberID
		resp.Members = append(resp.Members, &pb.Member{ID: m.ID, Name: m.Name, ClientURLs: m.ClientURLs})
	}
	if !self {
		resp.Members = append(resp.Members, c.member())
	}
	return resp, nil
}

var errMembership = status.Error(codes.Unimplemented, "etcdserver: membership changes are not supported by ignetcd: members are ignetcd processes sharing one Ignite cluster")

func (c *clusterServer) MemberAdd(context.Context, *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	return nil, errMembership
}

func (c *clusterServer) MemberRemove(context.Context, *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	return nil, errMembership
}

func (c *clusterServer) MemberUpdate(context.Context, *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	return nil, errMembership
}

func (c *clusterServer) MemberPromote(context.Context, *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	return nil, errMembership
}
