// Package it tests ignetcd end to end, through real etcd clients: clientv3
// and the etcdctl binary (built from the Go module proxy by it/etcdbin), and
// differentially against a real etcd server.
package it

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ignetcd/ignetcd/embed"
	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/mvcc"
)

// nodeOptions tune a test node.
type nodeOptions struct {
	engine  mvcc.Engine // shared engine (several nodes on one store); nil: a fresh one
	cfg     func(*embed.Config)
	noClean bool
}

// testLogger logs warnings and errors of the node under test to the test log.
func testLogger(t testing.TB) zerolog.Logger {
	if os.Getenv("IGNETCD_TEST_LOG") != "" {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
}

// startNode starts an ignetcd node on a free loopback port, stopped at the
// end of the test.
func startNode(t testing.TB, o nodeOptions) *embed.Node {
	t.Helper()
	eng := o.engine
	if eng == nil {
		eng = newTestEngine(t)
	}
	cfg := embed.Config{
		Name:             "it",
		ListenClientURLs: []string{"http://127.0.0.1:0"},
		Engine:           eng,
		Logger:           testLogger(t),
		Store:            mvcc.Config{PollInterval: 20 * time.Millisecond, LeaseCheckInterval: 100 * time.Millisecond},
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := embed.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("starting ignetcd: %v", err)
	}
	t.Cleanup(n.Close)
	return n
}

// newTestEngine returns the engine the suite runs on: the in-memory engine
// (the Ignite engine joins in its own issue).
func newTestEngine(t testing.TB) mvcc.Engine {
	e := memengine.New()
	t.Cleanup(func() { e.Close() })
	return e
}

// newClient connects clientv3 to endpoints.
func newClient(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("clientv3.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
