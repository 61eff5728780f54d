package it

// TestRobust: etcd's robustness method (kubernetes-and-peers.md 6.2) on
// ignetcd. Concurrent clients on three frontends over one store issue
// kube-apiserver's request shapes plus plain Put/Delete/Get on a small key
// set while faults are injected; the KV history is checked for
// linearizability with porcupine against an etcd model with revisions
// (robust_model_test.go), and watchers on every frontend are checked for
// etcd's watch guarantees (ordered, unique, atomic, reliable, resumable,
// bookmarkable, identical on every frontend, correct prev_kv).
//
//	go test ./it/ -run TestRobust                       # CI: a few seconds per scenario
//	go test ./it/ -run TestRobust -robust.duration=5m   # longer
//	go test ./it/ -run TestRobust/feed-lost -robust.seed=N   # replay a seed

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ignetcd/ignetcd/embed"
	"github.com/ignetcd/ignetcd/mvcc"
)

var (
	robustDuration = flag.Duration("robust.duration", 3*time.Second, "how long each TestRobust scenario runs its traffic and faults")
	robustSeed     = flag.Int64("robust.seed", 0, "seed of TestRobust's traffic and fault schedule (0: random); a failing scenario prints its seed")
)

// robustScenario is one named fault scenario.
type robustScenario struct {
	name   string
	double bool // needs the ignitetest double (skipped on a real cluster)
	kind   string
	// fault injects faults until ctx ends; it runs on the test goroutine.
	fault func(ctx context.Context, h *robustHarness, rng *rand.Rand)
}

var robustScenarios = []robustScenario{
	{name: "baseline-memory", kind: "memory", fault: func(ctx context.Context, h *robustHarness, rng *rand.Rand) { <-ctx.Done() }},
	{name: "baseline", kind: "ignite", fault: func(ctx context.Context, h *robustHarness, rng *rand.Rand) { <-ctx.Done() }},
	{name: "frontend-restart", kind: "ignite", fault: faultFrontendRestart},
	{name: "conn-drop-mid-txn", kind: "ignite", double: true, fault: faultDropMidTxn},
	{name: "conn-drop-at-commit", kind: "ignite", double: true, fault: faultDropAtCommit},
	{name: "commit-failed", kind: "ignite", double: true, fault: faultFailCommit},
	{name: "feed-lost", kind: "ignite", double: true, fault: faultFeedLost},
	{name: "notify-delay-reorder", kind: "ignite", double: true, fault: faultNotifications},
	{name: "double-restart", kind: "ignite", double: true, fault: faultDoubleRestart},
	{name: "mixed", kind: "ignite", double: true, fault: faultMixed},
}

// robustRound bounds one checked history: a longer -robust.duration runs
// the scenario as consecutive rounds, each on a fresh store and checked on
// its own (porcupine's search keeps a copy of the linearized set per cached
// state, so one history of millions of operations would not fit).
const robustRound = 20 * time.Second

func TestRobust(t *testing.T) {
	for _, sc := range robustScenarios {
		t.Run(sc.name, func(t *testing.T) {
			seed := *robustSeed
			if seed == 0 {
				seed = time.Now().UnixNano() % 1_000_000_007
			}
			dur := *robustDuration
			// A round's history must stay small enough for porcupine to
			// check: the memory engine does over twice the operations per
			// second of the Ignite double, so its rounds are shorter.
			round := robustRound
			if sc.kind == "memory" {
				round = robustRound / 4
			}
			if dur <= round {
				runRobustEnv(t, sc, seed, dur)
				return
			}
			for r := 0; dur > 0; r++ {
				d := min(dur, round)
				dur -= d
				t.Run(fmt.Sprintf("round%d", r), func(t *testing.T) { runRobustEnv(t, sc, seed+int64(r), d) })
			}
		})
	}
}

