package safeinterval

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/ignetcd/ignetcd/ordering"
)

// seeds returns the seeds a property test runs: just -seed if given,
// otherwise n fresh ones. Every failure message carries its seed and the
// command that replays it.
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

// TestPropertyReorderDupLossGapFill: revisions are committed one after
// another; each notification is delayed at random (so they arrive out of
// order), sometimes duplicated, sometimes lost. The node interleaves Add,
// SafePoint/Release, counter reads (Known) and GapDetector.Due, and gap-fills
// what Due returns from "storage" with random latency (fetches can fail and
// are retried via a later Due). The released stream must be exactly the
// committed revisions, each once, in order, and nothing may ever be released
// above a missing revision.
func TestPropertyReorderDupLossGapFill(t *testing.T) {
	for _, seed := range seeds(t, 300) {
		newSim(t, seed, false).run()
	}
}

// TestPropertyLostFeedRecovery: as above, but the feed goes down at random
// moments — notifications in flight are dropped and nothing is notified while
// it is down — and comes back with Lost() plus a counter read. Half the runs
// use a timeout that never fires, so only Lost can recover the revisions
// committed during the outage; the Due right after recovery must return them
// at once.
func TestPropertyLostFeedRecovery(t *testing.T) {
	for _, seed := range seeds(t, 300) {
		newSim(t, seed, true).run()
	}
}

const (
	stReceived = 1 // buffered, not released
	stReleased = 2
)

type delivery struct {
	rev  int64
	fill bool // from a gap fill, not the feed
}

type sim struct {
	t       *testing.T
	seed    int64
	outages bool
	rng     *rand.Rand

	// parameters, drawn from the seed
	first, n         int64 // revisions first+1..n are committed during the run
	timeoutTicks     int
	pLost, pDup      float64
	maxDelay         int
	commitsPerTick   int
	pRelease         float64
	pReleaseAfterAdd float64
	pKnown           float64
	duePeriod        int
	fillLatency      int
	pFillFail        float64
	maxFill          int
	pOutage          float64
	forcedOutageAt   int // every outage run has at least one, while commits are still coming
	start            time.Time

	// world
	tick      int
	committed int64
	pending   map[int][]delivery
	feedDown  bool
	downUntil int

	// independent model of what the node has seen and released
	state    []uint8
	released int64
	out      []int64
	// knowledge, mirrored to predict Due exactly
	knownHigh        int64
	knownAt          []int // tick when revision became known to exist
	immediateThrough int64 // made due at once by Lost
	lostPending      bool

	buf *ordering.Buffer[int64]
	gd  *GapDetector

	stats struct{ lost, dups, fills, failedFills, outages int }
}

const tick = time.Millisecond

func newSim(t *testing.T, seed int64, outages bool) *sim {
	rng := rand.New(rand.NewSource(seed))
	s := &sim{t: t, seed: seed, outages: outages, rng: rng, pending: map[int][]delivery{}}
	if rng.Intn(3) == 0 {
		s.first = rng.Int63n(50) // node starts from a loaded snapshot at this revision
	}
	s.n = s.first + 1 + rng.Int63n(300)
	s.timeoutTicks = 1 + rng.Intn(20)
	s.pLost = []float64{0, 0.02, 0.1, 0.4}[rng.Intn(4)]
	s.pDup = rng.Float64() * 0.3
	s.maxDelay = rng.Intn(3*s.timeoutTicks + 1) // beyond the timeout: fills race real notifications
	s.commitsPerTick = 1 + rng.Intn(4)
	s.pRelease = 0.1 + rng.Float64()*0.9
	s.pReleaseAfterAdd = rng.Float64() * 0.5
	s.pKnown = 0.01 + rng.Float64()*0.3
	s.duePeriod = 1 + rng.Intn(s.timeoutTicks)
	s.fillLatency = rng.Intn(5)
	s.pFillFail = rng.Float64() * 0.2
	s.maxFill = 1 + rng.Intn(40)
	if outages {
		s.pOutage = 0.005 + rng.Float64()*0.05
		s.forcedOutageAt = 1 + rng.Intn(int(2*(s.n-s.first))/s.commitsPerTick+1)
		if rng.Intn(2) == 0 {
			// The timeout never fires: only Lost can recover what the
			// outage dropped (notifications are then never lost outside
			// outages). Failed fills must still be retried by later Dues:
			// what Lost made due stays due until it is released.
			s.timeoutTicks = 1 << 30
			s.duePeriod = 1 + rng.Intn(20)
			s.pLost = 0
		}
	}
	if rng.Intn(8) == 0 {
		s.start = time.Time{}
	} else {
		s.start = time.Unix(1_700_000_000+rng.Int63n(1e6), 0)
	}

	s.committed = s.first
	s.released = s.first
	s.state = make([]uint8, s.n+1)
	s.knownAt = make([]int, s.n+1)
	for r := int64(1); r <= s.first; r++ {
		s.state[r] = stReleased
	}
	s.buf = ordering.New[int64](s.first)
	s.gd = NewGapDetector(time.Duration(s.timeoutTicks) * tick)
	// Subscribed before the snapshot load: some notifications at or below
	// the loaded revision still arrive and must be ignored.
	for r := max(1, s.first-5); r <= s.first; r++ {
		s.schedule(r, false)
	}
	return s
}

