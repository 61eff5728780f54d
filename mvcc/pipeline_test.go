package mvcc_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/mvcc"
)

// slowFeed delays every change notification by a fixed time, in order, as a
// continuous query does under load; it makes write groups start while the
// node's own earlier groups are committed but not yet released.
type slowFeed struct {
	mvcc.Engine
	delay time.Duration
}

func (e slowFeed) Subscribe(ctx context.Context, table string, onPut func(key, value []byte), onLost func(error)) (mvcc.Subscription, error) {
	type note struct {
		at   time.Time
		k, v []byte
	}
	ch := make(chan note, 1<<16)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case n := <-ch:
				time.Sleep(time.Until(n.at))
				onPut(n.k, n.v)
			case <-done:
				return
			}
		}
	}()
	sub, err := e.Engine.Subscribe(ctx, table, func(k, v []byte) {
		ch <- note{time.Now().Add(e.delay), append([]byte(nil), k...), append([]byte(nil), v...)}
	}, onLost)
	if err != nil {
		close(done)
		return nil, err
	}
	return cancelBoth{sub, done}, nil
}

type cancelBoth struct {
	mvcc.Subscription
	done chan struct{}
}

func (c cancelBoth) Cancel() { c.Subscription.Cancel(); close(c.done) }

// TestGroupsEvaluateOnOwnUnreleasedWrites: with the feed lagging, write
// groups evaluate on the node's own committed but unreleased groups instead
// of waiting for the feed. Compare-and-swap increments from many clients
// must then lose no update, and range deletes must see every key put before
// them: a group reading the index without its predecessors' writes would
// let two increments of the same value both succeed, or miss keys.
func TestGroupsEvaluateOnOwnUnreleasedWrites(t *testing.T) {
	s := openStore(t, slowFeed{memengine.New(), 3 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	counter := []byte("counter")
	if _, err := s.Put(ctx, &pb.PutRequest{Key: counter, Value: []byte("0")}); err != nil {
		t.Fatal(err)
	}
	const clients, increments = 16, 40
	var wg sync.WaitGroup
	var puts, deleted atomic.Int64
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq := 0
			for i := 0; i < increments; {
				// Read the current value, then swap it for value+1 if its
				// mod revision is unchanged; retry when it was not.
				rr, err := s.Range(ctx, &pb.RangeRequest{Key: counter, Serializable: true})
				if err != nil {
					errs <- err
					return
				}
				kv := rr.Kvs[0]
				n, _ := strconv.Atoi(string(kv.Value))
				tr, err := s.Txn(ctx, &pb.TxnRequest{
					Compare: []*pb.Compare{{Key: counter, Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
						TargetUnion: &pb.Compare_ModRevision{ModRevision: kv.ModRevision}}},
					Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
						Key: counter, Value: []byte(strconv.Itoa(n + 1))}}}},
				})
				if err != nil {
					errs <- err
					return
				}
				if tr.Succeeded {
					i++
				}
				// Unique keys under one shared prefix, swept by range
				// deletes from every client: each key must be deleted at
				// most once (a sweep that missed the sweep before it in
				// an unreleased group would count its keys again).
				seq++
				key := fmt.Sprintf("p/%02d/%05d", c, seq)
				if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte(key), Value: []byte("x")}); err != nil {
					errs <- err
					return
				}
				puts.Add(1)
				if seq%3 == 0 {
					dr, err := s.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte("p/"), RangeEnd: []byte("p0")})
					if err != nil {
						errs <- err
						return
					}
					deleted.Add(dr.Deleted)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rr, err := s.Range(ctx, &pb.RangeRequest{Key: counter})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(rr.Kvs[0].Value), strconv.Itoa(clients*increments); got != want {
		t.Fatalf("counter = %s after %s successful compare-and-swap increments: lost updates", got, want)
	}
	left, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("p/"), RangeEnd: []byte("p0"), CountOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if deleted.Load()+left.Count != puts.Load() {
		t.Fatalf("deleted %d + left %d != %d puts of distinct keys", deleted.Load(), left.Count, puts.Load())
	}
}
