// Package it holds ignetcd's integration tests.
//
// # Differential suite (TestDifferential)
//
// A real etcd (the reference, [etcdbin.StartEtcd], v3.6.16) and the subject
// ([startSubject], in subject_test.go) receive the same randomized, seeded
// sequence of operations through clientv3's gRPC connection and the raw
// etcdserverpb stubs (so every request field can be set and every response
// field is seen). Every observable field of every response, every error
// (gRPC code and message) and every watch event must be equal; only
// header.cluster_id, member_id and raft_term are ignored.
//
// Each sequence (one seed) gets a FRESH server pair: etcd with
// --unsafe-no-fsync and a 100ms election timeout is healthy in ~0.1s, and
// fresh servers keep revisions, compaction points and lease state identical,
// so all comparisons (including header.revision) are exact and a seed can be
// replayed alone (op i of a seed is the same for any -diff.ops > i).
//
// Operations (diff_gen_test.go) run over a tiny key space ("a", "a/1", "a/2",
// "a/2/x", "ab", "b", "b\x00", "b/1", "c", "\x00", "\xff", "\xff\xff"; one
// sequence in four adds "d/0".."d/9" so that sorted ranges exceed 12 KVs) so
// they collide: Put (prev_kv, ignore_value/ignore_lease, leases), DeleteRange
// (single, range, prefix, from-key), Range (limit, count_only, keys_only,
// sorting, serializable, past/compacted/future/negative revisions, min/max
// mod/create revision), Txn (compares on every target with every operator,
// with range_end; nested txns; duplicate keys; >128 ops), Compact (physical or
// not, compacted and future revisions), LeaseGrant (client-chosen IDs, long
// TTLs, too-large TTL), LeaseRevoke, LeaseTimeToLive, LeaseLeases,
// LeaseKeepAlive (one request per stream), oversized requests, empty keys.
// The generator only looks at the reference's responses, so a seed always
// yields the same operations.
//
// Watches (diff_watch_test.go): every sequence starts with 1-3 watch streams
// and opens more mid-sequence ("live": start_revision 0, 1-3 watches, some
// with explicit or duplicate watch_id or an empty range; "past":
// start_revision in the past, maybe compacted or negative; "future"). Each
// create is sent to both servers and the created responses are compared
// immediately. Watches are canceled mid-sequence, and the full histories are
// compared at watch-sync ops and at the end. Events are compared flattened per
// watch (type, kv, prev_kv, plus cancel/compaction responses), since batching
// of events into responses is not part of the contract; header.revision of
// event batches is compared where the batches line up.
//
// Determinism needs a barrier: "all events up to revision R have been
// delivered". The harness sends WatchProgressRequests until a progress
// notification (watch_id -1) with header.revision >= R arrives. It uses this
// barrier after opening a "past" watch (so a later Compact cannot race with
// its catch-up), before every Compact (prev_kv of undelivered events would be
// read from compacted history), before canceling a watch (undelivered events
// would be dropped) and before comparing histories. The subject must
// therefore answer progress requests like etcd: only when every watch on the
// stream is synced, and ordered after all earlier events.
//
// Tolerances (normalization, diff_exec_test.go): LeaseTimeToLive.TTL (time
// remaining) may differ by up to 2s; LeaseTimeToLive.keys and
// LeaseLeases.leases are compared as sets (etcd's order is random / by
// expiry time). Nothing else is tolerated.
//
// Running:
//
//	go test ./it/ -run TestDifferential -v                # default: seeds 1..25, 100 ops each
//	go test ./it/ -run TestDifferential -diff.seeds=200 -diff.ops=300 -diff.base=1000
//	go test ./it/ -run TestDifferential -diff.seed=17 -diff.ops=300  # replay one seed
//
// or IGNETCD_DIFF_SEEDS, IGNETCD_DIFF_OPS, IGNETCD_DIFF_SEED, IGNETCD_DIFF_BASE
// (first seed of a multi-seed run, default 1). IGNETCD_DIFF_LOGDIR=dir writes
// every sequence's op log there, passing or not. On a mismatch the test fails
// with the seed, the op index, the op and both results, and writes the whole
// op log (every op with both results) to a file named in the failure.
package it

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/ignetcd/ignetcd/it/etcdbin"
)

var (
	flagSeeds = flag.Int("diff.seeds", envInt("IGNETCD_DIFF_SEEDS", 25), "differential: number of sequences (seeds base..base+N-1)")
	flagOps   = flag.Int("diff.ops", envInt("IGNETCD_DIFF_OPS", 100), "differential: operations per sequence")
	flagSeed  = flag.Int64("diff.seed", int64(envInt("IGNETCD_DIFF_SEED", 0)), "differential: run only this seed (0 = use -diff.seeds)")
	flagBase  = flag.Int64("diff.base", int64(envInt("IGNETCD_DIFF_BASE", 1)), "differential: first seed")
)

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func TestDifferential(t *testing.T) {
	seeds := []int64{}
	if *flagSeed != 0 {
		seeds = append(seeds, *flagSeed)
	} else {
		for i := 0; i < *flagSeeds; i++ {
			seeds = append(seeds, *flagBase+int64(i))
		}
	}
	stats, totalWatchItems = map[string]*opStat{}, 0
	etcdbin.Etcd(t) // build (once) outside the per-seed timings
	start := time.Now()
	total := 0
	for _, seed := range seeds {
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			total += runSequence(t, seed, *flagOps)
		})
		if !ok {
			break // one mismatch is enough to read
		}
	}
	t.Logf("%d sequences, %d operations in %v", len(seeds), total, time.Since(start).Round(time.Millisecond))
	logStats(t)
}

