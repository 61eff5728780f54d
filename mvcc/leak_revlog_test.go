package mvcc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/mvcc"
)

// revlogLeaks fails the first write group's revlog write as a dropped
// connection would, and keeps the operation so that the test can apply it
// later, outside the transaction, as Ignite may (ignite/NOTES.md).
type revlogLeaks struct {
	*memengine.Engine
	mu          sync.Mutex
	intercepted bool
	late        func() // the leaked operation, once its transaction has failed
}

func (e *revlogLeaks) Begin(ctx context.Context) (mvcc.Txn, error) {
	tx, err := e.Engine.Begin(ctx)
	return &revlogLeakTxn{Txn: tx, e: e}, err
}

type revlogLeakTxn struct {
	mvcc.Txn
	e *revlogLeaks
}

func (t *revlogLeakTxn) PutAll(ctx context.Context, table string, entries []mvcc.Entry) error {
	t.e.mu.Lock()
	leak := table == "revlog" && !t.e.intercepted
	t.e.intercepted = t.e.intercepted || leak
	if leak {
		t.e.late = func() {
			tx, err := t.e.Engine.Begin(context.Background())
			if err != nil {
				return
			}
			_ = tx.PutAll(context.Background(), table, entries)
			_ = tx.Commit(context.Background())
		}
	}
	t.e.mu.Unlock()
	if leak {
		return fmt.Errorf("%w: connection lost", mvcc.ErrEngineUnavailable)
	}
	return t.Txn.PutAll(ctx, table, entries)
}

// applyLeak runs the leaked revlog write.
func (e *revlogLeaks) applyLeak(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	late := e.late
	e.mu.Unlock()
	if late == nil {
		t.Fatal("no revlog write was intercepted")
	}
	late()
}

// mutedEngine delivers no notifications: the store on it learns of other
// nodes' writes only by reading (the counter poll and the gap fill, which
// follows the groups back from the counter).
type mutedEngine struct{ *memengine.Engine }

func (e mutedEngine) Subscribe(ctx context.Context, table string, _ func(key, value []byte), onLost func(error)) (mvcc.Subscription, error) {
	return e.Engine.Subscribe(ctx, table, func(_, _ []byte) {}, onLost)
}

// expectValueAt checks key "a" at the store's current revision rev.
func expectValueAt(t *testing.T, s *mvcc.Store, rev int64, value string, version int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.Revision != rev || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != value || r.Kvs[0].Version != version {
		t.Fatalf("a at revision %d: %+v; want %q version %d", rev, r, value, version)
	}
	// The watch history from revision 2 holds the committed writes only.
	w := s.NewWatchStream()
	defer w.Close()
	w.Create(&pb.WatchCreateRequest{Key: []byte("a"), StartRevision: 2})
	var got []string
	for len(got) < int(rev-1) {
		resps, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("watch: %v (events so far %q)", err, got)
		}
		for _, resp := range resps {
			for _, ev := range resp.Events {
				got = append(got, fmt.Sprintf("%d:%s", ev.Kv.ModRevision, ev.Kv.Value))
			}
		}
	}
	if want := committedHistory[:rev-1]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("watch from revision 2: %q, want %q", got, want)
	}
}

// committedHistory is what the leak test commits to "a", from revision 2.
var committedHistory = []string{"2:kept", "3:next"}

// TestLeakedRevlogWriteIsNeverTrusted: a write group fails with its revlog
// write in flight, and the engine applies that write later, outside the
// transaction: before the next group commits the same revision, or after.
// No node may take the failed group's changes for that revision: not the
// one that follows the notifications, not one that loads the store, not
// one that reads revlog because it missed them.
func TestLeakedRevlogWriteIsNeverTrusted(t *testing.T) {
	for _, when := range []string{"before", "after"} {
		t.Run("leak lands "+when+" the next commit", func(t *testing.T) {
			eng := &revlogLeaks{Engine: memengine.New()}
			s := openStore(t, eng)
			muted := openStore(t, mutedEngine{eng.Engine})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("lost")}); !errors.Is(err, mvcc.ErrEngineUnavailable) {
				t.Fatalf("put whose revlog write failed: %v, want unavailable", err)
			}
			if when == "before" {
				eng.applyLeak(t)
				time.Sleep(100 * time.Millisecond) // notifications, polls and gap timeouts pass
			}
			p, err := s.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("kept")})
			if err != nil || p.Header.Revision != 2 {
				t.Fatalf("next put: %+v %v, want revision 2", p, err)
			}
			if when == "after" {
				eng.applyLeak(t)
			}
			time.Sleep(100 * time.Millisecond)
			expectValueAt(t, s, 2, "kept", 1)
			expectValueAt(t, muted, 2, "kept", 1)
			loaded := openStore(t, eng.Engine)
			expectValueAt(t, loaded, 2, "kept", 1)
			// The next write builds on the committed revision everywhere.
			if p, err := loaded.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte("next"), PrevKv: true}); err != nil || p.Header.Revision != 3 || string(p.PrevKv.Value) != "kept" {
				t.Fatalf("put on the loaded node: %+v %v", p, err)
			}
			for _, n := range []*mvcc.Store{s, muted, loaded} {
				expectValueAt(t, n, 3, "next", 2)
			}
		})
	}
}

