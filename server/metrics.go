package server

import (
	"context"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/version"
	"google.golang.org/grpc"

	"github.com/ignetcd/ignetcd/mvcc"
)

// metrics are one Server's Prometheus metrics, under etcd's names where
// etcd has an equivalent so that its dashboards and alerts work unchanged:
// per-RPC counts (grpc_server_*, as etcd's go-grpc-prometheus; latency
// histograms too with --metrics=extensive), watch streams and watchers
// (etcd_debugging_mvcc_*), and the store's gauges (see storeCollector).
type metrics struct {
	grpc         *grpcprom.ServerMetrics
	watchStreams prometheus.Gauge
	watchers     prometheus.Gauge
	store        *storeCollector
}

func newMetrics(store *mvcc.Store, extensive bool) *metrics {
	var opts []grpcprom.ServerMetricsOption
	if extensive {
		opts = append(opts, grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(prometheus.DefBuckets)))
	}
	return &metrics{
		grpc: grpcprom.NewServerMetrics(opts...),
		watchStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "etcd_debugging_mvcc_watch_stream_total",
			Help: "Total number of watch streams.",
		}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "etcd_debugging_mvcc_watcher_total",
			Help: "Total number of watchers.",
		}),
		store: &storeCollector{store: store, timeout: time.Second},
	}
}

// RegisterMetrics registers the server's metrics with reg and creates the
// per-RPC series of every method registered on g at zero, as etcd does, so
// that they exist before the first request.
func (s *Server) RegisterMetrics(reg prometheus.Registerer, g *grpc.Server) error {
	for _, c := range []prometheus.Collector{s.metrics.grpc, s.metrics.watchStreams, s.metrics.watchers, s.metrics.store} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	s.metrics.grpc.InitializeMetrics(g)
	return nil
}

// watchMethod is the full name of etcd's Watch RPC.
const watchMethod = "/etcdserverpb.Watch/Watch"

// countWatchers keeps the watch stream and watcher gauges by observing what
// a Watch stream sends: a created response adds a watcher, a canceled one
// removes it, and the stream's end removes those left.
func (m *metrics) countWatchers(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod != watchMethod {
		return handler(srv, ss)
	}
	m.watchStreams.Inc()
	counted := &watchCounter{ServerStream: ss, gauge: m.watchers, live: map[int64]struct{}{}}
	defer func() {
		m.watchStreams.Dec()
		m.watchers.Sub(float64(len(counted.live)))
	}()
	return handler(srv, counted)
}

// watchCounter sees a Watch stream's responses. gRPC forbids concurrent
// SendMsg calls on a stream, so live needs no lock.
type watchCounter struct {
	grpc.ServerStream
	gauge prometheus.Gauge
	live  map[int64]struct{}
}

func (w *watchCounter) SendMsg(msg any) error {
	if resp, ok := msg.(*pb.WatchResponse); ok {
		switch _, known := w.live[resp.WatchId]; {
		case resp.Canceled && known:
			delete(w.live, resp.WatchId)
			w.gauge.Dec()
		case resp.Created && !resp.Canceled && !known:
			w.live[resp.WatchId] = struct{}{}
			w.gauge.Inc()
		}
	}
	return w.ServerStream.SendMsg(msg)
}

// storeCollector reports the store's state at each scrape. It checks the
// store's health (one read of the revision counter from the engine, bounded
// by timeout) to measure the engine round trip and the feed lag.
type storeCollector struct {
	store   *mvcc.Store
	timeout time.Duration
}

