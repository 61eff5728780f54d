package it

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// watchEvent is one delivered event, reduced to what streams are compared
// on.
type watchEvent struct {
	rev     int64
	typ     mvccpb.Event_EventType
	key     string
	val     string
	create  int64
	ver     int64
	hasPrev bool
	prev    mKV
}

func (e watchEvent) String() string {
	prev := "-"
	if e.hasPrev {
		prev = e.prev.String()
	}
	return fmt.Sprintf("%d %s %s=%q c%d v%d prev=%s", e.rev, e.typ, e.key, e.val, e.create, e.ver, prev)
}

func toWatchEvent(ev *clientv3.Event) watchEvent {
	we := watchEvent{rev: ev.Kv.ModRevision, typ: ev.Type, key: string(ev.Kv.Key), val: string(ev.Kv.Value),
		create: ev.Kv.CreateRevision, ver: ev.Kv.Version}
	if ev.PrevKv != nil {
		we.hasPrev, we.prev = true, kvOf(ev.PrevKv)
	}
	return we
}

// mainWatcher follows the whole keyspace on one frontend from revision 1,
// with prev_kv and progress notifications, as kube-apiserver's watch cache
// does. It breaks its own stream now and then and resumes from the last
// delivered revision + 1; a stream the server ends (storage lost, node
// stopped) is resumed the same way.
type mainWatcher struct {
	frontend int
	h        *robustHarness
	cli      *clientv3.Client
	rng      *rand.Rand

	events   []watchEvent
	last     atomic.Int64 // revision of the last delivered event
	progress int64        // highest progress notification
	state    map[string]mKV

	reopens, progressCount int
	endReasons             map[string]int
}

func (w *mainWatcher) run(ctx context.Context) {
	w.state = map[string]mKV{}
	w.endReasons = map[string]int{}
	w.last.Store(1)
	for ctx.Err() == nil {
		w.once(ctx)
		if ctx.Err() == nil {
			w.reopens++
			time.Sleep(time.Duration(10+w.rng.Intn(40)) * time.Millisecond)
		}
	}
}

// once runs one watch from last+1 until it ends or is broken on purpose.
func (w *mainWatcher) once(ctx context.Context) {
	lctx := clientv3.WithRequireLeader(ctx)
	wctx, cancel := context.WithCancel(lctx)
	defer cancel()
	breakAfter := time.Duration(300+w.rng.Intn(1200)) * time.Millisecond
	timer := time.AfterFunc(breakAfter, cancel)
	defer timer.Stop()
	// Progress requests go to the stream of the same metadata.
	done := make(chan struct{})
	defer close(done)
	every := time.Duration(50+w.rng.Intn(100)) * time.Millisecond
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				rctx, rc := context.WithTimeout(lctx, time.Second)
				w.cli.RequestProgress(rctx)
				rc()
			}
		}
	}()
	from := w.last.Load() + 1
	wch := w.cli.Watch(wctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(from), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	sawErr := false
	for wr := range wch {
		if wr.CompactRevision != 0 {
			w.h.violation("frontend %d: watch from %d compacted at %d (compaction never passes a watcher)", w.frontend, from, wr.CompactRevision)
		}
		if err := wr.Err(); err != nil {
			if wctx.Err() == nil {
				w.endReasons[errClass(err)]++
			}
			sawErr = true
			continue // the channel closes next
		}
		if wr.IsProgressNotify() {
			w.progressCount++
			p := wr.Header.Revision
			if last := w.last.Load(); p < last {
				w.h.violation("frontend %d: progress notification at %d below the delivered event at %d", w.frontend, p, last)
			}
			w.progress = max(w.progress, p)
			continue
		}
		w.deliver(wr.Events)
	}
	if !sawErr && wctx.Err() == nil && ctx.Err() == nil {
		w.endReasons["closed without error"]++
	}
}

// deliver checks one response's events against the stream so far.
func (w *mainWatcher) deliver(evs []*clientv3.Event) {
	if len(evs) == 0 {
		return
	}
	last := w.last.Load()
	first := evs[0].Kv.ModRevision
	switch {
	case first <= last:
		w.h.violation("frontend %d: response starts at revision %d after revision %d was delivered (duplicate, reordering or a revision split across responses)", w.frontend, first, last)
	case first != last+1:
		w.h.violation("frontend %d: response starts at revision %d after %d: revisions %d..%d are missing", w.frontend, first, last, last+1, first-1)
	}
	if first <= w.progress {
		w.h.violation("frontend %d: event at revision %d after a progress notification at %d", w.frontend, first, w.progress)
	}
	prevRev := first
	for _, ev := range evs {
		we := toWatchEvent(ev)
		if we.rev < prevRev || we.rev > prevRev+1 {
			w.h.violation("frontend %d: event at revision %d follows revision %d in one response", w.frontend, we.rev, prevRev)
		}
		prevRev = we.rev
		checkPrev(w.h, fmt.Sprintf("frontend %d", w.frontend), w.state, we)
		w.events = append(w.events, we)
	}
	w.last.Store(prevRev)
}

