package mvcc

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/ignetcd/ignetcd/ordering"
)

// Config tunes a Store. Zero values take the defaults.
type Config struct {
	// Prefix is prepended to every table name, so that several ignetcd
	// clusters can share one engine.
	Prefix string
	Logger zerolog.Logger
	// PollInterval is how often the feed reads the counter and the compacted
	// revision, to find revisions a lost notification did not announce,
	// and others' compactions.
	PollInterval time.Duration
	// LeaseCheckInterval is how often expired leases are looked for.
	LeaseCheckInterval time.Duration
	// MinLeaseTTL is the smallest TTL granted, in seconds (etcd's default
	// configuration gives 2).
	MinLeaseTTL int64
	// AutoCompaction compacts old history on its own (off by default, as
	// in etcd).
	AutoCompaction AutoCompaction
	// WatchMaxLag bounds how far a watcher may fall behind: one whose next
	// revision to deliver is more than WatchMaxLag revisions below the
	// node's safe point (its client stopped reading, so its stream's sender
	// sat blocked in Send) is cancelled with a CancelReason naming the
	// revision to re-create it from. Only watchers that have caught up with
	// the safe point once are bounded: one replaying history from an old
	// start revision is not cancelled for that. The check runs when the
	// stream's sender asks for more, so the cancel follows what the client
	// had not yet read. clientv3 3.6 does not pass such a cancel of an
	// established watch on to the application: it closes the watch channel.
	// Default 100000 (also for 0); negative disables the bound (etcd has
	// none).
	WatchMaxLag int64
}

// DefaultWatchMaxLag is Config.WatchMaxLag's default, in revisions.
const DefaultWatchMaxLag = 100000

func (c *Config) setDefaults() {
	if c.PollInterval == 0 {
		c.PollInterval = 100 * time.Millisecond
	}
	if c.LeaseCheckInterval == 0 {
		c.LeaseCheckInterval = 500 * time.Millisecond
	}
	if c.MinLeaseTTL == 0 {
		c.MinLeaseTTL = 2
	}
	if c.WatchMaxLag == 0 {
		c.WatchMaxLag = DefaultWatchMaxLag
	}
}

// MaxLeaseTTL is etcd's largest lease TTL in seconds.
const MaxLeaseTTL = 9000000000

// Store is one node's view of the etcd keyspace kept in an Engine.
type Store struct {
	cfg Config
	eng Engine
	lg  zerolog.Logger

	// tables holds the prefixed table names.
	tables struct{ kv, history, revlog, meta, leases string }

	// mu guards the released state below; the feed writes it, reads share it.
	mu         sync.RWMutex
	ix         *index
	events     eventLog
	safePoint  int64 // every revision <= safePoint is in ix and events
	compactRev int64
	// advanced is closed (and replaced) whenever safePoint or compactRev
	// moves, to wake waiting readers and watch streams.
	advanced chan struct{}
	// revWaiters wakes waitFor's callers when their revision is released.
	revWaiters revWaiters

	// writes feeds the node's one writer (writer.go): write transactions
	// would queue on the counter lock anyway, so the writer groups them.
	writes chan *writeReq
	// groups and groupedRequests count committed write groups and the
	// requests in them.
	groups, groupedRequests atomic.Int64
	// nextCounter is the counter's stored form as the writer's latest group
	// leaves it if it commits (claimCounter); groups set it in order.
	nextCounter []byte
	// claimByRead makes the writer read the counter before claiming it
	// instead of trying nextCounter first: set when another node's write
	// made that compare-and-swap fail (under contention it would fail every
	// time, an extra round trip while holding the lock), cleared when a
	// read finds this node's own write there. Groups set it in order, as
	// nextCounter.
	claimByRead bool
	// groupNanos, counterWaitNanos and viewWaitNanos add up the writer's
	// time (WriterStats).
	groupNanos, counterWaitNanos, viewWaitNanos atomic.Int64

	counters     counterReader // batches linearizable counter reads
	counterReads atomic.Int64
	// laggingWatchers counts watchers cancelled for falling more than
	// Config.WatchMaxLag revisions behind.
	laggingWatchers atomic.Int64

	feed *feed

	stop    chan struct{}
	stopped sync.WaitGroup
}

