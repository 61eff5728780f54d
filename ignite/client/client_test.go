package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ignetcd/ignetcd/ignite/binary"
	"github.com/ignetcd/ignetcd/ignite/client"
	"github.com/ignetcd/ignetcd/ignite/ignitetest"
	"github.com/ignetcd/ignetcd/ignite/wire"
)

func TestConnect(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	c := e.client()
	info, err := c.Connection(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Protocol.Version != wire.V1_7_0 {
		t.Errorf("protocol %s, want 1.7.0", info.Protocol.Version)
	}
	for _, b := range info.Protocol.Features.Bits() {
		if b != wire.FeatureHeartbeat {
			t.Errorf("negotiated feature %d that was not advertised", b)
		}
	}
	if _, err := client.New(client.Config{}); err == nil {
		t.Error("New without endpoints succeeded")
	}
}

func TestVersionFallback(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	e.cfg.Versions = []wire.Version{{Major: 1, Minor: 8}, wire.V1_7_0}
	c := e.client()
	info, err := c.Connection(ctxT(t))
	if err != nil || info.Protocol.Version != wire.V1_7_0 {
		t.Fatalf("after fallback: %+v %v", info, err)
	}

	// A server offering a version the client does not accept is an error,
	// not an outage.
	e.cfg.Versions = []wire.Version{{Major: 1, Minor: 8}}
	_, err = client.Connect(ctxT(t), e.cfg)
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.ServerVersion != wire.V1_7_0 || errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("Connect with 1.8.0 only: %v", err)
	}

	// Older versions work too (no feature mask before 1.7.0).
	for _, v := range []wire.Version{wire.V1_6_0, wire.V1_5_0, wire.V1_4_0} {
		e.cfg.Versions = []wire.Version{v}
		c := e.client()
		cc := e.cache(c, client.CacheConfig{})
		if err := cc.Put(ctxT(t), []byte("k"), []byte("v")); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		tx, err := c.Begin(ctxT(t), client.TxOptions{})
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if _, err := cc.WithTx(tx).Get(ctxT(t), []byte("k")); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if err := tx.Commit(ctxT(t)); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
	}
}

func TestCacheOps(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	k := func(s string) []byte { return []byte("/registry/" + s) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s = %#v, want %#v", what, got, want)
		}
	}

	must(cc.Put(ctx, k("a"), []byte("v1")))
	v, err := cc.Get(ctx, k("a"))
	must(err)
	check("Get a", v, []byte("v1"))
	v, err = cc.Get(ctx, k("missing"))
	must(err)
	check("Get missing", v, nil)
	ok, err := cc.ContainsKey(ctx, k("a"))
	must(err)
	check("ContainsKey", ok, true)
	ok, err = cc.PutIfAbsent(ctx, k("a"), []byte("other"))
	must(err)
	check("PutIfAbsent existing", ok, false)
	ok, err = cc.PutIfAbsent(ctx, k("n"), []byte("new"))
	must(err)
	check("PutIfAbsent new", ok, true)
	ok, err = cc.ReplaceIfEquals(ctx, k("a"), []byte("wrong"), []byte("v2"))
	must(err)
	check("ReplaceIfEquals wrong", ok, false)
	ok, err = cc.ReplaceIfEquals(ctx, k("a"), []byte("v1"), []byte("v2"))
	must(err)
	check("ReplaceIfEquals", ok, true)
	ok, err = cc.Replace(ctx, k("absent"), []byte("x"))
	must(err)
	check("Replace absent", ok, false)
	must(cc.PutAll(ctx, []client.KV{{Key: k("b"), Value: []byte("vb")}, {Key: k("c"), Value: []byte("vc")}}))
	vals, err := cc.GetAllBytes(ctx, [][]byte{k("a"), k("zz"), k("b"), k("c")})
	must(err)
	check("GetAllBytes", vals, [][]byte{[]byte("v2"), nil, []byte("vb"), []byte("vc")})
	entries, err := cc.GetAll(ctx, []any{k("b"), k("zz")})
	must(err)
	check("GetAll", entries, []client.KV{{Key: k("b"), Value: []byte("vb")}})
	n, err := cc.Size(ctx)
	must(err)
	check("Size", n, int64(4))
	old, err := cc.GetAndPut(ctx, k("b"), []byte("vb2"))
	must(err)
	check("GetAndPut", old, []byte("vb"))
	ok, err = cc.Remove(ctx, k("c"))
	must(err)
	check("Remove", ok, true)
	ok, err = cc.Remove(ctx, k("c"))
	must(err)
	check("Remove again", ok, false)
	ok, err = cc.RemoveIfEquals(ctx, k("a"), []byte("v2"))
	must(err)
	check("RemoveIfEquals", ok, true)
	old, err = cc.GetAndRemove(ctx, k("n"))
	must(err)
	check("GetAndRemove", old, []byte("new"))
	must(cc.RemoveKeys(ctx, []any{k("b")}))
	n, err = cc.Size(ctx)
	must(err)
	check("Size after removes", n, int64(0))

	// Empty values are values, not absence.
	must(cc.Put(ctx, k("empty"), []byte{}))
	vals, err = cc.GetAllBytes(ctx, [][]byte{k("empty")})
	must(err)
	if vals[0] == nil || len(vals[0]) != 0 {
		t.Fatalf("empty value read back as %#v", vals[0])
	}
	// Keys are byte-exact: a string with the same bytes is another key.
	must(cc.Put(ctx, "/registry/empty", int64(7)))
	v, err = cc.Get(ctx, k("empty"))
	must(err)
	check("byte[] key after string put", v, []byte{})
	v, err = cc.Get(ctx, "/registry/empty")
	must(err)
	check("string key", v, int64(7))
	must(cc.Put(ctx, int64(42), "long key"))
	v, err = cc.Get(ctx, int64(42))
	must(err)
	check("long key", v, "long key")
	v, err = cc.Get(ctx, int32(42))
	must(err)
	check("int key is another key", v, nil)

	must(cc.RemoveAll(ctx))
	n, err = cc.Size(ctx)
	must(err)
	check("Size after RemoveAll", n, int64(0))
	must(cc.Put(ctx, k("x"), []byte("x")))
	must(cc.Clear(ctx))
	n, err = cc.Size(ctx)
	must(err)
	check("Size after Clear", n, int64(0))

	names, err := c.CacheNames(ctx)
	must(err)
	found := false
	for _, name := range names {
		found = found || name == cc.Name()
	}
	if !found {
		t.Errorf("CacheNames %v lacks %s", names, cc.Name())
	}
}

