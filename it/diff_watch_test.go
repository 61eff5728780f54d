package it

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// wside is one raw Watch stream on one server. A goroutine records every
// response; progress notifications (watch_id -1, nothing else set) are kept
// apart: they are the harness's barrier, not compared.
type wside struct {
	s      *side
	stream pb.Watch_WatchClient
	cancel context.CancelFunc

	mu       sync.Mutex
	notify   chan struct{} // poked (non-blocking) on every receive
	resps    []*pb.WatchResponse
	progress []int64 // header.revision of progress notifications
	err      error   // terminal Recv error

	// One entry per create request sent, in order, filled when its created
	// response arrives.
	watches []*watchState
}

type watchState struct {
	req     *pb.WatchCreateRequest
	created *pb.WatchResponse // nil until received
}

func isProgress(r *pb.WatchResponse) bool {
	return r.WatchId == -1 && !r.Created && !r.Canceled && r.CompactRevision == 0 && len(r.Events) == 0 && r.CancelReason == ""
}

func openWatch(s *side) (*wside, error) {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := s.watch.Watch(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s: opening watch stream: %w", s.name, err)
	}
	w := &wside{s: s, stream: st, cancel: cancel, notify: make(chan struct{}, 1)}
	go w.recvLoop()
	return w, nil
}

func (w *wside) recvLoop() {
	for {
		r, err := w.stream.Recv()
		w.mu.Lock()
		if err != nil {
			w.err = err
		} else if isProgress(r) {
			w.progress = append(w.progress, r.GetHeader().GetRevision())
		} else {
			zeroHeader(r.Header)
			w.resps = append(w.resps, r)
		}
		w.mu.Unlock()
		select {
		case w.notify <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// waitUntil polls cond (under w.mu) on every received message until it holds,
// the stream fails or timeout passes.
func (w *wside) waitUntil(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ok, err := cond(), w.err
		w.mu.Unlock()
		if ok {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: watch stream failed while waiting for %s: %v", w.s.name, what, err)
		}
		select {
		case <-w.notify:
		case <-deadline.C:
			return fmt.Errorf("%s: timed out after %v waiting for %s", w.s.name, timeout, what)
		}
	}
}

const watchTimeout = 15 * time.Second

// create sends a create request and waits for its created response.
func (w *wside) create(req *pb.WatchCreateRequest) (*pb.WatchResponse, error) {
	w.mu.Lock()
	ws := &watchState{req: req}
	w.watches = append(w.watches, ws)
	n := len(w.watches)
	w.mu.Unlock()
	if err := w.stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: req}}); err != nil {
		return nil, fmt.Errorf("%s: sending watch create: %w", w.s.name, err)
	}
	err := w.waitUntil(watchTimeout, "the created response", func() bool {
		c := 0
		for _, r := range w.resps {
			if r.Created {
				c++
				if c == n {
					ws.created = r
					return true
				}
			}
		}
		return false
	})
	return ws.created, err
}

// cancelWatch sends a cancel request and waits for its canceled response.
func (w *wside) cancelWatch(id int64) (*pb.WatchResponse, error) {
	w.mu.Lock()
	before := len(w.resps)
	w.mu.Unlock()
	if err := w.stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: id}}}); err != nil {
		return nil, fmt.Errorf("%s: sending watch cancel: %w", w.s.name, err)
	}
	var got *pb.WatchResponse
	err := w.waitUntil(watchTimeout, fmt.Sprintf("the canceled response for watch %d", id), func() bool {
		for _, r := range w.resps[before:] {
			if r.Canceled && !r.Created && r.WatchId == id {
				got = r
				return true
			}
		}
		return false
	})
	return got, err
}

// liveWatches returns the watches that were created successfully and have not
// been canceled (by compaction or by us), judging by this side's responses.
// Callers hold w.mu.
func (w *wside) liveWatchesLocked() []*watchState {
	var live []*watchState
	for _, ws := range w.watches {
		if ws.created == nil || ws.created.Canceled {
			continue
		}
		canceled := false
		for _, r := range w.resps {
			if r.WatchId == ws.created.WatchId && r.Canceled && !r.Created {
				canceled = true
				break
			}
		}
		if !canceled {
			live = append(live, ws)
		}
	}
	return live
}

