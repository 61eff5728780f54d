package mvcc

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The node's writes go through one writer goroutine that groups whatever
// requests are pending into one pessimistic engine transaction (group
// commit, design brief section 3): one counter lock, one bulk read of the
// keys they touch, one bulk write. Each request still gets its own revision,
// in arrival order, and sees the effects of the requests before it in the
// group; a request that fails (a failed check, not a failed compare, which
// is a successful request) is dropped from the group alone; if the engine
// transaction fails, every request of the group fails and nothing is
// applied. A lone request is never delayed: the writer takes what is queued
// when it is free, and no more.

// maxGroup bounds how many requests share one engine transaction.
const maxGroup = 256

// groupTimeout bounds one group's engine transaction.
const groupTimeout = 30 * time.Second

// feedWaitLimit bounds how long a group waits for its node's feed to reach
// the locked counter before it gives up (nothing applied, Unavailable).
const feedWaitLimit = 2 * time.Second

// writeReq is one request waiting for the writer.
type writeReq struct {
	ctx context.Context
	// solo requests run in a group of their own: they write other tables
	// directly (lease revoke, compaction) or read history at revisions a
	// group may not have committed yet.
	solo bool
	fn   func(v *txnView) error
	view *txnView
	err  error
	done chan struct{}
}

// update queues fn for the writer and waits for its group to commit. If ctx
// ends first, the request may or may not be applied, as with an etcd
// request that times out.
func (s *Store) update(ctx context.Context, solo bool, fn func(v *txnView) error) (*txnView, error) {
	return s.submit(ctx, &writeReq{ctx: ctx, solo: solo, fn: fn, done: make(chan struct{})})
}

func (s *Store) submit(ctx context.Context, req *writeReq) (*txnView, error) {
	select {
	case s.writes <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.stop:
		return nil, ErrStopped
	}
	select {
	case <-req.done:
		return req.view, req.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.stop:
		return nil, ErrStopped
	}
}

// writerLoop forms groups until the store stops. Two groups overlap: the
// next one starts its transaction and asks for the counter's lock while the
// one before it commits, so the lock passes from one to the next inside the
// engine, without a round trip back to this node in between (at a few
// round trips per group, that is a quarter of a group's time). The lock
// still orders them; the next one evaluates only once the one before has
// finished (runGroup).
func (s *Store) writerLoop() {
	defer s.stopped.Done()
	var next *writeReq
	var prev chan struct{} // closed when the previous group has finished
	for {
		req := next
		next = nil
		if req == nil {
			select {
			case req = <-s.writes:
			case <-s.stop:
				if prev != nil {
					<-prev
				}
				return
			}
		}
		group := []*writeReq{req}
		if !req.solo {
			group, next = s.takeQueued(group)
		}
		st := &groupStages{prev: prev, committing: make(chan struct{}), done: make(chan struct{}),
			mayJoin: !req.solo && next == nil}
		go s.runGroup(group, st)
		<-st.committing
		if st.leftover != nil {
			next = st.leftover
		}
		prev = st.done
	}
}

// groupStages links a group to the one before it and to the writer loop.
type groupStages struct {
	prev       chan struct{} // the previous group's done (nil: none)
	committing chan struct{} // closed when the next group may start
	done       chan struct{} // closed when this group has finished
	once       sync.Once
	// mayJoin lets requests queued while the group waited for the
	// counter's lock join it (takeQueued); leftover is the solo request
	// that ended the joining, for the writer loop to run next. Both are
	// settled before committing closes.
	mayJoin  bool
	leftover *writeReq
}

func (st *groupStages) letNextStart() { st.once.Do(func() { close(st.committing) }) }

// writeGroup is the shared state of one group's engine transaction.
type writeGroup struct {
	s          *Store
	ctx        context.Context
	etx        Txn
	counter    int64  // revision counter locked at the start
	counterRaw []byte // its stored form with this group's claim, expected by the final compare-and-swap
	prev       uint64 // the nonce of the group the counter named (records.go)
	nonce      uint64 // this group's nonce, in its revlog keys and, once committed, the counter
	compactRev int64
	rev        int64                       // last revision assigned so far
	overlay    map[string]*mvccpb.KeyValue // effects of the group's requests so far
	revisions  [][]*mvccpb.Event           // events of counter+1, counter+2, ...
	other      bool                        // a solo request wrote other tables
}

