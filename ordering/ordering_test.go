package ordering

import (
	"flag"
	"math/rand"
	"slices"
	"testing"
	"time"
)

var seedFlag = flag.Int64("seed", 0, "replay randomized tests with this seed (0: fresh seeds each run)")

// seeds returns the seeds a randomized test runs: just -seed if given,
// otherwise n fresh ones. Every failure message carries its seed.
func seeds(t *testing.T, n int) []int64 {
	if *seedFlag != 0 {
		return []int64{*seedFlag}
	}
	if testing.Short() {
		n /= 10
	}
	base := time.Now().UnixNano()
	out := make([]int64, n)
	for i := range out {
		out[i] = base + int64(i)
	}
	t.Logf("base seed %d (replay one run with -seed=<seed from the failure>)", base)
	return out
}

func revs[T any](items []Item[T]) []int64 {
	out := []int64{}
	for _, it := range items {
		out = append(out, it.Rev)
	}
	return out
}

func TestAdd(t *testing.T) {
	tests := []struct {
		name       string
		released   int64
		adds       []int64
		want       []bool
		wantLen    int
		wantMax    int64
		wantContig int64
	}{
		{name: "empty", released: 0, wantMax: 0, wantContig: 0},
		{name: "empty nonzero released", released: 7, wantMax: 7, wantContig: 7},
		{name: "in order", adds: []int64{1, 2, 3}, want: []bool{true, true, true}, wantLen: 3, wantMax: 3, wantContig: 3},
		{name: "reverse order", adds: []int64{3, 2, 1}, want: []bool{true, true, true}, wantLen: 3, wantMax: 3, wantContig: 3},
		{name: "duplicate", adds: []int64{1, 1, 2, 1, 2}, want: []bool{true, false, true, false, false}, wantLen: 2, wantMax: 2, wantContig: 2},
		{name: "duplicate above hole", adds: []int64{5, 5}, want: []bool{true, false}, wantLen: 1, wantMax: 5, wantContig: 0},
		{name: "at released", released: 10, adds: []int64{10}, want: []bool{false}, wantMax: 10, wantContig: 10},
		{name: "below released", released: 10, adds: []int64{3, 0, -1, 11}, want: []bool{false, false, false, true}, wantLen: 1, wantMax: 11, wantContig: 11},
		{name: "hole at start", adds: []int64{2, 3}, want: []bool{true, true}, wantLen: 2, wantMax: 3, wantContig: 0},
		{name: "hole in middle", adds: []int64{1, 2, 4, 5}, want: []bool{true, true, true, true}, wantLen: 4, wantMax: 5, wantContig: 2},
		{name: "hole filled joins runs", adds: []int64{1, 2, 4, 5, 7, 3}, want: []bool{true, true, true, true, true, true}, wantLen: 6, wantMax: 7, wantContig: 5},
		{name: "nonzero released run", released: 100, adds: []int64{102, 101, 104}, want: []bool{true, true, true}, wantLen: 3, wantMax: 104, wantContig: 102},
		{name: "negative released", released: -5, adds: []int64{-4, -3, -1}, want: []bool{true, true, true}, wantLen: 3, wantMax: -1, wantContig: -3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := New[string](tc.released)
			for i, r := range tc.adds {
				if got := b.Add(r, "v"); got != tc.want[i] {
					t.Errorf("Add(%d) #%d = %v, want %v", r, i, got, tc.want[i])
				}
			}
			if got := b.Len(); got != tc.wantLen {
				t.Errorf("Len() = %d, want %d", got, tc.wantLen)
			}
			if got := b.Max(); got != tc.wantMax {
				t.Errorf("Max() = %d, want %d", got, tc.wantMax)
			}
			if got := b.ContiguousEnd(); got != tc.wantContig {
				t.Errorf("ContiguousEnd() = %d, want %d", got, tc.wantContig)
			}
			if got := b.Released(); got != tc.released {
				t.Errorf("Released() = %d, want %d (Add must not move it)", got, tc.released)
			}
			for i, r := range tc.adds {
				if tc.want[i] && !b.Has(r) {
					t.Errorf("Has(%d) = false after successful Add", r)
				}
			}
			if b.Has(tc.released) {
				t.Errorf("Has(released=%d) = true", tc.released)
			}
		})
	}
}

