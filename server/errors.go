package server

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ignetcd/ignetcd/mvcc"
)

// errorTable maps mvcc's errors to the gRPC statuses etcd returns for them;
// clients match on these codes and messages.
var errorTable = map[error]error{
	mvcc.ErrCompacted:        rpctypes.ErrGRPCCompacted,
	mvcc.ErrFutureRev:        rpctypes.ErrGRPCFutureRev,
	mvcc.ErrKeyNotFound:      rpctypes.ErrGRPCKeyNotFound,
	mvcc.ErrLeaseNotFound:    rpctypes.ErrGRPCLeaseNotFound,
	mvcc.ErrLeaseExists:      rpctypes.ErrGRPCLeaseExist,
	mvcc.ErrLeaseTTLTooLarge: rpctypes.ErrGRPCLeaseTTLTooLarge,
	mvcc.ErrStopped:          rpctypes.ErrGRPCStopped,
}

// toGRPCError maps err for a client. Storage failures become Unavailable:
// clientv3 retries reads on it and does not blindly retry writes; a commit
// whose outcome is unknown gets etcd's own "request timed out, possibly due
// to connection lost", which tells the client the write may have happened.
func toGRPCError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for e, g := range errorTable {
		if errors.Is(err, e) {
			return g
		}
	}
	switch {
	case errors.Is(err, mvcc.ErrCommitUnknown):
		return rpctypes.ErrGRPCTimeoutDueToConnectionLost
	case errors.Is(err, mvcc.ErrEngineUnavailable):
		return status.Error(codes.Unavailable, "etcdserver: storage unavailable: "+err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, context.Canceled.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, context.DeadlineExceeded.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}
