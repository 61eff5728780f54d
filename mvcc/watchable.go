package mvcc

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// WatchStream holds the watchers of one client watch stream. Delivery is
// pulled: the stream's sender calls Next, which reads released revisions from
// the store's event log for each watcher from where it stopped. Nothing is
// pushed or buffered per watcher, so a slow client holds back only its own
// stream and never the feed; if it falls behind a compaction, its watchers
// are cancelled with the compact revision, as etcd does. What one Next
// returns per watcher is bounded: a watcher more than watchBatchMaxRevs
// revisions behind catches up in batches, as etcd's unsynced watchers do;
// one more than Config.WatchMaxLag revisions behind is cancelled with a
// reason (etcd keeps such a watcher as a victim indefinitely).
type WatchStream struct {
	s *Store

	mu          sync.Mutex
	watchers    map[int64]*watcher
	nextID      int64
	ctrl        []*pb.WatchResponse // created/canceled responses, in request order
	progressAll bool                // a WatchProgressRequest awaits an answer
	closed      bool
	notify      chan struct{}
	scanned     int64 // the most revisions one catch-up step looked at (tests)
}

type watcher struct {
	id       int64
	key, end []byte // end: nil single key, empty unbounded
	startRev int64
	next     int64 // first revision not yet delivered
	// synced watchers get one response per revision (header = that
	// revision); unsynced ones catch up in batches (header = safe point).
	synced bool
	// live: synced once (created at the head, or caught up); only live
	// watchers are subject to Config.WatchMaxLag.
	live         bool
	prevKV       bool
	noPut        bool
	noDelete     bool
	progress     bool // progress_notify requested
	progressDue  bool // a periodic progress notification is pending
	progressIdle bool // no events sent since the last tick
}

// watchBatchMaxRevs bounds how many revisions one catch-up response carries,
// as etcd's watchBatchMaxRevs, and how many revisions behind a synced
// watcher may be before it goes back to catching up in batches (so one
// collect gives it at most this many responses).
const watchBatchMaxRevs = 1000

// watchScanMaxRevs bounds how many revisions one catch-up step of a watcher
// looks at, matching or not.
const watchScanMaxRevs = 10 * watchBatchMaxRevs

// LaggingWatchersCancelled reports how many watchers were cancelled for
// falling more than Config.WatchMaxLag revisions behind.
func (s *Store) LaggingWatchersCancelled() int64 { return s.laggingWatchers.Load() }

// InvalidWatchID is clientv3.InvalidWatchID.
const InvalidWatchID = -1

// NewWatchStream opens a watch stream.
func (s *Store) NewWatchStream() *WatchStream {
	return &WatchStream{s: s, watchers: map[int64]*watcher{}, notify: make(chan struct{}, 1)}
}

func (ws *WatchStream) poke() {
	select {
	case ws.notify <- struct{}{}:
	default:
	}
}

// Create handles a WatchCreateRequest as etcd's v3rpc and mvcc do; the
// created (or refused) response is queued for Next. It returns the watch id,
// or InvalidWatchID when refused.
func (ws *WatchStream) Create(req *pb.WatchCreateRequest) int64 {
	cur := ws.s.Revision()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		// The stream ended while this request was being received.
		return InvalidWatchID
	}
	defer ws.poke()
	refuse := func(reason string) {
		ws.ctrl = append(ws.ctrl, &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: cur},
			WatchId: InvalidWatchID, Created: true, Canceled: true, CancelReason: reason})
	}
	key := req.Key
	if len(key) == 0 {
		key = []byte{0}
	}
	if req.StartRevision < 0 {
		refuse("etcdserver: mvcc: required revision has been compacted")
		return InvalidWatchID
	}
	end := rangeEnd(req.RangeEnd)
	if len(end) != 0 && bytes.Compare(key, end) != -1 {
		refuse(ErrEmptyWatcherRange.Error())
		return InvalidWatchID
	}
	id := req.WatchId
	if id == 0 { // clientv3.AutoWatchID
		for ws.watchers[ws.nextID] != nil {
			ws.nextID++
		}
		id = ws.nextID
		ws.nextID++
	} else if ws.watchers[id] != nil {
		refuse(ErrWatcherDuplicateID.Error())
		return InvalidWatchID
	}
	w := &watcher{id: id, key: key, end: end, startRev: req.StartRevision, prevKV: req.PrevKv,
		progress: req.ProgressNotify, progressIdle: true}
	for _, f := range req.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			w.noPut = true
		case pb.WatchCreateRequest_NODELETE:
			w.noDelete = true
		}
	}
	if req.StartRevision == 0 || req.StartRevision > cur {
		w.synced, w.live = true, true
		w.next = max(cur+1, req.StartRevision)
	} else {
		w.next = req.StartRevision
	}
	ws.watchers[id] = w
	ws.ctrl = append(ws.ctrl, &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: cur}, WatchId: id, Created: true})
	return id
}

// Cancel removes a watcher; unknown ids are ignored, as etcd does.
func (ws *WatchStream) Cancel(id int64) {
	cur := ws.s.Revision()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.watchers[id] == nil {
		return
	}
	delete(ws.watchers, id)
	ws.ctrl = append(ws.ctrl, &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: cur}, WatchId: id, Canceled: true})
	ws.poke()
}

// RequestProgress asks for one progress response (watch id -1) at the safe
// point, sent only once every watcher of the stream has caught up; etcd
// drops the request otherwise, and so does this.
func (ws *WatchStream) RequestProgress() {
	ws.mu.Lock()
	ws.progressAll = true
	ws.mu.Unlock()
	ws.poke()
}

