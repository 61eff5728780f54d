package mvcc_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/mvcc"
)

// unreliableFeed wraps the in-memory engine so that its subscription
// notifications arrive late, shuffled, duplicated or never — what Ignite's
// continuous queries may do across partitions and failures.
type unreliableFeed struct {
	*memengine.Engine
	rng  *rand.Rand
	mu   sync.Mutex
	held []func()
	stop chan struct{}
}

func (u *unreliableFeed) Subscribe(ctx context.Context, table string, onPut func(k, v []byte), onLost func(error)) (mvcc.Subscription, error) {
	return u.Engine.Subscribe(ctx, table, func(k, v []byte) {
		k, v = append([]byte(nil), k...), append([]byte(nil), v...)
		u.mu.Lock()
		defer u.mu.Unlock()
		switch r := u.rng.Intn(10); {
		case r == 0: // lost: only gap fill can bring it
		case r == 1: // duplicated
			u.held = append(u.held, func() { onPut(k, v) }, func() { onPut(k, v) })
		default:
			u.held = append(u.held, func() { onPut(k, v) })
		}
	}, onLost)
}

// deliver releases held notifications in random order until stopped.
func (u *unreliableFeed) deliver() {
	for {
		select {
		case <-u.stop:
			return
		case <-time.After(time.Millisecond):
		}
		u.mu.Lock()
		u.rng.Shuffle(len(u.held), func(i, j int) { u.held[i], u.held[j] = u.held[j], u.held[i] })
		n := u.rng.Intn(len(u.held) + 1)
		batch := append([]func(){}, u.held[:n]...)
		u.held = u.held[n:]
		u.mu.Unlock()
		for _, f := range batch {
			f()
		}
	}
}

func TestFeedReleasesEveryRevisionOnceInOrder(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("IGNETCD_FEED_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (replay with IGNETCD_FEED_SEED=%d)", seed, seed)
	eng := &unreliableFeed{Engine: memengine.New(), rng: rand.New(rand.NewSource(seed)), stop: make(chan struct{})}
	go eng.deliver()
	defer close(eng.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := mvcc.Open(ctx, eng, mvcc.Config{PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ws := s.NewWatchStream()
	defer ws.Close()
	ws.Create(&pb.WatchCreateRequest{Key: []byte{0}, RangeEnd: []byte{0}, StartRevision: 1})

	const writers, each = 4, 50
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte(fmt.Sprint("k", w, i%7)), Value: []byte(fmt.Sprint(i))}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	last := int64(1 + writers*each)
	next := int64(2)
	for next <= last {
		resps, err := ws.Next(ctx)
		if err != nil {
			t.Fatalf("seed %d: watch: %v (next revision %d)", seed, err, next)
		}
		for _, r := range resps {
			for _, ev := range r.Events {
				if ev.Kv.ModRevision != next {
					t.Fatalf("seed %d: watch delivered revision %d, want %d", seed, ev.Kv.ModRevision, next)
				}
				next++
			}
		}
	}
	// The index agrees with the engine's latest records.
	resp, err := s.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Revision != last || resp.Count != writers*7 {
		t.Fatalf("seed %d: range at %d with %d keys, want %d keys at %d", seed, resp.Header.Revision, resp.Count, writers*7, last)
	}
}

// TestWatchStreamRequestsAfterClose: requests that race with the end of
// their stream are ignored, not a crash (found by it/kube's cacher suite).
func TestWatchStreamRequestsAfterClose(t *testing.T) {
	eng := memengine.New()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := mvcc.Open(ctx, eng, mvcc.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ws := s.NewWatchStream()
	id := ws.Create(&pb.WatchCreateRequest{Key: []byte("a")})
	ws.Close()
	if got := ws.Create(&pb.WatchCreateRequest{Key: []byte("b")}); got != mvcc.InvalidWatchID {
		t.Fatalf("create on a closed stream returned watch %d", got)
	}
	ws.Cancel(id)
	ws.RequestProgress()
	ws.Tick()
	if _, err := ws.Next(ctx); err == nil {
		t.Fatal("Next on a closed stream returned no error")
	}
}
