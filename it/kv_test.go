package it

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ignetcd/ignetcd/embed"
	"github.com/ignetcd/ignetcd/mvcc"
)

func TestKVPutGetRevisions(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		n := env.startNode(t, nodeOptions{})
		c := newClient(t, n.Endpoints()...)
		ctx := testCtx(t)

		r1, err := c.Put(ctx, "a", "1")
		if err != nil {
			t.Fatal(err)
		}
		if r1.Header.Revision != 2 {
			t.Fatalf("first put: header revision = %d, want 2 (etcd starts at 1)", r1.Header.Revision)
		}
		r2, err := c.Put(ctx, "a", "2", clientv3.WithPrevKV())
		if err != nil {
			t.Fatal(err)
		}
		if r2.PrevKv == nil || string(r2.PrevKv.Value) != "1" || r2.PrevKv.Version != 1 {
			t.Fatalf("prev kv = %+v, want value 1 version 1", r2.PrevKv)
		}
		g, err := c.Get(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		kv := g.Kvs[0]
		if string(kv.Value) != "2" || kv.CreateRevision != 2 || kv.ModRevision != 3 || kv.Version != 2 || g.Header.Revision != 3 {
			t.Fatalf("get a = %+v (header %d), want value 2 create 2 mod 3 version 2 header 3", kv, g.Header.Revision)
		}
		old, err := c.Get(ctx, "a", clientv3.WithRev(2))
		if err != nil {
			t.Fatal(err)
		}
		if string(old.Kvs[0].Value) != "1" {
			t.Fatalf("historical read at 2 = %q, want 1", old.Kvs[0].Value)
		}
		if _, err := c.Get(ctx, "a", clientv3.WithRev(100)); !errors.Is(err, rpctypes.ErrFutureRev) {
			t.Fatalf("future revision read: err = %v, want %v", err, rpctypes.ErrFutureRev)
		}
		if _, err := c.Put(ctx, "", "x"); !errors.Is(err, rpctypes.ErrEmptyKey) {
			t.Fatalf("empty key put: err = %v, want %v", err, rpctypes.ErrEmptyKey)
		}
		// A delete that deletes nothing takes no revision.
		d, err := c.Delete(ctx, "nothing")
		if err != nil || d.Deleted != 0 || d.Header.Revision != 3 {
			t.Fatalf("delete of nothing: %+v, %v; want 0 deleted at revision 3", d, err)
		}
		d, err = c.Delete(ctx, "a", clientv3.WithPrevKV())
		if err != nil || d.Deleted != 1 || d.Header.Revision != 4 || len(d.PrevKvs) != 1 {
			t.Fatalf("delete a: %+v, %v; want 1 deleted at 4 with prev kv", d, err)
		}
		// Re-created key starts a new generation: version 1, new create revision.
		if _, err := c.Put(ctx, "a", "3"); err != nil {
			t.Fatal(err)
		}
		g, _ = c.Get(ctx, "a")
		if kv := g.Kvs[0]; kv.Version != 1 || kv.CreateRevision != 5 {
			t.Fatalf("recreated key: %+v, want version 1 create 5", kv)
		}
	})
}