func runRobustEnv(t *testing.T, sc robustScenario, seed int64, dur time.Duration) {
	env := newEnv(t, sc.kind)
	if sc.double && env.double == nil {
		t.Skip("fault injection needs the ignitetest double (IGNETCD_TEST_IGNITE is set)")
	}
	runRobust(t, env, sc, seed, dur)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func randDur(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int63n(int64(hi-lo)+1))
}

// Faults. Each loops until ctx ends; the harness heals everything after.

func faultFrontendRestart(ctx context.Context, h *robustHarness, rng *rand.Rand) {
	for sleepCtx(ctx, randDur(rng, 300*time.Millisecond, 800*time.Millisecond)) {
		i := rng.Intn(len(h.fronts))
		h.killFrontend(i, rng.Intn(2) == 0)
		sleepCtx(ctx, randDur(rng, 20*time.Millisecond, 300*time.Millisecond))
		h.restartFrontend(i)
	}
}

func faultDropMidTxn(ctx context.Context, h *robustHarness, rng *rand.Rand) {
	next := time.Now()
	for sleepCtx(ctx, time.Millisecond) {
		if time.Now().Before(next) {
			continue
		}
		var inTx []int64
		for _, c := range h.env.double.Conns() {
			if c.Txs > 0 {
				inTx = append(inTx, c.ID)
			}
		}
		if len(inTx) == 0 {
			continue
		}
		if h.env.double.DropConnection(inTx[rng.Intn(len(inTx))]) {
			h.faults.Add(1)
			next = time.Now().Add(randDur(rng, 50*time.Millisecond, 250*time.Millisecond))
		}
	}
}

func faultDropAtCommit(ctx context.Context, h *robustHarness, rng *rand.Rand) {
	for sleepCtx(ctx, randDur(rng, 50*time.Millisecond, 250*time.Millisecond)) {
		h.env.double.DropConnectionOnNextCommit(rng.Intn(2) == 0)
		h.faults.Add(1)
	}
}

func faultFailCommit(ctx context.Context, h *robustHarness, rng *rand.Rand) {
	for sleepCtx(ctx, randDur(rng, 30*time.Millisecond, 200*time.Millisecond)) {
		h.env.double.FailNextCommit("robust: injected commit failure")
		h.faults.Add(1)
	}
}

func faultFeedLost(ctx context.Context, h *robustHarness, rng *rand.Rand) {
	for sleepCtx(ctx, randDur(rng, 250*time.Millisecond, 800*time.Millisecond)) {
		h.env.double.DropConnections()
		h.faults.Add(1)
	}
}

func faultNotifications(ctx context.Context, h *robustHarness, rng *rand.Rand) {
	d := h.env.double
	for sleepCtx(ctx, randDur(rng, 100*time.Millisecond, 400*time.Millisecond)) {
		h.faults.Add(1)
		switch rng.Intn(4) {
		case 0:
			d.SetNotificationDelay(randDur(rng, 0, 15*time.Millisecond))
		case 1, 2:
			d.ReorderNotifications(rng.Intn(12))
		case 3:
			d.PauseNotifications()
			sleepCtx(ctx, randDur(rng, 20*time.Millisecond, 400*time.Millisecond))
			d.ResumeNotifications()
		}
	}
}

func faultDoubleRestart(ctx context.Context, h *robustHarness, rng *rand.Rand) {
	d := h.env.double
	for sleepCtx(ctx, randDur(rng, 150*time.Millisecond, 600*time.Millisecond)) {
		h.faults.Add(1)
		if rng.Intn(3) == 0 {
			// A short outage rather than a bounce.
			d.StopNode(0)
			sleepCtx(ctx, randDur(rng, 50*time.Millisecond, 400*time.Millisecond))
			if err := d.StartNode(0); err != nil {
				h.violation("restarting the double: %v", err)
			}
			continue
		}
		if err := d.Restart(); err != nil {
			h.violation("restarting the double: %v", err)
		}
	}
}

