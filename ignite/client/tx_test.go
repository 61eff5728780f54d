package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ignetcd/ignetcd/ignite/client"
	"github.com/ignetcd/ignetcd/ignite/ignitetest"
	"github.com/ignetcd/ignetcd/ignite/wire"
)

func TestTxCommitAndRollback(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	if err := cc.Put(ctx, "counter", int64(1)); err != nil {
		t.Fatal(err)
	}
	tx, err := c.Begin(ctx, client.TxOptions{Timeout: 5 * time.Second, Label: "test"})
	if err != nil {
		t.Fatal(err)
	}
	in := cc.WithTx(tx)
	v, err := in.Get(ctx, "counter")
	if err != nil || v != int64(1) {
		t.Fatalf("Get in tx = %v, %v", v, err)
	}
	if err := in.Put(ctx, "counter", int64(2)); err != nil {
		t.Fatal(err)
	}
	if err := in.PutAll(ctx, []client.KV{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	if err := in.RemoveKeys(ctx, []any{[]byte("b")}); err != nil {
		t.Fatal(err)
	}
	// Read your own writes inside the tx; nothing visible outside.
	vals, err := in.GetAllBytes(ctx, [][]byte{[]byte("a"), []byte("b")})
	if err != nil || string(vals[0]) != "1" || vals[1] != nil {
		t.Fatalf("GetAllBytes in tx = %q, %v", vals, err)
	}
	if v, _ := cc.Get(ctx, "counter"); v != int64(1) {
		t.Fatalf("uncommitted write visible outside: %v", v)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := cc.Get(ctx, "counter"); v != int64(2) {
		t.Fatalf("after commit: %v", v)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Errorf("Rollback after Commit: %v", err)
	}
	if err := tx.Commit(ctx); !errors.Is(err, client.ErrTxDone) {
		t.Errorf("second Commit: %v", err)
	}
	if _, err := in.Get(ctx, "counter"); !errors.Is(err, client.ErrTxDone) {
		t.Errorf("Get on an ended tx: %v", err)
	}

	tx, err = c.Begin(ctx, client.TxOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.WithTx(tx).Put(ctx, "counter", int64(100)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := cc.Get(ctx, "counter"); v != int64(2) {
		t.Fatalf("after rollback: %v", v)
	}
}

// TestTxCounter: N goroutines increment one counter in pessimistic
// transactions; no update may be lost.
func TestTxCounter(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("sharedConnection=%v", shared), func(t *testing.T) {
			e := newEnv(t, ignitetest.Options{})
			first := e.client()
			cc := e.cache(first, client.CacheConfig{})
			ctx := ctxT(t)
			if err := cc.Put(ctx, []byte("counter"), int64(0)); err != nil {
				t.Fatal(err)
			}
			const workers, increments = 6, 15
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := 0; w < workers; w++ {
				c := first
				if !shared {
					c = e.client()
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < increments; i++ {
						if err := increment(t, c, cc.Name()); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			v, err := cc.Get(ctx, []byte("counter"))
			if err != nil || v != int64(workers*increments) {
				t.Fatalf("counter = %v, %v; want %d", v, err, workers*increments)
			}
		})
	}
}

func increment(t *testing.T, c *client.Client, cache string) error {
	ctx := ctxT(t)
	tx, err := c.Begin(ctx, client.TxOptions{Timeout: 20 * time.Second})
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	in := c.Cache(cache).WithTx(tx)
	v, err := in.Get(ctx, []byte("counter"))
	if err != nil {
		return err
	}
	if err := in.Put(ctx, []byte("counter"), v.(int64)+1); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// TestTxLockWait: a second transaction reading a locked key waits for the
// first to end, then sees its write.
func TestTxLockWait(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	c1, c2 := e.client(), e.client()
	cc := e.cache(c1, client.CacheConfig{})
	ctx := ctxT(t)
	tx1, err := c1.Begin(ctx, client.TxOptions{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.WithTx(tx1).Get(ctx, []byte("k")); err != nil { // locks k, absent
		t.Fatal(err)
	}
	tx2, err := c2.Begin(ctx, client.TxOptions{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Rollback(ctx)
	got := make(chan any, 1)
	go func() {
		v, err := c2.Cache(cc.Name()).WithTx(tx2).Get(ctx, []byte("k"))
		if err != nil {
			got <- err
			return
		}
		got <- v
	}()
	select {
	case v := <-got:
		t.Fatalf("second tx read a locked key at once: %v", v)
	case <-time.After(150 * time.Millisecond):
	}
	// Non-transactional reads are never blocked.
	if v, err := c2.Cache(cc.Name()).Get(ctx, []byte("k")); err != nil || v != nil {
		t.Fatalf("plain Get = %v, %v", v, err)
	}
	if err := cc.WithTx(tx1).Put(ctx, []byte("k"), []byte("from tx1")); err != nil {
		t.Fatal(err)
	}
	if err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if b, ok := v.([]byte); !ok || string(b) != "from tx1" {
			t.Fatalf("second tx read %v", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second tx still blocked after the first committed")
	}
}

// TestTxTimeout: a transaction waiting for a lock fails when its timeout
// expires; the holder is unaffected.
func TestTxTimeout(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	c1, c2 := e.client(), e.client()
	cc := e.cache(c1, client.CacheConfig{})
	ctx := ctxT(t)
	tx1, err := c1.Begin(ctx, client.TxOptions{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback(ctx)
	if err := cc.WithTx(tx1).Put(ctx, []byte("k"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	tx2, err := c2.Begin(ctx, client.TxOptions{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c2.Cache(cc.Name()).WithTx(tx2).Get(ctx, []byte("k"))
	if !client.IsStatus(err, wire.StatusFailed) {
		t.Fatalf("Get on a locked key with a timeout: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 10*time.Second {
		t.Errorf("timed out after %v", d)
	}
	if err := tx2.Commit(ctx); err == nil {
		t.Error("commit of a timed-out tx succeeded")
	}
	if err := tx2.Rollback(ctx); err != nil {
		t.Errorf("Rollback after failed commit: %v", err)
	}
	if err := tx1.Commit(ctx); err != nil {
		t.Fatalf("holder's commit: %v", err)
	}
}

func TestTxOptimisticConflict(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	if err := cc.Put(ctx, []byte("k"), []byte("0")); err != nil {
		t.Fatal(err)
	}
	tx, err := c.Begin(ctx, client.TxOptions{Concurrency: client.Optimistic, Isolation: client.Serializable, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	in := cc.WithTx(tx)
	if _, err := in.Get(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if err := cc.Put(ctx, []byte("k"), []byte("other")); err != nil { // not blocked: optimistic
		t.Fatal(err)
	}
	if err := in.Put(ctx, []byte("k"), []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); !client.IsStatus(err, wire.StatusFailed) {
		t.Fatalf("conflicting optimistic commit: %v", err)
	}
	if v, _ := cc.Get(ctx, []byte("k")); string(v.([]byte)) != "other" {
		t.Fatalf("value after failed commit: %s", v)
	}
}

func TestTxOnManyCaches(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	c := e.client()
	kv, rev := e.cache(c, client.CacheConfig{}), e.cache(c, client.CacheConfig{Mode: client.Replicated})
	ctx := ctxT(t)
	tx, err := c.Begin(ctx, client.TxOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.WithTx(tx).Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := rev.WithTx(tx).Put(ctx, int64(1), []byte("k")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := rev.Get(ctx, int64(1)); string(v.([]byte)) != "k" {
		t.Fatalf("revlog entry %v", v)
	}
}

// TestPool: transactions on acquired clients never share a connection.
func TestPool(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	pool, err := client.NewPool(e.cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	cc := e.cache(pool.Shared(), client.CacheConfig{})
	ctx := ctxT(t)
	if err := cc.Put(ctx, []byte("counter"), int64(0)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				c, err := pool.Acquire(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				err = increment(t, c, cc.Name())
				pool.Release(c)
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if v, err := cc.Get(ctx, []byte("counter")); err != nil || v != int64(30) {
		t.Fatalf("counter = %v, %v", v, err)
	}
	if e.srv != nil && len(e.srv.Conns()) > 3 {
		t.Errorf("%d connections for a pool of 3", len(e.srv.Conns()))
	}
}

// TestCacheCreationWaitsForLockingTx: creating a cache is a partition map
// exchange, which waits until no transaction holds a lock (seen on Ignite
// 2.17; ignite/NOTES.md). Another connection's creation waits for the commit;
// a transaction that holds locks and creates a cache itself waits for itself
// until its timeout rolls it back. ignetcd creates its tables before any
// transaction because of this.
func TestCacheCreationWaitsForLockingTx(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	c, other := e.client(), e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	tx, err := c.Begin(ctx, client.TxOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.WithTx(tx).Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	created := make(chan error, 1)
	name := fmt.Sprintf("t-creation-%d", time.Now().UnixNano())
	go func() {
		_, err := other.GetOrCreateCache(ctx, client.CacheConfig{Name: name, Atomicity: client.Transactional})
		created <- err
	}()
	t.Cleanup(func() { _ = other.DestroyCache(context.Background(), name) })
	select {
	case err := <-created:
		t.Fatalf("cache created while a transaction held a lock (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-created:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cache creation still waiting after the commit")
	}

	// The same connection: the transaction's own lock holds its creation
	// until the transaction times out.
	tx, err = c.Begin(ctx, client.TxOptions{Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := cc.WithTx(tx).Put(ctx, []byte("k"), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	name2 := name + "-self"
	if _, err := c.GetOrCreateCache(ctx, client.CacheConfig{Name: name2, Atomicity: client.Transactional}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.DestroyCache(context.Background(), name2) })
	if waited := time.Since(start); waited < 400*time.Millisecond {
		t.Fatalf("creation inside a locking transaction returned after %v, before the transaction's timeout", waited)
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("the transaction that waited for its own cache creation committed; want it rolled back by its timeout")
	}
	if v, _ := cc.Get(ctx, []byte("k")); string(v.([]byte)) != "v" {
		t.Fatalf("k = %q after the timed-out transaction, want v", v)
	}
}