func TestKVRangeOptions(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		n := env.startNode(t, nodeOptions{})
		c := newClient(t, n.Endpoints()...)
		ctx := testCtx(t)
		for i := 0; i < 10; i++ {
			if _, err := c.Put(ctx, fmt.Sprintf("k/%02d", i), fmt.Sprintf("v%d", 9-i)); err != nil {
				t.Fatal(err)
			}
		}
		c.Put(ctx, "k0", "outside")
		cases := []struct {
			name      string
			key       string
			opts      []clientv3.OpOption
			wantKeys  []string
			wantCount int64
			wantMore  bool
		}{
			{"prefix", "k/", []clientv3.OpOption{clientv3.WithPrefix()}, keysN(0, 10), 10, false},
			{"limit", "k/", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithLimit(3)}, keysN(0, 3), 10, true},
			{"range", "k/02", []clientv3.OpOption{clientv3.WithRange("k/05")}, keysN(2, 5), 3, false},
			{"from key", "k/08", []clientv3.OpOption{clientv3.WithFromKey()}, append(keysN(8, 10), "k0"), 3, false},
			{"sort by value asc", "k/", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortAscend), clientv3.WithLimit(2)}, []string{"k/09", "k/08"}, 10, true},
			{"sort by key desc", "k/", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(2)}, []string{"k/09", "k/08"}, 10, true},
			{"min mod revision", "k/", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithMinModRev(10)}, keysN(8, 10), 10, false},
			{"max create revision", "k/", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithMaxCreateRev(3)}, keysN(0, 2), 10, false},
			{"inverted range", "k/05", []clientv3.OpOption{clientv3.WithRange("k/01")}, nil, 0, false},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp, err := c.Get(ctx, tc.key, tc.opts...)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, kv := range resp.Kvs {
					got = append(got, string(kv.Key))
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.wantKeys) || resp.Count != tc.wantCount || resp.More != tc.wantMore {
					t.Fatalf("got keys %v count %d more %v; want %v count %d more %v", got, resp.Count, resp.More, tc.wantKeys, tc.wantCount, tc.wantMore)
				}
			})
		}
		co, err := c.Get(ctx, "k/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || co.Count != 10 || len(co.Kvs) != 0 {
			t.Fatalf("count only: %+v %v", co, err)
		}
		ko, err := c.Get(ctx, "k/00", clientv3.WithKeysOnly())
		if err != nil || len(ko.Kvs) != 1 || ko.Kvs[0].Value != nil {
			t.Fatalf("keys only: %+v %v", ko, err)
		}
		// keys_only must not strip the stored value.
		if full, _ := c.Get(ctx, "k/00"); string(full.Kvs[0].Value) != "v9" {
			t.Fatalf("value after keys-only read = %q, want v9", full.Kvs[0].Value)
		}
		ser, err := c.Get(ctx, "k/00", clientv3.WithSerializable())
		if err != nil || string(ser.Kvs[0].Value) != "v9" {
			t.Fatalf("serializable read: %+v %v", ser, err)
		}
	})
}

func keysN(from, to int) []string {
	var ks []string
	for i := from; i < to; i++ {
		ks = append(ks, fmt.Sprintf("k/%02d", i))
	}
	return ks
}

func TestKVTxn(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		n := env.startNode(t, nodeOptions{})
		c := newClient(t, n.Endpoints()...)
		ctx := testCtx(t)
		c.Put(ctx, "x", "1")

		// kube-apiserver's create: MOD(key) == 0.
		tr, err := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("obj"), "=", 0)).
			Then(clientv3.OpPut("obj", "v1")).Commit()
		if err != nil || !tr.Succeeded || tr.Header.Revision != 3 {
			t.Fatalf("create txn: %+v %v", tr, err)
		}
		// Its update, with the failure branch returning the current object.
		tr, err = c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("obj"), "=", 2)).
			Then(clientv3.OpPut("obj", "v2")).Else(clientv3.OpGet("obj")).Commit()
		if err != nil || tr.Succeeded {
			t.Fatalf("stale update txn: %+v %v", tr, err)
		}
		if kv := tr.Responses[0].GetResponseRange().Kvs[0]; string(kv.Value) != "v1" || kv.ModRevision != 3 {
			t.Fatalf("failure branch read %+v", kv)
		}
		if tr.Header.Revision != 3 {
			t.Fatalf("failed txn header revision = %d, want 3 (no write)", tr.Header.Revision)
		}
		tr, err = c.Txn(ctx).If(
			clientv3.Compare(clientv3.Value("x"), "=", "1"),
			clientv3.Compare(clientv3.Version("x"), ">", 0),
			clientv3.Compare(clientv3.CreateRevision("x"), "<", 100),
			clientv3.Compare(clientv3.LeaseValue("x"), "=", clientv3.NoLease),
		).Then(clientv3.OpPut("obj", "v2"), clientv3.OpGet("obj"), clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpDelete("x")}, nil)).Commit()
		if err != nil || !tr.Succeeded || tr.Header.Revision != 4 {
			t.Fatalf("compound txn: %+v %v", tr, err)
		}
		if got := tr.Responses[1].GetResponseRange(); string(got.Kvs[0].Value) != "v2" || got.Header.Revision != 4 {
			t.Fatalf("range after put in the same txn = %+v, want v2 at header 4", got)
		}
		if d := tr.Responses[2].GetResponseTxn().Responses[0].GetResponseDeleteRange(); d.Deleted != 1 {
			t.Fatalf("nested delete: %+v", d)
		}
		// Duplicate keys and too many operations are refused, nothing written.
		_, err = c.Txn(ctx).Then(clientv3.OpPut("d", "1"), clientv3.OpPut("d", "2")).Commit()
		if !errors.Is(err, rpctypes.ErrDuplicateKey) {
			t.Fatalf("duplicate key txn: err = %v, want %v", err, rpctypes.ErrDuplicateKey)
		}
		var ops []clientv3.Op
		for i := 0; i < 129; i++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprint("many/", i), "v"))
		}
		if _, err = c.Txn(ctx).Then(ops...).Commit(); !errors.Is(err, rpctypes.ErrTooManyOps) {
			t.Fatalf("129-op txn: err = %v, want %v", err, rpctypes.ErrTooManyOps)
		}
		if g, _ := c.Get(ctx, "d"); len(g.Kvs) != 0 || g.Header.Revision != 4 {
			t.Fatalf("refused txns wrote something: %+v", g)
		}
		// A range compare covers every key in the range.
		tr, err = c.Txn(ctx).If(clientv3.Compare(clientv3.Version("many/").WithPrefix(), "=", 0)).Then(clientv3.OpPut("p", "1")).Commit()
		if err != nil || !tr.Succeeded {
			t.Fatalf("prefix compare: %+v %v", tr, err)
		}
	})
}

