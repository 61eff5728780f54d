package server

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/ignetcd/ignetcd/mvcc"
)

type watchServer struct{ s *Server }

// Watch runs one client watch stream: a receive loop that turns requests
// into watcher changes, and this goroutine, which sends what the
// mvcc.WatchStream has ready, in order.
func (w *watchServer) Watch(stream pb.Watch_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	ws := w.s.store.NewWatchStream()
	defer ws.Close()

	var mu sync.Mutex
	fragment := map[int64]bool{} // watch ids that asked for fragmented responses
	recvErr := make(chan error, 1)
	go func() {
		recvErr <- w.recvLoop(stream, ws, func(id int64, on bool) {
			mu.Lock()
			fragment[id] = on
			mu.Unlock()
		})
		cancel()
	}()
	go func() {
		t := time.NewTicker(w.s.cfg.ProgressNotifyInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				ws.Tick()
			}
		}
	}()

	for {
		resps, err := ws.Next(ctx)
		if err != nil {
			select {
			case rerr := <-recvErr:
				return rerr
			default:
			}
			if errors.Is(err, mvcc.ErrStopped) {
				return toGRPCError(err)
			}
			return nil
		}
		for _, r := range resps {
			r.Header = w.s.watchHeader(r.Header)
			mu.Lock()
			frag := fragment[r.WatchId]
			if r.Canceled {
				delete(fragment, r.WatchId)
			}
			mu.Unlock()
			if frag {
				err = sendFragments(r, w.s.cfg.MaxRequestBytes, stream.Send)
			} else {
				err = stream.Send(r)
			}
			if err != nil {
				return err
			}
		}
	}
}

func (w *watchServer) recvLoop(stream pb.Watch_WatchServer, ws *mvcc.WatchStream, setFragment func(int64, bool)) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch u := req.RequestUnion.(type) {
		case *pb.WatchRequest_CreateRequest:
			if u.CreateRequest == nil {
				continue
			}
			if id := ws.Create(u.CreateRequest); id != mvcc.InvalidWatchID && u.CreateRequest.Fragment {
				setFragment(id, true)
			}
		case *pb.WatchRequest_CancelRequest:
			if u.CancelRequest != nil {
				ws.Cancel(u.CancelRequest.WatchId)
			}
		case *pb.WatchRequest_ProgressRequest:
			if u.ProgressRequest != nil {
				ws.RequestProgress()
			}
		}
	}
}

// sendFragments splits a response whose size reaches maxRequestBytes into
// several carrying fragment=true, the last one false, as etcd does.
func sendFragments(wr *pb.WatchResponse, maxRequestBytes int, send func(*pb.WatchResponse) error) error {
	if wr.Size() < maxRequestBytes || len(wr.Events) < 2 {
		return send(wr)
	}
	ow := *wr
	ow.Events = make([]*mvccpb.Event, 0)
	ow.Fragment = true
	idx := 0
	for {
		cur := ow
		for _, ev := range wr.Events[idx:] {
			cur.Events = append(cur.Events, ev)
			if len(cur.Events) > 1 && cur.Size() >= maxRequestBytes {
				cur.Events = cur.Events[:len(cur.Events)-1]
				break
			}
			idx++
		}
		if idx == len(wr.Events) {
			cur.Fragment = false
		}
		if err := send(&cur); err != nil {
			return err
		}
		if !cur.Fragment {
			return nil
		}
	}
}