func TestCacheErrors(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	c := e.client()
	ctx := ctxT(t)
	missing := c.Cache("ignetcd-no-such-cache")
	_, err := missing.Get(ctx, []byte("k"))
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != wire.StatusCacheDoesNotExist ||
		se.Message != fmt.Sprintf("Cache does not exist [cacheId= %d]", binary.CacheID("ignetcd-no-such-cache")) {
		t.Errorf("Get on a missing cache: %#v", err)
	}
	if err := c.DestroyCache(ctx, "ignetcd-no-such-cache"); !client.IsStatus(err, wire.StatusCacheDoesNotExist) {
		t.Errorf("DestroyCache missing: %v", err)
	}
	cc := e.cache(c, client.CacheConfig{})
	if _, err := c.CreateCache(ctx, client.CacheConfig{Name: cc.Name()}); !client.IsStatus(err, wire.StatusCacheExists) {
		t.Errorf("CreateCache existing: %v", err)
	}
	if _, err := c.GetOrCreateCache(ctx, client.CacheConfig{Name: cc.Name()}); err != nil {
		t.Errorf("GetOrCreateCache existing: %v", err)
	}
	if err := cc.Put(ctx, []byte("k"), nil); !client.IsStatus(err, wire.StatusFailed) {
		t.Errorf("Put null value: %v", err)
	}
	// An unencodable key fails locally and leaves the connection usable.
	if err := cc.Put(ctx, struct{}{}, []byte("v")); err == nil {
		t.Error("Put with a struct key succeeded")
	}
	if err := cc.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Errorf("Put after a local error: %v", err)
	}
	if _, err := c.GetOrCreateCache(ctx, client.CacheConfig{}); err == nil {
		t.Error("cache without a name created")
	}
}

