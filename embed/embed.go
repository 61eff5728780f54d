// Package embed starts an ignetcd node in-process: storage engine, mvcc
// store, etcd gRPC services and client listeners. cmd/ignetcd is a thin flag
// parser around it; tests use it to start nodes on loopback ports.
package embed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
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
	listeners []net.Listener
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
			return nil, fmt.Errorf("connecting to Ignite at %s: %w (is an Ignite node running with its thin-client connector on that port? the default port is 10800)", strings.Join(cfg.IgniteEndpoints, ","), err)
		}
		lg.Info().Strs("ignite_endpoints", cfg.IgniteEndpoints).Dur("took", time.Since(started)).Msg("connected to Ignite")
		n.engine, n.ownEngine = eng, true
	default:
		lg.Warn().Msg("no --ignite-endpoints given: running on the in-memory engine; data is NOT durable and is lost when the process exits")
		n.engine, n.ownEngine = memengine.New(), true
	}
	for _, u := range cfg.ListenClientURLs {
		l, err := listen(u)
		if err != nil {
			n.closeListeners()
			n.closeEngine()
			return nil, err
		}
		n.listeners = append(n.listeners, l)
		n.urls = append(n.urls, "http://"+l.Addr().String())
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
	})
	n.grpc = grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(n.grpc)
	if err := srv.RegisterMember(ctx); err != nil {
		lg.Warn().Err(err).Msg("registering this member in storage failed; MemberList on other nodes will not show it")
	}
	for _, l := range n.listeners {
		n.serveWG.Add(1)
		go func(l net.Listener) {
			defer n.serveWG.Done()
			if err := n.grpc.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				lg.Error().Err(err).Str("address", l.Addr().String()).Msg("serving clients stopped")
			}
		}(l)
		lg.Info().Str("address", l.Addr().String()).Msg("serving etcd clients")
	}
	return n, nil
}

// listen opens a listener for an etcd-style client URL (http://host:port).
func listen(raw string) (net.Listener, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("invalid client URL %q: want scheme://host:port", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
	case "https":
		return nil, fmt.Errorf("client URL %q: TLS is not available in this build yet", raw)
	default:
		return nil, fmt.Errorf("client URL %q: unsupported scheme %q (want http)", raw, u.Scheme)
	}
	l, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", u.Host, err)
	}
	return l, nil
}

// ClientURLs are the URLs the node listens on, with ports resolved.
func (n *Node) ClientURLs() []string { return n.urls }

// Endpoints are the client addresses (host:port) for clientv3.
func (n *Node) Endpoints() []string {
	eps := make([]string, len(n.listeners))
	for i, l := range n.listeners {
		eps[i] = l.Addr().String()
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
		done := make(chan struct{})
		go func() {
			n.grpc.GracefulStop()
			close(done)
		}()
		// Watch streams never end on their own: stop the store first so
		// they return, then give unary calls the grace period.
		n.store.Close()
		select {
		case <-done:
		case <-time.After(grace):
			n.grpc.Stop()
		}
		n.serveWG.Wait()
		n.closeEngine()
	})
}

func (n *Node) closeListeners() {
	for _, l := range n.listeners {
		l.Close()
	}
}

func (n *Node) closeEngine() {
	if n.ownEngine {
		n.engine.Close()
	}
}
