package it

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/ignetcd/ignetcd/embed"
)

// readGate holds back the reads of the connections it dialed: a client
// process that stopped reading its socket. (An application that only stops
// reading clientv3's watch channel exerts no back-pressure: clientv3 buffers
// its responses without bound.)
type readGate struct {
	mu   sync.Mutex
	held chan struct{} // nil: reads pass
}

func (g *readGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held == nil {
		g.held = make(chan struct{})
	}
}

func (g *readGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held != nil {
		close(g.held)
		g.held = nil
	}
}

func (g *readGate) dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return gatedConn{c, g}, nil
}

type gatedConn struct {
	net.Conn
	g *readGate
}

func (c gatedConn) Read(p []byte) (int, error) {
	c.g.mu.Lock()
	held := c.g.held
	c.g.mu.Unlock()
	if held != nil {
		<-held
	}
	return c.Conn.Read(p)
}

// TestSlowWatchCancelledWithReason: a node with WatchMaxLag 200; 2000 puts
// of 1 KiB while two watchers' clients do not read (one never calls Recv on
// its watch stream; one is a clientv3 Watch whose connection stops reading)
// and a third client's watcher reads everything. The reading watcher gets
// all 2000 events in order while the slow ones are still stalled, and every
// put succeeds promptly. When the slow clients read again, each gets a
// gap-free prefix of the events, then its cancellation: on the raw stream a
// Canceled response whose CancelReason names the revision to re-create the
// watch from; through clientv3 3.6, which does not pass a server-side cancel
// of an established watch to the application, its channel closes.
func TestSlowWatchCancelledWithReason(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		const maxLag, n = 200, 2000
		node := env.startNode(t, nodeOptions{cfg: func(c *embed.Config) { c.Store.WatchMaxLag = maxLag }})
		ep := node.Endpoints()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		const prefix = "slow/"
		createReq := &pb.WatchCreateRequest{Key: []byte(prefix), RangeEnd: []byte(clientv3.GetPrefixRangeEnd(prefix))}

		// The raw slow client: a watch stream never read until the end.
		rawCli := newClient(t, ep...)
		raw, err := pb.NewWatchClient(rawCli.ActiveConnection()).Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: createReq}}); err != nil {
			t.Fatal(err)
		}
		created, err := raw.Recv()
		if err != nil || !created.Created || created.Canceled {
			t.Fatalf("raw watch create: %v, %v", created, err)
		}
		rawID := created.WatchId

		// The clientv3 slow client: its connection stops reading.
		gate := &readGate{}
		appCli, err := clientv3.New(clientv3.Config{Endpoints: ep, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
			DialOptions: []grpc.DialOption{grpc.WithContextDialer(gate.dial)}})
		if err != nil {
			t.Fatal(err)
		}
		defer appCli.Close()
		defer gate.release() // before Close: the client's reader must not stay held
		appCh := appCli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		if r := <-appCh; !r.Created {
			t.Fatalf("clientv3 watch create: %+v", r)
		}
		gate.hold()

		// The reading client.
		fastCli := newClient(t, ep...)
		fastCh := fastCli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		if r := <-fastCh; !r.Created {
			t.Fatalf("reading watch create: %+v", r)
		}

		writer := newClient(t, ep...)
		value := string(bytes.Repeat([]byte("v"), 1024))
		var first int64
		fastDone := make(chan error, 1)
		var fastGot []int64
		go func() {
			for r := range fastCh {
				if err := r.Err(); err != nil {
					fastDone <- err
					return
				}
				for _, ev := range r.Events {
					fastGot = append(fastGot, ev.Kv.ModRevision)
				}
				if len(fastGot) == n {
					fastDone <- nil
					return
				}
			}
			fastDone <- fmt.Errorf("channel closed after %d events", len(fastGot))
		}()

		started := time.Now()
		var slowest time.Duration
		for i := range n {
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			t0 := time.Now()
			r, err := writer.Put(pctx, fmt.Sprintf("%s%05d", prefix, i), value)
			pcancel()
			if err != nil {
				t.Fatalf("put %d: %v", i, err)
			}
			slowest = max(slowest, time.Since(t0))
			if i == 0 {
				first = r.Header.Revision
			}
		}
		last := first + n - 1
		took := time.Since(started)
		t.Logf("%d puts in %v (%.0f/s), slowest %v", n, took, n/took.Seconds(), slowest)
		if slowest > 2*time.Second {
			t.Errorf("a put took %v", slowest)
		}

		// The reading watcher has everything while the slow ones still stall.
		select {
		case err := <-fastDone:
			if err != nil {
				t.Fatalf("reading watcher: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("reading watcher lacks some of the %d events 10 s after the last put", n)
		}
		for i, rev := range fastGot {
			if rev != first+int64(i) {
				t.Fatalf("reading watcher: event %d at revision %d, want %d", i, rev, first+int64(i))
			}
		}
		t.Logf("reading watcher had all %d events %v after the first put", n, time.Since(started))

		// The raw slow client reads: a gap-free prefix, then the cancel.
		next := first
		for {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			r, err := recvWithin(rctx, raw)
			rcancel()
			if err != nil {
				t.Fatalf("raw slow watcher after revision %d: %v", next-1, err)
			}
			if r.WatchId != rawID {
				t.Fatalf("raw slow watcher: response for watch %d", r.WatchId)
			}
			for _, ev := range r.Events {
				if ev.Kv.ModRevision != next {
					t.Fatalf("raw slow watcher: event at revision %d, want %d", ev.Kv.ModRevision, next)
				}
				next++
			}
			if !r.Canceled {
				if next > last {
					t.Fatalf("raw slow watcher got all %d events and was not cancelled", n)
				}
				continue
			}
			want := fmt.Sprintf("mvcc: watcher fell more than %d revisions behind (at revision %d, node at %d); re-create it from revision %d", maxLag, next, last, next)
			if r.CancelReason != want || r.CompactRevision != 0 || len(r.Events) != 0 || r.Header.Revision != last {
				t.Fatalf("raw slow watcher cancelled with %q (compact %d, %d events, header %d), want %q at %d",
					r.CancelReason, r.CompactRevision, len(r.Events), r.Header.Revision, want, last)
			}
			break
		}
		if next > last-maxLag {
			t.Fatalf("raw slow watcher got events up to %d before its cancel: it never fell behind", next-1)
		}
		t.Logf("raw slow watcher: %d events, then cancelled", next-first)

		// The clientv3 slow client reads again.
		gate.release()
		next = first
		var final *clientv3.WatchResponse
	app:
		for {
			select {
			case r, ok := <-appCh:
				if !ok {
					break app
				}
				for _, ev := range r.Events {
					if ev.Kv.ModRevision != next {
						t.Fatalf("clientv3 slow watcher: event at revision %d, want %d", ev.Kv.ModRevision, next)
					}
					next++
				}
				if r.Canceled || r.Err() != nil {
					final = &r
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("clientv3 slow watcher: neither closed nor cancelled 10 s after reading again (at revision %d)", next)
			}
		}
		if next > last {
			t.Fatalf("clientv3 slow watcher got every event: it was never cancelled")
		}
		if final != nil && !strings.Contains(final.Err().Error(), "re-create it from revision") {
			t.Fatalf("clientv3 slow watcher: error %v", final.Err())
		}
		t.Logf("clientv3 slow watcher: %d events, then its channel closed (error: %v)", next-first, final != nil)
	})
}

// recvWithin is raw.Recv, given up when ctx ends.
func recvWithin(ctx context.Context, raw pb.Watch_WatchClient) (*pb.WatchResponse, error) {
	type result struct {
		r   *pb.WatchResponse
		err error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := raw.Recv()
		ch <- result{r, err}
	}()
	select {
	case res := <-ch:
		return res.r, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
