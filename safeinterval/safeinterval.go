// Package safeinterval decides how far the change feed may be released.
//
// Flow: committed revisions (a node's own as its commits return, others' as
// the counter's notifications announce their write groups and the feed reads
// them; mvcc/feed.go) → ordering.Buffer → safeinterval → Buffer.Release(safe
// point) → in-memory index and watch hub.
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
// Liveness is the feed's: every revision below the counter belongs to a
// committed write group the counter leads to, and the feed reads what it
// lacks (mvcc/feed.go), so no revision waits on a notification that was lost.
package safeinterval

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