// harness drives one sequence against both servers.
type harness struct {
	t       *testing.T
	seed    int64
	ref     *side
	sub     *side
	g       *gen
	st      genState
	streams []*wstream
	log     strings.Builder
	idx     int // current op index
}

// opStat aggregates, per operation name, counts and time over a test run.
type opStat struct {
	n, errs int
	dur     time.Duration
}

var (
	stats           = map[string]*opStat{}
	watchItems      int // watch history items compared by the latest watch-sync
	totalWatchItems int // sum over sequences of the final watch-sync's items
)

func statFor(name string) *opStat {
	s := stats[name]
	if s == nil {
		s = &opStat{}
		stats[name] = s
	}
	return s
}

func logStats(t *testing.T) {
	names := make([]string, 0, len(stats))
	for n := range stats {
		names = append(names, n)
	}
	sort.Strings(names)
	var sb strings.Builder
	for _, n := range names {
		s := stats[n]
		fmt.Fprintf(&sb, "\n  %-32s n=%-5d etcd-errors=%-5d time=%v", n, s.n, s.errs, s.dur.Round(time.Millisecond))
	}
	t.Logf("watch events/control responses compared at the end of sequences: %d; operations:%s", totalWatchItems, sb.String())
}

func runSequence(t *testing.T, seed int64, nops int) int {
	refEP := etcdbin.StartEtcd(t)
	subEP := startSubject(t)
	h := &harness{t: t, seed: seed, g: newGen(seed)}
	var err error
	if h.ref, err = newSide("etcd", refEP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.ref.cli.Close() })
	if h.sub, err = newSide("subject", subEP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.sub.cli.Close() })
	t.Cleanup(h.closeStreams)
	fmt.Fprintf(&h.log, "seed %d: etcd %s, subject %s\n", seed, refEP, subEP)

	// Fresh servers start at revision 1.
	h.st.rev = 1
	h.ref.curRev, h.sub.curRev = 1, 1

	// Initial watches, created before any write.
	n := 1 + h.g.r.IntN(3)
	ops := 0
	for i := 0; i < n; i++ {
		o := h.g.watchOpen(&h.st)
		h.apply(o)
		ops++
	}
	for i := 0; i < nops; i++ {
		h.apply(h.g.next(&h.st))
		ops++
	}
	watchItems = 0
	h.apply(&op{kind: opWatchSync})
	totalWatchItems += watchItems
	if dir := os.Getenv("IGNETCD_DIFF_LOGDIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d.log", seed)), []byte(h.log.String()), 0o644); err != nil {
			t.Log(err)
		}
	}
	return ops + 1
}

func (h *harness) closeStreams() {
	for _, st := range h.streams {
		st.ref.cancel()
		st.sub.cancel()
	}
}

// fail reports a mismatch (or harness error) at the current op and writes the
// op log to a file.
func (h *harness) fail(o *op, format string, args ...any) {
	h.t.Helper()
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(&h.log, "MISMATCH at op %d: %s\n", h.idx, msg)
	logPath := "(could not write log)"
	if dir, err := os.MkdirTemp("", "ignetcd-diff-"); err == nil {
		p := filepath.Join(dir, fmt.Sprintf("seed-%d.log", h.seed))
		if os.WriteFile(p, []byte(h.log.String()), 0o644) == nil {
			logPath = p
		}
	}
	h.t.Fatalf("differential mismatch: seed=%d op #%d: %s\n%s\n(expected = etcd, got = subject)\nfull op log: %s\nreplay: go test ./it/ -run TestDifferential -args -diff.seed=%d -diff.ops=%d",
		h.seed, h.idx, o, msg, logPath, h.seed, *flagOps)
}