var (
	descRevision = prometheus.NewDesc("etcd_debugging_mvcc_current_revision",
		"The current revision of store (this node's safe point).", nil, nil)
	descCompactRevision = prometheus.NewDesc("etcd_debugging_mvcc_compact_revision",
		"The revision of the last compaction in store.", nil, nil)
	descDBSize = prometheus.NewDesc("etcd_mvcc_db_total_size_in_bytes",
		"Total size of the keys and values held since the last compaction, in bytes.", nil, nil)
	descDBSizeInUse = prometheus.NewDesc("etcd_mvcc_db_total_size_in_use_in_bytes",
		"Total size of the keys and values held since the last compaction, in bytes.", nil, nil)
	descHasLeader = prometheus.NewDesc("etcd_server_has_leader",
		"Whether the storage (Ignite) answered the last check: 1 is yes, 0 is no (etcd: whether a leader exists).", nil, nil)
	descServerVersion = prometheus.NewDesc("etcd_server_version",
		"Which etcd server version this node reports.", []string{"server_version"}, nil)
	descClusterVersion = prometheus.NewDesc("etcd_cluster_version",
		"Which etcd cluster version this node reports.", []string{"cluster_version"}, nil)
	descStorageUp = prometheus.NewDesc("ignetcd_storage_up",
		"Whether the storage engine answered a read of the revision counter at this scrape.", nil, nil)
	descRoundTrip = prometheus.NewDesc("ignetcd_storage_round_trip_seconds",
		"Duration of one read of the revision counter from the storage engine, measured at this scrape.", nil, nil)
	descWriteGroups = prometheus.NewDesc("ignetcd_write_groups_total",
		"Write groups committed: each is one storage transaction carrying one or more etcd write requests.", nil, nil)
	descWriteGroupRequests = prometheus.NewDesc("ignetcd_write_group_requests_total",
		"Write requests carried by committed write groups (divided by ignetcd_write_groups_total: the mean group size).", nil, nil)
	descWriteGroupSeconds = prometheus.NewDesc("ignetcd_write_group_seconds_total",
		"Time spent in write groups, from transaction start to commit (two groups overlap: the next one starts while the one before commits).", nil, nil)
	descWriteCounterWait = prometheus.NewDesc("ignetcd_write_counter_wait_seconds_total",
		"Part of ignetcd_write_group_seconds_total spent getting the revision counter's lock (held meanwhile by this node's previous group, while it commits, or by other nodes' groups).", nil, nil)
	descWriteViewWait = prometheus.NewDesc("ignetcd_write_view_wait_seconds_total",
		"Part of ignetcd_write_group_seconds_total spent waiting for the change feed to reach the locked counter (other nodes' revisions).", nil, nil)
	descLaggingWatchers = prometheus.NewDesc("ignetcd_watchers_cancelled_lagging_total",
		"Watchers cancelled for falling more than --watch-max-lag-revisions behind this node (their client stopped reading).", nil, nil)
	descFeedLag = prometheus.NewDesc("ignetcd_feed_lag_revisions",
		"The storage's revision counter minus this node's safe point: committed revisions not yet released to readers and watchers.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRevision, descCompactRevision, descDBSize, descDBSizeInUse,
		descHasLeader, descServerVersion, descClusterVersion, descStorageUp, descRoundTrip, descFeedLag,
		descWriteGroups, descWriteGroupRequests, descWriteGroupSeconds,
		descWriteCounterWait, descWriteViewWait, descLaggingWatchers} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	health, err := c.store.Health(ctx)
	up := 0.0
	if health.Revision > 0 {
		// The counter was read, even if the feed then stayed behind.
		up = 1
		gauge(descRoundTrip, health.RoundTrip.Seconds())
		gauge(descFeedLag, float64(health.Lag))
	}
	gauge(descStorageUp, up)
	if err != nil {
		gauge(descHasLeader, 0)
	} else {
		gauge(descHasLeader, 1)
	}
	gauge(descRevision, float64(c.store.Revision()))
	gauge(descCompactRevision, float64(c.store.CompactRevision()))
	size := float64(c.store.DBSize())
	gauge(descDBSize, size)
	gauge(descDBSizeInUse, size)
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	ws := c.store.WriterStats()
	counter(descWriteGroups, float64(ws.Groups))
	counter(descWriteGroupRequests, float64(ws.Requests))
	counter(descWriteGroupSeconds, ws.GroupTime.Seconds())
	counter(descWriteCounterWait, ws.CounterWait.Seconds())
	counter(descWriteViewWait, ws.ViewWait.Seconds())
	counter(descLaggingWatchers, float64(c.store.LaggingWatchersCancelled()))
	gauge(descServerVersion, 1, Version)
	gauge(descClusterVersion, 1, version.Cluster(Version))
}
