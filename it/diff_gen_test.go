package it

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// ---- operations ------------------------------------------------------------

// opKind names one kind of differential operation.
type opKind string

const (
	opKV          opKind = "kv"           // unary KV or Lease RPC; req holds the request
	opWatchOpen   opKind = "watch-open"   // open a watch stream with one or more watches
	opWatchCancel opKind = "watch-cancel" // barrier, then cancel one live watch
	opWatchSync   opKind = "watch-sync"   // barrier on every stream, compare all events so far
)

// op is one step of a sequence. Everything it needs is in the struct, so the
// log shows exactly what was sent.
type op struct {
	kind opKind
	req  any // *pb.PutRequest, ... for opKV

	// watch-open: a new stream (index = number of streams opened before).
	wkind   string // "live", "past" or "future" (see watchKinds)
	creates []*pb.WatchCreateRequest

	// watch-cancel
	stream  int
	watchID int64
}

func (o *op) String() string {
	switch o.kind {
	case opKV:
		return fmt.Sprintf("%T %s", o.req, clip(textOf(o.req)))
	case opWatchOpen:
		var parts []string
		for _, c := range o.creates {
			parts = append(parts, "{"+clip(textOf(c))+"}")
		}
		return fmt.Sprintf("watch-open(%s) %s", o.wkind, strings.Join(parts, " "))
	case opWatchCancel:
		return fmt.Sprintf("watch-cancel stream=%d watch_id=%d", o.stream, o.watchID)
	default:
		return string(o.kind)
	}
}

// ---- generator -----------------------------------------------------------

// genState is what the generator knows about the server, derived from the
// REFERENCE responses only (so a replay of a seed regenerates the same ops).
type genState struct {
	rev     int64 // latest header.revision seen
	compact int64 // latest successful compaction revision (0 = none)
	streams int   // watch streams opened so far
	live    []liveWatch
	leases  []int64 // granted and not revoked, in grant order
	inTxn   bool    // generating txn sub-operations: fewer invalid requests
}

type liveWatch struct {
	stream int
	id     int64
}

// A deliberately tiny key space with shared prefixes and edge bytes, so that
// puts, deletes, ranges, compares and watches keep colliding.
var diffKeys = []string{
	"a", "a/1", "a/2", "a/2/x", "ab", "b", "b\x00", "b/1", "c", "\x00", "\xff", "\xff\xff",
}

var diffValues = []string{"", "v", "v1", "v2", "\x00\xff", strings.Repeat("x", 300)}

// Client-chosen lease IDs (ID 0 would make the server pick a random one).
var diffLeases = []int64{1, 2, 3, 42, 1 << 40, 0x7fffffffffffffff}

// One sequence in four adds these keys, so that ranges return more than 12
// KVs: Go's sort.Sort, which etcd uses for sort_target != KEY, is an insertion
// sort (stable) up to 12 elements and pdqsort (unstable, but deterministic)
// above, which decides the order of ties.
var diffWideKeys = []string{"d/0", "d/1", "d/2", "d/3", "d/4", "d/5", "d/6", "d/7", "d/8", "d/9"}

type gen struct {
	r    *rand.Rand
	keys []string
}

func newGen(seed int64) *gen {
	g := &gen{r: rand.New(rand.NewPCG(uint64(seed), 0x1d1f_e7cd)), keys: diffKeys}
	if g.pct(25) {
		g.keys = append(append([]string(nil), diffKeys...), diffWideKeys...)
	}
	return g
}

func (g *gen) pct(p int) bool { return g.r.IntN(100) < p }
func (g *gen) key() []byte    { return []byte(g.keys[g.r.IntN(len(g.keys))]) }
func (g *gen) value() []byte  { return []byte(diffValues[g.r.IntN(len(diffValues))]) }
func (g *gen) leaseID() int64 { return diffLeases[g.r.IntN(len(diffLeases))] }

// existingLease mostly picks a granted lease, so puts and revokes succeed.
func (g *gen) existingLease(s *genState) int64 {
	if len(s.leases) > 0 && g.pct(80) {
		return s.leases[g.r.IntN(len(s.leases))]
	}
	return g.leaseID()
}
func (g *gen) between(a, b int64) int64 { // inclusive; a<=b
	if b <= a {
		return a
	}
	return a + g.r.Int64N(b-a+1)
}

func prefixEnd(k []byte) []byte {
	end := append([]byte(nil), k...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0} // all keys >= k
}

