// Package ordering buffers change-feed notifications until they can be
// released in revision order.
//
// Flow: Ignite continuous query on revlog (the change feed) → ordering.Buffer
// → safeinterval (decides the safe point S) → Buffer.Release(S) → in-memory
// index and watch hub.
//
// The feed delivers one notification per committed revision, but it can
// deliver them out of order (revlog entries live on different partitions with
// different primaries), twice (a notification replayed after a reconnect, or
// a gap fill racing the real notification), late, or never (feed lost). The
// Buffer absorbs all of that: it keeps received changes in a btree keyed by
// revision, ignores duplicates and anything already released, and hands items
// out strictly in ascending revision order, each exactly once. It does not
// decide how far it is safe to release; that is the job of a
// safeinterval.Rule, which looks at the Buffer through safeinterval.View.
package ordering

import "github.com/google/btree"

// btreeDegree is the btree node degree. 32 keeps nodes around a few cache
// lines for small T and is the value google/btree's own benchmarks favour.
const btreeDegree = 32

// Item is one buffered change: the revision and the payload received for it.
type Item[T any] struct {
	Rev   int64
	Value T
}

func lessItem[T any](a, b Item[T]) bool { return a.Rev < b.Rev }

// Buffer holds received changes keyed by revision until they are released.
// Not safe for concurrent use; the caller locks.
//
// Invariants:
//   - every buffered revision is > released (released revisions are never
//     accepted again, which is what makes release exactly-once);
//   - released <= contig, and every revision in (released, contig] is
//     buffered, and contig+1 is not.
type Buffer[T any] struct {
	tree     *btree.BTreeG[Item[T]]
	released int64
	// contig caches ContiguousEnd. It only ever grows (Add extends it,
	// Release can only push it up to the release point), and each buffered
	// item is stepped over at most once while growing it, so keeping it
	// current costs amortised O(log n) per Add instead of a scan per call.
	contig int64
}

// New returns an empty Buffer. released is the highest revision already
// released (for example the revision the index was loaded at on start-up);
// nothing at or below it is accepted.
func New[T any](released int64) *Buffer[T] {
	return &Buffer[T]{
		tree:     btree.NewG(btreeDegree, lessItem[T]),
		released: released,
		contig:   released,
	}
}

// Add buffers v at revision rev. It returns false and ignores v if rev is at
// or below Released() or already buffered: the feed may deliver a revision
// twice (or a gap fill may race the notification), and the first copy wins
// so a released or queued item is never replaced or emitted twice.
func (b *Buffer[T]) Add(rev int64, v T) bool {
	if rev <= b.released {
		return false
	}
	it := Item[T]{Rev: rev, Value: v}
	if b.tree.Has(it) {
		return false
	}
	b.tree.ReplaceOrInsert(it)
	if rev == b.contig+1 {
		b.extendContig()
	}
	return true
}

// extendContig moves contig forward over buffered revisions that continue
// the contiguous run. contig+1 must be buffered or the call does nothing.
func (b *Buffer[T]) extendContig() {
	b.tree.AscendGreaterOrEqual(Item[T]{Rev: b.contig + 1}, func(it Item[T]) bool {
		if it.Rev != b.contig+1 {
			return false
		}
		b.contig = it.Rev
		return true
	})
}

// Released returns the highest revision released so far.
func (b *Buffer[T]) Released() int64 { return b.released }

// Has reports whether rev is currently buffered (received, not yet released).
func (b *Buffer[T]) Has(rev int64) bool {
	if rev <= b.released {
		return false
	}
	return b.tree.Has(Item[T]{Rev: rev})
}

// Len returns the number of buffered items.
func (b *Buffer[T]) Len() int { return b.tree.Len() }

// Max returns the highest buffered revision, or Released() if the buffer is
// empty. A notification for Max() proves that the revision exists, so (with a
// contiguous counter) every revision below it exists too.
func (b *Buffer[T]) Max() int64 {
	if it, ok := b.tree.Max(); ok {
		return it.Rev
	}
	return b.released
}

// ContiguousEnd returns the highest r such that every revision in
// (Released(), r] is buffered, or Released() if Released()+1 is missing.
// O(1): the value is maintained incrementally by Add and Release.
func (b *Buffer[T]) ContiguousEnd() int64 { return b.contig }

// Missing returns the revisions in (Released(), through] that are not
// buffered, ascending, at most max of them (nil if max <= 0). These are the
// candidates for a gap fill. Cost is O(log n + buffered items in the range
// scanned), never a walk over every revision number: through may be far
// beyond the buffer and the result is cut at max.
func (b *Buffer[T]) Missing(through int64, max int) []int64 {
	if max <= 0 || through <= b.contig {
		return nil
	}
	var out []int64
	// Everything in (released, contig] is buffered, so the first missing
	// revision is contig+1. next is the lowest revision not yet classified.
	next := b.contig + 1
	emitUpTo := func(end int64) { // emit next..end (inclusive), bounded by max
		for ; next <= end && len(out) < max; next++ {
			out = append(out, next)
		}
	}
	done := false
	b.tree.AscendGreaterOrEqual(Item[T]{Rev: next}, func(it Item[T]) bool {
		if it.Rev > through {
			return false
		}
		emitUpTo(it.Rev - 1)
		if it.Rev == through || len(out) >= max {
			done = true // through itself is buffered, or the result is full
			return false
		}
		next = it.Rev + 1
		return true
	})
	if !done {
		emitUpTo(through)
	}
	return out
}

// Release removes and returns the buffered items with rev <= through, in
// ascending order, and sets Released() to max(Released(), through).
// Unbuffered revisions <= through are skipped: the caller (via a
// safeinterval.Rule) asserts they will never exist, and anything for them
// arriving later is rejected by Add. Releasing backwards is a no-op.
func (b *Buffer[T]) Release(through int64) []Item[T] {
	if through <= b.released {
		return nil
	}
	var out []Item[T]
	for {
		it, ok := b.tree.Min()
		if !ok || it.Rev > through {
			break
		}
		b.tree.DeleteMin()
		out = append(out, it)
	}
	b.released = through
	if b.contig < through {
		// Released past a hole (or exactly to contig): the run restarts at
		// the new release point and may continue over items already buffered.
		b.contig = through
		b.extendContig()
	}
	return out
}