func (h *harness) apply(o *op) {
	h.t.Helper()
	name := string(o.kind)
	if o.kind == opKV {
		name = strings.TrimPrefix(fmt.Sprintf("%T", o.req), "*etcdserverpb.")
	} else if o.kind == opWatchOpen {
		name += "/" + o.wkind
	}
	stat := statFor(name)
	stat.n++
	began := time.Now()
	defer func() { h.idx++; stat.dur += time.Since(began) }()
	fmt.Fprintf(&h.log, "#%d %s\n", h.idx, o)
	switch o.kind {
	case opKV:
		if _, ok := o.req.(*pb.CompactionRequest); ok {
			// prev_kv of events not yet delivered would be read from
			// compacted history: deliver everything first.
			h.barrierAll(o)
		}
		rr, re := h.ref.call(o.req)
		rText := resultText(rr, re)
		if isTransportErr(re) {
			fmt.Fprintf(&h.log, "    etcd:    %s\n", rText)
			h.fail(o, "the reference etcd failed (crashed? its log follows if it did): %s\n"+
				"This is an etcd bug or a harness problem; the generator must avoid this request.", rText)
		}
		sr, se := h.sub.call(o.req)
		sText := resultText(sr, se)
		fmt.Fprintf(&h.log, "    etcd:    %s\n    subject: %s\n", rText, sText)
		if isTransportErr(se) {
			h.fail(o, "the subject failed (crashed or hung?):\n  expected: %s\n  got:      %s", rText, sText)
		}
		if !sameResult(rr, re, sr, se) {
			h.fail(o, "\n  expected: %s\n  got:      %s", rText, sText)
		}
		if re != nil {
			stat.errs++
		}
		h.observe(o.req, rr, re)
	case opWatchOpen:
		h.watchOpen(o)
	case opWatchCancel:
		h.watchCancel(o)
	case opWatchSync:
		h.barrierAll(o)
		h.compareWatches(o)
	}
}

// observe updates the generator's view from the reference response.
func (h *harness) observe(req, resp any, err error) {
	if hd := headerOf(resp); hd != nil && hd.Revision > h.st.rev {
		h.st.rev = hd.Revision
	}
	if err != nil {
		return
	}
	switch r := req.(type) {
	case *pb.CompactionRequest:
		h.st.compact = r.Revision
	case *pb.LeaseGrantRequest:
		h.st.leases = append(h.st.leases, resp.(*pb.LeaseGrantResponse).ID)
	case *pb.LeaseRevokeRequest:
		h.st.leases = slices.DeleteFunc(h.st.leases, func(id int64) bool { return id == r.ID })
	}
}

func (h *harness) watchOpen(o *op) {
	st := &wstream{idx: len(h.streams), kind: o.wkind}
	var err error
	if st.ref, err = openWatch(h.ref); err != nil {
		h.fail(o, "%v", err)
	}
	if st.sub, err = openWatch(h.sub); err != nil {
		st.ref.cancel()
		h.fail(o, "%v", err)
	}
	h.streams = append(h.streams, st)
	h.st.streams++
	for i, c := range o.creates {
		rr, err := st.ref.create(c)
		if err != nil {
			h.fail(o, "watch #%d: %v", i, err)
		}
		sr, err := st.sub.create(c)
		if err != nil {
			h.fail(o, "watch #%d: %v", i, err)
		}
		rText, sText := clip(rr.String()), clip(sr.String())
		fmt.Fprintf(&h.log, "    watch #%d created: etcd: %s\n                     subject: %s\n", i, rText, sText)
		if !bytesEqual(wire(rr), wire(sr)) {
			h.fail(o, "watch #%d created response:\n  expected: %s\n  got:      %s", i, rText, sText)
		}
		if !rr.Canceled {
			h.st.live = append(h.st.live, liveWatch{stream: st.idx, id: rr.WatchId})
		}
	}
	if o.wkind == "past" {
		// Let the catch-up finish so that a later Compact cannot race with it.
		h.barrier(o, st)
		h.dropDeadWatches()
	}
}

func (h *harness) watchCancel(o *op) {
	st := h.streams[o.stream]
	h.barrier(o, st)
	rr, err := st.ref.cancelWatch(o.watchID)
	if err != nil {
		h.fail(o, "%v", err)
	}
	sr, err := st.sub.cancelWatch(o.watchID)
	if err != nil {
		h.fail(o, "%v", err)
	}
	rText, sText := clip(rr.String()), clip(sr.String())
	fmt.Fprintf(&h.log, "    etcd:    %s\n    subject: %s\n", rText, sText)
	if !bytesEqual(wire(rr), wire(sr)) {
		h.fail(o, "canceled response:\n  expected: %s\n  got:      %s", rText, sText)
	}
	h.dropDeadWatches()
}

// dropDeadWatches recomputes the generator's list of live watches from the
// reference streams.
func (h *harness) dropDeadWatches() {
	h.st.live = h.st.live[:0]
	for _, st := range h.streams {
		st.ref.mu.Lock()
		for _, ws := range st.ref.liveWatchesLocked() {
			h.st.live = append(h.st.live, liveWatch{stream: st.idx, id: ws.created.WatchId})
		}
		st.ref.mu.Unlock()
	}
}

func (h *harness) barrier(o *op, st *wstream) {
	if err := st.ref.barrier(); err != nil {
		h.fail(o, "stream %d: %v", st.idx, err)
	}
	if err := st.sub.barrier(); err != nil {
		h.fail(o, "stream %d: %v", st.idx, err)
	}
}

func (h *harness) barrierAll(o *op) {
	for _, st := range h.streams {
		h.barrier(o, st)
	}
	h.dropDeadWatches()
}

func (h *harness) compareWatches(o *op) {
	items := 0
	for _, st := range h.streams {
		msg, n := compareWatchHistories(st, &h.log)
		if msg != "" {
			h.fail(o, "%s", msg)
		}
		items += n
	}
	watchItems = items
	fmt.Fprintf(&h.log, "    watch histories equal (%d streams, %d events/control responses)\n", len(h.streams), items)
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }
