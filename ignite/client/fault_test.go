package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ignetcd/ignetcd/ignite/client"
	"github.com/ignetcd/ignetcd/ignite/ignitetest"
	"github.com/ignetcd/ignetcd/ignite/wire"
)

// Fault-injection tests: they need the double and skip on a real cluster.

// connOf returns the server-side id of the connection c uses.
func connOf(t *testing.T, srv *ignitetest.Server, c *client.Client) int64 {
	t.Helper()
	info, err := c.Connection(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range srv.Conns() {
		if sc.Remote == info.LocalAddr {
			return sc.ID
		}
	}
	t.Fatalf("no server connection from %s", info.LocalAddr)
	return 0
}

func TestConnectionLostMidTx(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	ignitetest.NeedDouble(t, e.srv)
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	tx, err := c.Begin(ctx, client.TxOptions{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	in := cc.WithTx(tx)
	if err := in.Put(ctx, []byte("k"), []byte("half")); err != nil {
		t.Fatal(err)
	}
	if e.srv.Locks() != 1 || e.srv.OpenTxs() != 1 {
		t.Fatalf("locks %d, txs %d before the drop", e.srv.Locks(), e.srv.OpenTxs())
	}
	e.srv.DropConnections()

	// The tx is gone for good: no operation on it reaches a new connection.
	err = in.Put(ctx, []byte("k2"), []byte("x"))
	if !errors.Is(err, client.ErrConnectionLost) || !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("op after the drop: %v", err)
	}
	if err := tx.Commit(ctx); !errors.Is(err, client.ErrConnectionLost) || errors.Is(err, client.ErrCommitUnknown) {
		t.Fatalf("Commit after the drop: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("Rollback after the drop: %v", err)
	}
	// The server rolled it back: no lock, no data, and the key is free.
	eventually(t, "server rollback", func() bool { return e.srv.Locks() == 0 && e.srv.OpenTxs() == 0 })
	if _, found, _ := e.srv.Get(cc.Name(), []byte("k")); found {
		t.Fatal("write of the dropped tx was applied")
	}
	if _, found, _ := e.srv.Get(cc.Name(), []byte("k2")); found {
		t.Fatal("op of the dropped tx ran outside it on the new connection")
	}
	// The client itself reconnects for new work.
	tx2, err := c.Begin(ctx, client.TxOptions{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.WithTx(tx2).Put(ctx, []byte("k"), []byte("whole")); err != nil {
		t.Fatal(err)
	}
	if err := tx2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestInFlightFailFast: requests waiting on the server fail at once with
// ErrConnectionLost when the connection drops.
func TestInFlightFailFast(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	ignitetest.NeedDouble(t, e.srv)
	holder, victim := e.client(), e.client()
	cc := e.cache(holder, client.CacheConfig{})
	ctx := ctxT(t)
	tx, err := holder.Begin(ctx, client.TxOptions{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := cc.WithTx(tx).Put(ctx, []byte("k"), []byte("locked")); err != nil {
		t.Fatal(err)
	}
	victimConn := connOf(t, e.srv, victim)
	const n = 5
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() { errs <- victim.Cache(cc.Name()).Put(ctx, []byte("k"), []byte("blocked")) }()
	}
	time.Sleep(100 * time.Millisecond) // let them reach the lock
	start := time.Now()
	e.srv.DropConnection(victimConn)
	for i := 0; i < n; i++ {
		if err := recv(t, errs); !errors.Is(err, client.ErrConnectionLost) {
			t.Fatalf("in-flight request: %v", err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("in-flight requests took %v to fail", d)
	}
}

func TestContinuousQueryLost(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	ignitetest.NeedDouble(t, e.srv)
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	events := make(chan client.Event, 100)
	lost := make(chan error, 2)
	listen := func() *client.ContinuousQuery {
		q, err := cc.Listen(ctx, client.ContinuousQueryOptions{}, func(evs []client.Event) {
			for _, ev := range evs {
				events <- ev
			}
		}, func(err error) { lost <- err })
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	listen()
	writer := e.client()
	if err := writer.Cache(cc.Name()).Put(ctx, []byte("before"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	recv(t, events)
	e.srv.DropConnection(connOf(t, e.srv, c))
	select {
	case err := <-lost:
		if !errors.Is(err, client.ErrConnectionLost) {
			t.Fatalf("onLost(%v)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("loss not reported")
	}
	// Writes during the outage are the caller's gap to fill by reading.
	if err := writer.Cache(cc.Name()).Put(ctx, []byte("during"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	q := listen() // resubscribes on a new connection
	defer q.Close(ctx)
	if err := writer.Cache(cc.Name()).Put(ctx, []byte("after"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	ev := recv(t, events)
	if string(ev.Key.([]byte)) != "after" {
		t.Fatalf("first event after resubscribing: %s", ev.Key)
	}
	select {
	case err := <-lost:
		t.Fatalf("onLost called twice: %v", err)
	default:
	}
}

// TestFailover: two separate servers; when the one in use goes away the
// client moves to the other.
func TestFailover(t *testing.T) {
	if os.Getenv(ignitetest.EnvCluster) != "" {
		t.Skip("fault injection needs the ignitetest double")
	}
	a, b := ignitetest.New(t, ignitetest.Options{}), ignitetest.New(t, ignitetest.Options{})
	cfg := client.Config{Endpoints: []string{a.Addr(), b.Addr()}, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	c, err := client.Connect(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)
	info, _ := c.Connection(ctx)
	if info.Endpoint != a.Addr() {
		t.Fatalf("connected to %s first", info.Endpoint)
	}
	if _, err := c.GetOrCreateCache(ctx, client.CacheConfig{Name: "c"}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	// The request in flight (or the next) fails; then the client is on b.
	_, err = c.CacheNames(ctx)
	if err != nil && !errors.Is(err, client.ErrConnectionLost) {
		t.Fatalf("request at the failure: %v", err)
	}
	names, err := c.CacheNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := c.Connection(ctx); info.Endpoint != b.Addr() || len(names) != 0 {
		t.Fatalf("after failover: %s, caches %v", info.Endpoint, names)
	}
}

// TestFailoverNodes: two nodes of one cluster; data survives the loss of
// the node in use.
func TestFailoverNodes(t *testing.T) {
	e := newEnv(t, ignitetest.Options{Nodes: 2})
	ignitetest.NeedDouble(t, e.srv)
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	if err := cc.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	e.srv.StopNode(0)
	var v any
	var err error
	for i := 0; i < 3; i++ {
		if v, err = cc.Get(ctx, []byte("k")); !errors.Is(err, client.ErrConnectionLost) {
			break
		}
	}
	if err != nil || string(v.([]byte)) != "v" {
		t.Fatalf("Get after node loss: %v, %v", v, err)
	}
	if info, _ := c.Connection(ctx); info.Endpoint != e.srv.Addrs()[1] {
		t.Fatalf("on %s after failover", info.Endpoint)
	}
	if err := e.srv.StartNode(0); err != nil {
		t.Fatal(err)
	}
}

func TestRestartKeepsData(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	ignitetest.NeedDouble(t, e.srv)
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	if err := cc.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	var v any
	var err error
	for i := 0; i < 3; i++ {
		if v, err = cc.Get(ctx, []byte("k")); !errors.Is(err, client.ErrConnectionLost) {
			break
		}
	}
	if err != nil || string(v.([]byte)) != "v" {
		t.Fatalf("Get after restart: %v, %v", v, err)
	}
}

func TestNoEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := client.New(client.Config{Endpoints: []string{addr}, MinBackoff: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.CacheNames(ctxT(t))
	if !errors.Is(err, client.ErrNoEndpoint) || !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("no server: %v", err)
	}
	// The next attempt waits for the backoff unless the context ends first.
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := c.CacheNames(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("during backoff: %v", err)
	}
}

func TestCommitFailures(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	ignitetest.NeedDouble(t, e.srv)
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	put := func(k string) *client.Tx {
		tx, err := c.Begin(ctx, client.TxOptions{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := cc.WithTx(tx).Put(ctx, []byte(k), []byte("v")); err != nil {
			t.Fatal(err)
		}
		return tx
	}

	e.srv.FailNextCommit("injected failure")
	tx := put("k")
	if err := tx.Commit(ctx); !client.IsStatus(err, wire.StatusFailed) || errors.Is(err, client.ErrCommitUnknown) {
		t.Fatalf("failed commit: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := e.srv.Get(cc.Name(), []byte("k")); found || e.srv.Locks() != 0 {
		t.Fatal("failed commit left data or locks")
	}

	for _, applied := range []bool{true, false} {
		e.srv.DropConnectionOnNextCommit(applied)
		key := fmt.Sprintf("applied=%v", applied)
		tx = put(key)
		err := tx.Commit(ctx)
		if !errors.Is(err, client.ErrCommitUnknown) || !errors.Is(err, client.ErrConnectionLost) {
			t.Fatalf("commit cut off: %v", err)
		}
		_, found, _ := e.srv.Get(cc.Name(), []byte(key))
		if found != applied {
			t.Fatalf("commit cut off (applied=%v): found=%v", applied, found)
		}
		eventually(t, "locks released", func() bool { return e.srv.Locks() == 0 })
	}
}

// TestAbandonedTxOp: an operation whose caller gave up is waited for before
// the next one of the same transaction is sent.
func TestAbandonedTxOp(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	ignitetest.NeedDouble(t, e.srv)
	holderC, c := e.client(), e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	holder, err := holderC.Begin(ctx, client.TxOptions{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.WithTx(holder).Put(ctx, []byte("k"), []byte("h")); err != nil {
		t.Fatal(err)
	}
	tx, err := c.Begin(ctx, client.TxOptions{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := cc.WithTx(tx).Put(short, []byte("k"), []byte("mine")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocked put: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cc.WithTx(tx).Put(ctx, []byte("k2"), []byte("x")) }()
	select {
	case err := <-done:
		t.Fatalf("next op ran while the abandoned one was pending: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, done); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := e.srv.Get(cc.Name(), []byte("k")); string(v.([]byte)) != "mine" {
		t.Fatalf("k = %s", v)
	}

	// Rollback that cannot wait for the abandoned op closes the connection.
	holder, _ = holderC.Begin(ctx, client.TxOptions{Timeout: 20 * time.Second})
	defer holder.Rollback(ctx)
	cc.WithTx(holder).Put(ctx, []byte("k"), []byte("h2"))
	tx, _ = c.Begin(ctx, client.TxOptions{Timeout: 20 * time.Second})
	short2, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	cc.WithTx(tx).Put(short2, []byte("k"), []byte("never"))
	short3, cancel3 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel3()
	if err := tx.Rollback(short3); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if _, err := cc.WithTx(tx).Get(ctx, []byte("k")); !errors.Is(err, client.ErrTxDone) && !errors.Is(err, client.ErrConnectionLost) {
		t.Fatalf("op after Rollback: %v", err)
	}
}

func TestClose(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	ignitetest.NeedDouble(t, e.srv)
	holderC := e.client()
	c, err := client.Connect(ctxT(t), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cc := e.cache(holderC, client.CacheConfig{})
	ctx := ctxT(t)
	tx, _ := holderC.Begin(ctx, client.TxOptions{Timeout: 20 * time.Second})
	defer tx.Rollback(ctx)
	cc.WithTx(tx).Put(ctx, []byte("k"), []byte("h"))
	errc := make(chan error, 1)
	go func() { errc <- c.Cache(cc.Name()).Put(ctx, []byte("k"), []byte("blocked")) }()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	if err := recv(t, errc); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("in-flight at Close: %v", err)
	}
	if _, err := c.CacheNames(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, ignitetest.Options{Username: "ignite", Password: "secret"})
	ignitetest.NeedDouble(t, e.srv)
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{{"ignite", "secret", true}, {"ignite", "wrong", false}, {"", "", false}} {
		cfg := e.cfg
		cfg.Username, cfg.Password = tc.user, tc.pass
		c, err := client.Connect(ctxT(t), cfg)
		if tc.ok {
			if err != nil {
				t.Fatalf("%+v: %v", tc, err)
			}
			c.Close()
			continue
		}
		var he *client.HandshakeError
		if !errors.As(err, &he) || he.Status != wire.StatusAuthFailed || errors.Is(err, client.ErrUnavailable) {
			t.Fatalf("%+v: %v", tc, err)
		}
	}
}

func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	eps, srv := ignitetest.Endpoints(t, ignitetest.Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	ignitetest.NeedDouble(t, srv)
	c, err := client.Connect(ctxT(t), client.Config{Endpoints: eps, TLS: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cc, err := c.GetOrCreateCache(ctxT(t), client.CacheConfig{Name: "tls"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.Put(ctxT(t), []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	// A plain client cannot talk to a TLS server.
	if _, err := client.Connect(ctxT(t), client.Config{Endpoints: eps, DialTimeout: time.Second}); err == nil {
		t.Fatal("plain connection to a TLS server succeeded")
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ignitetest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestConcurrentReconnect: many goroutines hitting a dropped connection
// share one reconnection.
func TestConcurrentReconnect(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	ignitetest.NeedDouble(t, e.srv)
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	e.srv.DropConnections()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				err := cc.Put(ctx, []byte("k"), []byte("v"))
				if err == nil {
					return
				}
				if !errors.Is(err, client.ErrConnectionLost) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(e.srv.Conns()); n != 1 {
		t.Errorf("%d connections after reconnecting", n)
	}
}
