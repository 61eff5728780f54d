// Package server is the etcd v3 gRPC layer: it validates requests as etcd's
// v3rpc does, hands them to the mvcc.Store, fills response headers, and maps
// errors to etcd's gRPC statuses in one table (errors.go). It knows nothing
// of the storage engine.
package server

import (
	"context"
	"hash/fnv"
	"math"
	"time"

	"github.com/rs/zerolog"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/version"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/ignetcd/ignetcd/mvcc"
)

// Config describes this member as clients see it, and etcd's request limits.
type Config struct {
	Name       string
	ClientURLs []string // advertised client URLs
	// ClusterID and MemberID identify the cluster and this member in
	// response headers; zero values derive them from ClusterName and Name.
	ClusterID, MemberID uint64
	ClusterName         string
	// MaxTxnOps is etcd's --max-txn-ops (default 128).
	MaxTxnOps int
	// MaxRequestBytes is etcd's --max-request-bytes (default 1.5 MiB).
	MaxRequestBytes int
	// ProgressNotifyInterval is etcd's --watch-progress-notify-interval
	// (default 10 minutes).
	ProgressNotifyInterval time.Duration
	// KeepaliveMinTime, KeepaliveInterval and KeepaliveTimeout are etcd's
	// --grpc-keepalive-min-time (default 5s: clients pinging more often
	// are disconnected), --grpc-keepalive-interval (default 2h: how often
	// the server pings an idle connection) and --grpc-keepalive-timeout
	// (default 20s: how long it waits for the answer).
	KeepaliveMinTime, KeepaliveInterval, KeepaliveTimeout time.Duration
	// ExtensiveMetrics adds the per-RPC handling-time histograms
	// (grpc_server_handling_seconds), as etcd's --metrics=extensive; the
	// default, etcd's "basic", counts RPCs only.
	ExtensiveMetrics bool
	Logger           zerolog.Logger
}

// Defaults of etcd's server flags.
const (
	DefaultMaxTxnOps       = 128
	DefaultMaxRequestBytes = 1536 * 1024
	// grpcOverheadBytes is what etcd lets gRPC receive beyond
	// MaxRequestBytes, so that slightly larger requests get etcd's own
	// "request is too large" error rather than gRPC's.
	grpcOverheadBytes = 512 * 1024

	DefaultKeepaliveMinTime  = 5 * time.Second
	DefaultKeepaliveInterval = 2 * time.Hour
	DefaultKeepaliveTimeout  = 20 * time.Second
)

// Version is the etcd version this server reports (the api module's).
var Version = version.Version

// Server implements etcd's KV, Watch, Lease, Maintenance, Cluster and Auth
// services over one mvcc.Store.
type Server struct {
	cfg     Config
	store   *mvcc.Store
	lg      zerolog.Logger
	metrics *metrics
}

// New returns a Server for store.
func New(store *mvcc.Store, cfg Config) *Server {
	if cfg.MaxTxnOps <= 0 {
		cfg.MaxTxnOps = DefaultMaxTxnOps
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.ProgressNotifyInterval <= 0 {
		cfg.ProgressNotifyInterval = 10 * time.Minute
	}
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = "ignetcd"
	}
	if cfg.ClusterID == 0 {
		cfg.ClusterID = hashID(cfg.ClusterName)
	}
	if cfg.MemberID == 0 {
		cfg.MemberID = hashID(cfg.ClusterName + "/" + cfg.Name)
	}
	if cfg.KeepaliveMinTime <= 0 {
		cfg.KeepaliveMinTime = DefaultKeepaliveMinTime
	}
	if cfg.KeepaliveInterval <= 0 {
		cfg.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if cfg.KeepaliveTimeout <= 0 {
		cfg.KeepaliveTimeout = DefaultKeepaliveTimeout
	}
	return &Server{cfg: cfg, store: store, lg: cfg.Logger, metrics: newMetrics(store, cfg.ExtensiveMetrics)}
}

func hashID(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64() &^ (1 << 63)
}

// GRPCOptions are the gRPC server options etcd uses for its client port:
// message size limits, keepalive (the defaults accept the 30 s pings
// kube-apiserver sends), and the metrics interceptors, outermost so that
// rejected requests are counted too.
// streamWorkers is how many goroutines serve gRPC streams before new ones
// are started per request.
const streamWorkers = 128

func (s *Server) GRPCOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.cfg.MaxRequestBytes + grpcOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
		// Reused handler goroutines keep the stacks they have grown: a new
		// goroutine per request grows its stack through the interceptor
		// chain and the store again on every call (about 7 % of the CPU of
		// a put-heavy load). Requests beyond the pool get a goroutine each,
		// as without the option.
		grpc.NumStreamWorkers(streamWorkers),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: s.cfg.KeepaliveMinTime}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: s.cfg.KeepaliveInterval, Timeout: s.cfg.KeepaliveTimeout}),
		grpc.ChainUnaryInterceptor(s.metrics.grpc.UnaryServerInterceptor(), s.requireLeaderUnary, s.requestSizeInterceptor),
		grpc.ChainStreamInterceptor(s.metrics.grpc.StreamServerInterceptor(), s.metrics.countWatchers, s.requireLeaderStream),
	}
}

// RegisterMember announces this member in storage for MemberList on every
// node; the registration lives as long as the store.
func (s *Server) RegisterMember(ctx context.Context) error {
	return s.store.RegisterMember(ctx, mvcc.Member{ID: s.cfg.MemberID, Name: s.cfg.Name, ClientURLs: s.cfg.ClientURLs})
}

// Register adds every etcd service to g.
func (s *Server) Register(g *grpc.Server) {
	pb.RegisterKVServer(g, &kvServer{s})
	pb.RegisterWatchServer(g, &watchServer{s})
	pb.RegisterLeaseServer(g, &leaseServer{s})
	pb.RegisterMaintenanceServer(g, &maintenanceServer{s})
	pb.RegisterClusterServer(g, &clusterServer{s})
	pb.RegisterAuthServer(g, &authServer{s: s})
}

// header fills a response header as etcd's v3rpc does: cluster and member
// ids, the raft term (always 1 here: there is no raft), and the current
// revision when the response carries none.
func (s *Server) header(h *pb.ResponseHeader) *pb.ResponseHeader {
	if h == nil {
		h = &pb.ResponseHeader{}
	}
	h.ClusterId = s.cfg.ClusterID
	h.MemberId = s.cfg.MemberID
	h.RaftTerm = 1
	if h.Revision == 0 {
		h.Revision = s.store.Revision()
	}
	return h
}

// watchHeader fills a watch response header, keeping its revision as is
// (etcd sends 0 on compaction cancels).
func (s *Server) watchHeader(h *pb.ResponseHeader) *pb.ResponseHeader {
	if h == nil {
		h = &pb.ResponseHeader{}
	}
	h.ClusterId = s.cfg.ClusterID
	h.MemberId = s.cfg.MemberID
	h.RaftTerm = 1
	return h
}
