package kube

// Tests of ignetcd, not of upstream: they answer the design's open questions
// (docs/kubernetes.md) with what kube-apiserver's etcd3 store sees, on two
// ignetcd nodes sharing one keyspace, as two kube-apiservers behind two
// ignetcd processes would.

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilversion "k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/apis/example"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
)

func rvOf(t testing.TB, obj runtime.Object) int64 {
	t.Helper()
	m, err := metaAccessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", m.GetResourceVersion(), err)
	}
	return rv
}

func metaAccessor(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no ObjectMeta", obj)
	}
	return m, nil
}

func podKey(ns, name string) string { return "/pods/" + ns + "/" + name }

func newTestPod(ns, name string) *example.Pod {
	return &example.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

// annotate returns an UpdateFunc setting annotation k=v (and a TTL if ttl > 0).
func annotate(k, v string, ttl uint64) storage.UpdateFunc {
	return func(in runtime.Object, _ storage.ResponseMeta) (runtime.Object, *uint64, error) {
		p := in.(*example.Pod).DeepCopy()
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k] = v
		if ttl > 0 {
			return p, &ttl, nil
		}
		return p, nil, nil
	}
}

// collect reads n events from w, or fails after timeout.
func collect(t *testing.T, w watch.Interface, n int, timeout time.Duration) []watch.Event {
	t.Helper()
	var evs []watch.Event
	deadline := time.After(timeout)
	for len(evs) < n {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed after %d of %d events", len(evs), n)
			}
			if ev.Type == watch.Error {
				t.Fatalf("watch error after %d events: %v", len(evs), ev.Object)
			}
			if ev.Type == watch.Bookmark {
				continue
			}
			evs = append(evs, ev)
		case <-deadline:
			t.Fatalf("got %d of %d events in %v", len(evs), n, timeout)
		}
	}
	return evs
}

func currentRV(t *testing.T, ctx context.Context, s storage.Interface) int64 {
	t.Helper()
	rv, err := s.GetCurrentResourceVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return int64(rv)
}