// checkPrev checks an event against the state rebuilt from the stream
// (prev_kv, create revision, version) and applies it.
func checkPrev(h *robustHarness, who string, state map[string]mKV, we watchEvent) {
	prev, existed := state[we.key]
	switch {
	case !existed && we.hasPrev:
		h.violation("%s: event %s carries prev_kv but the key did not exist", who, we)
	case existed && !we.hasPrev:
		h.violation("%s: event %s lacks prev_kv (%s)", who, we, prev)
	case existed && we.prev != prev:
		h.violation("%s: event %s has prev_kv %s, the stream says %s", who, we, we.prev, prev)
	}
	switch we.typ {
	case mvccpb.PUT:
		want := mKV{val: we.val, mod: we.rev, create: we.rev, ver: 1}
		if existed {
			want.create, want.ver = prev.create, prev.ver+1
		}
		if we.create != want.create || we.ver != want.ver {
			h.violation("%s: event %s, want create %d version %d", who, we, want.create, want.ver)
		}
		state[we.key] = want
	case mvccpb.DELETE:
		if !existed {
			h.violation("%s: delete event %s of a key that did not exist", who, we)
		}
		delete(state, we.key)
	}
}

// shortWatch is one short-lived watch (watchers coming and going): a key,
// a prefix or the whole keyspace, from a recent revision.
type shortWatch struct {
	frontend  int
	key, end  string
	from      int64
	events    []watchEvent
	compacted int64
	err       string
}

func (s shortWatch) String() string {
	return fmt.Sprintf("frontend %d watch [%q,%q) from %d", s.frontend, s.key, s.end, s.from)
}

func (s shortWatch) matches(key string) bool {
	if s.end == "" {
		return key == s.key
	}
	return key >= s.key && (s.end == "\x00" || key < s.end)
}

// runShortWatches opens short watches on one frontend until ctx ends.
func (h *robustHarness) runShortWatches(ctx context.Context, frontend int, cli *clientv3.Client, rng *rand.Rand, mu *sync.Mutex, out *[]shortWatch) {
	for ctx.Err() == nil {
		sw := shortWatch{frontend: frontend}
		var opts []clientv3.OpOption
		switch rng.Intn(3) {
		case 0:
			sw.key = robustKeys[rng.Intn(nRobustKeys)]
		case 1:
			sw.key, sw.end = robustPrefixRange, clientv3.GetPrefixRangeEnd(robustPrefixRange)
			opts = append(opts, clientv3.WithRange(sw.end))
		default:
			sw.key, sw.end = "\x00", "\x00"
			opts = append(opts, clientv3.WithFromKey())
		}
		cur := h.acked.v.Load()
		lo := max(h.compacted.Load()+1, cur-30, 2)
		sw.from = lo + rng.Int63n(max(cur+2-lo, 1))
		opts = append(opts, clientv3.WithRev(sw.from), clientv3.WithPrevKV())
		wctx, cancel := context.WithTimeout(ctx, time.Duration(100+rng.Intn(400))*time.Millisecond)
		for wr := range cli.Watch(wctx, sw.key, opts...) {
			if wr.CompactRevision != 0 {
				sw.compacted = wr.CompactRevision
			}
			if err := wr.Err(); err != nil {
				sw.err = errClass(err)
				continue
			}
			for _, ev := range wr.Events {
				sw.events = append(sw.events, toWatchEvent(ev))
			}
		}
		cancel()
		mu.Lock()
		*out = append(*out, sw)
		mu.Unlock()
	}
}