func TestAddKeepsFirstValue(t *testing.T) {
	b := New[string](0)
	b.Add(1, "first")
	b.Add(1, "second")
	if got := b.Release(1); len(got) != 1 || got[0].Value != "first" {
		t.Fatalf("Release(1) = %+v, want [{1 first}]", got)
	}
}

func TestMissing(t *testing.T) {
	type query struct {
		through int64
		max     int
		want    []int64
	}
	tests := []struct {
		name     string
		released int64
		adds     []int64
		release  int64 // applied after adds when > released
		queries  []query
	}{
		{
			name: "empty buffer",
			queries: []query{
				{through: 0, max: 10, want: nil},
				{through: -3, max: 10, want: nil},
				{through: 3, max: 10, want: []int64{1, 2, 3}},
				{through: 3, max: 2, want: []int64{1, 2}},
				{through: 3, max: 0, want: nil},
				{through: 3, max: -1, want: nil},
			},
		},
		{
			name: "contiguous prefix has nothing missing",
			adds: []int64{1, 2, 3},
			queries: []query{
				{through: 2, max: 10, want: nil},
				{through: 3, max: 10, want: nil},
				{through: 5, max: 10, want: []int64{4, 5}},
			},
		},
		{
			name: "holes between items",
			adds: []int64{2, 4, 5, 8},
			queries: []query{
				{through: 8, max: 100, want: []int64{1, 3, 6, 7}},
				{through: 7, max: 100, want: []int64{1, 3, 6, 7}},
				{through: 6, max: 100, want: []int64{1, 3, 6}},
				{through: 5, max: 100, want: []int64{1, 3}},
				{through: 4, max: 100, want: []int64{1, 3}},
				{through: 1, max: 100, want: []int64{1}},
				{through: 10, max: 100, want: []int64{1, 3, 6, 7, 9, 10}},
				{through: 10, max: 1, want: []int64{1}},
				{through: 10, max: 3, want: []int64{1, 3, 6}},
				{through: 10, max: 4, want: []int64{1, 3, 6, 7}},
				{through: 10, max: 5, want: []int64{1, 3, 6, 7, 9}},
			},
		},
		{
			name:     "bounded by released",
			released: 10,
			adds:     []int64{12, 14},
			queries: []query{
				{through: 10, max: 10, want: nil},
				{through: 5, max: 10, want: nil},
				{through: 11, max: 10, want: []int64{11}},
				{through: 15, max: 10, want: []int64{11, 13, 15}},
			},
		},
		{
			name:    "after release past a hole",
			adds:    []int64{1, 3, 6},
			release: 4, // 2 and 4 skipped as never existing
			queries: []query{
				{through: 6, max: 10, want: []int64{5}},
				{through: 4, max: 10, want: nil},
			},
		},
		{
			name: "far through is cut at max",
			adds: []int64{1},
			queries: []query{
				{through: 1 << 62, max: 3, want: []int64{2, 3, 4}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := New[int](tc.released)
			for _, r := range tc.adds {
				b.Add(r, 0)
			}
			if tc.release > tc.released {
				b.Release(tc.release)
			}
			for _, q := range tc.queries {
				got := b.Missing(q.through, q.max)
				if !slices.Equal(got, q.want) {
					t.Errorf("Missing(%d, %d) = %v, want %v", q.through, q.max, got, q.want)
				}
			}
		})
	}
}

func TestRelease(t *testing.T) {
	type step struct {
		through      int64
		want         []int64
		wantReleased int64
		wantContig   int64
		wantLen      int
	}
	tests := []struct {
		name      string
		released  int64
		adds      []int64
		steps     []step
		lateAdds  []int64 // after all steps
		lateWant  []bool
		lateCheck int64 // ContiguousEnd after lateAdds
	}{
		{
			name:  "contiguous",
			adds:  []int64{3, 1, 2},
			steps: []step{{through: 3, want: []int64{1, 2, 3}, wantReleased: 3, wantContig: 3}},
		},
		{
			name: "partial then rest",
			adds: []int64{1, 2, 3, 4},
			steps: []step{
				{through: 2, want: []int64{1, 2}, wantReleased: 2, wantContig: 4, wantLen: 2},
				{through: 4, want: []int64{3, 4}, wantReleased: 4, wantContig: 4},
			},
		},
		{
			name: "past holes skips them",
			adds: []int64{1, 2, 4, 6, 7, 9},
			steps: []step{
				// 3 and 5 are skipped; the run continues over 6, 7 already buffered.
				{through: 5, want: []int64{1, 2, 4}, wantReleased: 5, wantContig: 7, wantLen: 3},
			},
			lateAdds:  []int64{3, 5, 8},
			lateWant:  []bool{false, false, true},
			lateCheck: 9,
		},
		{
			name: "past everything",
			adds: []int64{2, 5},
			steps: []step{
				{through: 100, want: []int64{2, 5}, wantReleased: 100, wantContig: 100},
			},
			lateAdds:  []int64{99, 100, 101},
			lateWant:  []bool{false, false, true},
			lateCheck: 101,
		},
		{
			name:     "backwards and equal are no-ops",
			released: 10,
			adds:     []int64{11, 12},
			steps: []step{
				{through: 5, want: []int64{}, wantReleased: 10, wantContig: 12, wantLen: 2},
				{through: 10, want: []int64{}, wantReleased: 10, wantContig: 12, wantLen: 2},
				{through: 11, want: []int64{11}, wantReleased: 11, wantContig: 12, wantLen: 1},
				{through: 11, want: []int64{}, wantReleased: 11, wantContig: 12, wantLen: 1},
			},
		},
		{
			name: "empty buffer",
			steps: []step{
				{through: 3, want: []int64{}, wantReleased: 3, wantContig: 3},
			},
		},
		{
			name: "below a hole leaves the rest",
			adds: []int64{1, 3, 4},
			steps: []step{
				{through: 1, want: []int64{1}, wantReleased: 1, wantContig: 1, wantLen: 2},
			},
			lateAdds:  []int64{2, 2},
			lateWant:  []bool{true, false},
			lateCheck: 4,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := New[int64](tc.released)
			for _, r := range tc.adds {
				b.Add(r, r*10)
			}
			for _, s := range tc.steps {
				items := b.Release(s.through)
				if got := revs(items); !slices.Equal(got, s.want) {
					t.Errorf("Release(%d) = %v, want %v", s.through, got, s.want)
				}
				for _, it := range items {
					if it.Value != it.Rev*10 {
						t.Errorf("Release(%d): item %d has value %d, want %d", s.through, it.Rev, it.Value, it.Rev*10)
					}
					if b.Has(it.Rev) {
						t.Errorf("Has(%d) = true after it was released", it.Rev)
					}
				}
				if got := b.Released(); got != s.wantReleased {
					t.Errorf("after Release(%d): Released() = %d, want %d", s.through, got, s.wantReleased)
				}
				if got := b.ContiguousEnd(); got != s.wantContig {
					t.Errorf("after Release(%d): ContiguousEnd() = %d, want %d", s.through, got, s.wantContig)
				}
				if got := b.Len(); got != s.wantLen {
					t.Errorf("after Release(%d): Len() = %d, want %d", s.through, got, s.wantLen)
				}
			}
			for i, r := range tc.lateAdds {
				if got := b.Add(r, r*10); got != tc.lateWant[i] {
					t.Errorf("late Add(%d) = %v, want %v", r, got, tc.lateWant[i])
				}
			}
			if tc.lateAdds != nil {
				if got := b.ContiguousEnd(); got != tc.lateCheck {
					t.Errorf("after late adds: ContiguousEnd() = %d, want %d", got, tc.lateCheck)
				}
			}
		})
	}
}