// keyRange returns a key and range_end: single key, prefix, from-key
// ("\x00"), an arbitrary other key (maybe < key: empty range), or odd ends.
func (g *gen) keyRange() ([]byte, []byte) {
	k := g.key()
	switch n := g.r.IntN(100); {
	case n < 40:
		return k, nil
	case n < 60:
		return k, prefixEnd(k)
	case n < 68:
		return k, []byte{0}
	case n < 72:
		return []byte{0}, []byte{0} // everything
	case n < 76:
		return []byte("a/"), prefixEnd([]byte("a/"))
	case n < 92:
		return k, g.key()
	default:
		odd := []string{"a0", "b", "\xff\xff\xff", "\x01", "a/1\x00"}
		return k, []byte(odd[g.r.IntN(len(odd))])
	}
}

// revision picks a read revision: current, a valid past one, the compaction
// point, a compacted one, a future one or a negative one.
func (g *gen) revision(s *genState) int64 {
	n := g.r.IntN(100)
	switch {
	case n < 50:
		return 0
	case n < 80 && n >= 75 && s.compact > 0:
		return s.compact
	case n < 87 && n >= 80 && s.compact > 1:
		return g.between(1, s.compact-1)
	case n < 87:
		return g.between(max(1, s.compact), s.rev)
	case n < 95:
		return s.rev + g.between(1, 3)
	default:
		return -g.between(1, 2)
	}
}

func (g *gen) put(s *genState) *pb.PutRequest {
	r := &pb.PutRequest{Key: g.key(), Value: g.value(), PrevKv: g.pct(50)}
	if g.pct(25) {
		r.Lease = g.existingLease(s)
	}
	ign := 8
	if s.inTxn {
		ign = 3
	}
	if g.pct(ign) {
		r.IgnoreValue = true
		if g.pct(70) {
			r.Value = nil
		}
	}
	if g.pct(ign) {
		r.IgnoreLease = true
		if g.pct(70) {
			r.Lease = 0
		}
	}
	if g.pct(2) && !s.inTxn {
		r.Key = nil // "key is not provided"
	}
	return r
}

func (g *gen) rangeReq(s *genState) *pb.RangeRequest {
	k, end := g.keyRange()
	r := &pb.RangeRequest{Key: k, RangeEnd: end}
	if g.pct(30) {
		r.Limit = g.between(1, 3)
	} else if g.pct(3) {
		r.Limit = -1
	}
	r.CountOnly = g.pct(10)
	r.KeysOnly = g.pct(10)
	r.Serializable = g.pct(20)
	if g.pct(30) {
		r.SortOrder = pb.RangeRequest_SortOrder(g.r.IntN(3))
		r.SortTarget = pb.RangeRequest_SortTarget(g.r.IntN(5))
	}
	if !s.inTxn || g.pct(20) {
		r.Revision = g.revision(s)
	}
	if g.pct(10) {
		r.MinModRevision = g.between(0, s.rev)
	}
	if g.pct(10) {
		r.MaxModRevision = g.between(0, s.rev)
	}
	if g.pct(10) {
		r.MinCreateRevision = g.between(0, s.rev)
	}
	if g.pct(10) {
		r.MaxCreateRevision = g.between(0, s.rev)
	}
	if g.pct(2) && !s.inTxn {
		r.Key = nil
	}
	return r
}

func (g *gen) deleteReq(s *genState) *pb.DeleteRangeRequest {
	k, end := g.keyRange()
	r := &pb.DeleteRangeRequest{Key: k, RangeEnd: end, PrevKv: g.pct(50)}
	if g.pct(2) && !s.inTxn {
		r.Key = nil
	}
	return r
}

func (g *gen) compare(s *genState) *pb.Compare {
	c := &pb.Compare{Key: g.key()}
	if g.pct(15) {
		_, c.RangeEnd = g.keyRange()
		if c.RangeEnd == nil {
			c.RangeEnd = prefixEnd(c.Key)
		}
	}
	c.Result = pb.Compare_CompareResult(g.r.IntN(4))
	c.Target = pb.Compare_CompareTarget(g.r.IntN(5))
	target := c.Target
	if g.pct(3) { // union not matching the target
		target = pb.Compare_CompareTarget(g.r.IntN(5))
	}
	switch target {
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: g.between(0, 3)}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: g.between(0, s.rev+1)}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: g.between(0, s.rev+1)}
	case pb.Compare_VALUE:
		c.TargetUnion = &pb.Compare_Value{Value: g.value()}
	case pb.Compare_LEASE:
		if g.pct(30) {
			c.TargetUnion = &pb.Compare_Lease{Lease: 0}
		} else {
			c.TargetUnion = &pb.Compare_Lease{Lease: g.leaseID()}
		}
	}
	if g.pct(1) {
		c.TargetUnion = nil
	}
	return c
}

