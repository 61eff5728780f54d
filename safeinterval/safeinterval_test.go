package safeinterval

import (
	"flag"
	"slices"
	"testing"
	"time"

	"github.com/ignetcd/ignetcd/ordering"
)

// The buffer the feed uses must be a View.
var _ View = (*ordering.Buffer[int64])(nil)

var seedFlag = flag.Int64("seed", 0, "replay randomized tests with this seed (0: fresh seeds each run)")

func TestContiguousSafePoint(t *testing.T) {
	tests := []struct {
		name     string
		released int64
		adds     []int64
		release  int64
		want     int64
	}{
		{name: "empty", want: 0},
		{name: "empty nonzero released", released: 9, want: 9},
		{name: "prefix", adds: []int64{1, 2, 3}, want: 3},
		{name: "first missing", adds: []int64{2, 3}, want: 0},
		{name: "hole", adds: []int64{1, 2, 4}, want: 2},
		{name: "out of order complete", adds: []int64{4, 2, 3, 1}, want: 4},
		{name: "after partial release", adds: []int64{1, 2, 3, 5}, release: 2, want: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := ordering.New[int64](tc.released)
			for _, r := range tc.adds {
				b.Add(r, r)
			}
			if tc.release > 0 {
				b.Release(tc.release)
			}
			var rule Rule = Contiguous{}
			if got := rule.SafePoint(b); got != tc.want {
				t.Errorf("SafePoint = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestGapDetector walks scripted scenarios on a fake clock. Times are in
// units of timeout/10.
func TestGapDetector(t *testing.T) {
	const timeout = 10 * time.Millisecond
	type step struct {
		at      int // fake time, in timeout/10
		add     []int64
		known   int64 // > 0: Known(known)
		release bool  // release to the safe point
		lost    bool
		due     bool // call Due(max) and compare with want
		max     int
		want    []int64
	}
	D := func(at int, want ...int64) step { return step{at: at, due: true, max: 100, want: want} }
	tests := []struct {
		name      string
		zeroClock bool // start the fake clock at time.Time{} instead of a real-looking instant
		steps     []step
	}{
		{
			name: "nothing missing",
			steps: []step{
				{at: 0, add: []int64{1, 2, 3}, release: true},
				D(50),
			},
		},
		{
			name: "missing is due only after the timeout",
			steps: []step{
				{at: 0, add: []int64{2, 3}},
				D(0), D(9),
				D(10, 1), D(30, 1),
				{at: 31, add: []int64{1}, release: true},
				D(31), D(100),
			},
		},
		{
			name: "revisions learned later are not due yet",
			steps: []step{
				{at: 0, add: []int64{2}}, // 1 known missing since 0
				{at: 5, add: []int64{5}}, // 3, 4 known since 5
				{at: 8, known: 7},        // 6, 7 known since 8
				D(10, 1), D(14, 1),
				D(15, 1, 3, 4),
				D(18, 1, 3, 4, 6, 7),
			},
		},
		{
			name: "tail known only through Known",
			steps: []step{
				{at: 0, add: []int64{1}, release: true},
				{at: 2, known: 3},
				D(11), D(12, 2, 3),
			},
		},
		{
			name: "Known below the release point is ignored",
			steps: []step{
				{at: 0, add: []int64{1, 2}, release: true},
				{at: 0, known: 1},
				D(50),
			},
		},
		{
			name: "late arrivals do not postpone another hole",
			steps: []step{
				{at: 0, add: []int64{2, 4}}, // 1 and 3 missing since 0
				{at: 9, add: []int64{1}, release: true},
				D(9),
				D(10, 3), // a timer reset on release would say nil here
			},
		},
		{
			name: "release catching up resets, a new hole waits a full timeout",
			steps: []step{
				{at: 0, add: []int64{2}},
				D(10, 1),
				{at: 11, add: []int64{1}, release: true},
				D(11),
				{at: 20, add: []int64{4}},
				D(29), D(30, 3),
			},
		},
		{
			name: "max bounds the result",
			steps: []step{
				{at: 0, add: []int64{3, 6}, known: 8},
				{at: 10, due: true, max: 2, want: []int64{1, 2}},
				{at: 10, due: true, max: 4, want: []int64{1, 2, 4, 5}},
				{at: 10, due: true, max: 0, want: nil},
			},
		},
		{
			name: "Lost makes known missing due at once and keeps them due; later ones wait",
			steps: []step{
				{at: 0, add: []int64{1, 3}},
				{at: 1, lost: true, known: 6},
				D(1, 2, 4, 5, 6),
				{at: 2, known: 8}, // after the lost Due: normal waiting again
				D(2, 2, 4, 5, 6),
				D(11, 2, 4, 5, 6),
				D(12, 2, 4, 5, 6, 7, 8),
			},
		},
		{
			name: "Known after Lost is still immediate",
			steps: []step{
				{at: 0, add: []int64{1}, release: true},
				{at: 3, lost: true},
				{at: 3, known: 4},
				D(3, 2, 3, 4),
			},
		},
		{
			name: "Lost with nothing missing, then normal",
			steps: []step{
				{at: 0, add: []int64{1}, release: true},
				{at: 1, lost: true},
				D(1),
				{at: 2, add: []int64{3}},
				D(2), D(12, 2),
			},
		},
		{
			name:      "fake clock at zero time",
			zeroClock: true,
			steps: []step{
				{at: 0, add: []int64{2}},
				D(0),
				{at: 0, lost: true},
				D(0, 1),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Unix(1_700_000_000, 0)
			if tc.zeroClock {
				start = time.Time{}
			}
			b := ordering.New[int64](0)
			g := NewGapDetector(timeout)
			for i, s := range tc.steps {
				now := start.Add(time.Duration(s.at) * timeout / 10)
				for _, r := range s.add {
					b.Add(r, r)
					g.Observe(b, now)
				}
				if s.lost {
					g.Lost()
				}
				if s.known > 0 {
					g.Known(s.known)
					g.Observe(b, now)
				}
				if s.release {
					b.Release(Contiguous{}.SafePoint(b))
					g.Observe(b, now)
				}
				if s.due {
					if got := g.Due(b, now, s.max); !slices.Equal(got, s.want) {
						t.Errorf("step %d at %d: Due(max %d) = %v, want %v", i, s.at, s.max, got, s.want)
					}
				}
			}
		})
	}
}

func TestGapDetectorForgetsPassedCheckpoints(t *testing.T) {
	b := ordering.New[int64](0)
	g := NewGapDetector(time.Second)
	now := time.Unix(0, 0)
	for r := int64(1); r <= 1000; r++ {
		now = now.Add(time.Millisecond)
		b.Add(r, r)
		g.Observe(b, now)
		if r%10 == 0 {
			b.Release(b.ContiguousEnd())
			g.Observe(b, now)
			if len(g.cps) != 0 {
				t.Fatalf("after release to %d: %d checkpoints kept, want 0", r, len(g.cps))
			}
		}
	}
}
