// Package enginetest is the contract every mvcc.Engine must meet, as a test
// suite: the in-memory engine and the Ignite engine both run it, so the
// etcd layer can rely on the same behaviour from each.
package enginetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ignetcd/ignetcd/mvcc"
)

// Run runs the contract against engines made by newEngine; each call must
// return an engine with empty tables (use a fresh prefix per call if the
// backing store is shared). prefix names the tables of this run.
func Run(t *testing.T, newEngineBare func(t *testing.T) (eng mvcc.Engine, prefix string)) {
	// Tables are created before any transaction, as the store does.
	newEngine := func(t *testing.T) (mvcc.Engine, string) {
		eng, p := newEngineBare(t)
		must(t, eng.CreateTables(ctxT(t), p+"t", p+"feed", p+"scan"))
		return eng, p
	}
	t.Run("CommitAndRead", func(t *testing.T) { testCommitAndRead(t, newEngine) })
	t.Run("Rollback", func(t *testing.T) { testRollback(t, newEngine) })
	t.Run("PessimisticLockWaits", func(t *testing.T) { testLockWaits(t, newEngine) })
	t.Run("NoLostUpdate", func(t *testing.T) { testNoLostUpdate(t, newEngine) })
	t.Run("SubscribeSeesCommittedPuts", func(t *testing.T) { testSubscribe(t, newEngine) })
	t.Run("Scan", func(t *testing.T) { testScan(t, newEngine) })
	t.Run("Replace", func(t *testing.T) { testReplace(t, newEngine) })
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testCommitAndRead(t *testing.T, newEngine func(*testing.T) (mvcc.Engine, string)) {
	eng, p := newEngine(t)
	ctx := ctxT(t)
	tx, err := eng.Begin(ctx)
	must(t, err)
	key := []byte{0, 1, 2, 0xff} // arbitrary bytes stay byte-exact
	must(t, tx.PutAll(ctx, p+"t", []mvcc.Entry{{Key: key, Value: []byte("v1")}, {Key: []byte("k2"), Value: []byte("v2")}}))
	got, err := tx.GetAll(ctx, p+"t", [][]byte{key})
	must(t, err)
	if string(got[0]) != "v1" {
		t.Fatalf("read own write in tx = %q, want v1", got[0])
	}
	outside, err := eng.GetAll(ctx, p+"t", [][]byte{key})
	must(t, err)
	if outside[0] != nil {
		t.Fatalf("uncommitted write visible outside: %q", outside[0])
	}
	must(t, tx.Commit(ctx))
	got, err = eng.GetAll(ctx, p+"t", [][]byte{key, []byte("k2"), []byte("absent")})
	must(t, err)
	if string(got[0]) != "v1" || string(got[1]) != "v2" || got[2] != nil {
		t.Fatalf("after commit: %q", got)
	}
	tx, err = eng.Begin(ctx)
	must(t, err)
	must(t, tx.RemoveAll(ctx, p+"t", [][]byte{key}))
	must(t, tx.Commit(ctx))
	got, err = eng.GetAll(ctx, p+"t", [][]byte{key})
	must(t, err)
	if got[0] != nil {
		t.Fatalf("removed key still there: %q", got[0])
	}
}

func testRollback(t *testing.T, newEngine func(*testing.T) (mvcc.Engine, string)) {
	eng, p := newEngine(t)
	ctx := ctxT(t)
	tx, err := eng.Begin(ctx)
	must(t, err)
	must(t, tx.PutAll(ctx, p+"t", []mvcc.Entry{{Key: []byte("k"), Value: []byte("v")}}))
	must(t, tx.Rollback(ctx))
	got, err := eng.GetAll(ctx, p+"t", [][]byte{[]byte("k")})
	must(t, err)
	if got[0] != nil {
		t.Fatalf("rolled-back write visible: %q", got[0])
	}
}

func testLockWaits(t *testing.T, newEngine func(*testing.T) (mvcc.Engine, string)) {
	eng, p := newEngine(t)
	ctx := ctxT(t)
	first, err := eng.Begin(ctx)
	must(t, err)
	_, err = first.GetAll(ctx, p+"t", [][]byte{[]byte("lock")})
	must(t, err)
	acquired := make(chan []byte, 1)
	go func() {
		second, err := eng.Begin(ctx)
		if err != nil {
			acquired <- []byte("error: " + err.Error())
			return
		}
		vals, err := second.GetAll(ctx, p+"t", [][]byte{[]byte("lock")})
		if err != nil {
			acquired <- []byte("error: " + err.Error())
			return
		}
		second.Rollback(ctx)
		acquired <- append([]byte("got:"), vals[0]...)
	}()
	select {
	case v := <-acquired:
		t.Fatalf("second transaction read a locked key without waiting: %q", v)
	case <-time.After(300 * time.Millisecond):
	}
	must(t, first.PutAll(ctx, p+"t", []mvcc.Entry{{Key: []byte("lock"), Value: []byte("first")}}))
	must(t, first.Commit(ctx))
	if v := <-acquired; string(v) != "got:first" {
		t.Fatalf("second transaction read %q after the first committed, want got:first", v)
	}
}

func testNoLostUpdate(t *testing.T, newEngine func(*testing.T) (mvcc.Engine, string)) {
	eng, p := newEngine(t)
	ctx := ctxT(t)
	const workers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				tx, err := eng.Begin(ctx)
				if err != nil {
					errs <- err
					return
				}
				vals, err := tx.GetAll(ctx, p+"t", [][]byte{[]byte("n")})
				if err != nil {
					errs <- err
					return
				}
				n := 0
				fmt.Sscan(string(vals[0]), &n)
				if err := tx.PutAll(ctx, p+"t", []mvcc.Entry{{Key: []byte("n"), Value: []byte(fmt.Sprint(n + 1))}}); err != nil {
					errs <- err
					return
				}
				if err := tx.Commit(ctx); err != nil {
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
	got, err := eng.GetAll(ctx, p+"t", [][]byte{[]byte("n")})
	must(t, err)
	if string(got[0]) != fmt.Sprint(workers*each) {
		t.Fatalf("counter = %q after %d increments: lost updates", got[0], workers*each)
	}
}

func testSubscribe(t *testing.T, newEngine func(*testing.T) (mvcc.Engine, string)) {
	eng, p := newEngine(t)
	ctx := ctxT(t)
	var mu sync.Mutex
	seen := map[string]string{}
	sub, err := eng.Subscribe(ctx, p+"feed", func(k, v []byte) {
		mu.Lock()
		seen[string(k)] = string(v)
		mu.Unlock()
	}, func(error) {})
	must(t, err)
	defer sub.Cancel()
	tx, err := eng.Begin(ctx)
	must(t, err)
	must(t, tx.PutAll(ctx, p+"feed", []mvcc.Entry{{Key: []byte("rolled"), Value: []byte("back")}}))
	must(t, tx.Rollback(ctx))
	for i := 0; i < 5; i++ {
		tx, err := eng.Begin(ctx)
		must(t, err)
		must(t, tx.PutAll(ctx, p+"feed", []mvcc.Entry{{Key: []byte(fmt.Sprint("k", i)), Value: []byte(fmt.Sprint("v", i))}}))
		must(t, tx.Commit(ctx))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		_, rolled := seen["rolled"]
		mu.Unlock()
		if rolled {
			t.Fatal("a rolled-back put was delivered")
		}
		if n == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscription saw %d of 5 committed puts", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The feed reads what it was told of over the subscription.
	vals, err := sub.GetAll(ctx, p+"feed", [][]byte{[]byte("k3"), []byte("rolled")})
	must(t, err)
	if string(vals[0]) != "v3" || vals[1] != nil {
		t.Fatalf("subscription GetAll = %q, want v3 and nil", vals)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < 5; i++ {
		if seen[fmt.Sprint("k", i)] != fmt.Sprint("v", i) {
			t.Fatalf("subscription delivered %q for k%d", seen[fmt.Sprint("k", i)], i)
		}
	}
}

func testScan(t *testing.T, newEngine func(*testing.T) (mvcc.Engine, string)) {
	eng, p := newEngine(t)
	ctx := ctxT(t)
	tx, err := eng.Begin(ctx)
	must(t, err)
	var entries []mvcc.Entry
	for i := 0; i < 2500; i++ { // more than one scan page
		entries = append(entries, mvcc.Entry{Key: []byte(fmt.Sprintf("k%04d", i)), Value: []byte{byte(i)}})
	}
	must(t, tx.PutAll(ctx, p+"scan", entries))
	must(t, tx.Commit(ctx))
	seen := map[string][]byte{}
	must(t, eng.Scan(ctx, p+"scan", func(k, v []byte) error {
		seen[string(k)] = append([]byte(nil), v...)
		return nil
	}))
	if len(seen) != len(entries) {
		t.Fatalf("scan saw %d entries, want %d", len(seen), len(entries))
	}
	for _, e := range entries {
		if !bytes.Equal(seen[string(e.Key)], e.Value) {
			t.Fatalf("scan: %s = %v, want %v", e.Key, seen[string(e.Key)], e.Value)
		}
	}
}

func testReplace(t *testing.T, newEngine func(*testing.T) (mvcc.Engine, string)) {
	eng, p := newEngine(t)
	ctx := ctxT(t)
	tx, err := eng.Begin(ctx)
	must(t, err)
	ok, err := tx.Replace(ctx, p+"t", []byte("c"), nil, []byte("1"))
	must(t, err)
	if !ok {
		t.Fatal("replace of an absent key expecting absent failed")
	}
	// A second replace of the key in the same transaction is not part of
	// the contract: Ignite 2.17 commits neither (ignite/NOTES.md).
	must(t, tx.Commit(ctx))
	tx, err = eng.Begin(ctx)
	must(t, err)
	ok, err = tx.Replace(ctx, p+"t", []byte("c"), nil, []byte("9"))
	must(t, err)
	if ok {
		t.Fatal("replace of a present key expecting absent succeeded")
	}
	ok, err = tx.Replace(ctx, p+"t", []byte("c"), []byte("0"), []byte("2"))
	must(t, err)
	if ok {
		t.Fatal("replace with a wrong expected value succeeded")
	}
	ok, err = tx.Replace(ctx, p+"t", []byte("c"), []byte("1"), []byte("2"))
	must(t, err)
	if !ok {
		t.Fatal("replace with the right expected value failed")
	}
	must(t, tx.Commit(ctx))
	got, err := eng.GetAll(ctx, p+"t", [][]byte{[]byte("c")})
	must(t, err)
	if string(got[0]) != "2" {
		t.Fatalf("after replaces: %q, want 2", got[0])
	}
}
