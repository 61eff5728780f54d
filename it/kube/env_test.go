package kube

// The env helper is a copy of it/node_test.go's (test helpers of another
// module are not importable): each test gets a fresh keyspace on the
// in-memory engine or on Ignite (the ignitetest double, or the real cluster
// named by IGNETCD_TEST_IGNITE), and an ignetcd node started in-process.

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
	"github.com/ignetcd/ignetcd/it/etcdbin"
	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/mvcc"
)

// nodeOptions tune a test node.
type nodeOptions struct {
	name string
	cfg  func(*embed.Config)
}

// testEnv is one storage backend: the in-memory engine, Ignite, or, for
// reference, a real etcd.
type testEnv struct {
	kind   string // "memory", "ignite" or "etcd"
	prefix string
	mem    *memengine.Engine
	ignite []string
	double *ignitetest.Server // nil on a real cluster
	etcd   string             // the etcd endpoint, once started
	t      testing.TB         // the test the env lives as long as
}

var envSeq atomic.Int64

// engines are the backends every test runs on, as subtests named for them:
// ignetcd on its in-memory engine, ignetcd on Ignite, and a real etcd
// 3.6.16 (built by it/etcdbin) as the reference that shows the harness and
// the tests hold for etcd itself. IGNETCD_KUBE_ENGINES (comma-separated)
// overrides the list.
var engines = func() []string {
	if v := os.Getenv("IGNETCD_KUBE_ENGINES"); v != "" {
		return strings.Split(v, ",")
	}
	return []string{"memory", "ignite", "etcd"}
}()

// eachEngine runs fn once per engine, as subtests named for the engine,
// each on a fresh keyspace. They run one after another: upstream tests are
// timing-sensitive (RunTestGet reads an object it gave a 1 s TTL), and
// backends run side by side make them fail on etcd as well.
func eachEngine(t *testing.T, fn func(t *testing.T, env *testEnv)) {
	eachEngineOf(t, engines, fn)
}

func eachEngineOf(t *testing.T, kinds []string, fn func(t *testing.T, env *testEnv)) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) { fn(t, newEnv(t, kind)) })
	}
}

// cacherEngines are the backends of the cacher wirings: by default not etcd
// (upstream runs exactly these tests on etcd in its own CI; leaving it out
// keeps this suite's time down). IGNETCD_KUBE_ENGINES sets both lists.
var cacherEngines = func() []string {
	if os.Getenv("IGNETCD_KUBE_ENGINES") != "" {
		return engines
	}
	return []string{"memory", "ignite"}
}()

func newEnv(t *testing.T, kind string) *testEnv {
	env := &testEnv{kind: kind, prefix: fmt.Sprintf("kube-%d-%d-", time.Now().UnixNano(), envSeq.Add(1)), t: t}
	switch kind {
	case "memory":
		env.mem = memengine.New()
		t.Cleanup(func() { env.mem.Close() })
	case "ignite":
		env.ignite, env.double = ignitetest.Endpoints(t, ignitetest.Options{})
	case "etcd":
	default:
		t.Fatalf("unknown engine %q (want memory, ignite or etcd)", kind)
	}
	return env
}

// endpoints starts a server of env and returns its client endpoints: a new
// ignetcd node (nodes of one env share its keyspace), or, for etcd, the
// env's one etcd server, started on first use. cfg tunes the node; of it
// only WatchProgressNotifyInterval applies to etcd.
func (env *testEnv) endpoints(t testing.TB, cfg func(*embed.Config)) []string {
	t.Helper()
	if env.kind != "etcd" {
		return env.startNode(t, nodeOptions{cfg: cfg}).Endpoints()
	}
	if env.etcd == "" {
		var c embed.Config
		if cfg != nil {
			cfg(&c)
		}
		var args []string
		if c.WatchProgressNotifyInterval > 0 {
			args = append(args, "--watch-progress-notify-interval="+c.WatchProgressNotifyInterval.String())
		}
		env.etcd = etcdbin.StartEtcd(env.t, args...)
	}
	return []string{env.etcd}
}

// engine returns the engine a new node of this env uses.
func (env *testEnv) engine(t testing.TB) mvcc.Engine {
	if env.kind == "memory" {
		return env.mem
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := engine.Open(ctx, engine.Config{Client: ignclient.Config{Endpoints: env.ignite}})
	if err != nil {
		t.Fatalf("opening the Ignite engine: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// testLogger logs errors of the node under test to the test log (all of
// it with IGNETCD_TEST_LOG=1).
func testLogger(t testing.TB) zerolog.Logger {
	if os.Getenv("IGNETCD_TEST_LOG") != "" {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
}

// startNode starts an ignetcd node of env on a free loopback port, stopped
// at the end of the test.
func (env *testEnv) startNode(t testing.TB, o nodeOptions) *embed.Node {
	t.Helper()
	name := o.name
	if name == "" {
		name = "kube"
	}
	cfg := embed.Config{
		Name:             name,
		ListenClientURLs: []string{"http://127.0.0.1:0"},
		Engine:           env.engine(t),
		Prefix:           env.prefix,
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