// eventLog is every released revision's events since the compacted revision,
// indexed by revision, for watch replay and live delivery. Its KeyValues are
// the ones the index holds.
type eventLog struct {
	first int64 // revision of revs[0]
	revs  [][]*mvccpb.Event
}

func (l *eventLog) get(rev int64) []*mvccpb.Event {
	i := rev - l.first
	if i < 0 || i >= int64(len(l.revs)) {
		return nil
	}
	return l.revs[i]
}

func (l *eventLog) appendRev(rev int64, evs []*mvccpb.Event) {
	if len(l.revs) == 0 {
		l.first = rev
	}
	for l.first+int64(len(l.revs)) < rev {
		l.revs = append(l.revs, nil) // a revision known never to exist
	}
	l.revs = append(l.revs, evs)
}

// trimBefore drops revisions below rev.
func (l *eventLog) trimBefore(rev int64) {
	n := rev - l.first
	if n <= 0 {
		return
	}
	if n >= int64(len(l.revs)) {
		l.revs, l.first = nil, rev
		return
	}
	l.revs = append([][]*mvccpb.Event(nil), l.revs[n:]...)
	l.first = rev
}

// Open loads the node's view from eng and starts following its change feed.
// It returns once the view has caught up with the counter read at start-up.
func Open(ctx context.Context, eng Engine, cfg Config) (*Store, error) {
	cfg.setDefaults()
	s := &Store{cfg: cfg, eng: eng, lg: cfg.Logger, ix: newIndex(), advanced: make(chan struct{}), stop: make(chan struct{}), compactRev: -1,
		writes: make(chan *writeReq, maxGroup)}
	s.counters.s = s
	s.tables.kv = cfg.Prefix + tableKV
	s.tables.history = cfg.Prefix + tableHistory
	s.tables.revlog = cfg.Prefix + tableRevlog
	s.tables.meta = cfg.Prefix + tableMeta
	s.tables.leases = cfg.Prefix + tableLeases

	started := time.Now()
	t := &s.tables
	if err := eng.CreateTables(ctx, t.kv, t.history, t.revlog, t.meta, t.leases); err != nil {
		return nil, err
	}
	if err := s.initCounter(ctx); err != nil {
		return nil, err
	}
	// Subscribe first: every revision committed after the counter read
	// below is then delivered by the feed; every one at or below it is in
	// revlog (or, below the compacted revision, history), which the load
	// reads.
	s.feed = newFeed(s)
	if err := s.feed.subscribe(ctx); err != nil {
		return nil, err
	}
	cv, _, err := s.readMetaValue(ctx)
	if err != nil {
		s.feed.cancel()
		return nil, err
	}
	counter := cv.last
	if err := s.load(ctx, cv); err != nil {
		s.feed.cancel()
		return nil, err
	}
	s.feed.start(s.Revision())
	s.stopped.Add(4)
	go s.feed.run()
	go s.feed.fetchLoop()
	go s.leaseLoop()
	go s.writerLoop()
	if cfg.AutoCompaction.enabled() {
		s.stopped.Add(1)
		go s.autoCompactLoop(cfg.AutoCompaction)
	}
	s.lg.Info().Int64("revision", counter).Int64("compact_revision", s.CompactRevision()).
		Dur("took", time.Since(started)).Msg("loaded keyspace from storage")
	return s, nil
}

// initCounter writes the revision counter of an empty keyspace (revision 1)
// if it is absent, in a transaction of its own: a write group then always
// finds it and changes it by compare-and-swap. Seen on Ignite 2.17: a
// put-if-absent and a replace-if-equals of one key in one transaction
// commit as if neither had run, so the first group of a new keyspace, which
// did exactly that, left no counter behind.
func (s *Store) initCounter(ctx context.Context) error {
	vals, err := s.eng.GetAll(ctx, s.tables.meta, [][]byte{metaRevision})
	if err != nil || vals[0] != nil {
		return err
	}
	tx, err := s.eng.Begin(ctx)
	if err != nil {
		return err
	}
	// Another node may win the race: then the counter exists, as wanted.
	if _, err := tx.Replace(ctx, s.tables.meta, metaRevision, nil, encodeCounter(counterValue{last: 1})); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return tx.Commit(ctx)
}