func TestKVCompaction(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		n := env.startNode(t, nodeOptions{})
		c := newClient(t, n.Endpoints()...)
		ctx := testCtx(t)
		for i := 0; i < 5; i++ {
			c.Put(ctx, "k", fmt.Sprint(i)) // revisions 2..6
		}
		if _, err := c.Compact(ctx, 4, clientv3.WithCompactPhysical()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(ctx, "k", clientv3.WithRev(3)); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Fatalf("read below compaction: err = %v, want %v", err, rpctypes.ErrCompacted)
		}
		g, err := c.Get(ctx, "k", clientv3.WithRev(4))
		if err != nil || string(g.Kvs[0].Value) != "2" {
			t.Fatalf("read at compaction revision: %+v %v", g, err)
		}
		if _, err := c.Compact(ctx, 4); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Fatalf("compact again at 4: err = %v, want %v", err, rpctypes.ErrCompacted)
		}
		if _, err := c.Compact(ctx, 100); !errors.Is(err, rpctypes.ErrFutureRev) {
			t.Fatalf("compact in the future: err = %v, want %v", err, rpctypes.ErrFutureRev)
		}
		// A watch from below the compaction is cancelled with the compact revision.
		wch := c.Watch(ctx, "k", clientv3.WithRev(2))
		wr := <-wch
		if wr.CompactRevision != 4 || !wr.Canceled {
			t.Fatalf("watch from compacted revision: %+v, want compact revision 4, canceled", wr)
		}
	})
}

func TestWatchReplayThenLive(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		n := env.startNode(t, nodeOptions{})
		c := newClient(t, n.Endpoints()...)
		ctx := testCtx(t)
		c.Put(ctx, "w/a", "1") // 2
		c.Put(ctx, "w/a", "2") // 3
		c.Delete(ctx, "w/a")   // 4
		wch := c.Watch(ctx, "w/", clientv3.WithPrefix(), clientv3.WithRev(2), clientv3.WithPrevKV())
		c.Put(ctx, "w/b", "3")   // 5
		c.Put(ctx, "other", "x") // 6: outside the watch
		c.Put(ctx, "w/b", "4")   // 7
		want := []string{"PUT w/a 1 2 prev=", "PUT w/a 2 3 prev=1", "DELETE w/a  4 prev=2", "PUT w/b 3 5 prev=", "PUT w/b 4 7 prev=3"}
		var got []string
		for len(got) < len(want) {
			wr := <-wch
			if err := wr.Err(); err != nil {
				t.Fatal(err)
			}
			for _, ev := range wr.Events {
				prev := ""
				if ev.PrevKv != nil {
					prev = string(ev.PrevKv.Value)
				}
				got = append(got, fmt.Sprintf("%s %s %s %d prev=%s", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision, prev))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("events:\n got %q\nwant %q", got, want)
		}
	})
}

