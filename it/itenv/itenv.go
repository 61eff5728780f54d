// Package itenv starts ignetcd nodes in-process for end-to-end tests, on a
// chosen storage backend: the in-memory engine, or Ignite (the ignitetest
// double, or the real cluster named by IGNETCD_TEST_IGNITE). Nodes started
// in one Env share its keyspace, as ignetcd processes share one Ignite
// cluster. It is shared by the it package and the it/kube module (test
// helpers of another package cannot be imported).
package itenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ignetcd/ignetcd/embed"
	ignclient "github.com/ignetcd/ignetcd/ignite/client"
	"github.com/ignetcd/ignetcd/ignite/engine"
	"github.com/ignetcd/ignetcd/ignite/ignitetest"
	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/mvcc"
)

// Env is one storage backend and a keyspace on it.
type Env struct {
	Kind   string // "memory" or "ignite"
	Prefix string // the keyspace's table prefix
	Mem    *memengine.Engine
	Ignite []string           // Ignite endpoints
	Double *ignitetest.Server // nil on a real cluster
}

var seq atomic.Int64

// New returns a fresh keyspace on the backend kind; names prefixes its
// tables. On a real cluster they are destroyed when the test ends.
func New(t testing.TB, kind, name string) *Env {
	env := &Env{Kind: kind, Prefix: fmt.Sprintf("%s-%d-%d-", name, time.Now().UnixNano(), seq.Add(1))}
	switch kind {
	case "memory":
		env.Mem = memengine.New()
		t.Cleanup(func() { env.Mem.Close() })
	case "ignite":
		env.Ignite, env.Double = ignitetest.Endpoints(t, ignitetest.Options{})
		if env.Double == nil {
			// Registered first, so it runs after the nodes have stopped.
			// Every cache holds its partitions' memory on every server: a
			// suite that left its hundreds behind filled a 1 GB data
			// region and Ignite halted (checked on 2.17).
			t.Cleanup(func() { env.destroyCaches(t) })
		}
	default:
		t.Fatalf("unknown engine %q (want memory or ignite)", kind)
	}
	return env
}

// destroyCaches drops env's caches from the real cluster.
func (env *Env) destroyCaches(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := ignclient.Connect(ctx, ignclient.Config{Endpoints: env.Ignite})
	if err != nil {
		t.Logf("cleaning up caches %s*: %v", env.Prefix, err)
		return
	}
	defer c.Close()
	names, err := c.CacheNames(ctx)
	if err != nil {
		t.Logf("cleaning up caches %s*: %v", env.Prefix, err)
		return
	}
	for _, n := range names {
		if strings.HasPrefix(n, env.Prefix) {
			if err := c.DestroyCache(ctx, n); err != nil {
				t.Logf("destroying cache %s: %v", n, err)
			}
		}
	}
}

// Engine returns the engine a new node of env uses: the shared in-memory
// engine, or a new Ignite engine (connections of its own).
func (env *Env) Engine(t testing.TB) mvcc.Engine {
	if env.Kind == "memory" {
		return env.Mem
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := engine.Open(ctx, engine.Config{Client: ignclient.Config{Endpoints: env.Ignite}})
	if err != nil {
		t.Fatalf("opening the Ignite engine: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// Logger logs errors of the node under test to the test log (everything
// with IGNETCD_TEST_LOG=1).
func Logger(t testing.TB) zerolog.Logger {
	if os.Getenv("IGNETCD_TEST_LOG") != "" {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
}

// StartNode starts an ignetcd node named name of env on a free loopback
// port, with fast test timings; configure (if set) adjusts its
// configuration. The node stops at the end of the test.
func (env *Env) StartNode(t testing.TB, name string, configure func(*embed.Config)) *embed.Node {
	t.Helper()
	cfg := embed.Config{
		Name:             name,
		ListenClientURLs: []string{"http://127.0.0.1:0"},
		Engine:           env.Engine(t),
		Prefix:           env.Prefix,
		Logger:           Logger(t),
		Store:            mvcc.Config{PollInterval: 20 * time.Millisecond, LeaseCheckInterval: 100 * time.Millisecond},
	}
	if configure != nil {
		configure(&cfg)
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