func (s *sim) now() time.Time { return s.start.Add(time.Duration(s.tick) * tick) }

func (s *sim) fatalf(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("seed %d, tick %d: %s\n  params: %s\n  replay: go test ./safeinterval/ -run '^%s$' -seed=%d",
		s.seed, s.tick, fmt.Sprintf(format, args...), s.params(), s.t.Name(), s.seed)
}

func (s *sim) params() string {
	return fmt.Sprintf("revs %d..%d timeout %d pLost %.2f pDup %.2f maxDelay %d perTick %d due every %d maxFill %d fillLatency %d pFillFail %.2f pOutage %.3f",
		s.first+1, s.n, s.timeoutTicks, s.pLost, s.pDup, s.maxDelay, s.commitsPerTick, s.duePeriod, s.maxFill, s.fillLatency, s.pFillFail, s.pOutage)
}

func value(rev int64) int64 { return rev*7919 + 13 }

func (s *sim) schedule(rev int64, fill bool) {
	delay := s.rng.Intn(s.maxDelay + 1)
	if fill {
		delay = s.rng.Intn(s.fillLatency + 1)
	}
	s.pending[s.tick+delay] = append(s.pending[s.tick+delay], delivery{rev: rev, fill: fill})
}

// learn mirrors the detector's notion of "known to exist".
func (s *sim) learn(high int64) {
	for r := s.knownHigh + 1; r <= high; r++ {
		s.knownAt[r] = s.tick
	}
	s.knownHigh = max(s.knownHigh, high)
	if s.lostPending {
		s.immediateThrough = s.knownHigh
	}
}

func (s *sim) commit() {
	for k := s.rng.Intn(s.commitsPerTick + 1); k > 0 && s.committed < s.n; k-- {
		s.committed++
		switch {
		case s.feedDown:
			s.stats.lost++
		case s.rng.Float64() < s.pLost:
			s.stats.lost++
		default:
			s.schedule(s.committed, false)
			if s.rng.Float64() < s.pDup {
				s.stats.dups++
				s.schedule(s.committed, false)
			}
		}
	}
}

func (s *sim) add(d delivery) {
	r := d.rev
	if r > s.committed {
		s.fatalf("delivery of uncommitted revision %d (test bug)", r)
	}
	want := s.state[r] == 0
	if got := s.buf.Add(r, value(r)); got != want {
		s.fatalf("Add(%d) fill=%v = %v, want %v (state %d, released %d)", r, d.fill, got, want, s.state[r], s.released)
	}
	if want {
		s.state[r] = stReceived
		s.learn(r)
	}
	s.gd.Observe(s.buf, s.now())
	if s.rng.Float64() < s.pReleaseAfterAdd {
		s.release()
	}
}

func (s *sim) release() {
	sp := Contiguous{}.SafePoint(s.buf)
	want := s.released
	for want < s.n && s.state[want+1] == stReceived {
		want++
	}
	if sp != want {
		s.fatalf("SafePoint = %d, want %d (released %d)", sp, want, s.released)
	}
	through := sp
	if through > s.released && s.rng.Intn(3) == 0 {
		through = s.released + s.rng.Int63n(sp-s.released+1) // a partial release
	}
	for r := s.released + 1; r <= through; r++ {
		if s.state[r] != stReceived {
			s.fatalf("about to release through %d above missing revision %d", through, r)
		}
	}
	items := s.buf.Release(through)
	if int64(len(items)) != through-s.released {
		s.fatalf("Release(%d) returned %d items, want %d", through, len(items), through-s.released)
	}
	for i, it := range items {
		if wantRev := s.released + 1 + int64(i); it.Rev != wantRev || it.Value != value(it.Rev) {
			s.fatalf("Release(%d) item %d = {%d %d}, want {%d %d}", through, i, it.Rev, it.Value, wantRev, value(wantRev))
		}
		s.state[it.Rev] = stReleased
		s.out = append(s.out, it.Rev)
	}
	s.released = max(s.released, through)
	if got := s.buf.Released(); got != s.released {
		s.fatalf("Released() = %d, want %d", got, s.released)
	}
	s.gd.Observe(s.buf, s.now())
}

func (s *sim) known() {
	// A counter read: any value the counter has had, possibly stale.
	v := s.committed
	if s.rng.Intn(2) == 0 && s.committed > 0 {
		v = s.rng.Int63n(s.committed + 1)
	}
	s.learn(v)
	s.gd.Known(v)
	s.gd.Observe(s.buf, s.now())
}

