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
type feed struct {
	s *Store

	mu    sync.Mutex
	buf   *ordering.Buffer[[]*mvccpb.Event] // nil until start
	early map[int64][]*mvccpb.Event         // notifications before start
	rule  safeinterval.Rule
	gaps  *safeinterval.GapDetector
	sub   Subscription
	lost  bool
	// lostAt is when storage was found unreachable (the subscription lost,
	// or the counter poll failing); zero while it is reachable.
	lostAt time.Time
	wake   chan struct{} // poked when the loop has work: lost feed, a reader waiting
	// absentSince records when a gap-fill read first found a revision the
	// counter has passed absent from revlog.
	absentSince map[int64]time.Time
	releaseMu   sync.Mutex // keeps releases in order across goroutines
	// own holds the events of revisions this node's writer is committing,
	// so that their notifications need not be decoded again (expect); an
	// entry goes when its notification comes or its revision is released
	// (advance); guarded by mu.
	own map[int64]ownRevision
}

// ownRevision is a revision this node's writer is committing: its revlog
// entry as written, and the events it holds.
type ownRevision struct {
	raw []byte
	evs []*mvccpb.Event
}

func newFeed(s *Store) *feed {
	return &feed{
		s:           s,
		early:       map[int64][]*mvccpb.Event{},
		absentSince: map[int64]time.Time{},
		own:         map[int64]ownRevision{},
		rule:        safeinterval.Contiguous{},
		gaps:        safeinterval.NewGapDetector(s.cfg.GapTimeout),
		wake:        make(chan struct{}, 1),
	}
}

