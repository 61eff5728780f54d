package server

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// A request carrying etcd's "hasleader" metadata (clientv3.WithRequireLeader,
// which kube-apiserver sets on every watch) must not be served by a member
// without a leader. ignetcd has no raft leader; its equivalent is being cut
// off from storage. Unary requests are refused at once; streams are closed
// once storage has been lost for noLeaderGrace, as etcd's monitorLeader
// closes them after three election timeouts.
const noLeaderGrace = 3 * time.Second

func requiresLeader(ctx context.Context) bool {
	// ValueFromIncomingContext reads the one key without copying the
	// request's whole metadata (which FromIncomingContext does per call).
	v := metadata.ValueFromIncomingContext(ctx, rpctypes.MetadataRequireLeaderKey)
	return len(v) > 0 && v[0] == rpctypes.MetadataHasLeader
}

func (s *Server) requireLeaderUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if requiresLeader(ctx) && s.store.StorageLostFor() > 0 {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	return handler(ctx, req)
}

type leaderStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (l leaderStream) Context() context.Context { return l.ctx }

func (s *Server) requireLeaderStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !requiresLeader(ss.Context()) {
		return handler(srv, ss)
	}
	if s.store.StorageLostFor() > 0 {
		return rpctypes.ErrGRPCNoLeader
	}
	ctx, cancel := context.WithCancelCause(ss.Context())
	defer cancel(nil)
	go func() {
		t := time.NewTicker(noLeaderGrace / 6)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if s.store.StorageLostFor() >= noLeaderGrace {
					cancel(rpctypes.ErrGRPCNoLeader)
					return
				}
			}
		}
	}()
	err := handler(srv, leaderStream{ss, ctx})
	if errors.Is(context.Cause(ctx), rpctypes.ErrGRPCNoLeader) {
		return rpctypes.ErrGRPCNoLeader
	}
	return err
}