// Close stops the feed and the lease loop. The engine is the caller's.
func (s *Store) Close() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	s.feed.cancel()
	s.stopped.Wait()
	s.mu.Lock()
	s.wakeLocked()
	s.mu.Unlock()
}

// readMeta reads the revision counter and the compacted revision, unlocked.
func (s *Store) readMeta(ctx context.Context) (counter, compact int64, err error) {
	cv, compact, err := s.readMetaValue(ctx)
	return cv.last, compact, err
}

// readMetaValue is readMeta with the whole counter: the last group's span
// and nonce as well.
func (s *Store) readMetaValue(ctx context.Context) (counterValue, int64, error) {
	vals, err := s.eng.GetAll(ctx, s.tables.meta, [][]byte{metaRevision, metaCompact})
	if err != nil {
		return counterValue{}, 0, err
	}
	cv, err := decodeCounterValue(vals[0])
	if err != nil {
		return counterValue{}, 0, err
	}
	s.feed.observe(cv) // the feed learns of other nodes' writes this way too
	s.feed.reachable()
	compact, err := decodeCompact(vals[1])
	if err != nil {
		return counterValue{}, 0, err
	}
	return cv, compact, nil
}

// maxLoadAttempts bounds how often a load starts over because a compaction
// moved the compacted revision while it read.
const maxLoadAttempts = 5

// load builds the index and event log up to the counter cv. Revisions from
// the compacted one on come from revlog, each from the entry of the group
// that committed it: the counter names the last group, and each group's
// entries name the one before (records.go), so entries that rolled-back
// groups' operations wrote late, outside their transaction, are passed
// over. History serves only the versions below the compacted revision that
// compaction kept.
func (s *Store) load(ctx context.Context, cv counterValue) error {
	for attempt := 1; ; attempt++ {
		done, err := s.loadOnce(ctx, cv)
		if done || err != nil {
			return err
		}
		if attempt == maxLoadAttempts {
			return fmt.Errorf("mvcc: the compacted revision moved during each of %d loads", attempt)
		}
	}
}

// loadedGroup is one group's revlog entries, as the load scan found them.
type loadedGroup struct {
	span groupSpan
	evs  map[int64][]*mvccpb.Event
}