// TestGapFillFollowsGroupsFromTheCounter: a node that gets no
// notifications at all still releases every revision, in order, by
// following the committed groups back from the counter.
func TestGapFillFollowsGroupsFromTheCounter(t *testing.T) {
	eng := memengine.New()
	writer := openStore(t, eng)
	muted := openStore(t, mutedEngine{eng})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	const n = 400
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < n/8; j++ {
				if _, err := writer.Put(ctx, &pb.PutRequest{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprint(j))}); err != nil {
					t.Error(err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	if g := writer.WriterStats().Groups; g < 2 {
		t.Fatalf("%d groups: the test needs several", g)
	}
	r, err := muted.Range(ctx, &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")})
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.Revision != n+1 || r.Count != 8 {
		t.Fatalf("muted node: revision %d, %d keys; want %d, 8", r.Header.Revision, r.Count, n+1)
	}
	for _, kv := range r.Kvs {
		if kv.Version != n/8 || string(kv.Value) != fmt.Sprint(n/8-1) {
			t.Fatalf("muted node: %s", kv)
		}
	}
}

// gatedReads holds reads outside transactions of revlog until open is
// closed, and delivers no notifications: a node cut off from storage's
// revision log for a while.
type gatedReads struct {
	*memengine.Engine
	open chan struct{}
}

func (e gatedReads) GetAll(ctx context.Context, table string, keys [][]byte) ([][]byte, error) {
	if table == "revlog" {
		select {
		case <-e.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return e.Engine.GetAll(ctx, table, keys)
}

func (e gatedReads) Subscribe(ctx context.Context, table string, _ func(key, value []byte), onLost func(error)) (mvcc.Subscription, error) {
	sub, err := e.Engine.Subscribe(ctx, table, func(_, _ []byte) {}, onLost)
	return gatedSubscription{sub, e}, err
}

// gatedSubscription's reads (the feed's) are held as the engine's are.
type gatedSubscription struct {
	mvcc.Subscription
	e gatedReads
}

func (s gatedSubscription) GetAll(ctx context.Context, table string, keys [][]byte) ([][]byte, error) {
	return s.e.GetAll(ctx, table, keys)
}

// TestNodeBehindCompactionSaysSo: a node that could not read the revisions
// it lacks before another node compacted past them and purged them cannot
// catch up; it must say so (BehindCompaction, which fails its /livez), not
// skip them or wait silently. A node loading the store afterwards serves
// the compacted state.
func TestNodeBehindCompactionSaysSo(t *testing.T) {
	eng := memengine.New()
	writer := openStore(t, eng)
	gate := gatedReads{Engine: eng, open: make(chan struct{})}
	lagging := openStore(t, gate)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 5; i++ { // revisions 2..6
		if _, err := writer.Put(ctx, &pb.PutRequest{Key: []byte("a"), Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := writer.Compact(ctx, 6, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the lagging node's poll sees the compaction
	if lagging.BehindCompaction() != 0 {
		t.Fatal("behind compaction before reading anything")
	}
	close(gate.open)
	deadline := time.Now().Add(5 * time.Second)
	for lagging.BehindCompaction() != 6 {
		if time.Now().After(deadline) {
			t.Fatalf("the lagging node (at revision %d) never reported it fell behind the compacted revision 6", lagging.Revision())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if rev := lagging.Revision(); rev != 1 {
		t.Fatalf("the lagging node moved to revision %d over purged revisions", rev)
	}
	if writer.BehindCompaction() != 0 {
		t.Fatal("the compacting node reports itself behind")
	}
	loaded := openStore(t, eng)
	r, err := loaded.Range(ctx, &pb.RangeRequest{Key: []byte("a")})
	if err != nil || r.Header.Revision != 6 || string(r.Kvs[0].Value) != "4" || r.Kvs[0].Version != 5 {
		t.Fatalf("a node loaded after the compaction: %+v %v", r, err)
	}
}
