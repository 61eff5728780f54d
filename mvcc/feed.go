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

// feed brings every committed revision to the Store, strictly in order,
// each once: revisions are buffered by revision (ordering) and released up
// to the safe point (safeinterval).
//
// Trust flows from the revision counter (records.go): a revlog entry is
// read only under the key of a group known to have committed, because
//   - a counter value names it: the feed follows meta with the engine's
//     change notifications (one per committed group), and every read of
//     the counter on this node informs it too (observe);
//   - this node committed it: its revisions are released as the commit
//     returns, from the writer's own copy (confirm), with no round trip;
//   - a later committed group's entries name it as the one before them:
//     that is how a node that missed notifications walks back from the
//     counter to the revisions it lacks.
//
// So an entry that a rolled-back group's operation wrote late, outside its
// transaction (ignite/NOTES.md), is never read: its nonce is one no
// committed counter ever held. Other nodes' revisions cost one bulk read
// per group (fetchLoop) instead of a notification per revision.
type feed struct {
	s *Store

	mu   sync.Mutex
	buf  *ordering.Buffer[[]*mvccpb.Event] // nil until start
	rule safeinterval.Rule
	sub  Subscription
	gen  int // counts subscriptions, so that a stale onLost is ignored
	lost bool
	// lostAt is when storage was found unreachable (the subscription lost,
	// or the counter poll failing); zero again once a read of the counter
	// or a commit succeeds. The subscription only makes other nodes'
	// writes arrive sooner: without it the poll finds them, so a node
	// whose storage answers serves on while it resubscribes.
	lostAt time.Time
	wake   chan struct{} // poked when the poll loop has work: a lost feed
	fetch  chan struct{} // poked when the fetch loop has work: a group became known
	// committed holds the groups known to have committed whose revisions
	// are not all released yet, by nonce.
	committed map[uint64]*knownGroup
	// knownTop is the highest revision known to have been committed.
	knownTop int64
	// committing holds the nonces of this node's groups whose commit is in
	// flight: their counter notification may come before the commit's
	// response, and the fetch loop leaves them to confirm (or, if the
	// outcome is unknown, to the fetch after settle).
	committing map[uint64]bool
	// legacyTop is the highest revision stored by an earlier version (under
	// an 8-byte key, without a nonce), as far as known; those are trusted.
	legacyTop int64
	// missingSince records when a read first found absent an entry of a
	// committed group, for the log.
	missingSince map[int64]time.Time
	// storageCompact is the compacted revision as the poll last read it;
	// behindCompaction is set once an entry this node lacks is found
	// purged below it: the node cannot catch up and must be restarted to
	// load the keyspace again (its /livez fails).
	storageCompact   int64
	behindCompaction int64
	releaseMu        sync.Mutex // keeps releases in order across goroutines
}

// knownGroup is a write group known to have committed.
type knownGroup struct {
	first     int64 // 0 until known
	last      int64
	prev      uint64
	prevKnown bool
}

func newFeed(s *Store) *feed {
	return &feed{
		s:            s,
		committed:    map[uint64]*knownGroup{},
		committing:   map[uint64]bool{},
		missingSince: map[int64]time.Time{},
		rule:         safeinterval.Contiguous{},
		wake:         make(chan struct{}, 1),
		fetch:        make(chan struct{}, 1),
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// subscribe follows meta, where each committed group changes the counter.
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
		f.s.lg.Warn().Err(err).Msg("change feed lost; resubscribing and reading what it missed from revlog")
		poke(f.wake)
	}
	sub, err := f.s.eng.Subscribe(ctx, f.s.tables.meta, f.onMeta, onLost)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.sub = sub
	f.mu.Unlock()
	return nil
}

func (f *feed) cancel() {
	f.mu.Lock()
	sub := f.sub
	f.sub = nil
	f.gen++
	f.mu.Unlock()
	if sub != nil {
		sub.Cancel()
	}
}

// start begins releasing above released (the revision the load reached).
func (f *feed) start(released int64) {
	f.mu.Lock()
	f.buf = ordering.New[[]*mvccpb.Event](released)
	f.mu.Unlock()
	poke(f.fetch)
}

// onMeta receives a change of meta. It never blocks: a new counter value
// only records the group it names, for the fetch loop.
func (f *feed) onMeta(key, value []byte) {
	if !bytes.Equal(key, metaRevision) {
		return
	}
	cv, err := decodeCounterValue(value)
	if err != nil {
		f.s.lg.Error().Err(err).Msg("ignoring malformed revision counter in change feed")
		return
	}
	f.observe(cv)
}