// faultMixed runs the other scenarios' faults in turn, each for a random
// slice of the run, so that they overlap with each other's aftermath.
func faultMixed(ctx context.Context, h *robustHarness, rng *rand.Rand) {
	all := []func(context.Context, *robustHarness, *rand.Rand){faultFrontendRestart, faultDropMidTxn,
		faultDropAtCommit, faultFailCommit, faultFeedLost, faultNotifications, faultDoubleRestart}
	for ctx.Err() == nil {
		sctx, cancel := context.WithTimeout(ctx, randDur(rng, 300*time.Millisecond, 900*time.Millisecond))
		all[rng.Intn(len(all))](sctx, h, rng)
		cancel()
	}
}

// frontend is one ignetcd node of the run, restartable on the same port.
type frontend struct {
	name string
	url  string
	node *embed.Node
	eng  mvcc.Engine
	up   bool
}

type robustHarness struct {
	t      *testing.T
	env    *testEnv
	sc     robustScenario
	seed   int64
	start  time.Time
	fronts []*frontend

	acked     maxRev       // highest revision seen in a response
	compacted atomic.Int64 // highest compaction requested
	compactMu sync.Mutex
	faults    atomic.Int64
	restarts  int

	watchers []*mainWatcher
	lastInfo porcupine.LinearizationInfo

	mu         sync.Mutex
	violations []string
	nViolation int
}

func (h *robustHarness) now() int64 { return int64(time.Since(h.start)) }

func (h *robustHarness) sawRevision(r int64) { h.acked.observe(r) }

func (h *robustHarness) violation(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nViolation++
	if len(h.violations) < 40 {
		h.violations = append(h.violations, fmt.Sprintf(format, args...))
	}
}

func (h *robustHarness) startFrontend(i int) {
	f := h.fronts[i]
	f.node = h.env.startNode(h.t, nodeOptions{name: f.name, cfg: func(c *embed.Config) {
		if f.url != "" {
			c.ListenClientURLs = []string{f.url}
		}
		c.WatchProgressNotifyInterval = 200 * time.Millisecond
		f.eng = c.Engine
	}})
	f.url = f.node.ClientURLs()[0]
	f.up = true
}

// killFrontend stops frontend i: abruptly (no grace for in-flight
// requests) or gracefully, and drops its Ignite connections, as the death
// of its process would.
func (h *robustHarness) killFrontend(i int, abrupt bool) {
	f := h.fronts[i]
	if !f.up {
		return
	}
	if abrupt {
		f.node.Shutdown(0)
	} else {
		f.node.Close()
	}
	if h.env.kind == "ignite" && f.eng != nil {
		f.eng.Close()
	}
	f.up = false
	h.faults.Add(1)
}

func (h *robustHarness) restartFrontend(i int) {
	if !h.fronts[i].up {
		h.startFrontend(i)
		h.restarts++
	}
}

// heal undoes every fault.
func (h *robustHarness) heal() {
	if d := h.env.double; d != nil {
		d.ResumeNotifications()
		d.SetNotificationDelay(0)
		d.ReorderNotifications(0)
		if err := d.StartNode(0); err != nil {
			h.t.Fatalf("restarting the double: %v", err)
		}
	}
	for i := range h.fronts {
		h.restartFrontend(i)
	}
}

// compactBound is the highest revision compaction may reach: below what
// every main watcher has been delivered, so that each can resume.
func (h *robustHarness) compactBound() int64 {
	b := int64(math.MaxInt64)
	for _, w := range h.watchers {
		b = min(b, w.last.Load())
	}
	return b
}

func (h *robustHarness) compact(ctx context.Context, cli *clientv3.Client, rev int64) {
	h.compactMu.Lock()
	defer h.compactMu.Unlock()
	if rev <= h.compacted.Load() {
		return
	}
	h.compacted.Store(rev)
	cctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	cli.Compact(cctx, rev) // errors only logged by kube-apiserver; the revision counts as compacted
}