func (s *Store) runGroup(group []*writeReq, st *groupStages) {
	defer func() {
		// Finished in order: the next group relies on everything before
		// it having released its revisions (feed.confirm) once this is.
		if st.prev != nil {
			<-st.prev
		}
		close(st.done)
	}()
	defer st.letNextStart()
	finish := func(err error) {
		for _, r := range group {
			if r.err == nil {
				r.err = err
			}
			if err != nil {
				r.view = nil
			}
			close(r.done)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	started := time.Now()
	defer func() { s.groupNanos.Add(int64(time.Since(started))) }()
	etx, err := s.eng.Begin(ctx)
	if err != nil {
		finish(err)
		return
	}
	committed := false
	defer func() {
		if !committed {
			_ = etx.Rollback(context.Background())
		}
	}()
	// Every writer, on every node, locks the counter first: that one lock
	// orders all writes, so revisions are unique and contiguous, and
	// nothing else commits while the group evaluates.
	locking := time.Now()
	g := &writeGroup{s: s, ctx: ctx, etx: etx, overlay: map[string]*mvccpb.KeyValue{}}
	err = g.claimCounter(group[0].solo)
	s.counterWaitNanos.Add(int64(time.Since(locking)))
	// Holding the lock, the previous group has committed or given up;
	// wait for it to have released its revisions if it committed, which
	// its commit's response tells it about when the lock has passed here.
	if st.prev != nil {
		<-st.prev
	}
	if err != nil {
		finish(err)
		return
	}
	g.rev = g.counter
	// The group reads the keyspace from the index, once the feed has
	// released every revision up to the counter it locked: no writer can
	// commit meanwhile, so the index at counter is the exact current state.
	// The kv table is never read back: it is written for Ignite users, and
	// only revlog entries of committed groups are trusted (an operation of
	// a broken connection applied outside its transaction could have left a
	// stale record there). The node's own previous group was released when
	// its commit returned (feed.confirm), before st.prev closed, so only
	// other nodes' revisions can make this wait.
	waiting := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, feedWaitLimit)
	err = s.waitFor(wctx, g.counter)
	wcancel()
	s.viewWaitNanos.Add(int64(time.Since(waiting)))
	if err != nil {
		finish(fmt.Errorf("%w: this node's view has not reached revision %d: %v", ErrEngineUnavailable, g.counter, err))
		return
	}
	if st.mayJoin {
		// Requests queued while the group waited for the counter's lock
		// (the previous group's commit, or other nodes' groups) join it
		// rather than wait for a group of their own; nothing is delayed
		// to wait for them.
		group, st.leftover = s.takeQueued(group)
	}
	// One request's writes, laid over the group's. The map is reused by the
	// group's next request, since nothing reads it once the group has
	// taken the writes in (or dropped them); a large one is not kept, so
	// that clearing it stays cheap.
	var overlay map[string]*mvccpb.KeyValue
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.err = err // gave up before evaluation: not applied
			continue
		}
		if overlay == nil || len(overlay) > 64 {
			overlay = map[string]*mvccpb.KeyValue{}
		} else {
			clear(overlay)
		}
		v := &txnView{s: s, base: g, beginRev: g.rev, compactRev: g.compactRev, etx: etx, ctx: ctx,
			overlay: overlay}
		err := r.fn(v)
		v.overlay = nil // the response and afterWrite need only changes
		if err != nil {
			r.err = err
			if r.solo && v.otherWrites {
				finish(nil) // a solo request is the whole group: roll back
				return
			}
			continue
		}
		r.view = v
		g.other = g.other || v.otherWrites
		if len(v.changes) > 0 {
			g.rev++
			g.revisions = append(g.revisions, v.changes)
			for k, kv := range overlay {
				g.overlay[k] = kv
			}
		}
	}
	if len(g.revisions) == 0 && !g.other {
		finish(nil)
		return
	}
	if len(g.revisions) > 0 {
		if err := g.write(); err != nil {
			finish(err)
			return
		}
	}
	// What the counter holds once this commits; the next group expects it
	// (claimCounter), and finds otherwise if the commit fails.
	s.nextCounter = g.counterRaw
	st.letNextStart()
	if len(g.revisions) > 0 {
		s.feed.committingOwn(g.nonce)
	}
	err = etx.Commit(ctx)
	committed = true
	if err != nil && len(g.revisions) > 0 {
		s.feed.settle(g.nonce)
	}
	if err == nil {
		s.feed.reachable()
		s.groups.Add(1)
		s.groupedRequests.Add(int64(len(group)))
		if len(g.revisions) > 0 {
			// Released now, with no notification round trip. After an
			// unknown outcome, the counter's notification tells.
			s.feed.confirm(g.nonce, groupSpan{first: g.counter + 1, last: g.rev, prev: g.prev}, g.revisions)
		}
	}
	finish(err)
}

