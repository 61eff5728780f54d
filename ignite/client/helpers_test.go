package client_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ignetcd/ignetcd/ignite/client"
	"github.com/ignetcd/ignetcd/ignite/ignitetest"
)

// Every test here runs against a fresh ignitetest server, or against a real
// cluster when IGNETCD_TEST_IGNITE=host:port[,host:port] is set; tests that
// inject faults skip then.

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type env struct {
	t   *testing.T
	srv *ignitetest.Server // nil on a real cluster
	cfg client.Config
}

func newEnv(t *testing.T, opts ignitetest.Options) *env {
	t.Helper()
	eps, srv := ignitetest.Endpoints(t, opts)
	return &env{t: t, srv: srv, cfg: client.Config{Endpoints: eps, MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}}
}

// client connects a new client, closed when the test ends.
func (e *env) client() *client.Client {
	e.t.Helper()
	c, err := client.Connect(ctxT(e.t), e.cfg)
	if err != nil {
		e.t.Fatalf("Connect: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// cache creates a TRANSACTIONAL cache with a name unique to the test,
// destroyed when the test ends.
func (e *env) cache(c *client.Client, cfg client.CacheConfig) client.Cache {
	e.t.Helper()
	name := strings.NewReplacer("/", "-", " ", "_").Replace(e.t.Name())
	cfg.Name = fmt.Sprintf("t-%s-%d", name, rand.Uint32())
	if cfg.Backups == 0 {
		cfg.Backups = 1
	}
	cc, err := c.GetOrCreateCache(ctxT(e.t), cfg)
	if err != nil {
		e.t.Fatalf("GetOrCreateCache(%s): %v", cfg.Name, err)
	}
	e.t.Cleanup(func() {
		cleanup, err := client.Connect(context.Background(), e.cfg)
		if err != nil {
			return
		}
		defer cleanup.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cleanup.DestroyCache(ctx, cfg.Name)
	})
	return cc
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recv receives from ch, failing the test after 10 seconds instead of
// hanging it.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting on a %T channel", *new(T))
		panic("unreachable")
	}
}
