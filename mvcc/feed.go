package mvcc

import (
	"bytes"
	"context"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/ignetcd/ignetcd/ordering"
	"github.com/ignetcd/ignetcd/safeinterval"
)

// feed follows the engine's change notifications on revlog and releases
// revisions to the Store strictly in order, each once: notifications are
// buffered by revision (ordering), released only up to the safe point
// (safeinterval), and revisions missing for too long, or lost with the
// subscription, are read from revlog directly (gap fill).
//
// A revlog entry is trusted only once its write group is known to have
// committed (records.go): a counter value names the group (the feed also
// follows meta for that), this node committed it, or a later group's
// entries name it as the one before them. Until then it waits in
// unconfirmed, and an entry that a rolled-back group's operation wrote late,
// outside its transaction, waits there until its revision is released from
// the committed group's entry and it is dropped.
type feed struct {
	s *Store

	mu    sync.Mutex
	buf   *ordering.Buffer[[]*mvccpb.Event] // nil until start
	early map[int64][]*mvccpb.Event         // trusted revisions before start
	rule  safeinterval.Rule
	gaps  *safeinterval.GapDetector
	subs  []Subscription // revlog and meta
	gen   int            // counts subscriptions, so that a stale onLost is ignored
	lost  bool
	// lostAt is when storage was found unreachable (the subscription lost,
	// or the counter poll failing); zero while it is reachable.
	lostAt time.Time
	wake   chan struct{} // poked when the loop has work: lost feed, a reader waiting
	// committed holds the groups known to have committed whose revisions
	// are not all released yet, by nonce.
	committed map[uint64]*knownGroup
	// unconfirmed holds revlog entries of groups not (yet) known to have
	// committed, by nonce: notifications that came before the counter's,
	// and entries of rolled-back groups written late.
	unconfirmed map[uint64]*entryGroup
	// legacyTop is the highest revision stored by an earlier version (under
	// an 8-byte key, without a nonce), as far as known; those are trusted.
	legacyTop int64
	// missingSince records when a gap-fill read first found absent an
	// entry of a committed group, for the log.
	missingSince map[int64]time.Time
	releaseMu    sync.Mutex // keeps releases in order across goroutines
	// own holds the events of revisions this node's writer is committing
	// (expect): trusted as soon as the commit succeeds (confirm), and
	// their notifications need not be decoded.
	own map[int64]ownRevision
}

// knownGroup is a write group known to have committed.
type knownGroup struct {
	first     int64 // 0 until known
	last      int64
	prev      uint64
	prevKnown bool
}

// entryGroup is the revlog entries seen of one group not known to have
// committed.
type entryGroup struct {
	span groupSpan
	evs  map[int64][]*mvccpb.Event
}

// ownRevision is a revision this node's writer is committing.
type ownRevision struct {
	nonce uint64
	span  groupSpan
	evs   []*mvccpb.Event
}

func newFeed(s *Store) *feed {
	return &feed{
		s:            s,
		early:        map[int64][]*mvccpb.Event{},
		committed:    map[uint64]*knownGroup{},
		unconfirmed:  map[uint64]*entryGroup{},
		missingSince: map[int64]time.Time{},
		own:          map[int64]ownRevision{},
		rule:         safeinterval.Contiguous{},
		gaps:         safeinterval.NewGapDetector(s.cfg.GapTimeout),
		wake:         make(chan struct{}, 1),
	}
}

func (f *feed) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// subscribe follows revlog (the revisions) and meta (the counter, which
// confirms them).
func (f *feed) subscribe(ctx context.Context) error {
	f.mu.Lock()
	f.gen++
	gen := f.gen
	f.mu.Unlock()
	onLost := func(err error) {
		f.mu.Lock()
		stale := gen != f.gen || f.lost
		if !stale {
			f.lost = true
			if f.lostAt.IsZero() {
				f.lostAt = time.Now()
			}
		}
		f.mu.Unlock()
		if stale {
			return
		}
		f.s.lg.Warn().Err(err).Msg("change feed lost; resubscribing and filling the gap from revlog")
		f.poke()
	}
	revlog, err := f.s.eng.Subscribe(ctx, f.s.tables.revlog, f.onPut, onLost)
	if err != nil {
		return err
	}
	meta, err := f.s.eng.Subscribe(ctx, f.s.tables.meta, f.onMeta, onLost)
	if err != nil {
		revlog.Cancel()
		return err
	}
	f.mu.Lock()
	f.subs = []Subscription{revlog, meta}
	f.mu.Unlock()
	return nil
}

