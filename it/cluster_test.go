package it

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ignetcd/ignetcd/embed"
)

// eventLog renders every event of a watch on the whole keyspace from
// revision 1 until the watch reaches revision until, one line per event.
type eventLog struct {
	lines []string
	revs  []int64 // revision of each line
}

func watchAll(ctx context.Context, t *testing.T, c *clientv3.Client, until int64) *eventLog {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	log := &eventLog{}
	wch := c.Watch(clientv3.WithRequireLeader(wctx), "\x00", clientv3.WithFromKey(), clientv3.WithRev(1), clientv3.WithPrevKV())
	for wr := range wch {
		if err := wr.Err(); err != nil {
			t.Fatalf("watch: %v", err)
		}
		for _, ev := range wr.Events {
			prev := "-"
			if ev.PrevKv != nil {
				prev = fmt.Sprintf("%s@%d", ev.PrevKv.Value, ev.PrevKv.ModRevision)
			}
			log.lines = append(log.lines, fmt.Sprintf("%d %s %s=%s v%d c%d prev=%s", ev.Kv.ModRevision, ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.Version, ev.Kv.CreateRevision, prev))
			log.revs = append(log.revs, ev.Kv.ModRevision)
		}
		if len(log.revs) > 0 && log.revs[len(log.revs)-1] >= until {
			return log
		}
	}
	t.Fatalf("watch ended before revision %d (got %d events)", until, len(log.lines))
	return nil
}

// checkContiguous fails unless the log holds every revision from 2 to until
// exactly once (a revision's events are consecutive) and in order.
func (l *eventLog) checkContiguous(t *testing.T, until int64) {
	t.Helper()
	want := int64(2)
	for i, rev := range l.revs {
		if i > 0 && rev == l.revs[i-1] {
			continue
		}
		if rev != want {
			t.Fatalf("watch saw revision %d where %d was expected (a gap, duplicate or reordering)\n%s", rev, want, strings.Join(l.lines, "\n"))
		}
		want++
	}
	if want != until+1 {
		t.Fatalf("watch ended at revision %d, want %d", want-1, until)
	}
}

// writeMix runs n random writes through c on a small key set and returns the
// header revisions of those that changed something.
func writeMix(ctx context.Context, c *clientv3.Client, seed int64, n int) ([]int64, error) {
	rng := rand.New(rand.NewSource(seed))
	var revs []int64
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("k%d", rng.Intn(6))
		switch rng.Intn(4) {
		case 0, 1:
			r, err := c.Put(ctx, key, fmt.Sprintf("s%d-%d", seed, i))
			if err != nil {
				return revs, err
			}
			revs = append(revs, r.Header.Revision)
		case 2:
			r, err := c.Delete(ctx, key)
			if err != nil {
				return revs, err
			}
			if r.Deleted > 0 {
				revs = append(revs, r.Header.Revision)
			}
		case 3:
			// kube-apiserver's update shape: read, then CAS on mod revision.
			g, err := c.Get(ctx, key)
			if err != nil {
				return revs, err
			}
			var mod int64
			if len(g.Kvs) > 0 {
				mod = g.Kvs[0].ModRevision
			}
			r, err := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", mod)).
				Then(clientv3.OpPut(key, fmt.Sprintf("cas%d-%d", seed, i))).Else(clientv3.OpGet(key)).Commit()
			if err != nil {
				return revs, err
			}
			if r.Succeeded {
				revs = append(revs, r.Header.Revision)
			}
		}
	}
	return revs, nil
}

func startNodes(t *testing.T, env *testEnv, n int) ([]*embed.Node, []*clientv3.Client) {
	var nodes []*embed.Node
	var clients []*clientv3.Client
	for i := 0; i < n; i++ {
		node := env.startNode(t, nodeOptions{name: fmt.Sprintf("node%d", i)})
		nodes = append(nodes, node)
		clients = append(clients, newClient(t, node.Endpoints()...))
	}
	return nodes, clients
}

