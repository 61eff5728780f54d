package ignitetest

import (
	"sync"
	"sync/atomic"
	"time"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
	"github.com/ignetcd/ignetcd/ignite/wire"
)

// subscription is one continuous query of one connection.
type subscription struct {
	conn   *srvConn
	id     int64
	cache  int32
	armed  atomic.Bool // its start response is queued: events count from now
	closed atomic.Bool
}

// notifier delivers continuous-query events. Like Ignite, it keeps the
// events of one partition in order and lets partitions race each other: one
// queue and one goroutine per partition.
type notifier struct {
	parts []*partQueue
	logf  func(string, ...any)

	mu      sync.Mutex
	cond    *sync.Cond
	paused  bool
	delay   time.Duration
	reorder int            // events still to collect before a reversed flush
	held    []pendingEvent // collected events
	stopped bool

	wg sync.WaitGroup
}

type partQueue struct {
	mu    sync.Mutex
	cond  *sync.Cond
	items []pendingEvent
	stop  bool
}

func newNotifier(partitions int, logf func(string, ...any)) *notifier {
	n := &notifier{logf: logf}
	n.cond = sync.NewCond(&n.mu)
	for i := 0; i < partitions; i++ {
		q := &partQueue{}
		q.cond = sync.NewCond(&q.mu)
		n.parts = append(n.parts, q)
		n.wg.Add(1)
		go n.run(q)
	}
	return n
}

// enqueue hands committed events to their partitions' queues, or to the
// reorder buffer while one is collecting.
func (n *notifier) enqueue(events []pendingEvent) {
	for _, ev := range events {
		n.mu.Lock()
		if n.reorder > 0 && !n.stopped {
			n.held = append(n.held, ev)
			n.reorder--
			var flush []pendingEvent
			if n.reorder == 0 {
				flush = n.takeHeld()
			}
			n.mu.Unlock()
			n.push(n.parts[0], flush...)
			continue
		}
		n.mu.Unlock()
		n.push(n.parts[ib.Partition(ev.hash, len(n.parts))], ev)
	}
}

func (n *notifier) push(q *partQueue, events ...pendingEvent) {
	if len(events) == 0 {
		return
	}
	q.mu.Lock()
	q.items = append(q.items, events...)
	q.mu.Unlock()
	q.cond.Signal()
}

func (n *notifier) run(q *partQueue) {
	defer n.wg.Done()
	for {
		q.mu.Lock()
		for len(q.items) == 0 && !q.stop {
			q.cond.Wait()
		}
		if len(q.items) == 0 {
			q.mu.Unlock()
			return
		}
		// Everything queued goes in one pass, in order: a wake-up and a
		// frame hand-off per event was most of the double's scheduling work
		// under a write load.
		batch := q.items
		q.items = nil
		q.mu.Unlock()
		n.pass(batch)
	}
}

// pass applies pause and delay to queued events and sends them, in order.
// The delay is read again before each event: a batch taken while it was set
// can be thousands of events long (a paused or slowed partition queues
// everything committed meanwhile), and once the delay is lifted, or the
// server stops, the rest goes at once instead of draining one delay at a
// time (at 15 ms an event, a 60 s fault run left a backlog that held
// Server.Close for minutes).
func (n *notifier) pass(batch []pendingEvent) {
	n.mu.Lock()
	for n.paused && !n.stopped {
		n.cond.Wait()
	}
	n.mu.Unlock()
	for len(batch) > 0 {
		delay := n.currentDelay()
		if delay == 0 {
			break
		}
		time.Sleep(delay)
		send(batch[0])
		batch = batch[1:]
	}
	// Consecutive events of one subscription share one queue hand-off.
	for i := 0; i < len(batch); {
		j := i + 1
		for j < len(batch) && batch[j].sub == batch[i].sub {
			j++
		}
		sendAll(batch[i:j])
		i = j
	}
}

// takeHeld returns the held events, newest first. Called with n.mu held.
func (n *notifier) takeHeld() []pendingEvent {
	out := make([]pendingEvent, 0, len(n.held))
	for i := len(n.held) - 1; i >= 0; i-- {
		out = append(out, n.held[i])
	}
	n.held = nil
	return out
}

func send(ev pendingEvent) { sendAll([]pendingEvent{ev}) }

// sendAll sends events of one subscription, a notification each (a
// continuous query with page size 1, as the Ignite engine opens them).
func sendAll(evs []pendingEvent) {
	sub := evs[0].sub
	if sub.closed.Load() {
		return
	}
	frames := make([][]byte, 0, len(evs))
	for _, ev := range evs {
		payload, err := wire.EncodeEvents([]wire.Event{ev.event})
		if err != nil {
			continue
		}
		resp := wire.Response{ReqID: sub.id, NotificationOp: wire.OpQueryContinuousEvent, Payload: payload}
		frames = append(frames, wire.EncodeResponse(&resp, true))
	}
	sub.conn.enqueueFrames(frames)
}

func (n *notifier) setPaused(p bool) {
	n.mu.Lock()
	n.paused = p
	n.mu.Unlock()
	n.cond.Broadcast()
}

// currentDelay is the delay to apply before the next event: none once the
// notifier is stopping.
func (n *notifier) currentDelay() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return 0
	}
	return n.delay
}

func (n *notifier) setDelay(d time.Duration) {
	n.mu.Lock()
	n.delay = d
	n.mu.Unlock()
}

func (n *notifier) setReorder(count int) {
	n.mu.Lock()
	n.reorder = count
	var flush []pendingEvent
	if count <= 0 {
		n.reorder = 0
		flush = n.takeHeld()
	}
	n.mu.Unlock()
	n.push(n.parts[0], flush...)
}

// stop flushes what is held and ends the partition goroutines once their
// queues are empty.
func (n *notifier) stop() {
	n.mu.Lock()
	n.stopped = true
	flush := n.takeHeld()
	n.mu.Unlock()
	n.cond.Broadcast()
	n.push(n.parts[0], flush...)
	for _, q := range n.parts {
		q.mu.Lock()
		q.stop = true
		q.mu.Unlock()
		q.cond.Broadcast()
	}
	n.wg.Wait()
}