// Tick is the periodic progress_notify timer: each progress watcher that sent
// no events since the last tick gets a progress response.
func (ws *WatchStream) Tick() {
	ws.mu.Lock()
	for _, w := range ws.watchers {
		if w.progress && w.progressIdle {
			w.progressDue = true
		}
		w.progressIdle = true
	}
	ws.mu.Unlock()
	ws.poke()
}

// Close drops every watcher; Next returns ErrStopped.
func (ws *WatchStream) Close() {
	ws.mu.Lock()
	ws.closed = true
	ws.watchers = map[int64]*watcher{}
	ws.ctrl = nil
	ws.mu.Unlock()
	ws.poke()
}

// WatcherCount reports how many watchers the stream has.
func (ws *WatchStream) WatcherCount() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.watchers)
}

// Next blocks until there is something to send and returns it in order:
// control responses first, then events and progress.
func (ws *WatchStream) Next(ctx context.Context) ([]*pb.WatchResponse, error) {
	for {
		ws.s.mu.RLock()
		advanced := ws.s.advanced
		out, more, err := ws.collect()
		ws.s.mu.RUnlock()
		if err != nil || len(out) > 0 {
			return out, err
		}
		if more {
			continue // a catch-up scan stopped at its budget; the lock was let go in between
		}
		select {
		case <-ws.notify:
		case <-advanced:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ws.s.stop:
			return nil, ErrStopped
		}
	}
}

// collect builds the responses due now; s.mu is read-locked.
func (ws *WatchStream) collect() (out []*pb.WatchResponse, more bool, err error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return nil, false, ErrStopped
	}
	s := ws.s
	safe, compact := s.safePoint, s.compactRev
	out = ws.ctrl
	ws.ctrl = nil

	ids := make([]int64, 0, len(ws.watchers))
	for id := range ws.watchers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		w := ws.watchers[id]
		if w.next > safe {
			continue
		}
		if w.next < compact {
			// etcd's compacted response carries no header revision.
			out = append(out, &pb.WatchResponse{Header: &pb.ResponseHeader{}, WatchId: id, CompactRevision: compact, Canceled: true})
			delete(ws.watchers, id)
			continue
		}
		if maxLag := s.cfg.WatchMaxLag; maxLag >= 0 && w.live && safe-w.next > maxLag {
			out = append(out, &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: safe}, WatchId: id, Canceled: true,
				CancelReason: fmt.Sprintf("mvcc: watcher fell more than %d revisions behind (at revision %d, node at %d); re-create it from revision %d",
					maxLag, w.next, safe, w.next)})
			delete(ws.watchers, id)
			s.laggingWatchers.Add(1)
			continue
		}
		if w.synced && safe-w.next+1 > watchBatchMaxRevs {
			// Its stream fell behind (blocked in Send): catch up in
			// bounded batches rather than one response per revision.
			w.synced = false
		}
		if w.synced {
			for rev := w.next; rev <= safe; rev++ {
				if evs := ws.eventsFor(w, rev); len(evs) > 0 {
					out = append(out, &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: rev}, WatchId: id, Events: evs})
					w.progressIdle = false
				}
			}
			w.next = safe + 1
			continue
		}
		var evs []*mvccpb.Event
		revs := 0
		rev := w.next
		// Scanned under the store's read lock, which the feed's releases
		// wait for: a watcher replaying a long history that it mostly does
		// not match continues in the next step instead.
		end := min(safe, w.next+watchScanMaxRevs-1)
		for ; rev <= end; rev++ {
			e := ws.eventsFor(w, rev)
			if len(e) == 0 {
				continue
			}
			if revs == watchBatchMaxRevs {
				break
			}
			evs = append(evs, e...)
			revs++
		}
		ws.scanned = max(ws.scanned, rev-w.next)
		more = more || (rev <= safe && len(evs) == 0)
		w.next = rev
		if rev > safe {
			w.synced, w.live = true, true
		}
		if len(evs) > 0 {
			out = append(out, &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: safe}, WatchId: id, Events: evs})
			w.progressIdle = false
		}
	}

	caughtUp := len(ws.watchers) > 0
	for _, w := range ws.watchers {
		if !w.synced || w.next <= safe || w.startRev > safe {
			caughtUp = false
		}
	}
	for _, id := range ids {
		w := ws.watchers[id]
		if w == nil || !w.progressDue {
			continue
		}
		w.progressDue = false
		if w.synced && w.next > safe && w.startRev <= safe {
			out = append(out, &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: safe}, WatchId: id})
		}
	}
	if ws.progressAll {
		ws.progressAll = false
		if caughtUp {
			out = append(out, &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: safe}, WatchId: InvalidWatchID})
		}
	}
	return out, more, nil
}

// eventsFor returns w's events at rev: filtered, with prev_kv when asked.
func (ws *WatchStream) eventsFor(w *watcher, rev int64) []*mvccpb.Event {
	var out []*mvccpb.Event
	for _, ev := range ws.s.events.get(rev) {
		if !inRange(ev.Kv.Key, w.key, w.end) {
			continue
		}
		if (ev.Type == mvccpb.PUT && w.noPut) || (ev.Type == mvccpb.DELETE && w.noDelete) {
			continue
		}
		e := &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		isCreate := ev.Type == mvccpb.PUT && ev.Kv.CreateRevision == ev.Kv.ModRevision
		if w.prevKV && !isCreate && rev-1 >= ws.s.compactRev {
			if ki := ws.s.ix.get(ev.Kv.Key); ki != nil {
				e.PrevKv = ki.at(rev - 1)
			}
		}
		out = append(out, e)
	}
	return out
}