// requestOp generates one txn operation. Unless txn.dups, a write whose
// key range overlaps an earlier write of the same request is turned into a
// range, since etcd rejects those ("duplicate key given in txn request") and
// we want most transactions to execute.
func (g *gen) requestOp(s *genState, t *txnGen, depth int) *pb.RequestOp {
	rangeOp := func() *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: g.rangeReq(s)}}
	}
	switch n := g.r.IntN(100); {
	case n < 30:
		return rangeOp()
	case n < 65:
		p := g.put(s)
		if !t.claim(p.Key, nil) {
			return rangeOp()
		}
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: p}}
	case n < 85 || depth >= 2:
		d := g.deleteReq(s)
		if !t.claim(d.Key, d.RangeEnd) {
			return rangeOp()
		}
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: d}}
	default:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: g.txnAt(s, t, depth+1)}}
	}
}

// txnGen tracks the key intervals written by the txn being generated.
type txnGen struct {
	dups   bool // allow overlapping writes (to hit the duplicate-key error)
	writes []claimed
}

// About from-key deletes (range_end "\x00"): etcd's duplicate check
// (checkIntervals) treats [key, "\x00") as an empty interval, so etcd 3.6.16
// accepts a txn that deletes from-key and also puts a key in that range. What
// follows is broken in etcd: with ignore_value/ignore_lease the put fails at
// apply time and etcd panics ("unexpected error during txn with writes");
// without, the key index gets a delete and a put at the same main revision,
// and a later compaction plus a read at an old revision makes etcd exit
// ("range failed to find revision pair"). The generator never overlaps a
// from-key delete with another write of the same txn.

// claim records a write of [key, end) and reports whether it is allowed.
// end nil = single key; end "\x00" = to infinity. Overlaps are refused
// unless t.dups, and always when a from-key delete is involved (see the
// note above).
func (t *txnGen) claim(key, end []byte) bool {
	lo, hi := key, end
	fromKey := false
	if len(hi) == 0 {
		hi = append(append([]byte(nil), key...), 0)
	} else if len(hi) == 1 && hi[0] == 0 {
		hi, fromKey = nil, true // infinity
	}
	for _, w := range t.writes {
		if t.dups && !fromKey && !w.fromKey {
			continue
		}
		if (w.hi == nil || bytes.Compare(lo, w.hi) < 0) && (hi == nil || bytes.Compare(w.lo, hi) < 0) {
			return false
		}
	}
	t.writes = append(t.writes, claimed{lo, hi, fromKey})
	return true
}

type claimed struct {
	lo, hi  []byte // hi nil: infinity
	fromKey bool
}

func (g *gen) txn(s *genState, depth int) *pb.TxnRequest {
	s.inTxn = true
	defer func() { s.inTxn = false }()
	return g.txnAt(s, &txnGen{dups: g.pct(10)}, depth)
}

func (g *gen) txnAt(s *genState, tg *txnGen, depth int) *pb.TxnRequest {
	t := &pb.TxnRequest{}
	for i, n := 0, g.r.IntN(4); i < n; i++ {
		t.Compare = append(t.Compare, g.compare(s))
	}
	for i, n := 0, g.r.IntN(5); i < n; i++ {
		t.Success = append(t.Success, g.requestOp(s, tg, depth))
	}
	for i, n := 0, g.r.IntN(4); i < n; i++ {
		t.Failure = append(t.Failure, g.requestOp(s, tg, depth))
	}
	if depth == 0 && g.pct(1) { // too many operations (default --max-txn-ops=128)
		for i := 0; i < 129; i++ {
			t.Success = append(t.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: g.key()}}})
		}
	}
	return t
}

func (g *gen) compact(s *genState) *pb.CompactionRequest {
	r := &pb.CompactionRequest{Physical: g.pct(30)}
	switch n := g.r.IntN(100); {
	case n < 75:
		r.Revision = g.between(s.compact+1, s.rev)
	case n < 82:
		r.Revision = s.compact // already compacted (or 0)
	case n < 88 && s.compact > 1:
		r.Revision = g.between(1, s.compact-1)
	case n < 88:
		r.Revision = g.between(s.compact+1, s.rev)
	default:
		r.Revision = s.rev + g.between(1, 2)
	}
	return r
}

func (g *gen) leaseGrant() *pb.LeaseGrantRequest {
	// TTLs are long enough that nothing expires during a sequence;
	// MaxLeaseTTL+1 is rejected.
	ttls := []int64{3600, 3600, 7200, 86400, 9000000000, 9000000001}
	return &pb.LeaseGrantRequest{ID: g.leaseID(), TTL: ttls[g.r.IntN(len(ttls))]}
}