// barrier returns once every event up to the side's current revision has
// been received on this stream. It repeatedly sends a progress request until
// a progress notification with header.revision >= curRev arrives: etcd sends
// one only when all watches of the stream are synced (and past their
// start_revision), and on the same channel as events, so everything before
// it has been delivered. Streams without watches that can still produce
// events need no barrier (etcd would not answer anyway).
func (w *wside) barrier() error {
	curRev := w.s.curRev
	needs := func() bool {
		for _, ws := range w.liveWatchesLocked() {
			if ws.req.StartRevision <= curRev { // 0 (now) or reached
				return true
			}
		}
		return false
	}
	done := func() bool {
		if !needs() {
			return true
		}
		for _, p := range w.progress {
			if p >= curRev {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(watchTimeout)
	wait := 5 * time.Millisecond
	for {
		w.mu.Lock()
		ok := done()
		w.mu.Unlock()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no progress notification with revision >= %d within %v (barrier)", w.s.name, curRev, watchTimeout)
		}
		if err := w.stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}); err != nil {
			return fmt.Errorf("%s: sending progress request: %w", w.s.name, err)
		}
		_ = w.waitUntil(wait, "", done) // a timeout here just means: ask again
		w.mu.Lock()
		err := w.err
		w.mu.Unlock()
		if err != nil {
			return fmt.Errorf("%s: watch stream failed during barrier: %v", w.s.name, err)
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// watchItem is one element of the flattened history of one watch: an event
// or a non-created control response (cancel/compaction).
type watchItem struct {
	ev   *mvccpb.Event
	ctrl *pb.WatchResponse
}

func (it watchItem) key() []byte {
	if it.ev != nil {
		return wire(it.ev)
	}
	c := *it.ctrl
	c.Events = nil
	return wire(&c)
}

func (it watchItem) String() string {
	if it.ev != nil {
		return "event " + eventText(it.ev)
	}
	return "control " + clip(it.ctrl.String())
}

// history flattens the responses for watch id (the created response aside).
// batches holds, per response carrying events, its event count and
// header.revision.
func (w *wside) history(id int64) (items []watchItem, batches [][2]int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.resps {
		if r.WatchId != id || r.Created {
			continue
		}
		for _, e := range r.Events {
			items = append(items, watchItem{ev: e})
		}
		if len(r.Events) > 0 {
			batches = append(batches, [2]int64{int64(len(r.Events)), r.GetHeader().GetRevision()})
		}
		if r.Canceled || r.CompactRevision != 0 || r.CancelReason != "" || len(r.Events) == 0 {
			items = append(items, watchItem{ctrl: r})
		}
	}
	return items, batches
}

// unknownResponses returns responses addressed to no watch of this stream.
func (w *wside) unknownResponses() []*pb.WatchResponse {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := map[int64]bool{}
	for _, ws := range w.watches {
		if ws.created != nil && !ws.created.Canceled {
			ids[ws.created.WatchId] = true
		}
	}
	var bad []*pb.WatchResponse
	for _, r := range w.resps {
		if !r.Created && !ids[r.WatchId] {
			bad = append(bad, r)
		}
	}
	return bad
}

// wstream is the same watch stream opened on both servers.
type wstream struct {
	idx  int
	kind string
	ref  *wside
	sub  *wside
}

// compareWatchHistories compares, for each watch of the stream, the flattened
// event/control histories of both sides. It returns a description of the
// first difference, or "".
//
// Batching of events into WatchResponses is not part of the contract (etcd
// sends one response per revision to synced watchers, but one response
// covering many revisions when catching up a watcher that started in the
// past), so events are compared flattened. When the batch structure does line
// up (same number of responses with the same event counts), the
// header.revision of each batch is compared too; otherwise each side is only
// checked for header.revision >= every event's mod_revision.
// It also returns the number of history items compared.
func compareWatchHistories(st *wstream, log io.Writer) (string, int) {
	n := 0
	count := func(k int) { n += k }
	msg := compareWatchHistories1(st, count, log)
	return msg, n
}

func compareWatchHistories1(st *wstream, count func(int), log io.Writer) string {
	for _, side := range []*wside{st.ref, st.sub} {
		if bad := side.unknownResponses(); len(bad) > 0 {
			return fmt.Sprintf("stream %d: %s sent a response for no known watch: %s", st.idx, side.s.name, clip(bad[0].String()))
		}
	}
	st.ref.mu.Lock()
	n := len(st.ref.watches)
	st.ref.mu.Unlock()
	for i := 0; i < n; i++ {
		st.ref.mu.Lock()
		rc := st.ref.watches[i]
		st.ref.mu.Unlock()
		if rc.created == nil || rc.created.Canceled {
			continue // creation failed on etcd; compared when created
		}
		id := rc.created.WatchId
		ri, rb := st.ref.history(id)
		si, sb := st.sub.history(id)
		count(len(ri))
		nev := 0
		for _, it := range ri {
			if it.ev == nil {
				fmt.Fprintf(log, "    stream %d watch id=%d: %s\n", st.idx, id, it)
			} else {
				nev++
			}
		}
		fmt.Fprintf(log, "    stream %d watch id=%d: %d events in %d responses\n", st.idx, id, nev, len(rb))
		where := fmt.Sprintf("stream %d (%s) watch #%d id=%d {%s}", st.idx, st.kind, i, id, clip(rc.req.String()))
		for k := 0; k < max(len(ri), len(si)); k++ {
			if k >= len(ri) || k >= len(si) || !bytes.Equal(ri[k].key(), si[k].key()) {
				return fmt.Sprintf("%s: watch histories differ at item %d\n  etcd    (%d items):\n%s\n  subject (%d items):\n%s",
					where, k, len(ri), itemsText(ri, k), len(si), itemsText(si, k))
			}
		}
		for _, x := range []struct {
			name string
			b    [][2]int64
			it   []watchItem
		}{{"etcd", rb, ri}, {"subject", sb, si}} {
			if msg := checkBatches(x.b, x.it); msg != "" {
				return fmt.Sprintf("%s: %s: %s", where, x.name, msg)
			}
		}
		if sameShape(rb, sb) {
			for k := range rb {
				if rb[k][1] != sb[k][1] {
					return fmt.Sprintf("%s: event batch %d (%d events): header.revision etcd=%d subject=%d", where, k, rb[k][0], rb[k][1], sb[k][1])
				}
			}
		}
	}
	return ""
}

func sameShape(a, b [][2]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i][0] != b[i][0] {
			return false
		}
	}
	return true
}

// checkBatches checks header.revision >= mod_revision of each event of the
// batch, and non-decreasing header revisions.
func checkBatches(b [][2]int64, items []watchItem) string {
	var evs []*mvccpb.Event
	for _, it := range items {
		if it.ev != nil {
			evs = append(evs, it.ev)
		}
	}
	k, last := 0, int64(0)
	for i, bt := range b {
		if bt[1] < last {
			return fmt.Sprintf("batch %d header.revision %d < previous %d", i, bt[1], last)
		}
		last = bt[1]
		for j := int64(0); j < bt[0]; j++ {
			if evs[k].Kv.ModRevision > bt[1] {
				return fmt.Sprintf("batch %d header.revision %d < event mod_revision %d", i, bt[1], evs[k].Kv.ModRevision)
			}
			k++
		}
	}
	return ""
}

func itemsText(items []watchItem, mark int) string {
	var sb strings.Builder
	lo := max(0, mark-3)
	for k := lo; k < len(items) && k < mark+4; k++ {
		p := "   "
		if k == mark {
			p = ">> "
		}
		fmt.Fprintf(&sb, "    %s[%d] %s\n", p, k, items[k])
	}
	if mark >= len(items) {
		fmt.Fprintf(&sb, "    >> [%d] <missing>\n", mark)
	}
	return sb.String()
}
