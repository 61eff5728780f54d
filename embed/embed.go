// Package embed starts an ignetcd node in-process: storage engine, mvcc
// store, etcd gRPC services and client listeners. cmd/ignetcd is a thin flag
// parser around it; tests use it to start nodes on loopback ports.
package embed

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"

	"github.com/ignetcd/ignetcd/ignite/engine"
	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/mvcc"
	"github.com/ignetcd/ignetcd/server"
)

// Config is a node's configuration; field names follow etcd's flags.
type Config struct {
	Name                        string
	ListenClientURLs            []string
	AdvertiseClientURLs         []string
	MaxRequestBytes             int
	MaxTxnOps                   int
	WatchProgressNotifyInterval time.Duration
	// Metrics is etcd's --metrics: "basic" (the default) or "extensive"
	// (adds per-RPC handling-time histograms).
	Metrics string
	// EnablePprof serves Go's runtime profiles under /debug/pprof/ on the
	// client URLs (etcd's --enable-pprof).
	EnablePprof bool
	// ClientTLSInfo secures https client URLs (etcd's --cert-file,
	// --key-file, --trusted-ca-file, --client-cert-auth); ClientAutoTLS
	// (--auto-tls) makes a self-signed certificate when it has none.
	ClientTLSInfo TLSInfo
	ClientAutoTLS bool
	// GRPCKeepAliveMinTime, GRPCKeepAliveInterval and GRPCKeepAliveTimeout
	// are etcd's --grpc-keepalive-* (zero: etcd's defaults).
	GRPCKeepAliveMinTime, GRPCKeepAliveInterval, GRPCKeepAliveTimeout time.Duration
	// IgniteEndpoints selects the Ignite engine; empty means the in-memory
	// engine (not durable).
	IgniteEndpoints []string
	// Ignite tunes the Ignite engine (its Client.Endpoints come from
	// IgniteEndpoints).
	Ignite engine.Config
	// Prefix names this etcd keyspace's tables in the engine.
	Prefix string
	// Engine, when set, is used instead of opening one (tests share one
	// engine between nodes this way). The node does not close it.
	Engine mvcc.Engine
	Store  mvcc.Config
	Logger zerolog.Logger
}

// DefaultListenClientURL is etcd's default client URL.
const DefaultListenClientURL = "http://localhost:2379"

// Node is a running ignetcd node.
type Node struct {
	cfg       Config
	engine    mvcc.Engine
	ownEngine bool
	store     *mvcc.Store
	grpc      *grpc.Server
	http      *http.Server
	gateway   *grpc.ClientConn // the JSON gateway's in-process connection
	listeners []*clientListener
	urls      []string
	serveWG   sync.WaitGroup
	closeOnce sync.Once
}

// Start opens the engine, loads the store and serves clients.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if len(cfg.ListenClientURLs) == 0 {
		cfg.ListenClientURLs = []string{DefaultListenClientURL}
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "ignetcd-"
	}
	lg := cfg.Logger
	n := &Node{cfg: cfg}
	switch {
	case cfg.Engine != nil:
		n.engine = cfg.Engine
	case len(cfg.IgniteEndpoints) > 0:
		started := time.Now()
		ccfg := cfg.Ignite
		ccfg.Client.Endpoints = cfg.IgniteEndpoints
		eng, err := engine.Open(ctx, ccfg)
		if err != nil {
			return nil, fmt.Errorf("connecting to Ignite at %s: %w (%s)", strings.Join(cfg.IgniteEndpoints, ","), err, igniteHint(err))
		}
		lg.Info().Strs("ignite_endpoints", cfg.IgniteEndpoints).Dur("took", time.Since(started)).Msg("connected to Ignite")
		n.engine, n.ownEngine = eng, true
	default:
		lg.Warn().Msg("no --ignite-endpoints given: running on the in-memory engine; data is NOT durable and is lost when the process exits")
		n.engine, n.ownEngine = memengine.New(), true
	}
	tlsCfg, err := clientTLS(cfg)
	if err != nil {
		n.closeEngine()
		return nil, err
	}
	for _, u := range cfg.ListenClientURLs {
		l, err := listen(u, tlsCfg)
		if err != nil {
			n.closeListeners()
			n.closeEngine()
			return nil, err
		}
		n.listeners = append(n.listeners, l)
		n.urls = append(n.urls, l.url)
	}
	advertise := cfg.AdvertiseClientURLs
	if len(advertise) == 0 {
		advertise = n.urls
	}
	storeCfg := cfg.Store
	storeCfg.Prefix = cfg.Prefix
	storeCfg.Logger = lg
	store, err := mvcc.Open(ctx, n.engine, storeCfg)
	if err != nil {
		n.closeListeners()
		n.closeEngine()
		return nil, fmt.Errorf("loading the keyspace from storage: %w", err)
	}
	n.store = store
	srv := server.New(store, server.Config{
		Name: cfg.Name, ClientURLs: advertise, ClusterName: cfg.Prefix,
		MaxTxnOps: cfg.MaxTxnOps, MaxRequestBytes: cfg.MaxRequestBytes,
		ProgressNotifyInterval: cfg.WatchProgressNotifyInterval, Logger: lg,
		KeepaliveMinTime: cfg.GRPCKeepAliveMinTime, KeepaliveInterval: cfg.GRPCKeepAliveInterval,
		KeepaliveTimeout: cfg.GRPCKeepAliveTimeout, ExtensiveMetrics: cfg.Metrics == "extensive",
	})
	n.grpc = grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(n.grpc)
	if err := srv.RegisterMember(ctx); err != nil {
		lg.Warn().Err(err).Msg("registering this member in storage failed; MemberList on other nodes will not show it")
	}
	if err := n.startServing(srv); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// startServing serves gRPC and HTTP on every client listener.
func (n *Node) startServing(srv *server.Server) error {
	metrics, err := newMetricsRegistry(srv, n.grpc)
	if err != nil {
		return err
	}
	gateway, err := n.startGateway()
	if err != nil {
		return err
	}
	n.http = &http.Server{Handler: n.httpHandler(metrics, gateway), ReadHeaderTimeout: sniffTimeout}
	for _, l := range n.listeners {
		n.serve(l, n.http)
		n.cfg.Logger.Info().Str("url", l.url).Bool("client_cert_auth", strings.HasPrefix(l.url, "https") && n.cfg.ClientTLSInfo.ClientCertAuth).
			Msg("serving etcd clients: gRPC, and HTTP /health /readyz /livez /version /metrics /v3/")
	}
	return nil
}

// ClientURLs are the URLs the node listens on, with ports resolved.
func (n *Node) ClientURLs() []string { return n.urls }

// Endpoints are the client addresses (host:port) for clientv3.
func (n *Node) Endpoints() []string {
	eps := make([]string, len(n.listeners))
	for i, l := range n.listeners {
		eps[i] = l.root.Addr().String()
	}
	return eps
}

// Store exposes the node's store (tests inspect it).
func (n *Node) Store() *mvcc.Store { return n.store }

// Close stops serving, waiting up to timeout for in-flight RPCs, then
// closes the store and the engine the node opened.
func (n *Node) Close() { n.Shutdown(5 * time.Second) }

// Shutdown is Close with a chosen grace period.
func (n *Node) Shutdown(grace time.Duration) {
	n.closeOnce.Do(func() {
		n.stopServing(grace)
		n.serveWG.Wait()
		n.closeEngine()
	})
}

func (n *Node) closeEngine() {
	if n.ownEngine {
		n.engine.Close()
	}
}