// TestRevisionsUniqueContiguousOrdered: four writers, two on each of two
// nodes, create, update twice and delete pods through etcd3 stores. Every
// write's resourceVersion is unique; together they are contiguous; a raw
// etcd watch and an etcd3 store watch on either node see every revision
// once, in ascending order; and a read on the other node right after a write
// sees it (one global order, as GetCurrentResourceVersion needs).
func TestRevisionsUniqueContiguousOrdered(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, a, ca := testSetup(t, env)
		_, b, cb := testSetup(t, env)
		start := currentRV(t, ctx, a)
		if start != 1 {
			// etcd's empty store is at revision 1; upstream tests assume it
			// (kine, which writes two rows at start-up, patches them).
			t.Errorf("empty store at revision %d, want 1", start)
		}

		raw := cb.Watch(clientv3.WithRequireLeader(ctx), "", clientv3.WithPrefix(), clientv3.WithRev(start+1), clientv3.WithPrevKV())
		wa, err := a.Watch(ctx, "/pods", storage.ListOptions{ResourceVersion: strconv.FormatInt(start, 10), Predicate: storage.Everything, Recursive: true})
		if err != nil {
			t.Fatal(err)
		}
		defer wa.Stop()

		const writers, perWriter = 4, 25
		var mu sync.Mutex
		var rvs []int64
		record := func(rv int64) { mu.Lock(); rvs = append(rvs, rv); mu.Unlock() }
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				own, other := a, b
				if w%2 == 1 {
					own, other = b, a
				}
				for i := 0; i < perWriter; i++ {
					key := podKey(fmt.Sprintf("ns%d", w), fmt.Sprintf("p%d", i))
					out := &example.Pod{}
					if err := own.Create(ctx, key, newTestPod(fmt.Sprintf("ns%d", w), fmt.Sprintf("p%d", i)), out, 0); err != nil {
						t.Errorf("create: %v", err)
						return
					}
					created := rvOf(t, out)
					record(created)
					// Read-after-write on the other node.
					got := &example.Pod{}
					if err := other.Get(ctx, key, storage.GetOptions{}, got); err != nil {
						t.Errorf("get on the other node right after create at %d: %v", created, err)
						return
					}
					if rvOf(t, got) != created {
						t.Errorf("get on the other node: rv %d, want %d", rvOf(t, got), created)
					}
					if cur := currentRV(t, ctx, other); cur < created {
						t.Errorf("current RV on the other node %d < a write already acknowledged %d", cur, created)
					}
					for u := 0; u < 2; u++ {
						if err := own.GuaranteedUpdate(ctx, key, out, false, nil, annotate("u", strconv.Itoa(u), 0), nil); err != nil {
							t.Errorf("update: %v", err)
							return
						}
						record(rvOf(t, out))
					}
					if err := own.Delete(ctx, key, out, nil, storage.ValidateAllObjectFunc, nil, storage.DeleteOptions{}); err != nil {
						t.Errorf("delete: %v", err)
						return
					}
					record(rvOf(t, out))
				}
			}(w)
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		n := writers * perWriter * 4
		sort.Slice(rvs, func(i, j int) bool { return rvs[i] < rvs[j] })
		for i := 1; i < len(rvs); i++ {
			if rvs[i] == rvs[i-1] {
				t.Fatalf("two writes got resourceVersion %d", rvs[i])
			}
		}
		if rvs[0] != start+1 || rvs[len(rvs)-1] != start+int64(n) {
			t.Fatalf("%d writes after RV %d got RVs %d..%d: not contiguous", n, start, rvs[0], rvs[len(rvs)-1])
		}
		for _, s := range []storage.Interface{a, b} {
			if cur := currentRV(t, ctx, s); cur != start+int64(n) {
				t.Errorf("GetCurrentResourceVersion = %d, want %d", cur, start+int64(n))
			}
		}

		// The raw watch: every revision once, ascending, one event each.
		next := start + 1
		for next <= start+int64(n) {
			resp, ok := <-raw
			if !ok {
				t.Fatalf("raw watch closed at revision %d", next)
			}
			if err := resp.Err(); err != nil {
				t.Fatalf("raw watch: %v", err)
			}
			for _, ev := range resp.Events {
				if ev.Kv.ModRevision != next {
					t.Fatalf("raw watch: event at revision %d, want %d", ev.Kv.ModRevision, next)
				}
				if !ev.IsCreate() && ev.PrevKv == nil {
					t.Fatalf("raw watch: non-create event at %d without prev_kv", next)
				}
				next++
			}
		}

		// The etcd3 store watch on node a: the same sequence, typed.
		evs := collect(t, wa, n, 30*time.Second)
		counts := map[watch.EventType]int{}
		for i, ev := range evs {
			counts[ev.Type]++
			if rv := rvOf(t, ev.Object); rv != start+1+int64(i) {
				t.Fatalf("store watch: event %d (%s) at RV %d, want %d", i, ev.Type, rv, start+1+int64(i))
			}
		}
		if counts[watch.Added] != writers*perWriter || counts[watch.Modified] != 2*writers*perWriter || counts[watch.Deleted] != writers*perWriter {
			t.Errorf("store watch event types: %v", counts)
		}
		_ = ca
	})
}

// TestWatchNotCoalesced: a burst of updates of one object, written as fast
// as one client can on node a, reaches an etcd3 watch on node b as one
// MODIFIED event per update, each carrying that update's object and RV; a
// create immediately followed by a delete is ADDED then DELETED.
func TestWatchNotCoalesced(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, a, _ := testSetup(t, env)
		_, b, _ := testSetup(t, env)
		key := podKey("ns", "burst")
		out := &example.Pod{}
		if err := a.Create(ctx, key, newTestPod("ns", "burst"), out, 0); err != nil {
			t.Fatal(err)
		}
		w, err := b.Watch(ctx, "/pods", storage.ListOptions{ResourceVersion: out.ResourceVersion, Predicate: storage.Everything, Recursive: true})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		const updates = 300
		var want []int64
		for i := 0; i < updates; i++ {
			if err := a.GuaranteedUpdate(ctx, key, out, false, nil, annotate("n", strconv.Itoa(i), 0), nil); err != nil {
				t.Fatal(err)
			}
			want = append(want, rvOf(t, out))
		}
		other := &example.Pod{}
		if err := a.Create(ctx, podKey("ns", "blink"), newTestPod("ns", "blink"), other, 0); err != nil {
			t.Fatal(err)
		}
		addedRV := rvOf(t, other)
		if err := a.Delete(ctx, podKey("ns", "blink"), other, nil, storage.ValidateAllObjectFunc, nil, storage.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		deletedRV := rvOf(t, other)

		evs := collect(t, w, updates+2, 30*time.Second)
		for i := 0; i < updates; i++ {
			p := evs[i].Object.(*example.Pod)
			if evs[i].Type != watch.Modified || rvOf(t, p) != want[i] || p.Annotations["n"] != strconv.Itoa(i) {
				t.Fatalf("event %d: %s rv %s n=%q; want MODIFIED rv %d n=%d", i, evs[i].Type, p.ResourceVersion, p.Annotations["n"], want[i], i)
			}
		}
		if e := evs[updates]; e.Type != watch.Added || rvOf(t, e.Object) != addedRV {
			t.Fatalf("want ADDED at %d, got %s at %d", addedRV, e.Type, rvOf(t, e.Object))
		}
		if e := evs[updates+1]; e.Type != watch.Deleted || rvOf(t, e.Object) != deletedRV {
			t.Fatalf("want DELETED at %d, got %s at %d", deletedRV, e.Type, rvOf(t, e.Object))
		}
	})
}

