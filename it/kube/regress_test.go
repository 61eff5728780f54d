package kube

// Regression tests for ignetcd defects this suite found.

import (
	"context"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestWatchCreateAfterStreamClose: a WatchCreateRequest that arrives
// as its stream ends. server/watch.go's Watch handler returns when the
// stream's context ends and its deferred ws.Close() sets the
// mvcc.WatchStream's watchers map to nil, while the handler's receive
// goroutine may still be handling a create it has just received:
// mvcc.(*WatchStream).Create then writes to the nil map
// ("panic: assignment to entry in nil map", mvcc/watchable.go, ws.watchers[id] = w),
// and the panic takes the whole ignetcd process down. kube-apiserver's
// reflectors open and drop watch streams often (the cacher suite hit it).
// Fixed in 7632c60 (mvcc ignores watch requests racing with the end of
// their stream); before it, this loop panicked within milliseconds.
func TestWatchCreateAfterStreamClose(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ep := env.endpoints(t, nil)[0]
		conn, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wc := pb.NewWatchClient(conn)
		deadline := time.Now().Add(time.Second)
		for i := 0; time.Now().Before(deadline); i++ {
			ctx, cancel := context.WithCancel(context.Background())
			stream, err := wc.Watch(ctx)
			if err != nil {
				cancel()
				t.Fatalf("iteration %d: %v", i, err)
			}
			for j := 0; j < 5; j++ {
				_ = stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{
					CreateRequest: &pb.WatchCreateRequest{Key: []byte("/registry/pods/"), RangeEnd: []byte("/registry/pods0")}}})
			}
			cancel()
		}
	})
}
