package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// storageVersion is what etcd 3.6 reports as its storage schema version.
const storageVersion = "3.6.0"

// dbSizeQuota is etcd's default backend quota (2 GiB), reported as etcd does.
const dbSizeQuota = 2 * 1024 * 1024 * 1024

type maintenanceServer struct{ s *Server }

func (m *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	return &pb.AlarmResponse{Header: m.s.header(nil)}, nil
}

// Status reports this member as the leader of a one-member raft group, with
// a version kube-apiserver accepts for consistent reads from its cache.
func (m *maintenanceServer) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	rev := m.s.store.Revision()
	size := m.s.store.DBSize()
	return &pb.StatusResponse{
		Header:           m.s.header(nil),
		Version:          Version,
		DbSize:           size,
		DbSizeInUse:      size,
		Leader:           m.s.cfg.MemberID,
		RaftIndex:        uint64(rev),
		RaftTerm:         1,
		RaftAppliedIndex: uint64(rev),
		StorageVersion:   storageVersion,
		DbSizeQuota:      dbSizeQuota,
	}, nil
}

// Defragment has nothing to do: storage is the engine's.
func (m *maintenanceServer) Defragment(ctx context.Context, r *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	return &pb.DefragmentResponse{Header: m.s.header(nil)}, nil
}

func (m *maintenanceServer) Hash(ctx context.Context, r *pb.HashRequest) (*pb.HashResponse, error) {
	return nil, status.Error(codes.Unimplemented, "etcdserver: Hash (of the backend file) is not supported by ignetcd; use HashKV")
}

func (m *maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	hash, rev, compact, err := m.s.store.HashKV(ctx, r.Revision)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.HashKVResponse{Header: m.s.header(&pb.ResponseHeader{Revision: rev}), Hash: hash, CompactRevision: compact, HashRevision: rev}, nil
}

func (m *maintenanceServer) Snapshot(r *pb.SnapshotRequest, srv pb.Maintenance_SnapshotServer) error {
	return status.Error(codes.Unimplemented, "etcdserver: Snapshot is not supported by ignetcd: the data lives in Ignite; back up the Ignite caches instead")
}

func (m *maintenanceServer) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	return nil, status.Error(codes.Unimplemented, "etcdserver: MoveLeader is not supported by ignetcd: there is no raft leader")
}

func (m *maintenanceServer) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "etcdserver: Downgrade is not supported by ignetcd")
}