// observe records a committed counter value, notified or read.
func (f *feed) observe(cv counterValue) {
	f.mu.Lock()
	f.knownTop = max(f.knownTop, cv.last)
	if cv.nonce == 0 {
		f.legacyTop = max(f.legacyTop, cv.last)
	} else {
		f.confirmLocked(cv.nonce, cv.first, cv.last, 0, false)
	}
	behind := f.buf != nil && f.buf.Released() < cv.last
	f.mu.Unlock()
	if behind {
		poke(f.fetch)
	}
}

// committingOwn records that this node is committing the group of nonce.
func (f *feed) committingOwn(nonce uint64) {
	f.mu.Lock()
	f.committing[nonce] = true
	f.mu.Unlock()
}

// settle records that the commit of this node's group of nonce failed, or
// its outcome is unknown: if the counter names the group after all, the
// fetch loop reads it like another node's.
func (f *feed) settle(nonce uint64) {
	f.mu.Lock()
	delete(f.committing, nonce)
	f.mu.Unlock()
	poke(f.fetch)
}

// confirm releases the revisions of a group this node committed, from the
// writer's copy of their events.
func (f *feed) confirm(nonce uint64, span groupSpan, revisions [][]*mvccpb.Event) {
	f.mu.Lock()
	delete(f.committing, nonce)
	f.knownTop = max(f.knownTop, span.last)
	f.confirmLocked(nonce, span.first, span.last, span.prev, true)
	for i, evs := range revisions {
		f.trustLocked(span.first+int64(i), evs)
	}
	f.mu.Unlock()
	f.advance()
}

// trustLocked queues revision rev's events for release.
func (f *feed) trustLocked(rev int64, evs []*mvccpb.Event) {
	if f.buf == nil {
		return // below what the load reads
	}
	delete(f.missingSince, rev)
	f.buf.Add(rev, evs)
}

// entryLocked takes the revlog entry of revision rev read under the key of
// a committed group (nonce; 0 for a legacy entry), and reports whether it
// did.
func (f *feed) entryLocked(rev int64, nonce uint64, sp groupSpan, evs []*mvccpb.Event) bool {
	if nonce == 0 {
		if rev > f.legacyTop {
			return false
		}
		f.trustLocked(rev, evs)
		return true
	}
	g := f.committed[nonce]
	if g == nil {
		return false // released meanwhile
	}
	if g.last != sp.last {
		f.s.lg.Error().Int64("revision", rev).Uint64("nonce", nonce).Msg("ignoring a revlog entry that disagrees with the counter about its group's revisions")
		return false
	}
	f.confirmLocked(nonce, sp.first, sp.last, sp.prev, true)
	f.trustLocked(rev, evs)
	return true
}

