package mvcc_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/mvcc"
)

// Watchers whose stream falls behind (its client does not read, so its
// sender sits in Send while revisions are released): bounded catch-up, and
// cancellation beyond Config.WatchMaxLag.

func openSlowWatchStore(t *testing.T, maxLag int64) (*mvcc.Store, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	eng := memengine.New()
	t.Cleanup(func() { eng.Close() })
	s, err := mvcc.Open(ctx, eng, mvcc.Config{PollInterval: 10 * time.Millisecond, WatchMaxLag: maxLag})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, ctx
}

// putN writes n keys under prefix with concurrent writers (grouped commits);
// it returns the revision before the first.
func putN(t *testing.T, ctx context.Context, s *mvcc.Store, prefix string, n int) int64 {
	t.Helper()
	base := s.Revision()
	const writers = 8
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				if _, err := s.Put(ctx, &pb.PutRequest{Key: fmt.Appendf(nil, "%s%05d", prefix, i), Value: []byte("v")}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if got := s.Revision(); got != base+int64(n) {
		t.Fatalf("revision %d after %d puts from %d", got, n, base)
	}
	return base
}

// create adds a watcher to ws and takes its created response.
func create(t *testing.T, ctx context.Context, ws *mvcc.WatchStream, req *pb.WatchCreateRequest) int64 {
	t.Helper()
	id := ws.Create(req)
	resps, err := ws.Next(ctx)
	if err != nil || len(resps) != 1 || !resps[0].Created || resps[0].WatchId != id || id == mvcc.InvalidWatchID {
		t.Fatalf("create: id %d, %s, %v", id, summary(resps), err)
	}
	return id
}

// summary describes responses briefly (event revisions, not the events).
func summary(resps []*pb.WatchResponse) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d responses:", len(resps))
	for i, r := range resps {
		if i == 6 {
			b.WriteString(" ...")
			break
		}
		fmt.Fprintf(&b, " {id %d header %d", r.WatchId, r.Header.GetRevision())
		if r.Created {
			b.WriteString(" created")
		}
		if r.Canceled {
			fmt.Fprintf(&b, " canceled %q compact %d", r.CancelReason, r.CompactRevision)
		}
		if n := len(r.Events); n > 0 {
			fmt.Fprintf(&b, " %d events %d..%d", n, r.Events[0].Kv.ModRevision, r.Events[n-1].Kv.ModRevision)
		}
		b.WriteString("}")
	}
	return b.String()
}

// nextWithin returns what ws has within d (nil if nothing).
func nextWithin(t *testing.T, ws *mvcc.WatchStream, d time.Duration) []*pb.WatchResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	resps, err := ws.Next(ctx)
	if err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
	return resps
}