func (f *feed) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *feed) subscribe(ctx context.Context) error {
	var sub Subscription
	onLost := func(err error) {
		f.mu.Lock()
		if f.sub == sub {
			f.lost = true
			f.sub = nil
			if f.lostAt.IsZero() {
				f.lostAt = time.Now()
			}
		}
		f.mu.Unlock()
		f.s.lg.Warn().Err(err).Msg("change feed lost; resubscribing and filling the gap from revlog")
		f.poke()
	}
	sub, err := f.s.eng.Subscribe(ctx, f.s.tables.revlog, f.onPut, onLost)
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
	f.mu.Unlock()
	if sub != nil {
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
	rev, err := decodeRevision(key)
	if err != nil || rev <= 0 {
		f.s.lg.Error().Err(err).Msg("ignoring malformed revlog key in change feed")
		return
	}
	f.mu.Lock()
	own, mine := f.own[rev]
	delete(f.own, rev)
	f.mu.Unlock()
	// Only if the notification carries exactly what this node wrote: the
	// commit may have failed and another node's write taken the revision.
	if mine && bytes.Equal(own.raw, value) {
		f.add(rev, own.evs)
		f.advance()
		return
	}
	evs, err := decodeEvents(value)
	if err != nil {
		f.s.lg.Error().Err(err).Int64("revision", rev).Msg("ignoring malformed revlog entry in change feed; gap fill will retry")
		return
	}
	f.add(rev, evs)
	f.advance()
}

func (f *feed) add(rev int64, evs []*mvccpb.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.buf == nil {
		f.early[rev] = evs
		return
	}
	delete(f.absentSince, rev)
	if rev <= f.buf.Released() {
		f.checkReleased(rev, evs)
		return
	}
	f.buf.Add(rev, evs)
	f.gaps.Observe(f.buf, time.Now())
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

// expect records the events of revisions about to be committed by this
// node (first, first+1, ...): their notifications carry exactly these, so
// onPut takes them instead of decoding its copy (if it is byte for byte
// what raw holds: the revlog entries written).
func (f *feed) expect(first int64, revisions [][]*mvccpb.Event, raw [][]byte) {
	f.mu.Lock()
	for i, evs := range revisions {
		f.own[first+int64(i)] = ownRevision{raw: raw[i], evs: evs}
	}
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
	if len(f.own) > 0 && len(items) > 0 {
		// Entries whose notification never came (a failed commit, a
		// revision gap-filled instead) go once their revision is released.
		released := f.buf.Released()
		for rev := range f.own {
			if rev <= released {
				delete(f.own, rev)
			}
		}
	}
	f.mu.Unlock()
	f.s.release(items)
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
			if err := f.subscribe(ctx); err != nil {
				cancel()
				f.s.lg.Warn().Err(err).Dur("retry_in", backoff).Msg("resubscribing to the change feed failed")
				select {
				case <-f.s.stop:
					return
				case <-time.After(backoff):
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

func (f *feed) poll(ctx context.Context) {
	counter, compact, err := f.s.readMeta(ctx)
	f.mu.Lock()
	switch {
	case err != nil && f.lostAt.IsZero():
		f.lostAt = time.Now()
	case err == nil && !f.lost:
		f.lostAt = time.Time{}
	}
	f.mu.Unlock()
	if err != nil {
		f.s.lg.Debug().Err(err).Msg("reading the revision counter failed")
		return
	}
	f.known(counter)
	for {
		f.mu.Lock()
		due := f.gaps.Due(f.buf, time.Now(), 256)
		f.mu.Unlock()
		if len(due) == 0 {
			break
		}
		keys := make([][]byte, len(due))
		for i, rev := range due {
			keys[i] = revisionKey(rev)
		}
		vals, err := f.s.eng.GetAll(ctx, f.s.tables.revlog, keys)
		if err != nil {
			f.s.lg.Debug().Err(err).Msg("gap fill read failed")
			return
		}
		filled := 0
		for i, v := range vals {
			if v == nil {
				f.absent(due[i], counter)
				continue // not visible yet; retried on the next poll
			}
			evs, err := decodeEvents(v)
			if err != nil {
				f.s.lg.Error().Err(err).Int64("revision", due[i]).Msg("malformed revlog entry")
				continue
			}
			f.add(due[i], evs)
			filled++
		}
		if filled > 0 {
			f.s.lg.Debug().Int("revisions", filled).Msg("filled change feed gap from revlog")
		}
		f.advance()
		if filled < len(due) {
			break
		}
	}
	if compact > f.s.CompactRevision() && compact <= f.s.Revision() {
		f.s.applyCompaction(compact)
	}
}

// checkReleased compares a late notification of a released revision with
// what was released. They only differ if a revlog entry was overwritten, which
// the write path's locking rules out unless the engine applied a write
// outside its transaction; it cannot be undone here, so it is reported.
func (f *feed) checkReleased(rev int64, evs []*mvccpb.Event) {
	f.s.mu.RLock()
	released := f.s.events.get(rev)
	known := rev >= f.s.events.first && rev > f.s.compactRev
	f.s.mu.RUnlock()
	if !known || string(encodeEvents(released)) == string(encodeEvents(evs)) {
		return
	}
	f.s.revlogConflicts.Add(1)
	f.s.lg.Error().Int64("revision", rev).Msg("revlog entry of a released revision was overwritten with different changes: this node and storage disagree about it; see ignite/NOTES.md (operations applied outside their transaction)")
}

// absent notes that revision rev, which the counter has passed, is still
// missing from revlog. After VoidRevisionAfter it is recorded as a revision
// without changes so that no node's feed waits for it forever.
func (f *feed) absent(rev, counter int64) {
	if rev > counter {
		return
	}
	f.mu.Lock()
	since, ok := f.absentSince[rev]
	if !ok {
		f.absentSince[rev] = time.Now()
	}
	f.mu.Unlock()
	if !ok || time.Since(since) < f.s.cfg.VoidRevisionAfter {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.s.voidRevision(ctx, rev); err != nil {
		f.s.lg.Warn().Err(err).Int64("revision", rev).Msg("recording a missing revision failed; will retry")
	}
}