func (f *feed) cancel() {
	f.mu.Lock()
	subs := f.subs
	f.subs = nil
	f.gen++
	f.mu.Unlock()
	for _, sub := range subs {
		sub.Cancel()
	}
}

// start begins releasing above released (the revision the load reached).
func (f *feed) start(released int64) {
	f.mu.Lock()
	f.buf = ordering.New[[]*mvccpb.Event](released)
	for rev, evs := range f.early {
		f.buf.Add(rev, evs)
	}
	f.early = nil
	f.mu.Unlock()
	f.advance()
}

// onPut receives one revlog notification. It never blocks on readers: it
// only buffers and releases.
func (f *feed) onPut(key, value []byte) {
	rev, nonce, err := decodeRevlogKey(key)
	if err != nil {
		f.s.lg.Error().Err(err).Msg("ignoring malformed revlog key in change feed")
		return
	}
	if nonce == 0 {
		f.s.lg.Error().Int64("revision", rev).Msg("ignoring a revlog entry in the form of an earlier ignetcd version: every node of a cluster must run this version")
		return
	}
	f.mu.Lock()
	own, mine := f.own[rev]
	mine = mine && own.nonce == nonce
	f.mu.Unlock()
	sp, evs := own.span, own.evs
	if !mine {
		if sp, evs, err = decodeRevlogEntry(rev, nonce, value); err != nil {
			f.s.lg.Error().Err(err).Int64("revision", rev).Msg("ignoring malformed revlog entry in change feed")
			return
		}
	}
	f.mu.Lock()
	f.entryLocked(rev, nonce, sp, evs)
	f.mu.Unlock()
	f.advance()
}

// onMeta receives a change of meta: a new counter value confirms the group
// it names.
func (f *feed) onMeta(key, value []byte) {
	if !bytes.Equal(key, metaRevision) {
		return
	}
	cv, err := decodeCounterValue(value)
	if err != nil {
		f.s.lg.Error().Err(err).Msg("ignoring malformed revision counter in change feed")
		return
	}
	f.mu.Lock()
	f.counterLocked(cv)
	f.mu.Unlock()
	f.advance()
}

// expect records the events of the revisions of span, which this node is
// about to commit as the group of nonce.
func (f *feed) expect(nonce uint64, span groupSpan, revisions [][]*mvccpb.Event) {
	f.mu.Lock()
	for i, evs := range revisions {
		f.own[span.first+int64(i)] = ownRevision{nonce: nonce, span: span, evs: evs}
	}
	f.mu.Unlock()
}

// confirm records that this node committed the group of nonce: its
// revisions are trusted at once, without waiting for their notifications.
func (f *feed) confirm(nonce uint64, span groupSpan) {
	f.mu.Lock()
	f.confirmLocked(nonce, span.first, span.last, span.prev, true)
	for rev := span.first; rev <= span.last; rev++ {
		if o, ok := f.own[rev]; ok && o.nonce == nonce {
			f.trustLocked(rev, o.evs)
		}
	}
	f.mu.Unlock()
	f.advance()
}

// releasedLocked is the highest revision released; 0 before start.
func (f *feed) releasedLocked() int64 {
	if f.buf == nil {
		return 0
	}
	return f.buf.Released()
}

// trustLocked queues revision rev's events for release.
func (f *feed) trustLocked(rev int64, evs []*mvccpb.Event) {
	if f.buf == nil {
		f.early[rev] = evs
		return
	}
	delete(f.missingSince, rev)
	if f.buf.Add(rev, evs) {
		f.gaps.Observe(f.buf, time.Now())
	}
}

// counterLocked records a counter value read or notified.
func (f *feed) counterLocked(cv counterValue) {
	f.gaps.Known(cv.last)
	if cv.nonce == 0 {
		f.legacyTop = max(f.legacyTop, cv.last)
		return
	}
	f.confirmLocked(cv.nonce, cv.first, cv.last, 0, false)
}