func TestAtomicCacheInTx(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	c := e.client()
	cc := e.cache(c, client.CacheConfig{Atomicity: client.Atomic})
	ctx := ctxT(t)
	if err := cc.Put(ctx, "a", int64(1)); err != nil {
		t.Fatal(err)
	}
	tx, err := c.Begin(ctx, client.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	err = cc.WithTx(tx).Put(ctx, "a", int64(2))
	if !client.IsStatus(err, wire.StatusFailed) {
		t.Fatalf("atomic op in tx: %v (2.16+ rejects it)", err)
	}
}

// TestConcurrentRequests multiplexes many goroutines on one connection.
func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	const workers, ops = 16, 100
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < ops; i++ {
				key := []byte(fmt.Sprintf("w%d/k%d", w, i))
				val := bytes.Repeat([]byte{byte(w)}, i)
				if err := cc.Put(ctx, key, val); err != nil {
					errs <- err
					return
				}
				got, err := cc.Get(ctx, key)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got.([]byte), val) {
					errs <- fmt.Errorf("%s: got %x, want %x", key, got, val)
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
	n, err := cc.Size(ctx)
	if err != nil || n != workers*ops {
		t.Fatalf("Size = %d, %v; want %d", n, err, workers*ops)
	}
	if e.srv != nil {
		if conns := e.srv.Conns(); len(conns) != 1 {
			t.Fatalf("%d server connections, want 1", len(conns))
		}
	}
}

func TestScan(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	want := map[string]string{}
	for i := 0; i < 25; i++ {
		k, v := fmt.Sprintf("/k/%02d", i), fmt.Sprintf("v%d", i)
		want[k] = v
		if err := cc.Put(ctx, []byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]string{}
	err := cc.ScanAll(ctx, 4, func(k, v any) error {
		got[string(k.([]byte))] = string(v.([]byte))
		return nil
	})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ScanAll: %v\n got %v\nwant %v", err, got, want)
	}

	// Abandon a cursor with pages left: Close releases it.
	cur, err := cc.Scan(ctx, client.ScanOptions{PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4 && cur.Next(ctx); i++ {
	}
	if err := cur.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if cur.Next(ctx) {
		t.Fatal("Next after Close")
	}
	// A one-page scan is released by the server itself; Close is a no-op.
	cur, err = cc.Scan(ctx, client.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for cur.Next(ctx) {
		n++
	}
	if err := cur.Close(ctx); err != nil || n != 25 || cur.Err() != nil {
		t.Fatalf("one-page scan: %d entries, %v %v", n, err, cur.Err())
	}
	// fn's error stops the scan.
	stop := errors.New("stop")
	if err := cc.ScanAll(ctx, 2, func(k, v any) error { return stop }); err != stop {
		t.Fatalf("ScanAll error = %v", err)
	}
	// Scanning every partition one by one finds every entry once.
	seen := map[string]int{}
	for p := int32(0); p < 1024; p++ {
		cur, err := cc.Scan(ctx, client.ScanOptions{OnePartition: true, Partition: p})
		if err != nil {
			t.Fatal(err)
		}
		for cur.Next(ctx) {
			seen[string(cur.Key().([]byte))]++
		}
		cur.Close(ctx)
	}
	if len(seen) != 25 {
		t.Fatalf("partition scans found %d keys", len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s seen %d times", k, n)
		}
	}
}

func TestContinuousQuery(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	var mu sync.Mutex
	var events []client.Event
	q, err := cc.Listen(ctx, client.ContinuousQueryOptions{}, func(evs []client.Event) {
		mu.Lock()
		events = append(events, evs...)
		mu.Unlock()
	}, func(err error) { t.Errorf("query lost: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	other := e.client() // changes made by another client are seen too
	oc := other.Cache(cc.Name())
	if err := oc.Put(ctx, []byte("k"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := cc.Put(ctx, []byte("k"), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if _, err := oc.Remove(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "3 events", func() bool { mu.Lock(); defer mu.Unlock(); return len(events) >= 3 })
	mu.Lock()
	want := []client.Event{
		{Key: []byte("k"), Old: nil, New: []byte("v1"), Type: wire.EventCreated},
		{Key: []byte("k"), Old: []byte("v1"), New: []byte("v2"), Type: wire.EventUpdated},
		{Key: []byte("k"), Old: []byte("v2"), Type: wire.EventRemoved},
	}
	got := events
	mu.Unlock()
	if got[2].Type == wire.EventRemoved && got[2].New != nil {
		got[2].New = nil // 2.11 repeats the old value
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events\n got %#v\nwant %#v", got, want)
	}
	if err := q.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cc.Put(ctx, []byte("after"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	// A transaction's events appear on commit.
	q2events := make(chan client.Event, 10)
	q2, err := cc.Listen(ctx, client.ContinuousQueryOptions{}, func(evs []client.Event) {
		for _, ev := range evs {
			q2events <- ev
		}
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Cancel()
	tx, err := c.Begin(ctx, client.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.WithTx(tx).Put(ctx, []byte("t"), []byte("tv")); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-q2events:
		t.Fatalf("event before commit: %+v", ev)
	default:
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	ev := recv(t, q2events)
	if string(ev.Key.([]byte)) != "t" || ev.Type != wire.EventCreated {
		t.Fatalf("event after commit: %+v", ev)
	}
	mu.Lock()
	if len(events) != 3 {
		t.Errorf("closed query got %d events", len(events))
	}
	mu.Unlock()
}

func TestContinuousQueryOrderAcrossPartitions(t *testing.T) {
	e := newEnv(t, ignitetest.Options{Partitions: 4})
	ignitetest.NeedDouble(t, e.srv)
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	var mu sync.Mutex
	var keys []string
	q, err := cc.Listen(ctx, client.ContinuousQueryOptions{}, func(evs []client.Event) {
		mu.Lock()
		for _, ev := range evs {
			keys = append(keys, string(ev.Key.([]byte)))
		}
		mu.Unlock()
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close(ctx)
	e.srv.ReorderNotifications(5)
	var want []string
	for i := 0; i < 5; i++ {
		k := fmt.Sprintf("rev/%d", i)
		want = append(want, k)
		if err := cc.Put(ctx, []byte(k), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "5 events", func() bool { mu.Lock(); defer mu.Unlock(); return len(keys) == 5 })
	mu.Lock()
	got := append([]string(nil), keys...)
	mu.Unlock()
	sort.Sort(sort.Reverse(sort.StringSlice(want)))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("reordered events %v, want %v", got, want)
	}

	// Paused notifications arrive after resuming; commits do not wait.
	e.srv.PauseNotifications()
	if err := cc.Put(ctx, []byte("paused"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	n := len(keys)
	mu.Unlock()
	if n != 5 {
		t.Fatalf("event delivered while paused")
	}
	e.srv.ResumeNotifications()
	eventually(t, "event after resume", func() bool { mu.Lock(); defer mu.Unlock(); return len(keys) == 6 })
}

// TestNotificationBacklogGoesOnceDelayLifts: a backlog that a notification
// delay built up (the double sends one event per delay) is sent at once when
// the delay is lifted, and does not hold up the double's Close. Before, each
// event of a batch taken under the delay still waited its turn: 40 events at
// 500 ms took 20 s, and a 60 s run of the fault suite held Close for minutes.
func TestNotificationBacklogGoesOnceDelayLifts(t *testing.T) {
	e := newEnv(t, ignitetest.Options{Partitions: 1})
	ignitetest.NeedDouble(t, e.srv)
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	var got atomic.Int64
	q, err := cc.Listen(ctx, client.ContinuousQueryOptions{}, func(evs []client.Event) { got.Add(int64(len(evs))) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Cancel()
	const n = 40
	const delay = 500 * time.Millisecond
	backlog := func() {
		t.Helper()
		// Paused, the commits queue as one batch; resumed under the delay,
		// that batch is sent one event per delay.
		e.srv.PauseNotifications()
		for i := 0; i < n; i++ {
			if err := cc.Put(ctx, []byte(fmt.Sprintf("k%d", i)), []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
		e.srv.SetNotificationDelay(delay)
		e.srv.ResumeNotifications()
	}
	backlog()
	start := got.Load()
	eventually(t, "the first delayed event", func() bool { return got.Load() > start })
	e.srv.SetNotificationDelay(0)
	lifted := time.Now()
	for got.Load() < start+n {
		if time.Since(lifted) > 3*time.Second {
			t.Fatalf("%d of %d events 3 s after the delay was lifted (the rest would take %v more under it)", got.Load()-start, n, time.Duration(start+n-got.Load())*delay)
		}
		time.Sleep(5 * time.Millisecond)
	}

	backlog()
	closed := make(chan struct{})
	go func() { e.srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatalf("the double's Close still waiting 3 s after it began, with %d delayed events queued (%v under the delay)", n, n*delay)
	}
}

// TestSlowListener: a callback that blocks does not hold up other requests
// on the connection (the reader never waits for it).
func TestSlowListener(t *testing.T) {
	e := newEnv(t, ignitetest.Options{})
	c := e.client()
	cc := e.cache(c, client.CacheConfig{})
	ctx := ctxT(t)
	release := make(chan struct{})
	var mu sync.Mutex
	n := 0
	q, err := cc.Listen(ctx, client.ContinuousQueryOptions{}, func(evs []client.Event) {
		<-release
		mu.Lock()
		n += len(evs)
		mu.Unlock()
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := cc.Put(ctx, []byte(fmt.Sprint(i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	eventually(t, "50 events", func() bool { mu.Lock(); defer mu.Unlock(); return n == 50 })
	q.Close(ctx)
}
