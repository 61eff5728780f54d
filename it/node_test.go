// Package it tests ignetcd end to end, through real etcd clients: clientv3
// and the etcdctl binary (built from the Go module proxy by it/etcdbin), and
// differentially against a real etcd server.
package it

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ignetcd/ignetcd/embed"
	"github.com/ignetcd/ignetcd/ignite/ignitetest"
	"github.com/ignetcd/ignetcd/it/itenv"
)

// nodeOptions tune a test node.
type nodeOptions struct {
	name string
	cfg  func(*embed.Config)
}

// testEnv is one storage backend the suite runs on (itenv.Env), with the
// field names the tests use.
type testEnv struct {
	*itenv.Env
	kind   string
	prefix string
	double *ignitetest.Server // nil on a real cluster
}

// eachEngine runs fn once per engine, as subtests named for the engine.
func eachEngine(t *testing.T, fn func(t *testing.T, env *testEnv)) {
	for _, kind := range []string{"memory", "ignite"} {
		t.Run(kind, func(t *testing.T) { fn(t, newEnv(t, kind)) })
	}
}

func newEnv(t *testing.T, kind string) *testEnv {
	e := itenv.New(t, kind, "it")
	return &testEnv{Env: e, kind: e.Kind, prefix: e.Prefix, double: e.Double}
}

// testLogger logs errors of the node under test to the test log.
func testLogger(t testing.TB) zerolog.Logger { return itenv.Logger(t) }

// startNode starts an ignetcd node of env, stopped at the end of the test.
func (env *testEnv) startNode(t testing.TB, o nodeOptions) *embed.Node {
	t.Helper()
	name := o.name
	if name == "" {
		name = "it"
	}
	return env.StartNode(t, name, o.cfg)
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