// entryLocked records the revlog entry of revision rev written by the
// group of nonce with span sp: trusted if the group is known to have
// committed, held in unconfirmed otherwise. Either way it names the group
// before it, which has committed (its nonce came from a committed counter).
func (f *feed) entryLocked(rev int64, nonce uint64, sp groupSpan, evs []*mvccpb.Event) {
	if nonce == 0 {
		if rev <= f.legacyTop {
			f.trustLocked(rev, evs)
		}
		return
	}
	if g := f.committed[nonce]; g != nil && g.last == sp.last {
		if !g.prevKnown {
			f.confirmLocked(nonce, sp.first, sp.last, sp.prev, true)
		}
		f.trustLocked(rev, evs)
		return
	}
	if sp.first-1 > f.releasedLocked() {
		if sp.prev == 0 {
			f.legacyTop = max(f.legacyTop, sp.first-1)
		} else {
			f.confirmLocked(sp.prev, 0, sp.first-1, 0, false)
		}
	}
	if g := f.committed[nonce]; g != nil && g.last == sp.last {
		f.trustLocked(rev, evs) // confirmed on the way (a chain that came back)
		return
	}
	if rev <= f.releasedLocked() {
		return
	}
	u := f.unconfirmed[nonce]
	if u == nil {
		u = &entryGroup{span: sp, evs: map[int64][]*mvccpb.Event{}}
		f.unconfirmed[nonce] = u
	}
	if u.span == sp {
		u.evs[rev] = evs
	}
}

// confirmLocked records that the group of nonce, ending at last, has
// committed; first is 0 and prevKnown false where not known. Its entries
// held in unconfirmed are trusted, and so, in turn, is the group before it.
func (f *feed) confirmLocked(nonce uint64, first, last int64, prev uint64, prevKnown bool) {
	for nonce != 0 && last > f.releasedLocked() {
		g := f.committed[nonce]
		if g == nil {
			g = &knownGroup{last: last}
			f.committed[nonce] = g
		} else if g.last != last {
			f.s.lg.Error().Uint64("nonce", nonce).Int64("last", last).Int64("known_last", g.last).Msg("two committed write groups with one nonce; ignoring the second")
			return
		}
		f.gaps.Known(last)
		if first != 0 {
			g.first = first
		}
		if prevKnown && !g.prevKnown {
			g.prev, g.prevKnown = prev, true
		}
		if u := f.unconfirmed[nonce]; u != nil && u.span.last == last {
			delete(f.unconfirmed, nonce)
			g.first, g.prev, g.prevKnown = u.span.first, u.span.prev, true
			for rev, evs := range u.evs {
				f.trustLocked(rev, evs)
			}
		}
		if !g.prevKnown || g.first == 0 {
			return
		}
		if g.prev == 0 {
			f.legacyTop = max(f.legacyTop, g.first-1)
			return
		}
		if pg := f.committed[g.prev]; pg != nil && pg.last == g.first-1 {
			return // known already, and so is what it implies
		}
		nonce, first, last, prev, prevKnown = g.prev, 0, g.first-1, 0, false
	}
}

// lostFor is how long storage has been unreachable; 0 while reachable.
func (f *feed) lostFor() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lostAt.IsZero() {
		return 0
	}
	return max(time.Since(f.lostAt), time.Nanosecond)
}

// known tells the gap detector that revisions up to rev exist (a reader
// read the counter and waits for it).
func (f *feed) known(rev int64) {
	f.mu.Lock()
	f.gaps.Known(rev)
	f.mu.Unlock()
}

// advance releases everything up to the safe point, in order.
func (f *feed) advance() {
	f.releaseMu.Lock()
	defer f.releaseMu.Unlock()
	f.mu.Lock()
	if f.buf == nil {
		f.mu.Unlock()
		return
	}
	items := f.buf.Release(f.rule.SafePoint(f.buf))
	f.gaps.Observe(f.buf, time.Now())
	if len(items) > 0 {
		f.pruneLocked()
	}
	f.mu.Unlock()
	f.s.release(items)
}

// pruneLocked drops what concerns only released revisions.
func (f *feed) pruneLocked() {
	released := f.buf.Released()
	for rev := range f.own {
		if rev <= released {
			delete(f.own, rev)
		}
	}
	for nonce, g := range f.committed {
		if g.last <= released {
			delete(f.committed, nonce)
		}
	}
	for nonce, u := range f.unconfirmed {
		if u.span.last <= released {
			delete(f.unconfirmed, nonce) // a rolled-back group's, written late
		}
	}
	for rev := range f.missingSince {
		if rev <= released {
			delete(f.missingSince, rev)
		}
	}
}

