package it

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// failFastBound is how quickly a request must fail once Ignite is
// unreachable (it must not hang until the client's deadline).
const failFastBound = 3 * time.Second

// rawConn is a gRPC connection without clientv3's retries, to see what the
// server answers and how fast.
func rawConn(t *testing.T, endpoint string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

type healthReply struct {
	code   int
	Health string `json:"health"`
	Reason string `json:"reason"`
}

func getHealth(t *testing.T, endpoint string) (healthReply, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + endpoint + "/health")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var h healthReply
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("GET /health: %s: %v", body, err)
	}
	h.code = resp.StatusCode
	return h, took
}

// TestRobustDegradation: with Ignite unreachable, every kind of request
// fails fast with Unavailable (reads, writes, txns, compaction, leases) and
// commits nothing, hasleader watches close with etcd's "no leader", and
// /health answers 503 saying why; when Ignite comes back the same node
// serves again without a restart: writes, reads, /health, and watches that
// resume from where they stopped with nothing lost or repeated.
// (TestNoLeaderWhenStorageLost covers hasleader unary refusal.)
func TestRobustDegradation(t *testing.T) {
	onDouble(t, func(t *testing.T, env *testEnv) {
		n := env.startNode(t, nodeOptions{name: "degrade"})
		ep := n.Endpoints()[0]
		c := newClient(t, ep)
		ctx := testCtx(t)
		kv := pb.NewKVClient(rawConn(t, ep))
		lease := pb.NewLeaseClient(rawConn(t, ep))
		p, err := c.Put(ctx, "k", "before")
		if err != nil {
			t.Fatal(err)
		}
		before := p.Header.Revision
		if h, _ := getHealth(t, ep); h.code != 200 || h.Health != "true" {
			t.Fatalf("/health before the outage: %+v", h)
		}
		// Watches: one as kube-apiserver opens them (hasleader), one plain.
		leaderW := c.Watch(clientv3.WithRequireLeader(ctx), "k", clientv3.WithRev(before+1), clientv3.WithPrevKV())
		plainW := c.Watch(ctx, "k", clientv3.WithRev(before+1), clientv3.WithPrevKV())

		env.double.StopNode(0)
		lost := time.Now()

		// Every request kind fails fast with Unavailable.
		type call struct {
			name  string
			write bool
			do    func(ctx context.Context) error
		}
		calls := []call{
			{"Put", true, func(ctx context.Context) error {
				_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("during")})
				return err
			}},
			{"Range (linearizable)", false, func(ctx context.Context) error {
				_, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("k")})
				return err
			}},
			{"DeleteRange", true, func(ctx context.Context) error {
				_, err := kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte("k")})
				return err
			}},
			{"Txn (update shape)", true, func(ctx context.Context) error {
				_, err := kv.Txn(ctx, &pb.TxnRequest{
					Compare: []*pb.Compare{{Key: []byte("k"), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: before}}},
					Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("k"), Value: []byte("txn")}}}},
					Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k")}}}},
				})
				return err
			}},
			{"Compact", true, func(ctx context.Context) error {
				_, err := kv.Compact(ctx, &pb.CompactionRequest{Revision: before})
				return err
			}},
			{"LeaseGrant", true, func(ctx context.Context) error {
				_, err := lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 60})
				return err
			}},
		}
		for _, cl := range calls {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			start := time.Now()
			err := cl.do(rctx)
			took := time.Since(start)
			cancel()
			code := status.Code(err)
			t.Logf("%s with Ignite down: %v after %v", cl.name, err, took.Round(time.Millisecond))
			if err == nil {
				t.Errorf("%s succeeded with Ignite down", cl.name)
				continue
			}
			if code != codes.Unavailable {
				t.Errorf("%s with Ignite down: code %v (%v), want Unavailable", cl.name, code, err)
			}
			if took > failFastBound {
				t.Errorf("%s with Ignite down took %v to fail, want under %v", cl.name, took, failFastBound)
			}
		}
		// A serializable read is served from the node's index, as a
		// partitioned etcd member serves one (without hasleader).
		if r, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("k"), Serializable: true}); err != nil {
			t.Logf("serializable Range with Ignite down: %v", err)
		} else if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "before" {
			t.Errorf("serializable Range with Ignite down returned %v", r.Kvs)
		}

		// /health says why, within its bound.
		h, took := getHealth(t, ep)
		t.Logf("/health with Ignite down: %d %+v after %v", h.code, h, took.Round(time.Millisecond))
		if h.code != http.StatusServiceUnavailable || h.Health != "false" || h.Reason == "" {
			t.Errorf("/health with Ignite down: %d %+v, want 503 with a reason", h.code, h)
		}
		if took > failFastBound {
			t.Errorf("/health with Ignite down took %v", took)
		}

		// The hasleader watch closes with "no leader".
		closed := make(chan error, 1)
		go func() {
			var last error
			for wr := range leaderW {
				if err := wr.Err(); err != nil {
					last = err
				}
				if len(wr.Events) > 0 {
					last = fmt.Errorf("event during the outage: %v", wr.Events)
				}
			}
			closed <- last
		}()
		select {
		case err := <-closed:
			t.Logf("hasleader watch closed %v after storage was lost: %v", time.Since(lost).Round(time.Millisecond), err)
			if !errors.Is(err, rpctypes.ErrNoLeader) {
				t.Errorf("hasleader watch closed with %v, want %v", err, rpctypes.ErrNoLeader)
			}
		case <-time.After(10 * time.Second):
			t.Error("hasleader watch still open 10s after storage was lost")
		}

		// Ignite returns: the node recovers without a restart.
		if err := env.double.StartNode(0); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		// Retries use distinct values: an attempt that timed out may have
		// been applied (an unknown outcome), one answered Unavailable not.
		var after int64
		var afterVal string
		var unknown []string
		for attempt := 0; ; attempt++ {
			afterVal = fmt.Sprint("after-", attempt)
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			r, err := kv.Put(rctx, &pb.PutRequest{Key: []byte("k"), Value: []byte(afterVal)})
			cancel()
			if err == nil {
				after = r.Header.Revision
				break
			}
			if status.Code(err) != codes.Unavailable {
				unknown = append(unknown, afterVal)
			}
			if time.Since(back) > 15*time.Second {
				t.Fatalf("the node did not recover within 15s of Ignite's return: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("first write after Ignite returned succeeded after %v (%s), at revision %d; attempts with an unknown outcome: %q", time.Since(back).Round(time.Millisecond), afterVal, after, unknown)
		// Every revision since the outage began is one of those writes:
		// nothing answered Unavailable was committed.
		hist, err := c.Get(ctx, "k", clientv3.WithRev(after))
		if err != nil {
			t.Fatal(err)
		}
		if v := hist.Kvs[0].Version; v != after-before+1 {
			t.Errorf("k has version %d at revision %d, want %d", v, after, after-before+1)
		}
		for rev := before + 1; rev < after; rev++ {
			r, err := c.Get(ctx, "k", clientv3.WithRev(rev))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(r.Kvs[0].Value); !slices.Contains(unknown, got) {
				t.Errorf("revision %d wrote %q, which no write with an unknown outcome carried (a write answered Unavailable was committed)", rev, got)
			}
		}
		for {
			h, _ = getHealth(t, ep)
			if h.code == 200 || time.Since(back) > 15*time.Second {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if h.code != 200 || h.Health != "true" || h.Reason != "" {
			t.Errorf("/health after Ignite returned: %d %+v", h.code, h)
		}
		g, err := c.Get(clientv3.WithRequireLeader(ctx), "k")
		if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != afterVal || g.Kvs[0].ModRevision != after {
			t.Fatalf("hasleader read after recovery: %+v %v", g, err)
		}
		// The plain watch survived the outage and delivers the new write
		// once, with its prev_kv.
		wantEv := func(wch clientv3.WatchChan, who string) {
			select {
			case wr, ok := <-wch:
				if !ok || wr.Err() != nil || len(wr.Events) == 0 {
					t.Errorf("%s: %+v (open %v, err %v)", who, wr.Events, ok, wr.Err())
					return
				}
				ev := wr.Events[0]
				if ev.Kv.ModRevision != before+1 || ev.PrevKv == nil || string(ev.PrevKv.Value) != "before" {
					t.Errorf("%s: event %v prev %v, want the write at %d with prev_kv 'before'", who, ev.Kv, ev.PrevKv, before+1)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s: no event for the write after the outage", who)
			}
		}
		wantEv(plainW, "watch opened before the outage (no hasleader)")
		// A hasleader watch resumed from where the closed one stopped sees it
		// too.
		wantEv(c.Watch(clientv3.WithRequireLeader(ctx), "k", clientv3.WithRev(before+1), clientv3.WithPrevKV()), "hasleader watch resumed after the outage")
	})
}