// takeQueued adds to a group the requests already queued, in arrival order,
// up to maxGroup, without waiting for more. A solo request ends it: it is
// returned, to run next in a group of its own.
func (s *Store) takeQueued(group []*writeReq) ([]*writeReq, *writeReq) {
	for len(group) < maxGroup {
		select {
		case r := <-s.writes:
			if r.solo {
				return group, r
			}
			group = append(group, r)
		default:
			return group, nil
		}
	}
	return group, nil
}

// claimCounter locks the revision counter and sets a claim of this group's
// in it, inside the transaction (records.go): the final compare-and-swap
// expects that claim, so it can only succeed within this transaction. When
// the counter should still hold what this node's previous group committed
// (nextCounter), one compare-and-swap both locks and claims it; otherwise,
// or if another node wrote since, the counter is read first. Solo groups
// always read it, with the compacted revision (they check against it).
func (g *writeGroup) claimCounter(solo bool) error {
	s, t := g.s, &g.s.tables
	if exp := s.nextCounter; exp != nil && !solo && !s.claimByRead {
		cv, err := decodeCounterValue(exp)
		if err != nil {
			return err
		}
		cv.claim = newNonce()
		claim := encodeCounter(cv)
		ok, err := g.etx.Replace(g.ctx, t.meta, metaRevision, exp, claim)
		if err != nil {
			return err
		}
		if ok {
			g.counter, g.prev, g.counterRaw = cv.last, cv.nonce, claim
			g.compactRev = s.CompactRevision() // not consulted by non-solo groups
			return nil
		}
		s.claimByRead = true // another node wrote: it probably will again
	}
	meta, err := g.etx.GetAll(g.ctx, t.meta, [][]byte{metaRevision, metaCompact})
	if err != nil {
		return err
	}
	if meta[0] == nil {
		// Open wrote it; a claim by put-if-absent would be lost with the
		// final compare-and-swap on Ignite (initCounter).
		return fmt.Errorf("%w: the revision counter is missing from storage", ErrEngineUnavailable)
	}
	cv, err := decodeCounterValue(meta[0])
	if err != nil {
		return err
	}
	s.feed.observe(cv) // committed: read under the lock
	// Back to the one-operation claim once this node's own group was the
	// last to write.
	s.claimByRead = s.nextCounter == nil || !bytes.Equal(meta[0], s.nextCounter)
	if g.compactRev, err = decodeCompact(meta[1]); err != nil {
		return err
	}
	g.counter, g.prev = cv.last, cv.nonce
	cv.claim = newNonce()
	claim := encodeCounter(cv)
	ok, err := g.etx.Replace(g.ctx, t.meta, metaRevision, meta[0], claim)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: the revision counter changed under its lock", ErrEngineUnavailable)
	}
	g.counterRaw = claim
	return nil
}

// WriterStats are cumulative figures of the node's writer, for metrics and
// for measuring how nodes share the revision counter.
type WriterStats struct {
	// Groups and Requests count committed write groups and the requests
	// they carried (their ratio is the mean group size).
	Groups, Requests int64
	// GroupTime is the time spent in groups, begin to commit (two
	// overlap); CounterWait the part spent getting the revision counter's
	// lock (the node's previous group holds it while it commits, other
	// nodes' groups while they run); ViewWait the part spent waiting for
	// the feed to reach the locked counter (other nodes' revisions).
	GroupTime, CounterWait, ViewWait time.Duration
}

// WriterStats reports the writer's cumulative figures.
func (s *Store) WriterStats() WriterStats {
	return WriterStats{
		Groups: s.groups.Load(), Requests: s.groupedRequests.Load(),
		GroupTime: time.Duration(s.groupNanos.Load()), CounterWait: time.Duration(s.counterWaitNanos.Load()),
		ViewWait: time.Duration(s.viewWaitNanos.Load()),
	}
}

// get is key's record after the group's requests so far.
func (g *writeGroup) get(key []byte) (*mvccpb.KeyValue, error) {
	if kv, ok := lookupWrite(g.overlay, key); ok {
		return kv, nil
	}
	g.s.mu.RLock()
	defer g.s.mu.RUnlock()
	if ki := g.s.ix.get(key); ki != nil {
		return ki.at(g.counter), nil
	}
	return nil, nil
}