// run polls the counter and compacted revision, fills gaps, resubscribes a
// lost feed, and applies compactions made by other nodes.
func (f *feed) run() {
	defer f.s.stopped.Done()
	ticker := time.NewTicker(f.s.cfg.PollInterval)
	defer ticker.Stop()
	backoff := f.s.cfg.PollInterval
	for {
		select {
		case <-f.s.stop:
			return
		case <-ticker.C:
		case <-f.wake:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		f.mu.Lock()
		lost := f.lost
		f.mu.Unlock()
		if lost {
			f.cancel() // the half that still runs, if any
			if err := f.subscribe(ctx); err != nil {
				cancel()
				f.s.lg.Warn().Err(err).Dur("retry_in", backoff).Msg("resubscribing to the change feed failed")
				select {
				case <-f.s.stop:
					return
				case <-time.After(backoff):
				case <-f.wake: // a request wants storage now
				}
				backoff = min(2*backoff, 5*time.Second)
				f.poke()
				continue
			}
			backoff = f.s.cfg.PollInterval
			f.mu.Lock()
			f.lost = false
			f.gaps.Lost()
			f.mu.Unlock()
			f.s.lg.Info().Msg("change feed resubscribed")
		}
		f.poll(ctx)
		cancel()
	}
}

// maxFillSteps bounds the engine reads of one poll's gap fill.
const maxFillSteps = 4096

func (f *feed) poll(ctx context.Context) {
	cv, compact, err := f.s.readMetaValue(ctx)
	f.mu.Lock()
	switch {
	case err != nil && f.lostAt.IsZero():
		f.lostAt = time.Now()
	case err == nil && !f.lost:
		f.lostAt = time.Time{}
	}
	if err == nil {
		f.counterLocked(cv)
	}
	f.mu.Unlock()
	if err != nil {
		f.s.lg.Debug().Err(err).Msg("reading the revision counter failed")
		return
	}
	f.advance()
	for step := 0; step < maxFillSteps; step++ {
		f.mu.Lock()
		keys := f.fillKeysLocked()
		f.mu.Unlock()
		if len(keys) == 0 {
			break
		}
		vals, err := f.s.eng.GetAll(ctx, f.s.tables.revlog, keys)
		if err != nil {
			f.s.lg.Debug().Err(err).Msg("gap fill read failed")
			return
		}
		found := 0
		for i, v := range vals {
			rev, nonce, _ := decodeRevlogKey(keys[i])
			if v == nil {
				f.missing(rev)
				continue
			}
			sp, evs, err := decodeRevlogEntry(rev, nonce, v)
			if err != nil {
				f.s.lg.Error().Err(err).Int64("revision", rev).Msg("malformed revlog entry")
				continue
			}
			found++
			f.mu.Lock()
			f.entryLocked(rev, nonce, sp, evs)
			f.mu.Unlock()
		}
		f.advance()
		if found == 0 {
			break // not visible yet; retried on the next poll
		}
	}
	if compact > f.s.CompactRevision() && compact <= f.s.Revision() {
		f.s.applyCompaction(compact)
	}
}

// fillKeysLocked is the revlog keys the gap fill reads next: the entries
// of the missing revisions that are due, as far as their group is known.
// For the first due revision whose group is not known yet, it reads instead
// one entry of the nearest known group above it, whose span and prev then
// lead down to it (one read per group: the chain from the counter).
func (f *feed) fillKeysLocked() [][]byte {
	due := f.gaps.Due(f.buf, time.Now(), 256)
	var keys [][]byte
	for _, rev := range due {
		if rev <= f.legacyTop {
			keys = append(keys, revisionKey(rev))
			continue
		}
		var above *knownGroup
		var aboveNonce uint64
		found := false
		for nonce, g := range f.committed {
			if g.first != 0 && g.first <= rev && rev <= g.last {
				keys = append(keys, revlogKey(rev, nonce))
				found = true
				break
			}
			if g.last >= rev && (above == nil || g.last < above.last) {
				above, aboveNonce = g, nonce
			}
		}
		if found {
			continue
		}
		if above != nil {
			// Its first revision (if unknown) and prev (if unknown) come
			// with any of its entries.
			probe := above.last
			if above.first != 0 {
				probe = above.first
			}
			keys = append(keys, revlogKey(probe, aboveNonce))
		}
		break // the rest once the chain has reached them
	}
	return keys
}

// missing notes that a committed group's entry of revision rev was not
// found; it is logged once it has stayed so for a while. Nothing else is
// done: the entry was committed with the counter naming it, so it becomes
// visible, unless storage lost it or compaction removed it.
func (f *feed) missing(rev int64) {
	f.mu.Lock()
	since, ok := f.missingSince[rev]
	if !ok {
		f.missingSince[rev] = time.Now()
	}
	f.mu.Unlock()
	if ok && time.Since(since) > 10*time.Second && time.Since(since) < 10*time.Second+2*f.s.cfg.PollInterval {
		f.s.lg.Error().Int64("revision", rev).Int64("compact_revision", f.s.CompactRevision()).
			Msg("a committed revision is missing from revlog; this node cannot go past it (was it compacted before this node read it?)")
	}
}