// due calls Due and checks it against an exact prediction: the missing
// revisions up to the highest one known for at least the timeout (or known
// at all, once Lost), cut at maxFill. Then it gap-fills them.
func (s *sim) due() []int64 {
	got := s.gd.Due(s.buf, s.now(), s.maxFill)

	through := s.immediateThrough
	if s.lostPending {
		through = s.knownHigh
	}
	for r := through + 1; r <= s.knownHigh; r++ {
		if s.tick-s.knownAt[r] >= s.timeoutTicks {
			through = r
		}
	}
	var want []int64
	for r := s.released + 1; r <= through && len(want) < s.maxFill; r++ {
		if s.state[r] == 0 {
			want = append(want, r)
		}
	}
	if !slices.Equal(got, want) {
		s.fatalf("Due = %v, want %v (released %d, known high %d, due through %d, lost %v)",
			got, want, s.released, s.knownHigh, through, s.lostPending)
	}
	s.lostPending = false

	for _, r := range got {
		if r > s.committed {
			s.fatalf("Due returned %d, which was never committed (counter %d)", r, s.committed)
		}
		if s.rng.Float64() < s.pFillFail {
			s.stats.failedFills++
			continue // fetch failed; a later Due returns it again
		}
		s.stats.fills++
		if s.fillLatency == 0 || s.rng.Intn(2) == 0 {
			s.add(delivery{rev: r, fill: true}) // synchronous fill
		} else {
			s.schedule(r, true)
		}
	}
	return got
}

func (s *sim) outage() {
	if !s.feedDown && (s.tick == s.forcedOutageAt || s.rng.Float64() < s.pOutage) {
		s.stats.outages++
		s.feedDown = true
		s.downUntil = s.tick + 1 + s.rng.Intn(50)
		for at, ds := range s.pending { // notifications in flight are gone
			s.pending[at] = slices.DeleteFunc(ds, func(d delivery) bool {
				if !d.fill {
					s.stats.lost++
				}
				return !d.fill
			})
		}
		return
	}
	if s.feedDown && s.tick >= s.downUntil {
		s.feedDown = false
		// Recovery: mark the feed lost and read the counter, in either order.
		lost := func() {
			s.gd.Lost()
			s.lostPending = true
			s.immediateThrough = s.knownHigh
		}
		read := func() {
			s.learn(s.committed)
			s.gd.Known(s.committed)
		}
		if s.rng.Intn(2) == 0 {
			lost()
			read()
		} else {
			read()
			lost()
		}
		s.gd.Observe(s.buf, s.now())
		// Due must return everything missing up to the counter at once,
		// whatever the timeout (due also checks it against its model).
		missing := s.missingThrough(s.committed)
		if got := s.due(); !slices.Equal(got, missing[:min(len(missing), s.maxFill)]) {
			s.fatalf("Due right after Lost = %v, want the first %d of %v", got, s.maxFill, missing)
		}
		// The new subscription may replay recent notifications.
		for k := s.rng.Intn(5); k > 0 && s.committed > 0; k-- {
			s.schedule(1+s.rng.Int63n(s.committed), false)
		}
	}
}

func (s *sim) missingThrough(through int64) []int64 {
	var out []int64
	for r := s.released + 1; r <= through; r++ {
		if s.state[r] == 0 {
			out = append(out, r)
		}
	}
	return out
}

func (s *sim) run() {
	maxTicks := int(10*(s.n-s.first)) + 5000
	if s.timeoutTicks < 1<<20 {
		maxTicks += 100 * s.timeoutTicks
	}
	for s.committed < s.n || s.released < s.n {
		s.tick++
		if s.tick > maxTicks {
			s.fatalf("no progress: released %d of %d, committed %d, known high %d, missing %v, buffered %d",
				s.released, s.n, s.committed, s.knownHigh, s.missingThrough(s.committed), s.buf.Len())
		}
		if s.outages {
			s.outage()
		}
		s.commit()
		ds := s.pending[s.tick]
		delete(s.pending, s.tick)
		s.rng.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
		for _, d := range ds {
			s.add(d)
		}
		if s.rng.Float64() < s.pKnown {
			s.known()
		}
		if s.rng.Float64() < s.pRelease {
			s.release()
		}
		if s.tick%s.duePeriod == 0 {
			s.due()
		}
	}
	// Late notifications and fills still in flight must all be rejected.
	for _, ds := range s.pending {
		for _, d := range ds {
			s.add(d)
		}
	}
	if s.buf.Len() != 0 {
		s.fatalf("buffer holds %d items after everything was released", s.buf.Len())
	}
	want := make([]int64, 0, s.n-s.first)
	for r := s.first + 1; r <= s.n; r++ {
		want = append(want, r)
	}
	if !slices.Equal(s.out, want) {
		s.fatalf("released %v, want %d..%d each once in order", s.out, s.first+1, s.n)
	}
	if s.seed == *seedFlag {
		s.t.Logf("seed %d: %s; %d ticks, stats %+v", s.seed, s.params(), s.tick, s.stats)
	}
}
