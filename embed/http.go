package embed

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	"go.etcd.io/etcd/api/v3/version"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ignetcd/ignetcd/server"
)

// healthTimeout bounds one /health check (a read of the revision counter
// and the wait for the feed to reach it).
const healthTimeout = 2 * time.Second

// httpHandler serves etcd's HTTP endpoints on the client port.
func (n *Node) httpHandler(metrics *prometheus.Registry, gateway http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", n.serveHealth)
	mux.HandleFunc("GET /livez", n.serveChecks("livez", n.livezChecks()))
	mux.HandleFunc("GET /readyz", n.serveChecks("readyz", n.readyzChecks()))
	mux.HandleFunc("GET /version", serveVersion)
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
	if gateway != nil {
		mux.Handle("/v3/", gateway)
	}
	if n.cfg.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// serveHealth is etcd's /health: {"health":"true","reason":""}, or "false"
// with HTTP 503 when this node could not answer a linearizable read now
// (storage unreachable, change feed behind). ?serializable=true asks only
// whether this node serves local reads, as etcd's does.
func (n *Node) serveHealth(w http.ResponseWriter, r *http.Request) {
	var reason string
	if r.URL.Query().Get("serializable") != "true" {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if _, err := n.store.Health(ctx); err != nil {
			reason = err.Error()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if reason != "" {
		n.cfg.Logger.Warn().Str("reason", reason).Msg("/health: unhealthy")
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	writeJSON(w, struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}{fmt.Sprint(reason == ""), reason})
}

// check is one named /livez or /readyz check, as etcd 3.6 has them.
type check struct {
	name string
	run  func(context.Context) error
}

// livezChecks say whether the process should be restarted: whether it
// still serves local reads, and whether its view can still catch up with
// storage (restarting would not bring Ignite back, but it does reload a view
// that fell behind the compacted revision).
func (n *Node) livezChecks() []check {
	return []check{{"serializable_read", n.serializableRead}, {"view_not_compacted_away", n.viewNotCompactedAway}}
}

// viewNotCompactedAway fails once the node's view lacks revisions that
// compaction purged from storage.
func (n *Node) viewNotCompactedAway(context.Context) error {
	if c := n.store.BehindCompaction(); c != 0 {
		return fmt.Errorf("this node is at revision %d, behind the compacted revision %d: storage no longer holds what it lacks; restart it to reload", n.store.Revision(), c)
	}
	return nil
}

// readyzChecks say whether the node should get traffic.
func (n *Node) readyzChecks() []check {
	return []check{
		{"serializable_read", n.serializableRead},
		{"linearizable_read", func(ctx context.Context) error {
			_, err := n.store.Health(ctx)
			return err
		}},
	}
}

// serializableRead takes the store's read lock, so a wedged store fails it.
func (n *Node) serializableRead(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		n.store.Revision()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the store did not answer a local read: %w", ctx.Err())
	}
}

// serveChecks answers as etcd 3.6's /livez and /readyz (the Kubernetes
// healthz form): "ok", or HTTP 503 listing every check and why one failed
// (Kubernetes withholds the reason; an operator wants it); ?verbose lists
// the checks on success too; ?exclude=name skips one.
func (n *Node) serveChecks(endpoint string, checks []check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		q := r.URL.Query()
		_, verbose := q["verbose"]
		excluded := map[string]bool{}
		for _, name := range q["exclude"] {
			excluded[name] = true
		}
		var out strings.Builder
		failed := false
		for _, c := range checks {
			if excluded[c.name] {
				fmt.Fprintf(&out, "[+]%s excluded: ok\n", c.name)
				continue
			}
			if err := c.run(ctx); err != nil {
				failed = true
				fmt.Fprintf(&out, "[-]%s failed: %v\n", c.name, err)
			} else {
				fmt.Fprintf(&out, "[+]%s ok\n", c.name)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if failed {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "%s%s check failed\n", out.String(), endpoint)
			return
		}
		if verbose {
			fmt.Fprint(w, out.String())
		}
		fmt.Fprint(w, "ok\n")
	}
}

// serveVersion is etcd's /version.
func serveVersion(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	writeJSON(w, version.Versions{
		Server:  server.Version,
		Cluster: version.Cluster(server.Version) + ".0",
		Storage: version.Cluster(server.Version) + ".0",
	})
}

// writeJSON writes v as etcd does: compact, no trailing newline.
func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Write(b)
}

// newMetricsRegistry gathers the node's metrics: the server's (per-RPC,
// watch, store), Go's runtime and the process's, in a registry of the node's
// own (not Prometheus's global one, so that nodes in one process are apart).
func newMetricsRegistry(srv *server.Server, g *grpc.Server) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := srv.RegisterMetrics(reg, g); err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	return reg, nil
}

// startGateway serves etcd's grpc-gateway JSON API (/v3/kv/range, ...) from
// the api module's generated handlers, as etcd does. They call the node's
// own grpc.Server through an in-process connection, so requests pass the
// same interceptors (limits, metrics) as gRPC ones, and no TLS client
// certificate is needed for the hop.
func (n *Node) startGateway() (http.Handler, error) {
	inproc := bufconn.Listen(1 << 20)
	n.serveWG.Add(1)
	go func() {
		defer n.serveWG.Done()
		if err := n.grpc.Serve(inproc); err != nil && !closedListener(err) {
			n.cfg.Logger.Error().Err(err).Msg("serving the JSON gateway stopped")
		}
	}()
	conn, err := grpc.NewClient("passthrough:///ignetcd-gateway",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return inproc.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)))
	if err != nil {
		inproc.Close()
		return nil, err
	}
	n.gateway = conn
	// etcd's marshaler: proto field names, unset fields left out, unknown
	// fields ignored.
	mux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
		Marshaler: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		},
	}))
	ctx := context.Background()
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		gw.RegisterKVHandler, gw.RegisterWatchHandler, gw.RegisterLeaseHandler,
		gw.RegisterClusterHandler, gw.RegisterMaintenanceHandler, gw.RegisterAuthHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			return nil, fmt.Errorf("registering the JSON gateway: %w", err)
		}
	}
	return mux, nil
}