// confirmLocked records that the group of nonce, ending at last, has
// committed; first is 0 and prevKnown false where not known. Once its
// first revision and prev are known, so is the group before it.
func (f *feed) confirmLocked(nonce uint64, first, last int64, prev uint64, prevKnown bool) {
	for nonce != 0 && (f.buf == nil || last > f.buf.Released()) {
		g := f.committed[nonce]
		if g == nil {
			g = &knownGroup{last: last}
			f.committed[nonce] = g
		} else if g.last != last {
			f.s.lg.Error().Uint64("nonce", nonce).Int64("last", last).Int64("known_last", g.last).Msg("two committed write groups with one nonce; ignoring the second")
			return
		}
		if first != 0 {
			g.first = first
		}
		if prevKnown && !g.prevKnown {
			g.prev, g.prevKnown = prev, true
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

// reachable records that storage just answered.
func (f *feed) reachable() {
	f.mu.Lock()
	f.lostAt = time.Time{}
	f.mu.Unlock()
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
	if len(items) > 0 {
		released := f.buf.Released()
		for nonce, g := range f.committed {
			if g.last <= released {
				delete(f.committed, nonce)
			}
		}
		for rev := range f.missingSince {
			if rev <= released {
				delete(f.missingSince, rev)
			}
		}
	}
	f.mu.Unlock()
	f.s.release(items)
}

// fetchLoop reads the revisions of committed groups that this node has not
// released: other nodes' groups, as their counter values come, and whatever
// a lost subscription missed, as the poll finds the counter ahead.
func (f *feed) fetchLoop() {
	defer f.s.stopped.Done()
	const minRetry = time.Millisecond
	retry := minRetry
	for {
		select {
		case <-f.s.stop:
			return
		case <-f.fetch:
		}
		for {
			f.mu.Lock()
			keys := f.wantedKeysLocked(256)
			f.mu.Unlock()
			if len(keys) == 0 {
				retry = minRetry
				break
			}
			if f.read(keys) > 0 {
				retry = minRetry
				continue
			}
			// Not visible yet (a commit reaches partitions one by one) or
			// storage unreachable: try again shortly.
			select {
			case <-f.s.stop:
				return
			case <-time.After(retry):
			}
			retry = min(2*retry, f.s.cfg.PollInterval)
		}
	}
}

// read reads revlog entries by key, takes those found, releases what it
// can, and reports how many it took.
func (f *feed) read(keys [][]byte) int {
	f.mu.Lock()
	sub := f.sub
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	var vals [][]byte
	var err error
	if sub != nil {
		vals, err = sub.GetAll(ctx, f.s.tables.revlog, keys) // the feed's connection
	} else {
		vals, err = f.s.eng.GetAll(ctx, f.s.tables.revlog, keys) // resubscribing: the poll found these
	}
	cancel()
	if err != nil {
		f.s.lg.Debug().Err(err).Msg("reading revlog failed")
		return 0
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
		f.mu.Lock()
		if f.entryLocked(rev, nonce, sp, evs) {
			found++
		}
		f.mu.Unlock()
	}
	f.advance()
	return found
}

// wantedKeysLocked is the revlog keys to read next: those of the revisions
// up to knownTop not yet buffered, as far as their group is known. For the
// first one whose group is not known yet, it reads instead one entry of the
// nearest known group above it, whose span and prev lead down to it (one
// read per group: the chain from the counter).
func (f *feed) wantedKeysLocked(max int) [][]byte {
	if f.buf == nil {
		return nil
	}
	var keys [][]byte
	for _, rev := range f.buf.Missing(f.knownTop, max) {
		if rev <= f.legacyTop {
			keys = append(keys, revisionKey(rev))
			continue
		}
		var above *knownGroup
		var aboveNonce uint64
		found := false
		for nonce, g := range f.committed {
			if g.first != 0 && g.first <= rev && rev <= g.last {
				// This node's own commit in flight brings its revisions;
				// the groups after it are read meanwhile.
				if !f.committing[nonce] {
					keys = append(keys, revlogKey(rev, nonce))
				}
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
			// Any entry of it tells its first revision and prev.
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
// visible, unless storage lost it or compaction removed it first.
func (f *feed) missing(rev int64) {
	const after = 10 * time.Second
	f.mu.Lock()
	if rev < f.storageCompact && f.behindCompaction == 0 {
		f.behindCompaction = f.storageCompact
		f.mu.Unlock()
		f.s.lg.Error().Int64("revision", rev).Int64("compact_revision", f.storageCompact).
			Msg("this node fell behind the compacted revision: storage no longer holds revisions it lacks; restart it to load the keyspace again")
		return
	}
	since, ok := f.missingSince[rev]
	if !ok {
		f.missingSince[rev] = time.Now()
	}
	logIt := ok && !since.IsZero() && time.Since(since) > after
	if logIt {
		f.missingSince[rev] = time.Time{} // logged
	}
	f.mu.Unlock()
	if logIt {
		f.s.lg.Error().Int64("revision", rev).Int64("compact_revision", f.s.CompactRevision()).
			Msg("a committed revision is missing from revlog; this node cannot go past it (was it compacted before this node read it?)")
	}
}

// run resubscribes a lost feed, polls the counter (which finds revisions a
// lost or late notification did not announce) and applies compactions made
// by other nodes.
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
			f.cancel()
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
				poke(f.wake)
				continue
			}
			backoff = f.s.cfg.PollInterval
			f.mu.Lock()
			f.lost = false
			f.mu.Unlock()
			f.s.lg.Info().Msg("change feed resubscribed")
		}
		f.poll(ctx)
		cancel()
	}
}

func (f *feed) poll(ctx context.Context) {
	_, compact, err := f.s.readMetaValue(ctx) // observes the counter, and that storage answers
	if err != nil {
		f.mu.Lock()
		if f.lostAt.IsZero() {
			f.lostAt = time.Now()
		}
		f.mu.Unlock()
		f.s.lg.Debug().Err(err).Msg("reading the revision counter failed")
		return
	}
	f.mu.Lock()
	f.storageCompact = compact
	f.mu.Unlock()
	if compact > f.s.CompactRevision() && compact <= f.s.Revision() {
		f.s.applyCompaction(compact)
	}
}

// behindCompacted reports the compacted revision this node fell behind, 0
// if it did not.
func (f *feed) behindCompacted() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.behindCompaction
}