// TestRequestWatchProgress: what the watch cache relies on. A write outside
// the watched prefix, then store.RequestWatchProgress: the watch gets a
// bookmark at the global current revision, never one below an event it
// already delivered.
func TestRequestWatchProgress(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, a, ca := testSetup(t, env)
		out := &example.Pod{}
		if err := a.Create(ctx, podKey("ns", "p"), newTestPod("ns", "p"), out, 0); err != nil {
			t.Fatal(err)
		}
		w, err := a.Watch(ctx, "/pods", storage.ListOptions{ResourceVersion: out.ResourceVersion, Predicate: storage.Everything, Recursive: true, ProgressNotify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		for i := 0; i < 3; i++ {
			resp, err := ca.KV.Put(ctx, "/unrelated", strconv.Itoa(i))
			if err != nil {
				t.Fatal(err)
			}
			want := resp.Header.Revision
			deadline := time.After(10 * time.Second)
			tick := time.NewTicker(100 * time.Millisecond) // as progress.ConditionalProgressRequester
		wait:
			for {
				if err := a.RequestWatchProgress(ctx); err != nil {
					t.Fatal(err)
				}
				select {
				case ev := <-w.ResultChan():
					if ev.Type != watch.Bookmark {
						t.Fatalf("unexpected %s event", ev.Type)
					}
					got := rvOf(t, ev.Object)
					if got > want {
						t.Fatalf("bookmark at %d above the current revision %d", got, want)
					}
					if got == want {
						break wait
					}
				case <-deadline:
					t.Fatalf("no bookmark at revision %d", want)
				case <-tick.C:
				}
			}
			tick.Stop()
		}
	})
}

