package embed

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/soheilhy/cmux"
	"google.golang.org/grpc"
)

// One client port serves gRPC and HTTP (/health, /metrics, /version, the
// JSON gateway), as etcd's does. The connection is split by its first bytes
// with cmux, as etcd does: the HTTP/2 preface goes to the grpc.Server's own
// transport (grpc-go's fast path, not grpc.Server.ServeHTTP over net/http),
// anything else to an http.Server. With TLS, the TLS listener sits below
// cmux and ALPN steers HTTP clients to HTTP/1.1 (alpnForClient).

// sniffTimeout bounds how long a new connection may take to show its first
// bytes (and finish its TLS handshake); it also bounds how long shutdown
// waits for a connection that never spoke.
const sniffTimeout = 10 * time.Second

// clientListener is one client URL's listener, split into its gRPC and HTTP
// halves.
type clientListener struct {
	url   string // scheme://host:port with the port resolved
	root  net.Listener
	mux   cmux.CMux
	grpcL net.Listener
	httpL net.Listener
}

// clientTLS builds the client port's TLS configuration: nil when no client
// URL is https. An https URL needs --cert-file/--key-file or --auto-tls.
func clientTLS(cfg Config) (*tls.Config, error) {
	var hosts []string
	secure := false
	for _, raw := range cfg.ListenClientURLs {
		u, err := url.Parse(raw)
		if err != nil {
			continue // listen reports it
		}
		if strings.EqualFold(u.Scheme, "https") {
			secure = true
			hosts = append(hosts, u.Hostname())
		}
	}
	if !secure {
		if !cfg.ClientTLSInfo.Empty() {
			cfg.Logger.Warn().Msg("--cert-file and --key-file are set but no client URL is https; serving without TLS")
		}
		return nil, nil
	}
	info := cfg.ClientTLSInfo
	if info.Empty() && cfg.ClientAutoTLS {
		cert, err := selfSignedCert(hosts)
		if err != nil {
			return nil, fmt.Errorf("--auto-tls: generating a certificate: %w", err)
		}
		cfg.Logger.Warn().Msg("--auto-tls: serving a self-signed certificate; clients cannot verify it (etcdctl needs --insecure-skip-tls-verify)")
		tc, err := info.serverConfig([]tls.Certificate{cert})
		if err != nil {
			return nil, fmt.Errorf("client TLS: %w", err)
		}
		return tc, nil
	}
	tc, err := info.ServerConfig()
	if err != nil {
		return nil, fmt.Errorf("client TLS: %w", err)
	}
	return tc, nil
}

// listen opens a listener for an etcd-style client URL: http://host:port, or
// https://host:port with tlsCfg.
func listen(raw string, tlsCfg *tls.Config) (*clientListener, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("invalid client URL %q: want http://host:port or https://host:port", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return nil, fmt.Errorf("client URL %q: unsupported scheme %q (want http or https)", raw, u.Scheme)
	}
	l, err := net.Listen("tcp", u.Host)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listening on %s: address already in use (is another etcd or ignetcd running there? pick another port with --listen-client-urls)", u.Host)
		}
		return nil, fmt.Errorf("listening on %s: %w", u.Host, err)
	}
	cl := &clientListener{url: scheme + "://" + l.Addr().String(), root: l}
	if scheme == "https" {
		l = tls.NewListener(l, alpnForClient(tlsCfg))
	}
	cl.mux = cmux.New(l)
	cl.mux.SetReadTimeout(sniffTimeout)
	cl.grpcL = cl.mux.Match(cmux.HTTP2())
	cl.httpL = cl.mux.Match(cmux.Any())
	return cl, nil
}

// serve runs the listener's split and its two servers until they are
// stopped; each goroutine is counted in n.serveWG.
func (n *Node) serve(cl *clientListener, httpSrv *http.Server) {
	lg := n.cfg.Logger
	run := func(what string, fn func() error) {
		n.serveWG.Add(1)
		go func() {
			defer n.serveWG.Done()
			if err := fn(); err != nil && !closedListener(err) {
				lg.Error().Err(err).Str("url", cl.url).Msg(what + " stopped")
			}
		}()
	}
	run("serving gRPC", func() error { return n.grpc.Serve(cl.grpcL) })
	run("serving HTTP", func() error { return httpSrv.Serve(cl.httpL) })
	run("accepting client connections", cl.mux.Serve)
}

// closedListener reports errors that only mean the listener was closed.
func closedListener(err error) bool {
	return errors.Is(err, grpc.ErrServerStopped) || errors.Is(err, http.ErrServerClosed) ||
		errors.Is(err, cmux.ErrListenerClosed) || errors.Is(err, cmux.ErrServerClosed) ||
		errors.Is(err, net.ErrClosed)
}

// stopServing stops the gRPC and HTTP servers: new connections are refused
// at once, in-flight requests get grace, then everything is cut.
func (n *Node) stopServing(grace time.Duration) {
	grpcDone := make(chan struct{})
	go func() {
		n.grpc.GracefulStop()
		close(grpcDone)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		if n.http == nil {
			return
		}
		if err := n.http.Shutdown(ctx); err != nil {
			n.http.Close()
		}
	}()
	// Watch streams never end on their own: stop the store first so they
	// return, then give unary calls the grace period.
	n.store.Close()
	select {
	case <-grpcDone:
	case <-ctx.Done():
		n.grpc.Stop()
		<-grpcDone
	}
	<-httpDone
	if n.gateway != nil {
		n.gateway.Close()
	}
	n.closeListeners()
}

func (n *Node) closeListeners() {
	for _, cl := range n.listeners {
		cl.root.Close()
		cl.mux.Close()
	}
}