// TestSlowWatchSyncedCatchesUpInBatches: a synced watcher whose stream did
// not call Next while 5000 revisions were released gets them back in
// bounded batches (header: the safe point), every event once and in order,
// then is synced again (one response per revision, header: that revision).
// A progress request made while it is behind gets no answer (etcd drops
// it); one made once it caught up is answered.
func TestSlowWatchSyncedCatchesUpInBatches(t *testing.T) {
	s, ctx := openSlowWatchStore(t, 0) // default bound (100000)
	ws := s.NewWatchStream()
	defer ws.Close()
	id := create(t, ctx, ws, &pb.WatchCreateRequest{Key: []byte("k/"), RangeEnd: []byte("k0")})
	quiet := create(t, ctx, ws, &pb.WatchCreateRequest{Key: []byte("other")}) // matches nothing

	const n = 5000
	base := putN(t, ctx, s, "k/", n)
	last := base + n

	next := base + 1
	batches := 0
	progressAsked := false
	for next <= last {
		resps, err := ws.Next(ctx)
		if err != nil {
			t.Fatalf("next revision %d: %v", next, err)
		}
		for _, r := range resps {
			if r.WatchId == mvcc.InvalidWatchID {
				t.Fatalf("progress response at %d before the watcher caught up (next %d)", r.Header.Revision, next)
			}
			if r.WatchId != id || r.Canceled || r.Created {
				t.Fatalf("unexpected response %s (watcher %d, quiet %d)", summary([]*pb.WatchResponse{r}), id, quiet)
			}
			revs := map[int64]bool{}
			for _, ev := range r.Events {
				if ev.Kv.ModRevision != next {
					t.Fatalf("event at revision %d, want %d", ev.Kv.ModRevision, next)
				}
				revs[ev.Kv.ModRevision] = true
				next++
			}
			if len(revs) == 0 || len(revs) > mvcc.WatchBatchMaxRevs {
				t.Fatalf("a response carries %d revisions, want 1..%d", len(revs), mvcc.WatchBatchMaxRevs)
			}
			if r.Header.Revision != last {
				t.Fatalf("catch-up response header %d, want the safe point %d", r.Header.Revision, last)
			}
			batches++
		}
		if !progressAsked {
			ws.RequestProgress()
			progressAsked = true
		}
	}
	if want := n / mvcc.WatchBatchMaxRevs; batches < want {
		t.Fatalf("%d responses, want at least %d", batches, want)
	}
	ws.RequestProgress()
	if resps := nextWithin(t, ws, 5*time.Second); len(resps) != 1 || resps[0].WatchId != mvcc.InvalidWatchID || resps[0].Header.Revision != last {
		t.Fatalf("progress once caught up: %s, want one at %d", summary(resps), last)
	}

	// Synced again: one response per revision, header that revision.
	if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte("k/new"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	resps, err := ws.Next(ctx)
	if err != nil || len(resps) != 1 || resps[0].WatchId != id || len(resps[0].Events) != 1 ||
		resps[0].Events[0].Kv.ModRevision != last+1 || resps[0].Header.Revision != last+1 {
		t.Fatalf("after catching up: %s, %v; want one event at %d", summary(resps), err, last+1)
	}
	t.Logf("%d revisions in %d responses", n, batches)
}

// TestSlowWatchCancelledBeyondMaxLag: with WatchMaxLag 50, a watcher whose
// stream stops reading is not cancelled 30 revisions behind, is cancelled
// with the reason once 100 behind, while a watcher of another stream that
// keeps reading gets every revision as it is written.
func TestSlowWatchCancelledBeyondMaxLag(t *testing.T) {
	s, ctx := openSlowWatchStore(t, 50)
	slow, fast := s.NewWatchStream(), s.NewWatchStream()
	defer slow.Close()
	defer fast.Close()
	req := &pb.WatchCreateRequest{Key: []byte("k/"), RangeEnd: []byte("k0")}
	slowID := create(t, ctx, slow, req)
	fastID := create(t, ctx, fast, req)

	put := func(i int) int64 {
		r, err := s.Put(ctx, &pb.PutRequest{Key: fmt.Appendf(nil, "k/%d", i), Value: []byte("v")})
		if err != nil {
			t.Fatal(err)
		}
		rev := r.Header.Revision
		// The reading stream has it at once.
		resps := nextWithin(t, fast, 5*time.Second)
		if len(resps) != 1 || resps[0].WatchId != fastID || len(resps[0].Events) != 1 || resps[0].Events[0].Kv.ModRevision != rev {
			t.Fatalf("reading watcher after the put at %d: %s", rev, summary(resps))
		}
		return rev
	}
	first := put(0)
	for i := 1; i < 30; i++ {
		put(i)
	}
	// 30 behind: delivered.
	resps := nextWithin(t, slow, 5*time.Second)
	if len(resps) != 30 || resps[0].Events[0].Kv.ModRevision != first || resps[29].Events[0].Kv.ModRevision != first+29 {
		t.Fatalf("30 revisions behind: %s", summary(resps))
	}
	var at int64
	for i := 30; i < 130; i++ {
		at = put(i)
	}
	resps = nextWithin(t, slow, 5*time.Second)
	want := fmt.Sprintf("mvcc: watcher fell more than 50 revisions behind (at revision %d, node at %d); re-create it from revision %d", first+30, at, first+30)
	if len(resps) != 1 || !resps[0].Canceled || resps[0].WatchId != slowID || resps[0].CompactRevision != 0 ||
		len(resps[0].Events) != 0 || resps[0].Header.Revision != at || resps[0].CancelReason != want {
		t.Fatalf("100 revisions behind: %s, want one cancel %q at %d", summary(resps), want, at)
	}
	if slow.WatcherCount() != 0 {
		t.Fatalf("cancelled watcher still counted")
	}
	if n := s.LaggingWatchersCancelled(); n != 1 {
		t.Fatalf("LaggingWatchersCancelled = %d, want 1", n)
	}
	put(130)
	if resps := nextWithin(t, slow, 100*time.Millisecond); resps != nil {
		t.Fatalf("cancelled watcher got %s", summary(resps))
	}
}

// TestSlowWatchCompactionTakesPrecedence: a watcher both beyond the lag
// bound and behind the compacted revision gets etcd's compacted response.
func TestSlowWatchCompactionTakesPrecedence(t *testing.T) {
	s, ctx := openSlowWatchStore(t, 50)
	ws := s.NewWatchStream()
	defer ws.Close()
	id := create(t, ctx, ws, &pb.WatchCreateRequest{Key: []byte("k/"), RangeEnd: []byte("k0")})
	base := putN(t, ctx, s, "k/", 100)
	if _, err := s.Compact(ctx, base+60, true); err != nil {
		t.Fatal(err)
	}
	resps := nextWithin(t, ws, 5*time.Second)
	if len(resps) != 1 || !resps[0].Canceled || resps[0].WatchId != id || resps[0].CompactRevision != base+60 || resps[0].CancelReason != "" {
		t.Fatalf("got %s, want the compacted response at %d", summary(resps), base+60)
	}
}

// TestSlowWatchHistoryReplayNotBounded: a watcher created from an old
// revision is replaying history, not lagging: it is not cancelled for
// being more than WatchMaxLag behind at first (re-creating it would not
// help), and is bounded once it has caught up.
func TestSlowWatchHistoryReplayNotBounded(t *testing.T) {
	s, ctx := openSlowWatchStore(t, 50)
	base := putN(t, ctx, s, "k/", 200)
	ws := s.NewWatchStream()
	defer ws.Close()
	id := ws.Create(&pb.WatchCreateRequest{Key: []byte("k/"), RangeEnd: []byte("k0"), StartRevision: base + 1})
	resps := nextWithin(t, ws, 5*time.Second)
	if len(resps) != 2 || !resps[0].Created || resps[1].WatchId != id || resps[1].Canceled || len(resps[1].Events) != 200 {
		t.Fatalf("created, then a replay of 200 revisions: %s", summary(resps))
	}
	putN(t, ctx, s, "k/", 100)
	resps = nextWithin(t, ws, 5*time.Second)
	if len(resps) != 1 || !resps[0].Canceled || !strings.Contains(resps[0].CancelReason, "fell more than 50 revisions behind") {
		t.Fatalf("caught up, then 100 behind: %s", summary(resps))
	}
}

// TestSlowWatchSparseReplayScansInSteps: a watcher replaying a long history
// it mostly does not match looks at a bounded number of revisions per step
// (each under the store's read lock, which releases wait for), and still
// gets every matching event once, in order.
func TestSlowWatchSparseReplayScansInSteps(t *testing.T) {
	s, ctx := openSlowWatchStore(t, -1)
	base := putN(t, ctx, s, "other/", 3*mvcc.WatchScanMaxRevs/2)
	var want []int64
	for i := range 3 {
		p, err := s.Put(ctx, &pb.PutRequest{Key: []byte("x"), Value: fmt.Appendf(nil, "%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, p.Header.Revision)
		putN(t, ctx, s, fmt.Sprintf("other%d/", i), mvcc.WatchScanMaxRevs/4)
	}
	ws := s.NewWatchStream()
	defer ws.Close()
	create(t, ctx, ws, &pb.WatchCreateRequest{Key: []byte("x"), StartRevision: base})
	var got []int64
	for len(got) < len(want) {
		resps, err := ws.Next(ctx)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		for _, r := range resps {
			for _, ev := range r.Events {
				got = append(got, ev.Kv.ModRevision)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events at %v, want %v", got, want)
	}
	if most := mvcc.MostScanned(ws); most > mvcc.WatchScanMaxRevs {
		t.Fatalf("one catch-up step looked at %d revisions, want at most %d", most, mvcc.WatchScanMaxRevs)
	}
}