func TestWatchFiltersProgressAndCancel(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		n := env.startNode(t, nodeOptions{})
		c := newClient(t, n.Endpoints()...)
		ctx := testCtx(t)
		noPut := c.Watch(ctx, "f", clientv3.WithFilterPut())
		c.Put(ctx, "f", "1")
		c.Delete(ctx, "f")
		wr := <-noPut
		if len(wr.Events) != 1 || wr.Events[0].Type != mvccpb.DELETE {
			t.Fatalf("NOPUT watch got %+v, want one DELETE", wr.Events)
		}
		// RequestProgress answers with the store revision once caught up.
		if err := c.RequestProgress(ctx); err != nil {
			t.Fatal(err)
		}
		wr = <-noPut
		if !wr.IsProgressNotify() || wr.Header.Revision != 3 {
			t.Fatalf("progress response %+v, want progress notify at revision 3", wr)
		}
	})
}

func TestLeases(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		n := env.startNode(t, nodeOptions{})
		c := newClient(t, n.Endpoints()...)
		ctx := testCtx(t)
		g, err := c.Grant(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if g.TTL != 2 {
			t.Fatalf("granted TTL = %d, want etcd's minimum 2", g.TTL)
		}
		if _, err := c.Put(ctx, "l/a", "1", clientv3.WithLease(g.ID)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(ctx, "l/b", "1", clientv3.WithLease(g.ID)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(ctx, "l/c", "1", clientv3.WithLease(12345)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.Fatalf("put with unknown lease: err = %v, want %v", err, rpctypes.ErrLeaseNotFound)
		}
		ttl, err := c.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys())
		if err != nil || len(ttl.Keys) != 2 || ttl.GrantedTTL != 2 {
			t.Fatalf("time to live: %+v %v", ttl, err)
		}
		wch := c.Watch(ctx, "l/", clientv3.WithPrefix())
		// Expiry deletes both keys in one revision; the watcher sees both deletes.
		wr := <-wch
		if len(wr.Events) != 2 || wr.Events[0].Type != mvccpb.DELETE || wr.Events[0].Kv.ModRevision != wr.Events[1].Kv.ModRevision {
			t.Fatalf("expiry events %+v, want two DELETEs in one revision", wr.Events)
		}
		if ttl, _ := c.TimeToLive(ctx, g.ID); ttl.TTL != -1 {
			t.Fatalf("expired lease TTL = %d, want -1", ttl.TTL)
		}
		// Client-chosen id, keep-alive, revoke.
		g2, err := c.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Lease.Grant(ctx, 60); err != nil {
			t.Fatal(err)
		}
		ka, err := c.KeepAliveOnce(ctx, g2.ID)
		if err != nil || ka.TTL != 60 {
			t.Fatalf("keep alive: %+v %v", ka, err)
		}
		ls, err := c.Leases(ctx)
		if err != nil || len(ls.Leases) != 2 {
			t.Fatalf("leases: %+v %v", ls, err)
		}
		if _, err := c.Revoke(ctx, g2.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Revoke(ctx, g2.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.Fatalf("revoke twice: err = %v, want %v", err, rpctypes.ErrLeaseNotFound)
		}
	})
}

// TestGroupCommitKeepsPerRequestSemantics: concurrent writers on one node are
// grouped into shared engine transactions, yet each request keeps its own
// revision and its compares see the requests before it: concurrent
// compare-and-swap increments of one key lose nothing, and of many
// concurrent creates of one key exactly one succeeds.
func TestGroupCommitKeepsPerRequestSemantics(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		n := env.startNode(t, nodeOptions{})
		ctx := testCtx(t)
		const workers, each = 16, 15
		clients := make([]*clientv3.Client, workers)
		for i := range clients {
			clients[i] = newClient(t, n.Endpoints()...)
		}
		var wg sync.WaitGroup
		var created atomic.Int64
		var revMu sync.Mutex
		revs := map[int64]bool{}
		errs := make(chan error, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(c *clientv3.Client) {
				defer wg.Done()
				r, err := c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision("once"), "=", 0)).Then(clientv3.OpPut("once", "x")).Commit()
				if err != nil {
					errs <- err
					return
				}
				if r.Succeeded {
					created.Add(1)
				}
				for i := 0; i < each; {
					g, err := c.Get(ctx, "counter")
					if err != nil {
						errs <- err
						return
					}
					var cur, mod int64
					if len(g.Kvs) > 0 {
						fmt.Sscan(string(g.Kvs[0].Value), &cur)
						mod = g.Kvs[0].ModRevision
					}
					tr, err := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("counter"), "=", mod)).
						Then(clientv3.OpPut("counter", fmt.Sprint(cur+1))).Commit()
					if err != nil {
						errs <- err
						return
					}
					if tr.Succeeded {
						revMu.Lock()
						if revs[tr.Header.Revision] {
							errs <- fmt.Errorf("revision %d acknowledged twice", tr.Header.Revision)
						}
						revs[tr.Header.Revision] = true
						revMu.Unlock()
						i++
					}
				}
			}(clients[w])
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if created.Load() != 1 {
			t.Fatalf("%d concurrent creates of one key succeeded, want exactly 1", created.Load())
		}
		g, err := clients[0].Get(ctx, "counter")
		if err != nil {
			t.Fatal(err)
		}
		if string(g.Kvs[0].Value) != fmt.Sprint(workers*each) || g.Kvs[0].Version != workers*each {
			t.Fatalf("counter = %s (version %d) after %d increments", g.Kvs[0].Value, g.Kvs[0].Version, workers*each)
		}
		ws := n.Store().WriterStats()
		groups, requests := ws.Groups, ws.Requests
		t.Logf("%d write requests in %d engine transactions", requests, groups)
		// The memory engine commits in microseconds, so writers rarely
		// overlap there; over a network round trip they must be grouped.
		if env.kind == "ignite" && requests <= groups {
			t.Fatalf("no write was grouped: %d requests in %d engine transactions", requests, groups)
		}
	})
}