// checkShortWatch: what a short watch received is a prefix of the reference
// stream's events on its range from its start revision (nothing skipped,
// nothing extra, same prev_kv), or it was refused as compacted.
func (h *robustHarness) checkShortWatch(ref []watchEvent, sw shortWatch) {
	if sw.compacted != 0 {
		if sw.from > sw.compacted || len(sw.events) > 0 {
			h.violation("%s: compacted at %d with %d events", sw, sw.compacted, len(sw.events))
		}
		return
	}
	var want []watchEvent
	for _, e := range ref {
		if e.rev >= sw.from && sw.matches(e.key) {
			want = append(want, e)
		}
	}
	if len(sw.events) > len(want) {
		h.violation("%s: %d events, the reference stream has only %d\n got: %s\nwant: %s", sw, len(sw.events), len(want), evLines(sw.events), evLines(want))
		return
	}
	for i, e := range sw.events {
		if e != want[i] {
			h.violation("%s: event %d is %s, the reference stream has %s", sw, i, e, want[i])
			return
		}
	}
}

func evLines(evs []watchEvent) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString("\n  ")
		b.WriteString(e.String())
	}
	return b.String()
}

// stateAt rebuilds the keyspace at revision rev from the reference stream.
func stateAt(ref []watchEvent, rev int64) map[string]mKV {
	st := map[string]mKV{}
	for _, e := range ref {
		if e.rev > rev {
			break
		}
		if e.typ == mvccpb.DELETE {
			delete(st, e.key)
			continue
		}
		st[e.key] = mKV{val: e.val, create: e.create, mod: e.rev, ver: e.ver}
	}
	return st
}

func sameEvents(a, b []watchEvent) (int, bool) {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i, false
		}
	}
	return n, len(a) == len(b)
}

// TestRobustWatchChecks: the stream checks catch gaps, duplicates, split
// revisions, wrong prev_kv and progress going backwards.
func TestRobustWatchChecks(t *testing.T) {
	ev := func(rev int64, typ mvccpb.Event_EventType, key, val string, create, ver int64, prev *mvccpb.KeyValue) *clientv3.Event {
		return &clientv3.Event{Type: typ, Kv: &mvccpb.KeyValue{Key: []byte(key), Value: []byte(val), ModRevision: rev, CreateRevision: create, Version: ver}, PrevKv: prev}
	}
	a2 := &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("1"), CreateRevision: 2, ModRevision: 2, Version: 1}
	for _, tc := range []struct {
		name string
		bad  bool
		resp [][]*clientv3.Event
	}{
		{"good", false, [][]*clientv3.Event{{ev(2, mvccpb.PUT, "a", "1", 2, 1, nil)}, {ev(3, mvccpb.PUT, "a", "2", 2, 2, a2), ev(3, mvccpb.PUT, "b", "1", 3, 1, nil)}}},
		{"gap", true, [][]*clientv3.Event{{ev(2, mvccpb.PUT, "a", "1", 2, 1, nil)}, {ev(4, mvccpb.PUT, "b", "1", 4, 1, nil)}}},
		{"duplicate", true, [][]*clientv3.Event{{ev(2, mvccpb.PUT, "a", "1", 2, 1, nil)}, {ev(2, mvccpb.PUT, "a", "1", 2, 1, nil)}}},
		{"split revision", true, [][]*clientv3.Event{{ev(2, mvccpb.PUT, "a", "1", 2, 1, nil)}, {ev(3, mvccpb.PUT, "a", "2", 2, 2, a2)}, {ev(3, mvccpb.PUT, "b", "1", 3, 1, nil)}}},
		{"missing prev_kv", true, [][]*clientv3.Event{{ev(2, mvccpb.PUT, "a", "1", 2, 1, nil)}, {ev(3, mvccpb.DELETE, "a", "", 0, 0, nil)}}},
		{"wrong version", true, [][]*clientv3.Event{{ev(2, mvccpb.PUT, "a", "1", 2, 1, nil)}, {ev(3, mvccpb.PUT, "a", "2", 2, 3, a2)}}},
	} {
		h := &robustHarness{}
		w := &mainWatcher{h: h, state: map[string]mKV{}}
		w.last.Store(1)
		for _, r := range tc.resp {
			w.deliver(r)
		}
		if bad := h.nViolation > 0; bad != tc.bad {
			t.Errorf("%s: violations %v, want any: %v", tc.name, h.violations, tc.bad)
		}
	}
	// Progress below a delivered event, and an event at or below a progress
	// notification.
	h := &robustHarness{}
	w := &mainWatcher{h: h, state: map[string]mKV{}}
	w.last.Store(1)
	w.deliver([]*clientv3.Event{ev(2, mvccpb.PUT, "a", "1", 2, 1, nil)})
	w.progress = 3
	w.deliver([]*clientv3.Event{ev(3, mvccpb.PUT, "a", "2", 2, 2, a2)})
	if h.nViolation == 0 {
		t.Error("an event at a revision a progress notification covered was accepted")
	}
}