func (g *writeGroup) rangeKeys(key, end []byte) ([]*mvccpb.KeyValue, error) {
	if end == nil {
		kv, err := g.get(key)
		if kv == nil || err != nil {
			return nil, err
		}
		return []*mvccpb.KeyValue{kv}, nil
	}
	g.s.mu.RLock()
	kvs, _ := g.s.ix.rangeAt(key, end, g.counter, 0, false)
	g.s.mu.RUnlock()
	return mergeOverlay(kvs, g.overlay, key, end), nil
}

// leaseExists reads (and locks) a lease record.
func (g *writeGroup) leaseExists(id int64) (bool, error) {
	vals, err := g.etx.GetAll(g.ctx, g.s.tables.leases, [][]byte{revisionKey(id)})
	if err != nil {
		return false, err
	}
	return vals[0] != nil, nil
}

// write stages the group's changes: latest records, one revlog entry per
// revision (which the change feed delivers, and which holds the revision's
// events for reads of history above the compacted revision) and the
// counter. The history table is not written here: compaction writes to it
// the versions it keeps below the compacted revision (compact.go), which
// spares every group one bulk write under the counter's lock.
func (g *writeGroup) write() error {
	g.nonce = newNonce()
	span := groupSpan{first: g.counter + 1, last: g.rev, prev: g.prev}
	revlog := make([]Entry, 0, len(g.revisions))
	puts := make([]Entry, 0, len(g.overlay))
	var removes [][]byte
	for i, evs := range g.revisions {
		rev := g.counter + 1 + int64(i)
		entry, kvs := encodeRevlogEntry(span, evs)
		revlog = append(revlog, Entry{Key: revlogKey(rev, g.nonce), Value: entry})
		// The kv table gets each key's last write in the group: the one
		// event whose KeyValue the group's overlay holds.
		for sub, ev := range evs {
			if g.overlay[string(ev.Kv.Key)] != ev.Kv {
				continue
			}
			if isTombstone(ev.Kv) {
				removes = append(removes, ev.Kv.Key)
				continue
			}
			b := kvs[sub]
			if b == nil {
				b, _ = ev.Kv.Marshal()
			}
			puts = append(puts, Entry{Key: ev.Kv.Key, Value: b})
		}
	}
	if len(puts)+len(removes) != len(g.overlay) {
		// Every record is some event's KeyValue; should a change break
		// that, the group fails rather than write a partial kv table.
		return fmt.Errorf("mvcc: a write group has %d records, but only %d of its events are last writes", len(g.overlay), len(puts)+len(removes))
	}
	// A stable key order keeps lock acquisition deterministic.
	slices.SortFunc(puts, func(a, b Entry) int { return bytes.Compare(a.Key, b.Key) })
	slices.SortFunc(removes, bytes.Compare)
	ctx, etx, t := g.ctx, g.etx, &g.s.tables
	if len(puts) > 0 {
		if err := etx.PutAll(ctx, t.kv, puts); err != nil {
			return err
		}
	}
	if len(removes) > 0 {
		if err := etx.RemoveAll(ctx, t.kv, removes); err != nil {
			return err
		}
	}
	if err := etx.PutAll(ctx, t.revlog, revlog); err != nil {
		return err
	}
	// The counter goes last, as a compare-and-swap: should the engine
	// apply this operation late, outside the transaction (a connection lost
	// with it in flight; ignite/NOTES.md), it finds the claim gone and
	// changes nothing. Committed, it names this group's revisions and
	// nonce: from then on, and only then, its revlog entries are trusted.
	final := encodeCounter(counterValue{last: g.rev, first: span.first, nonce: g.nonce})
	ok, err := etx.Replace(ctx, t.meta, metaRevision, g.counterRaw, final)
	if err != nil {
		return err
	}
	g.counterRaw = final
	if !ok {
		return fmt.Errorf("%w: the revision counter changed under its lock", ErrEngineUnavailable)
	}
	return nil
}

// afterWrite lets the node's own view catch up with a write it committed, so
// that a serializable read or a watch on this node right after the response
// sees it. The write is committed either way: failing to wait is not an error.
func (s *Store) afterWrite(ctx context.Context, v *txnView) {
	if v != nil && len(v.changes) > 0 {
		_ = s.waitFor(ctx, v.rev())
	}
}

// rangeEnd maps an etcd request's range_end to the index's form: nil for a
// single key, empty for "every key from key on" ("\x00").
func rangeEnd(end []byte) []byte {
	if len(end) == 0 {
		return nil
	}
	if len(end) == 1 && end[0] == 0 {
		return []byte{}
	}
	return end
}