// TestNodesAgree: three nodes on one store, concurrent writers through each;
// revisions are unique and contiguous, and every node's watchers receive the
// identical event sequence.
func TestNodesAgree(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		_, clients := startNodes(t, env, 3)
		ctx := testCtx(t)
		var mu sync.Mutex
		var all []int64
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				revs, err := writeMix(ctx, c, int64(i+1), 40)
				if err != nil {
					t.Errorf("writer %d: %v", i, err)
				}
				mu.Lock()
				all = append(all, revs...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		seen := map[int64]bool{}
		var last int64
		for _, r := range all {
			if seen[r] {
				t.Fatalf("revision %d was acknowledged to two writes", r)
			}
			seen[r] = true
			last = max(last, r)
		}
		if int64(len(all)) != last-1 {
			t.Fatalf("%d writes changed something but the last revision is %d: revisions are not contiguous", len(all), last)
		}
		var logs []*eventLog
		for _, c := range clients {
			logs = append(logs, watchAll(ctx, t, c, last))
		}
		logs[0].checkContiguous(t, last)
		for i := 1; i < len(logs); i++ {
			if a, b := strings.Join(logs[0].lines, "\n"), strings.Join(logs[i].lines, "\n"); a != b {
				t.Fatalf("node %d's watch differs from node 0's:\nnode0:\n%s\nnode%d:\n%s", i, a, i, b)
			}
		}
	})
}

// TestLinearizableReadOnOtherNode: a read on node B right after a write on
// node A returns it, even with the change feed slowed down.
func TestLinearizableReadOnOtherNode(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		if env.double != nil {
			env.double.SetNotificationDelay(20 * time.Millisecond)
		}
		_, clients := startNodes(t, env, 2)
		ctx := testCtx(t)
		for i := 0; i < 20; i++ {
			p, err := clients[0].Put(ctx, "lin", fmt.Sprint(i))
			if err != nil {
				t.Fatal(err)
			}
			g, err := clients[1].Get(ctx, "lin")
			if err != nil {
				t.Fatal(err)
			}
			if len(g.Kvs) == 0 || string(g.Kvs[0].Value) != fmt.Sprint(i) || g.Header.Revision < p.Header.Revision {
				t.Fatalf("read on B after write %d on A (revision %d) returned %+v at revision %d", i, p.Header.Revision, g.Kvs, g.Header.Revision)
			}
		}
	})
}