// model is a deliberately naive Buffer: a set and linear scans.
type model struct {
	released int64
	set      map[int64]int64
}

func (m *model) add(rev, v int64) bool {
	if _, ok := m.set[rev]; ok || rev <= m.released {
		return false
	}
	m.set[rev] = v
	return true
}

func (m *model) contig() int64 {
	r := m.released
	for {
		if _, ok := m.set[r+1]; !ok {
			return r
		}
		r++
	}
}

func (m *model) max() int64 {
	mx := m.released
	for r := range m.set {
		mx = max(mx, r)
	}
	return mx
}

func (m *model) missing(through int64, n int) []int64 {
	var out []int64
	for r := m.released + 1; r <= through && len(out) < n; r++ {
		if _, ok := m.set[r]; !ok {
			out = append(out, r)
		}
	}
	return out
}

func (m *model) release(through int64) []int64 {
	out := []int64{}
	if through <= m.released {
		return out
	}
	for r := range m.set {
		if r <= through {
			out = append(out, r)
			delete(m.set, r)
		}
	}
	slices.Sort(out)
	m.released = through
	return out
}

// TestBufferMatchesModel drives Buffer and the naive model with the same
// random operations (including releases past holes, which the incremental
// ContiguousEnd must survive) and compares every observable result.
func TestBufferMatchesModel(t *testing.T) {
	for _, seed := range seeds(t, 200) {
		rng := rand.New(rand.NewSource(seed))
		start := int64(rng.Intn(5))
		b := New[int64](start)
		m := &model{released: start, set: map[int64]int64{}}
		span := int64(1 + rng.Intn(60))
		for step := 0; step < 400; step++ {
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("seed %d step %d: "+format+" (replay: go test ./ordering/ -run TestBufferMatchesModel -seed=%d)",
					append(append([]any{seed, step}, args...), seed)...)
			}
			switch op := rng.Intn(10); {
			case op < 6:
				rev := m.released - 2 + rng.Int63n(span+3)
				if got, want := b.Add(rev, rev*3), m.add(rev, rev*3); got != want {
					fail("Add(%d) = %v, want %v", rev, got, want)
				}
			case op < 8:
				through := m.released - 1 + rng.Int63n(span)
				if rng.Intn(2) == 0 {
					through = b.ContiguousEnd() // the common case: release to the safe point
				}
				got, want := revs(b.Release(through)), m.release(through)
				if !slices.Equal(got, want) {
					fail("Release(%d) = %v, want %v", through, got, want)
				}
			default:
				through := m.released - 1 + rng.Int63n(span+5)
				n := rng.Intn(8) - 1
				if got, want := b.Missing(through, n), m.missing(through, n); !slices.Equal(got, want) {
					fail("Missing(%d, %d) = %v, want %v", through, n, got, want)
				}
			}
			if got, want := b.ContiguousEnd(), m.contig(); got != want {
				fail("ContiguousEnd() = %d, want %d", got, want)
			}
			if got, want := b.Max(), m.max(); got != want {
				fail("Max() = %d, want %d", got, want)
			}
			if got, want := b.Len(), len(m.set); got != want {
				fail("Len() = %d, want %d", got, want)
			}
			if got, want := b.Released(), m.released; got != want {
				fail("Released() = %d, want %d", got, want)
			}
		}
	}
}

// BenchmarkAddRelease measures the feed's steady state: one Add per
// notification, arriving in order, released to ContiguousEnd after each.
func BenchmarkAddRelease(b *testing.B) {
	buf := New[int64](0)
	b.ReportAllocs()
	for rev := int64(1); b.Loop(); rev++ {
		buf.Add(rev, rev)
		buf.Release(buf.ContiguousEnd())
	}
}

// BenchmarkAddReleaseReordered is the same with notifications shuffled
// within windows of 64 revisions, so the buffer holds up to ~64 items and
// ContiguousEnd jumps over runs.
func BenchmarkAddReleaseReordered(b *testing.B) {
	const window = 64
	perm := rand.New(rand.NewSource(1)).Perm(window)
	buf := New[int64](0)
	b.ReportAllocs()
	for i := int64(0); b.Loop(); i++ {
		rev := i - i%window + int64(perm[i%window]) + 1
		buf.Add(rev, rev)
		buf.Release(buf.ContiguousEnd())
	}
}
