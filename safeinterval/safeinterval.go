// Package safeinterval decides how far the change feed may be released.
//
// Flow: Ignite continuous query on revlog (the change feed) → ordering.Buffer
// → safeinterval → Buffer.Release(safe point) → in-memory index and watch hub.
//
// A Rule computes the safe point S: the highest revision such that every
// revision <= S is buffered, already released, or known never to exist.
// Releasing up to S and no further is what guarantees that a watcher never
// skips a revision (nothing below S can still arrive) and never sees one twice
// (the Buffer rejects anything at or below what it has released). The rule is
// separate from the buffer because the answer depends on how revisions are
// allocated: with today's contiguous counter S is simply the end of the
// contiguous prefix (Contiguous); with reserved revision ranges per node,
// holes are legal and S will be the minimum of per-node watermarks — a
// different Rule over the same View.
//
// GapDetector is the liveness half: the safe point alone would wait forever
// for a notification that was lost. It decides when missing revisions have
// been waited for long enough (or the feed was lost outright) and must be read
// from revlog directly (gap fill) and Added to the buffer.
package safeinterval

import "time"

// View is what a rule may look at. *ordering.Buffer satisfies it.
type View interface {
	Released() int64
	ContiguousEnd() int64
	Max() int64
	Missing(through int64, max int) []int64
}

// Rule decides the safe point: the highest revision S such that every
// revision <= S is buffered/released or known never to exist.
type Rule interface {
	SafePoint(v View) int64
}

// Contiguous is the rule for a contiguous revision counter: every revision
// number exists, so a missing one must be waited for (or gap-filled) and S is
// the end of the contiguous buffered prefix.
type Contiguous struct{}

// SafePoint returns v.ContiguousEnd().
func (Contiguous) SafePoint(v View) int64 { return v.ContiguousEnd() }

// checkpoint records that revisions up to high were known to exist at since.
// now marks a checkpoint due regardless of since (set after Lost); a flag
// rather than a zero time so that any fake clock, even one starting at
// time.Time{}, works.
type checkpoint struct {
	high  int64
	since time.Time
	now   bool
}

// GapDetector decides when a missing revision must be fetched directly from
// storage (gap fill). Not safe for concurrent use; the caller locks (the same
// lock as the Buffer).
//
// A revision is known to exist up to max(highest value given to Known,
// v.Max()) — with a contiguous counter, a notification for revision r or a
// counter read of r proves every revision <= r was committed. When Released()
// has not reached a known high for at least the timeout, Due returns the
// missing revisions below it.
//
// "Known to exist up to" presumes the contiguous counter. Under the future
// watermark rule the same detector works only if the View's Missing leaves
// out the revisions known never to exist (the holes).
//
// The clock is per known high, not a single "stuck since": the detector
// keeps one checkpoint each time the known high grows, stamped with the time
// it was first observed. A revision becomes due once it has been known to
// exist for the timeout and is still missing. Consequences, both deliberate:
//   - under steady load (Released() permanently a little behind the newest
//     notification) nothing is fetched just because notifications are in
//     flight: revisions learned of less than the timeout ago are not due;
//   - a lost revision is fetched after about one timeout even when other
//     late notifications keep moving the release point in the meantime (a
//     single timer reset on every release would let a chain of late arrivals
//     postpone it indefinitely).
type GapDetector struct {
	timeout time.Duration
	known   int64 // highest value given to Known
	// cps holds checkpoints with strictly increasing high, the ones marked
	// now first and then non-decreasing since, all above Released() as of the
	// last Observe. Bounded by the number of distinct highs seen above the
	// release point.
	cps []checkpoint
	// lost is set by Lost until the next Due: checkpoints created meanwhile
	// are due at once, and that Due returns everything missing.
	lost bool
}

// NewGapDetector returns a detector that reports a missing revision once it
// has been known to exist for timeout.
func NewGapDetector(timeout time.Duration) *GapDetector {
	return &GapDetector{timeout: timeout}
}

// Known records that revisions up to rev exist, e.g. a counter read from
// storage (start-up, a linearizable read, a recovered feed). This is how the
// detector learns about lost notifications at the tail, which v.Max() cannot
// reveal. It is stamped with the time of the next Observe or Due.
func (g *GapDetector) Known(rev int64) {
	if rev > g.known {
		g.known = rev
	}
}

// Observe updates the detector from the buffer at time now. Call it after
// every Add/Release: it stamps newly known revisions with now and forgets
// checkpoints the release point has passed.
func (g *GapDetector) Observe(v View, now time.Time) {
	released := v.Released()
	i := 0
	for i < len(g.cps) && g.cps[i].high <= released {
		i++
	}
	g.cps = g.cps[i:]

	high := g.known
	if m := v.Max(); m > high {
		high = m
	}
	if high <= released {
		return
	}
	if n := len(g.cps); n > 0 && g.cps[n-1].high >= high {
		return
	}
	c := checkpoint{high: high, since: now, now: g.lost}
	if n := len(g.cps); n > 0 && g.cps[n-1].now == c.now && g.cps[n-1].since.Equal(c.since) {
		g.cps[n-1].high = high // same instant: widen instead of growing the list
		return
	}
	g.cps = append(g.cps, c)
}

// Due returns the missing revisions in (Released(), h], ascending and at most
// max, where h is the highest known high that Released() has stayed below for
// at least the timeout; nil if there is none. Revisions known to exist for
// less than the timeout are left out (their notifications are probably in
// flight). After Lost, the next call returns every missing revision up to the
// known high without waiting.
//
// Due does not remember what it returned: calling it again before the
// fetched revisions are Added returns them again. Duplicate fills are
// harmless (Buffer.Add ignores them), and this way a failed fill is simply
// retried on the next call.
func (g *GapDetector) Due(v View, now time.Time, max int) []int64 {
	g.Observe(v, now) // stamps anything learned since the last Observe
	g.lost = false
	through := int64(-1 << 63)
	for _, c := range g.cps {
		if !c.now && now.Sub(c.since) < g.timeout {
			break // since is non-decreasing: later checkpoints are younger
		}
		through = c.high
	}
	if through <= v.Released() {
		return nil
	}
	return v.Missing(through, max)
}

// Lost records that the feed was lost (connection drop, Ignite node failure):
// notifications may have been dropped, so waiting for them is pointless. The
// next Due returns the missing revisions at once, and they stay due (a
// failed fill is retried by the following Due) until released. Call Known
// with a fresh counter read before that Due so the tail committed while the
// feed was down is included; revisions learned after it wait the timeout.
func (g *GapDetector) Lost() {
	g.lost = true
	for i := range g.cps {
		g.cps[i].now = true
	}
}