// TestNodeRestartGivesSameAnswers: a node started later (or restarted) on the
// same store answers ranges, historical reads and watch replays exactly as
// the node that wrote the data.
func TestNodeRestartGivesSameAnswers(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		a := env.startNode(t, nodeOptions{name: "a"})
		ca := newClient(t, a.Endpoints()...)
		ctx := testCtx(t)
		if _, err := writeMix(ctx, ca, 7, 60); err != nil {
			t.Fatal(err)
		}
		lease, err := ca.Grant(ctx, 600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ca.Put(ctx, "leased", "v", clientv3.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
		if _, err := ca.Compact(ctx, 20, clientv3.WithCompactPhysical()); err != nil {
			t.Fatal(err)
		}
		snapshot := func(c *clientv3.Client) string {
			var b strings.Builder
			cur, err := c.Get(ctx, "\x00", clientv3.WithFromKey())
			if err != nil {
				t.Fatal(err)
			}
			for rev := int64(20); rev <= cur.Header.Revision; rev += 7 {
				r, err := c.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(rev))
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "@%d:", rev)
				for _, kv := range r.Kvs {
					fmt.Fprintf(&b, " %s=%s/c%d/m%d/v%d/l%x", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
				}
				b.WriteString("\n")
			}
			if _, err := c.Get(ctx, "k0", clientv3.WithRev(19)); err == nil {
				b.WriteString("read below compaction succeeded\n")
			}
			ttl, err := c.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "lease keys %q granted %d\n", ttl.Keys, ttl.GrantedTTL)
			w := watchAllFrom(ctx, t, c, 20, cur.Header.Revision)
			b.WriteString(strings.Join(w, "\n"))
			return b.String()
		}
		before := snapshot(ca)
		a.Close()
		b := env.startNode(t, nodeOptions{name: "b"})
		after := snapshot(newClient(t, b.Endpoints()...))
		if before != after {
			t.Fatalf("restarted node answers differently.\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

func watchAllFrom(ctx context.Context, t *testing.T, c *clientv3.Client, from, until int64) []string {
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var lines []string
	for wr := range c.Watch(wctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(from), clientv3.WithPrevKV()) {
		if err := wr.Err(); err != nil {
			t.Fatalf("watch from %d: %v", from, err)
		}
		for _, ev := range wr.Events {
			prev := "-"
			if ev.PrevKv != nil {
				prev = string(ev.PrevKv.Value)
			}
			lines = append(lines, fmt.Sprintf("%d %s %s=%s prev=%s", ev.Kv.ModRevision, ev.Type, ev.Kv.Key, ev.Kv.Value, prev))
			if ev.Kv.ModRevision >= until {
				return lines
			}
		}
	}
	t.Fatalf("watch from %d ended early", from)
	return nil
}

// ignite-only fault scenarios, injected through the ignitetest double.

func onDouble(t *testing.T, fn func(t *testing.T, env *testEnv)) {
	t.Run("ignite", func(t *testing.T) {
		env := newEnv(t, "ignite")
		if env.double == nil {
			t.Skip("fault injection needs the ignitetest double (IGNETCD_TEST_IGNITE is set)")
		}
		fn(t, env)
	})
}

// TestFaultConnectionDroppedAtCommit: the Ignite connection breaks while a
// commit is in flight, once with the commit lost and once with it applied.
// The client gets an error; nothing is half-applied; a watcher sees every
// revision once; a retry succeeds.
func TestFaultConnectionDroppedAtCommit(t *testing.T) {
	onDouble(t, func(t *testing.T, env *testEnv) {
		_, clients := startNodes(t, env, 2)
		ctx := testCtx(t)
		c := clients[0]
		if _, err := c.Put(ctx, "before", "1"); err != nil {
			t.Fatal(err)
		}
		for _, apply := range []bool{false, true} {
			env.double.DropConnectionOnNextCommit(apply)
			key := fmt.Sprintf("dropped-%v", apply)
			_, err := c.Put(ctx, key, "x")
			if err == nil {
				t.Fatalf("put across a dropped commit (apply=%v) succeeded", apply)
			}
			if !strings.Contains(err.Error(), "etcdserver:") {
				t.Fatalf("put across a dropped commit: unexpected error %v", err)
			}
			g, err := clients[1].Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(g.Kvs) == 1; got != apply {
				t.Fatalf("after a dropped commit with apply=%v the key exists=%v", apply, got)
			}
			// A retry goes through on a fresh connection.
			if _, err := c.Put(ctx, key, "retried"); err != nil {
				t.Fatalf("retry after a dropped commit: %v", err)
			}
		}
		last, err := c.Get(ctx, "before")
		if err != nil {
			t.Fatal(err)
		}
		for _, cl := range clients {
			watchAll(ctx, t, cl, last.Header.Revision).checkContiguous(t, last.Header.Revision)
		}
	})
}

// TestFaultFailedCommit: Ignite refuses a commit; the client gets Unavailable
// and nothing is written.
func TestFaultFailedCommit(t *testing.T) {
	onDouble(t, func(t *testing.T, env *testEnv) {
		n := env.startNode(t, nodeOptions{})
		c := newClient(t, n.Endpoints()...)
		ctx := testCtx(t)
		env.double.FailNextCommit("injected commit failure")
		_, err := c.Put(ctx, "k", "v")
		if err == nil || !strings.Contains(err.Error(), "storage unavailable") {
			t.Fatalf("put with a failed commit: err = %v, want storage unavailable", err)
		}
		g, _ := c.Get(ctx, "k")
		if len(g.Kvs) != 0 || g.Header.Revision != 1 {
			t.Fatalf("failed commit left %+v at revision %d", g.Kvs, g.Header.Revision)
		}
		if p, err := c.Put(ctx, "k", "v"); err != nil || p.Header.Revision != 2 {
			t.Fatalf("put after a failed commit: %+v %v, want revision 2", p, err)
		}
	})
}

// TestFaultNotificationsReorderedAndDelayed: change-feed notifications
// arrive late and out of order; watchers on every node still see every
// revision once, in order, identically.
func TestFaultNotificationsReorderedAndDelayed(t *testing.T) {
	onDouble(t, func(t *testing.T, env *testEnv) {
		_, clients := startNodes(t, env, 2)
		ctx := testCtx(t)
		env.double.SetNotificationDelay(5 * time.Millisecond)
		env.double.ReorderNotifications(8)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var last int64
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				revs, err := writeMix(ctx, c, int64(10+i), 25)
				if err != nil {
					t.Errorf("writer %d: %v", i, err)
				}
				mu.Lock()
				for _, r := range revs {
					last = max(last, r)
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		env.double.ReorderNotifications(0)
		a := watchAll(ctx, t, clients[0], last)
		b := watchAll(ctx, t, clients[1], last)
		a.checkContiguous(t, last)
		if strings.Join(a.lines, "\n") != strings.Join(b.lines, "\n") {
			t.Fatalf("nodes disagree under reordering:\n%s\n---\n%s", strings.Join(a.lines, "\n"), strings.Join(b.lines, "\n"))
		}
	})
}

// TestFaultFeedLost: every Ignite connection drops while watchers follow
// live writes; the feed resubscribes and fills the gap from revlog, and the
// watchers see every revision once.
func TestFaultFeedLost(t *testing.T) {
	onDouble(t, func(t *testing.T, env *testEnv) {
		_, clients := startNodes(t, env, 2)
		ctx := testCtx(t)
		const writes = 30
		done := make(chan *eventLog, 2)
		// Watchers open first and follow live.
		var last int64 = 1 + writes
		for _, c := range clients {
			go func() { done <- watchAll(ctx, t, c, last) }()
		}
		time.Sleep(100 * time.Millisecond)
		for i := 0; i < writes; i++ {
			if i == writes/3 || i == 2*writes/3 {
				env.double.DropConnections()
			}
			for {
				_, err := clients[i%2].Put(ctx, fmt.Sprint("f", i%5), fmt.Sprint(i))
				if err == nil {
					break
				}
				if ctx.Err() != nil || !isRetryable(err) {
					t.Fatalf("put %d: %v", i, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		a, b := <-done, <-done
		a.checkContiguous(t, last)
		b.checkContiguous(t, last)
		if strings.Join(a.lines, "\n") != strings.Join(b.lines, "\n") {
			t.Fatalf("nodes disagree after feed loss")
		}
	})
}

// isRetryable: the write was not applied (Unavailable), or its outcome is
// unknown — for these tests' puts of fresh values a second application only
// adds a revision, which the revision accounting below tolerates only for
// the not-applied case, so unknown outcomes are not retried.
func isRetryable(err error) bool {
	return strings.Contains(err.Error(), "storage unavailable") && !errors.Is(err, context.DeadlineExceeded)
}

// TestMemberListShowsLiveNodes: every node lists every live node; a stopped
// node leaves the list.
func TestMemberListShowsLiveNodes(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		nodes, clients := startNodes(t, env, 3)
		ctx := testCtx(t)
		names := func(c *clientv3.Client) string {
			ml, err := c.MemberList(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var ns []string
			for _, m := range ml.Members {
				ns = append(ns, m.Name)
			}
			slices.Sort(ns)
			return strings.Join(ns, ",")
		}
		for i, c := range clients {
			if got := names(c); got != "node0,node1,node2" {
				t.Fatalf("node %d lists members %q, want node0,node1,node2", i, got)
			}
		}
		nodes[2].Close()
		if got := names(clients[0]); got != "node0,node1" {
			t.Fatalf("after node2 stopped, members are %q, want node0,node1", got)
		}
	})
}

// TestNoLeaderWhenStorageLost: with Ignite gone, requests carrying etcd's
// "hasleader" metadata get "no leader" and such watches are closed, as
// kube-apiserver expects; once Ignite is back the node serves again
// without a restart.
func TestNoLeaderWhenStorageLost(t *testing.T) {
	onDouble(t, func(t *testing.T, env *testEnv) {
		n := env.startNode(t, nodeOptions{})
		c := newClient(t, n.Endpoints()...)
		ctx := testCtx(t)
		if _, err := c.Put(ctx, "k", "v"); err != nil {
			t.Fatal(err)
		}
		wch := c.Watch(clientv3.WithRequireLeader(ctx), "k")
		env.double.StopNode(0)
		closed := false
		for wr := range wch {
			if errors.Is(wr.Err(), rpctypes.ErrNoLeader) {
				closed = true
			}
		}
		if !closed {
			t.Fatal("a hasleader watch was not closed with 'no leader' when storage was lost")
		}
		rctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), 2*time.Second)
		_, err := c.Get(rctx, "k", clientv3.WithSerializable())
		cancel()
		if err == nil {
			t.Fatal("a hasleader read succeeded without storage")
		}
		if err := env.double.StartNode(0); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := c.Put(rctx, "k", "back")
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node did not recover after storage returned: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		g, err := c.Get(clientv3.WithRequireLeader(ctx), "k")
		if err != nil || string(g.Kvs[0].Value) != "back" {
			t.Fatalf("read after recovery: %+v %v", g, err)
		}
	})
}