const robustMarkerKey = "/r/end"

func runRobust(t *testing.T, env *testEnv, sc robustScenario, seed int64, dur time.Duration) {
	h := &robustHarness{t: t, env: env, sc: sc, seed: seed}
	rng := rand.New(rand.NewSource(seed))
	const nFronts, clientsPerFront = 3, 2
	for i := 0; i < nFronts; i++ {
		h.fronts = append(h.fronts, &frontend{name: fmt.Sprintf("robust%d", i)})
		h.startFrontend(i)
	}
	h.start = time.Now()
	endpoint := func(i int) string { return strings.TrimPrefix(h.fronts[i].url, "http://") }

	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	var wwg sync.WaitGroup
	for i := 0; i < nFronts; i++ {
		w := &mainWatcher{frontend: i, h: h, cli: newClient(t, endpoint(i)), rng: rand.New(rand.NewSource(seed + 1000 + int64(i)))}
		w.last.Store(1)
		h.watchers = append(h.watchers, w)
	}
	for _, w := range h.watchers {
		wwg.Add(1)
		go func() { defer wwg.Done(); w.run(watchCtx) }()
	}

	trafficCtx, stopTraffic := context.WithTimeout(context.Background(), dur)
	defer stopTraffic()
	var clients []*robustClient
	var twg sync.WaitGroup
	for i := 0; i < nFronts*clientsPerFront; i++ {
		c := &robustClient{id: i, frontend: i % nFronts, h: h, cli: newClient(t, endpoint(i%nFronts)),
			rng: rand.New(rand.NewSource(seed + int64(i)))}
		clients = append(clients, c)
		twg.Add(1)
		go func() { defer twg.Done(); c.run(trafficCtx) }()
	}
	var swMu sync.Mutex
	var shorts []shortWatch
	for i := 0; i < nFronts; i++ {
		cli := newClient(t, endpoint(i))
		srng := rand.New(rand.NewSource(seed + 2000 + int64(i)))
		twg.Add(1)
		go func() { defer twg.Done(); h.runShortWatches(trafficCtx, i, cli, srng, &swMu, &shorts) }()
	}

	sc.fault(trafficCtx, h, rng)
	h.heal()
	twg.Wait()

	// A last write through frontend 0 marks the end: every watcher must
	// reach it.
	final := h.writeMarker(endpoint(0))
	deadline := time.Now().Add(30 * time.Second)
	for _, w := range h.watchers {
		for w.last.Load() < final && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	stopWatch()
	wwg.Wait()
	for _, w := range h.watchers {
		if l := w.last.Load(); l < final {
			h.violation("frontend %d's watcher stopped at revision %d, the last write is at %d (reasons its streams ended: %v)", w.frontend, l, final, w.endReasons)
		}
	}

	// Checks.
	ref := h.checkStreams(final)
	var ops []robustOp
	for _, c := range clients {
		ops = append(ops, c.ops...)
	}
	stats := h.resolveAndAttribute(ops, ref, final)
	for _, sw := range shorts {
		h.checkShortWatch(ref, sw)
	}
	h.checkHistoricalReads(ref, final, rng, endpoint)
	verdict, took := h.checkLinearizable(stats.history)

	var errs []string
	errCount := map[string]int{}
	for _, c := range clients {
		for k, n := range c.errs {
			errCount[k] += n
		}
	}
	for k, n := range errCount {
		errs = append(errs, fmt.Sprintf("%dx %s", n, k))
	}
	sort.Strings(errs)
	var reopens, progress int
	endReasons := map[string]int{}
	for _, w := range h.watchers {
		reopens += w.reopens
		progress += w.progressCount
		for k, n := range w.endReasons {
			endReasons[k] += n
		}
	}
	t.Logf("ROBUST %s: seed %d, %v: %d ops (%d writes: %d acked, %d unknown of which %d applied per watch, %d not applied, %d left open; %d reads), %d revisions, compacted to %d, %d faults, %d frontend restarts; watch: %d events/frontend, %d reopens, %d progress notifications, %d short watches; linearizability %s in %v",
		sc.name, seed, dur, len(ops), stats.writes, stats.ackedWrites, stats.unknown, stats.appliedUnknown, stats.droppedUnknown, stats.openUnknown, stats.reads,
		final-1, h.compacted.Load(), h.faults.Load(), h.restarts, len(ref), reopens, progress, len(shorts), verdict, took.Round(time.Millisecond))
	if len(errs) > 0 {
		t.Logf("  client errors: %s", strings.Join(errs, "; "))
	}
	if len(endReasons) > 0 {
		t.Logf("  watch streams ended by the server: %v", endReasons)
	}
	if verdict == porcupine.Illegal {
		h.violation("the KV history is not linearizable (%s)", h.visualize(stats.history))
	} else if verdict != porcupine.Ok {
		h.violation("the linearizability check did not finish (%s after %v)", verdict, took)
	}
	if h.nViolation > 0 {
		t.Errorf("%d violations in scenario %s (replay: go test ./it/ -run 'TestRobust/%s$' -robust.seed=%d -robust.duration=%v):\n%s",
			h.nViolation, sc.name, sc.name, seed, dur, strings.Join(h.violations, "\n"))
	}
}

// writeMarker writes the end marker, retrying until it is acknowledged.
func (h *robustHarness) writeMarker(endpoint string) int64 {
	cli := newClient(h.t, endpoint)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		r, err := cli.Put(ctx, robustMarkerKey, fmt.Sprintf("end-%d", h.seed))
		cancel()
		if err == nil {
			return r.Header.Revision
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the end marker could not be written after the faults healed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkStreams: every main watcher delivered the same events up to final;
// returns that reference stream. (Order, gaps, duplicates, whole
// revisions, prev_kv and progress were checked as events arrived.)
func (h *robustHarness) checkStreams(final int64) []watchEvent {
	cut := func(evs []watchEvent) []watchEvent {
		n := sort.Search(len(evs), func(i int) bool { return evs[i].rev > final })
		return evs[:n]
	}
	ref := cut(h.watchers[0].events)
	for _, w := range h.watchers[1:] {
		evs := cut(w.events)
		if i, same := sameEvents(ref, evs); !same {
			a, b := "(end)", "(end)"
			if i < len(ref) {
				a = ref[i].String()
			}
			if i < len(evs) {
				b = evs[i].String()
			}
			h.violation("frontend %d's stream differs from frontend 0's at event %d: %s vs %s", w.frontend, i, b, a)
		}
	}
	return ref
}

type robustStats struct {
	history                                                      []porcupine.Operation
	writes, ackedWrites, unknown, appliedUnknown, droppedUnknown int
	openUnknown, reads                                           int
}

// changes reports whether an acknowledged write changed the keyspace.
func changes(op robustOp) bool {
	switch op.in.kind {
	case rPut:
		return true
	case rDelete, rDeleteRange:
		return op.out.deleted > 0
	case rCreate, rUpdate, rCompactCAS:
		return op.out.succeeded
	case rOptDelete:
		return op.out.succeeded && op.out.deleted > 0
	}
	return false
}

// resolveAndAttribute ties the KV history to the reference watch stream:
// every acknowledged write appears at its revision with its key and value;
// every revision is the work of some operation; no value is written twice;
// a write the server answered with Unavailable was not applied; and an
// unknown-outcome write of a (unique) value is resolved by the stream
// (applied at revision R, or not applied at all). It returns the porcupine
// history.
func (h *robustHarness) resolveAndAttribute(ops []robustOp, ref []watchEvent, final int64) robustStats {
	var st robustStats
	byRev := map[int64][]watchEvent{}
	valueRev := map[string]int64{}
	for _, e := range ref {
		byRev[e.rev] = append(byRev[e.rev], e)
		if e.typ == mvccpb.PUT && e.key != robustKeys[compactKeyIdx] && e.key != robustMarkerKey {
			if r, dup := valueRev[e.val]; dup {
				h.violation("value %q was written twice, at revisions %d and %d (a write applied twice)", e.val, r, e.rev)
			}
			valueRev[e.val] = e.rev
		}
	}
	attributed := map[int64]bool{final: true}
	var openUnknown []robustOp
	for _, op := range ops {
		if !op.in.kind.writes() {
			st.reads++
			st.history = append(st.history, h.porcupineOp(op))
			continue
		}
		st.writes++
		if !op.out.unknown {
			st.ackedWrites++
			if op.out.rev > final {
				h.violation("%s answered revision %d, beyond the last revision %d", op.in, op.out.rev, final)
			}
			if changes(op) {
				h.checkWriteEvents(op, byRev[op.out.rev])
				if attributed[op.out.rev] {
					h.violation("revision %d was acknowledged to two writes (%s)", op.out.rev, op.in)
				}
				attributed[op.out.rev] = true
			}
			st.history = append(st.history, h.porcupineOp(op))
			continue
		}
		st.unknown++
		if op.in.kind.putsValue() {
			if r, ok := valueRev[op.in.val]; ok {
				st.appliedUnknown++
				if op.unavailable {
					h.violation("%s was answered %q (nothing committed) but the watch shows it applied at revision %d", op.in, op.out.err, r)
				}
				op.out.knownRev = r
				attributed[r] = true
				st.history = append(st.history, h.porcupineOp(op))
			} else {
				st.droppedUnknown++ // never applied: it is not part of the history
			}
			continue
		}
		st.openUnknown++
		openUnknown = append(openUnknown, op)
		st.history = append(st.history, h.porcupineOp(op))
	}
	// Every other revision must be explained by an operation whose outcome
	// is unknown, each by a different one: a compaction CAS that put its
	// value, or a delete of the keys it removed.
	var revs []int64
	var revEvents [][]watchEvent
	for rev := int64(2); rev <= final; rev++ {
		if attributed[rev] {
			continue
		}
		if len(byRev[rev]) == 0 {
			h.violation("revision %d has no events in the watch stream", rev)
			continue
		}
		revs = append(revs, rev)
		revEvents = append(revEvents, byRev[rev])
	}
	for _, i := range unexplained(openUnknown, revEvents) {
		h.violation("revision %d (%s) was written by no operation the clients issued (%d unknown-outcome ops: %s)",
			revs[i], evLines(revEvents[i]), len(openUnknown), opList(openUnknown))
	}
	return st
}

func opList(ops []robustOp) string {
	var b strings.Builder
	for i, op := range ops {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(op.in.String())
	}
	return b.String()
}

// unexplained assigns each revision (its events) a different op that
// explains it, as many as can be, and returns the indexes of the revisions
// left without one. It is a maximum bipartite matching (augmenting paths):
// taking the first op that fits would wrongly leave a revision unexplained
// when, say, a range delete took a one-key delete's revision although a
// one-key delete op could have explained it instead.
func unexplained(ops []robustOp, revs [][]watchEvent) []int {
	opOf := make([]int, len(ops)) // the revision each op explains, or -1
	for i := range opOf {
		opOf[i] = -1
	}
	var assign func(r int, seen []bool) bool
	assign = func(r int, seen []bool) bool {
		for i, op := range ops {
			if seen[i] || !explains(op, revs[r]) {
				continue
			}
			seen[i] = true
			if opOf[i] < 0 || assign(opOf[i], seen) {
				opOf[i] = r
				return true
			}
		}
		return false
	}
	var left []int
	for r := range revs {
		if !assign(r, make([]bool, len(ops))) {
			left = append(left, r)
		}
	}
	return left
}

// explains reports whether an unknown-outcome op could have produced evs.
func explains(op robustOp, evs []watchEvent) bool {
	switch op.in.kind {
	case rCompactCAS:
		return len(evs) == 1 && evs[0].typ == mvccpb.PUT && evs[0].key == robustKeys[compactKeyIdx] && evs[0].val == op.in.val
	case rDelete, rOptDelete:
		return len(evs) == 1 && evs[0].typ == mvccpb.DELETE && evs[0].key == robustKeys[op.in.key]
	case rDeleteRange:
		for _, e := range evs {
			if e.typ != mvccpb.DELETE || !strings.HasPrefix(e.key, robustPrefixRange) {
				return false
			}
		}
		return true
	}
	return false
}

// checkWriteEvents: an acknowledged write's revision carries exactly its
// events.
func (h *robustHarness) checkWriteEvents(op robustOp, evs []watchEvent) {
	key := robustKeys[op.in.key]
	bad := false
	switch op.in.kind {
	case rPut, rCreate, rUpdate, rCompactCAS:
		bad = len(evs) != 1 || evs[0].typ != mvccpb.PUT || evs[0].key != key || evs[0].val != op.in.val
	case rDelete, rOptDelete:
		bad = len(evs) != 1 || evs[0].typ != mvccpb.DELETE || evs[0].key != key
	case rDeleteRange:
		bad = int64(len(evs)) != op.out.deleted
		for _, e := range evs {
			bad = bad || e.typ != mvccpb.DELETE || !strings.HasPrefix(e.key, robustPrefixRange)
		}
	}
	if bad {
		h.violation("%s was acknowledged at revision %d, whose events are:%s", op.in, op.out.rev, evLines(evs))
	}
}

const robustInfinity = math.MaxInt64 / 2

func (h *robustHarness) porcupineOp(op robustOp) porcupine.Operation {
	ret := op.ret
	if op.out.unknown {
		ret = robustInfinity
	}
	return porcupine.Operation{ClientId: op.client, Input: op.in, Call: op.call, Output: op.out, Return: ret}
}

func (h *robustHarness) checkLinearizable(history []porcupine.Operation) (porcupine.CheckResult, time.Duration) {
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(robustModel, history, 3*time.Minute)
	h.lastInfo = info
	return res, time.Since(start)
}

// visualize writes porcupine's HTML visualization of the history and
// returns where.
func (h *robustHarness) visualize(history []porcupine.Operation) string {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("ignetcd-robust-%s-%d.html", h.sc.name, h.seed))
	if err := porcupine.VisualizePath(robustModel, h.lastInfo, path); err != nil {
		return "visualization failed: " + err.Error()
	}
	return "visualization: " + path
}

// checkHistoricalReads reads the whole keyspace at past revisions above the
// compaction on every frontend and compares with the state the reference
// stream gives.
func (h *robustHarness) checkHistoricalReads(ref []watchEvent, final int64, rng *rand.Rand, endpoint func(int) string) {
	lo := h.compacted.Load() + 1
	if lo < 2 {
		lo = 2
	}
	revs := []int64{final}
	for i := 0; i < 8 && lo <= final; i++ {
		revs = append(revs, lo+rng.Int63n(final-lo+1))
	}
	for i := range h.fronts {
		cli := newClient(h.t, endpoint(i))
		for _, rev := range revs {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			r, err := cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(rev))
			cancel()
			if err != nil {
				h.violation("frontend %d: read at revision %d: %v", i, rev, err)
				continue
			}
			want := stateAt(ref, rev)
			got := map[string]mKV{}
			for _, kv := range r.Kvs {
				got[string(kv.Key)] = kvOf(kv)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				h.violation("frontend %d: the keyspace at revision %d reads %v, the watch stream gives %v", i, rev, got, want)
			}
		}
	}
}