// TestLinearizableReadsBatched: concurrent linearizable reads share counter
// reads, and each still sees every write acknowledged before it began.
func TestLinearizableReadsBatched(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		n := env.startNode(t, nodeOptions{})
		ctx := testCtx(t)
		writer := newClient(t, n.Endpoints()...)
		readers := make([]*clientv3.Client, 8)
		for i := range readers {
			readers[i] = newClient(t, n.Endpoints()...)
		}
		before := n.Store().CounterReads()
		var wg sync.WaitGroup
		errs := make(chan error, len(readers))
		for i := 0; i < 30; i++ {
			p, err := writer.Put(ctx, "lin", fmt.Sprint(i))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					g, err := r.Get(ctx, "lin")
					if err == nil && (g.Header.Revision < p.Header.Revision || len(g.Kvs) == 0) {
						err = fmt.Errorf("read after the write at %d answered at %d", p.Header.Revision, g.Header.Revision)
					}
					if err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
		}
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		reads := n.Store().CounterReads() - before
		t.Logf("%d linearizable reads used %d counter reads", 30*len(readers), reads)
		// As above: batching needs a counter read that takes time.
		if env.kind == "ignite" && reads >= int64(30*len(readers)) {
			t.Fatalf("no batching: %d reads used %d counter reads", 30*len(readers), reads)
		}
	})
}

// TestAutoCompactionRevisionMode: with etcd's revision-mode auto-compaction
// the node compacts on its own, keeping the configured number of revisions.
func TestAutoCompactionRevisionMode(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		n := env.startNode(t, nodeOptions{cfg: func(c *embed.Config) {
			c.Store.AutoCompaction = mvcc.AutoCompaction{Revisions: 5, CheckInterval: 50 * time.Millisecond}
		}})
		c := newClient(t, n.Endpoints()...)
		ctx := testCtx(t)
		for i := 0; i < 20; i++ {
			if _, err := c.Put(ctx, "k", fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := c.Get(ctx, "k", clientv3.WithRev(15))
			if errors.Is(err, rpctypes.ErrCompacted) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("revision 15 of 21 still readable (err %v): auto-compaction keeping 5 revisions did not run", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := c.Get(ctx, "k", clientv3.WithRev(16)); err != nil {
			t.Fatalf("revision 16 (within the retained 5) unreadable: %v", err)
		}
	})
}