// TestLeaseUses: the three ways kube-apiserver uses leases.
func TestLeaseUses(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		t.Run("shared lease", func(t *testing.T) {
			// Events: many objects with one TTL created within the reuse
			// window share one lease (granted TTL = ttl + window).
			ctx, s, c := testSetup(t, env, withLeaseConfig(etcd3.LeaseManagerConfig{ReuseDurationSeconds: 60, MaxObjectCount: 1000}))
			const n = 50
			for i := 0; i < n; i++ {
				name := fmt.Sprintf("ev%d", i)
				if err := s.Create(ctx, "/events/ns/"+name, newTestPod("ns", name), &example.Pod{}, 3600); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := c.KV.Get(ctx, "/events/", clientv3.WithPrefix())
			if err != nil {
				t.Fatal(err)
			}
			leases := map[int64]int{}
			for _, kv := range resp.Kvs {
				leases[kv.Lease]++
			}
			if len(resp.Kvs) != n || len(leases) != 1 {
				t.Fatalf("%d events on leases %v; want %d on one lease", len(resp.Kvs), leases, n)
			}
			for id := range leases {
				ttl, err := c.TimeToLive(ctx, clientv3.LeaseID(id), clientv3.WithAttachedKeys())
				if err != nil {
					t.Fatal(err)
				}
				if len(ttl.Keys) != n || ttl.GrantedTTL != 3660 {
					t.Fatalf("lease %x: %d keys, granted TTL %d; want %d keys, 3660", id, len(ttl.Keys), ttl.GrantedTTL, n)
				}
			}
		})
		t.Run("re-put moves key to a new lease", func(t *testing.T) {
			// masterleases: TTL 15 s refreshed every 10 s, a new lease per
			// refresh; here TTL 2 s refreshed every 0.5 s for 4 s. The key
			// must outlive every lease it left, then expire with a DELETED event.
			ctx, s, c := testSetup(t, env, withLeaseConfig(etcd3.NewDefaultLeaseManagerConfig()))
			key := "/masterleases/10.0.0.1"
			out := &example.Pod{}
			if err := s.Create(ctx, key, newTestPod("", "10.0.0.1"), out, 2); err != nil {
				t.Fatal(err)
			}
			w, err := s.Watch(ctx, key, storage.ListOptions{ResourceVersion: out.ResourceVersion, Predicate: storage.Everything})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			seen := map[int64]bool{}
			for i := 0; i < 8; i++ {
				time.Sleep(500 * time.Millisecond)
				if err := s.GuaranteedUpdate(ctx, key, out, false, nil, annotate("refresh", strconv.Itoa(i), 2), nil); err != nil {
					t.Fatalf("refresh %d: %v", i, err)
				}
				resp, err := c.KV.Get(ctx, key)
				if err != nil || len(resp.Kvs) != 1 {
					t.Fatalf("refresh %d: key gone (%v)", i, err)
				}
				if seen[resp.Kvs[0].Lease] {
					t.Fatalf("refresh %d reused lease %x", i, resp.Kvs[0].Lease)
				}
				seen[resp.Kvs[0].Lease] = true
			}
			evs := collect(t, w, 9, 15*time.Second)
			if evs[8].Type != watch.Deleted {
				t.Fatalf("last event %s, want DELETED after the lease expired", evs[8].Type)
			}
			for i, ev := range evs[:8] {
				if ev.Type != watch.Modified {
					t.Fatalf("event %d: %s, want MODIFIED (the key expired while refreshed)", i, ev.Type)
				}
			}
		})
		t.Run("expiry of 1000 keys in one revision", func(t *testing.T) {
			// One lease shared by 1000 objects (the lease manager's cap):
			// expiry deletes all of them in one revision, each a DELETED
			// event with the old object.
			ctx, s, c := testSetup(t, env)
			before := currentRV(t, ctx, s)
			w, err := s.Watch(ctx, "/events", storage.ListOptions{ResourceVersion: strconv.FormatInt(before, 10), Predicate: storage.Everything, Recursive: true})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			lease, err := c.Grant(ctx, 3)
			if err != nil {
				t.Fatal(err)
			}
			const n = 1000
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := g; i < n; i += 8 {
						name := fmt.Sprintf("e%04d", i)
						if err := s.Create(ctx, "/events/ns/"+name, newTestPod("ns", name), &example.Pod{}, 0); err != nil {
							t.Errorf("create: %v", err)
							return
						}
						// Attach to the shared lease as the lease manager
						// would have (re-put with the lease).
						resp, err := c.KV.Get(ctx, "/events/ns/"+name)
						if err != nil {
							t.Errorf("get: %v", err)
							return
						}
						if _, err := c.KV.Put(ctx, "/events/ns/"+name, string(resp.Kvs[0].Value), clientv3.WithLease(lease.ID)); err != nil {
							t.Errorf("put: %v", err)
							return
						}
					}
				}(g)
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			evs := collect(t, w, 3*n, 60*time.Second)
			var delRV int64
			deleted := 0
			for _, ev := range evs {
				if ev.Type != watch.Deleted {
					continue
				}
				deleted++
				rv := rvOf(t, ev.Object)
				if delRV == 0 {
					delRV = rv
				}
				if rv != delRV {
					t.Fatalf("expiry deleted keys at revisions %d and %d", delRV, rv)
				}
				if ev.Object.(*example.Pod).Name == "" {
					t.Fatalf("DELETED event without the old object")
				}
			}
			if deleted != n {
				t.Fatalf("%d DELETED events, want %d", deleted, n)
			}
			if cur := currentRV(t, ctx, s); cur != delRV {
				t.Errorf("current RV %d after expiry at %d", cur, delRV)
			}
		})
	})
}

// TestStatusAsApiserverReadsIt: kube-apiserver's feature checker
// (storage/feature: endpointSupportsRequestWatchProgress) enables consistent
// reads from its cache and streaming lists only when Maintenance.Status's
// version parses as semver >= 3.5.13; its storage-size metrics read DbSize.
func TestStatusAsApiserverReadsIt(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, s, c := testSetup(t, env)
		if err := s.Create(ctx, podKey("ns", "p"), newTestPod("ns", "p"), &example.Pod{}, 0); err != nil {
			t.Fatal(err)
		}
		for _, ep := range c.Endpoints() {
			resp, err := c.Status(ctx, ep)
			if err != nil {
				t.Fatal(err)
			}
			v, err := utilversion.ParseSemantic(resp.Version)
			if err != nil {
				t.Fatalf("Status version %q is not semver: %v (apiserver would disable RequestWatchProgress)", resp.Version, err)
			}
			if v.LessThan(utilversion.MustParseSemantic("3.5.13")) {
				t.Fatalf("Status version %s < 3.5.13: apiserver would disable RequestWatchProgress", v)
			}
			if resp.DbSize <= 0 {
				t.Errorf("Status DbSize = %d", resp.DbSize)
			}
			t.Logf("%s: version %s, dbSize %d", env.kind, resp.Version, resp.DbSize)
		}
	})
}