// loadOnce is one attempt of load; it reports false, having changed nothing,
// if the compacted revision moved while it read.
func (s *Store) loadOnce(ctx context.Context, cv counterValue) (bool, error) {
	counter := cv.last
	_, compact, err := s.readMeta(ctx)
	if err != nil {
		return false, err
	}
	// Revision 1 is the empty store's and never has a revlog entry.
	first := max(compact, 2)
	type loaded struct {
		rev int64
		sub int
		ev  *mvccpb.Event
	}
	var kept []loaded
	err = s.eng.Scan(ctx, s.tables.history, func(key, value []byte) error {
		rev, sub, err := decodeHistoryKey(key)
		if err != nil {
			return err
		}
		if rev >= first {
			return nil // revlog has it
		}
		ev := &mvccpb.Event{}
		if err := ev.Unmarshal(value); err != nil || ev.Kv == nil {
			return fmt.Errorf("mvcc: malformed history entry at revision %d: %v", rev, err)
		}
		kept = append(kept, loaded{rev, sub, ev})
		return nil
	})
	if err != nil {
		return false, err
	}
	groups := map[uint64]*loadedGroup{}
	legacy := map[int64][]*mvccpb.Event{}
	err = s.eng.Scan(ctx, s.tables.revlog, func(key, value []byte) error {
		rev, nonce, err := decodeRevlogKey(key)
		if err != nil || rev < first || rev > counter {
			return nil // purged or later revisions
		}
		sp, evs, err := decodeRevlogEntry(rev, nonce, value)
		if err != nil {
			return fmt.Errorf("mvcc: revlog entry of revision %d: %w", rev, err)
		}
		if nonce == 0 {
			legacy[rev] = evs
			return nil
		}
		g := groups[nonce]
		if g == nil {
			g = &loadedGroup{span: sp, evs: map[int64][]*mvccpb.Event{}}
			groups[nonce] = g
		}
		if g.span == sp {
			g.evs[rev] = evs
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	_, compactAfter, err := s.readMeta(ctx)
	if err != nil {
		return false, err
	}
	if compactAfter != compact {
		return false, nil
	}
	// Follow the committed groups from the counter's down to first.
	revs := make([][]*mvccpb.Event, max(counter-first+1, 0))
	last, nonce := counter, cv.nonce
	for last >= first && nonce != 0 {
		g := groups[nonce]
		if g == nil || g.span.last != last {
			return false, fmt.Errorf("mvcc: revlog lacks the committed write group %016x that ends at revision %d", nonce, last)
		}
		for rev := max(g.span.first, first); rev <= last; rev++ {
			evs, ok := g.evs[rev]
			if !ok {
				return false, fmt.Errorf("mvcc: revlog lacks revision %d of the committed write group %016x", rev, nonce)
			}
			revs[rev-first] = evs
		}
		last, nonce = g.span.first-1, g.span.prev
	}
	for rev := first; rev <= last; rev++ { // stored by an earlier version
		evs, ok := legacy[rev]
		if !ok {
			return false, fmt.Errorf("mvcc: revlog lacks revision %d", rev)
		}
		revs[rev-first] = evs
	}
	sort.Slice(kept, func(i, j int) bool {
		if kept[i].rev != kept[j].rev {
			return kept[i].rev < kept[j].rev
		}
		return kept[i].sub < kept[j].sub
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range kept {
		s.ix.apply(l.ev, l.sub)
	}
	s.events.first = first
	s.safePoint = first - 1
	for i, evs := range revs {
		rev := first + int64(i)
		for sub, ev := range evs {
			s.ix.apply(ev, sub)
		}
		s.events.appendRev(rev, evs)
		s.safePoint = rev
	}
	s.ix.compact(compact)
	s.events.trimBefore(compact)
	s.compactRev = compact
	return true, nil
}

// wakeLocked wakes everyone waiting for the released state to move; mu held.
func (s *Store) wakeLocked() {
	close(s.advanced)
	s.advanced = make(chan struct{})
}

// release applies revisions handed over by the feed, in order, each above
// the safe point; one lock and one wake-up for all of them.
func (s *Store) release(items []ordering.Item[[]*mvccpb.Event]) {
	if len(items) == 0 {
		return
	}
	s.mu.Lock()
	for _, it := range items {
		for i, ev := range it.Value {
			s.ix.apply(ev, i)
		}
		if len(s.events.revs) == 0 {
			s.events.first = it.Rev
		}
		s.events.appendRev(it.Rev, it.Value)
	}
	safe := items[len(items)-1].Rev
	s.safePoint = safe
	s.wakeLocked()
	s.mu.Unlock()
	s.revWaiters.release(safe)
}

// Revision returns the node's safe point: the newest revision whose effects
// (and all before it) are visible here.
func (s *Store) Revision() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.safePoint
}

// StorageLostFor reports how long this node has been cut off from its
// storage engine (its change feed lost, or the counter unreadable); 0 while
// connected. It is ignetcd's "no leader".
func (s *Store) StorageLostFor() time.Duration { return s.feed.lostFor() }

// BehindCompaction reports the compacted revision this node fell behind (its
// view lacks revisions that compaction has already purged from storage, as
// after a long cut-off from it), or 0. Such a node stays at its revision; a
// restart loads the keyspace again.
func (s *Store) BehindCompaction() int64 { return s.feed.behindCompacted() }

// CompactRevision returns the compacted revision as this node knows it.
func (s *Store) CompactRevision() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.compactRev
}

// DBSize approximates the bytes of keys and values held since compaction.
func (s *Store) DBSize() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ix.bytes
}

// waitFor blocks until the safe point reaches rev.
func (s *Store) waitFor(ctx context.Context, rev int64) error {
	if s.Revision() >= rev {
		return nil
	}
	// Registered for rev alone: a write group's requests wait for as many
	// different revisions, and waking all of them at every release was
	// most of the scheduler's work under load.
	ch := s.revWaiters.add(rev)
	if s.Revision() >= rev { // released before the registration
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stop:
		return ErrStopped
	}
}

// applyCompaction drops index history and event log entries below rev once
// the node has released rev.
func (s *Store) applyCompaction(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev <= s.compactRev || rev > s.safePoint {
		return
	}
	s.ix.compact(rev)
	s.events.trimBefore(rev)
	s.compactRev = rev
	s.wakeLocked()
}