// watchCreate returns a create request. kind: "live" (start_revision 0),
// "past" (start_revision <= current, maybe compacted or negative), "future".
func (g *gen) watchCreate(s *genState, kind string) *pb.WatchCreateRequest {
	k, end := g.key(), []byte(nil)
	switch n := g.r.IntN(100); {
	case n < 35:
	case n < 65:
		end = prefixEnd(k)
	case n < 80:
		end = []byte{0}
	case n < 90:
		k, end = []byte{0}, []byte{0}
	default:
		k, end = []byte("a/"), prefixEnd([]byte("a/"))
	}
	w := &pb.WatchCreateRequest{Key: k, RangeEnd: end, PrevKv: g.pct(40)}
	if g.pct(15) {
		w.Filters = append(w.Filters, pb.WatchCreateRequest_NOPUT)
	} else if g.pct(15) {
		w.Filters = append(w.Filters, pb.WatchCreateRequest_NODELETE)
	}
	switch kind {
	case "past":
		switch n := g.r.IntN(100); {
		case n < 35 && s.compact > 1:
			w.StartRevision = g.between(1, s.compact-1) // compacted
		case n < 90:
			w.StartRevision = g.between(max(1, s.compact), s.rev)
		case n < 95:
			w.StartRevision = 1
		default:
			w.StartRevision = -1 // rejected at creation
		}
	case "future":
		w.StartRevision = s.rev + g.between(1, 6)
	}
	return w
}

// next generates the next operation.
func (g *gen) next(s *genState) *op {
	kv := func(req any) *op { return &op{kind: opKV, req: req} }
	switch n := g.r.IntN(1000); {
	case n < 250:
		return kv(g.put(s))
	case n < 450:
		return kv(g.rangeReq(s))
	case n < 550:
		return kv(g.deleteReq(s))
	case n < 740:
		return kv(g.txn(s, 0))
	case n < 770:
		return kv(g.compact(s))
	case n < 830:
		return kv(g.leaseGrant())
	case n < 860:
		return kv(&pb.LeaseRevokeRequest{ID: g.existingLease(s)})
	case n < 895:
		return kv(&pb.LeaseTimeToLiveRequest{ID: g.existingLease(s), Keys: g.pct(70)})
	case n < 905:
		return kv(&pb.LeaseLeasesRequest{})
	case n < 910:
		return kv(&pb.LeaseKeepAliveRequest{ID: g.existingLease(s)})
	case n < 945:
		return g.watchOpen(s)
	case n < 960 && len(s.live) > 0:
		lw := s.live[g.r.IntN(len(s.live))]
		return &op{kind: opWatchCancel, stream: lw.stream, watchID: lw.id}
	case n < 985:
		return &op{kind: opWatchSync}
	case n < 987:
		return kv(g.put(s))
	case n < 990:
		// Over --max-request-bytes (1.5 MiB): "etcdserver: request is too large".
		return kv(&pb.PutRequest{Key: g.key(), Value: make([]byte, 1600*1024)})
	default:
		return kv(g.put(s))
	}
}

// watchOpen opens a new stream. "live" streams hold 1-3 watches (sometimes
// with explicit or duplicate watch_id, sometimes invalid); "past" and
// "future" streams hold exactly one watch, because etcd answers a progress
// request (our barrier) only when every watch of the stream is synced and
// its start_revision reached.
func (g *gen) watchOpen(s *genState) *op {
	o := &op{kind: opWatchOpen}
	switch n := g.r.IntN(100); {
	case n < 50:
		o.wkind = "live"
	case n < 85:
		o.wkind = "past"
	default:
		o.wkind = "future"
	}
	if o.wkind != "live" {
		o.creates = []*pb.WatchCreateRequest{g.watchCreate(s, o.wkind)}
		return o
	}
	for i, n := 0, 1+g.r.IntN(3); i < n; i++ {
		c := g.watchCreate(s, "live")
		if g.pct(15) {
			c.WatchId = g.between(0, 3) // may duplicate an auto-assigned id
		}
		if g.pct(4) {
			c.Key, c.RangeEnd = []byte("b"), []byte("a") // empty range: rejected
		}
		o.creates = append(o.creates, c)
	}
	return o
}

// ---- formatting helpers ------------------------------------------------------

type texter interface{ String() string }

func textOf(m any) string {
	if m == nil {
		return "<nil>"
	}
	if t, ok := m.(texter); ok {
		return t.String()
	}
	return fmt.Sprintf("%+v", m)
}

func clip(s string) string {
	const maxLen = 3000
	if len(s) > maxLen {
		return s[:maxLen] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

func eventText(e *mvccpb.Event) string { return clip(e.String()) }
