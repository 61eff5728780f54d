package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ignetcd/ignetcd/ignite/wire"
)

// Event is one continuous-query event. Decide what happened by Type
// (wire.EventCreated, EventUpdated, EventRemoved, EventExpired): 2.11 servers
// repeat the old value as New on removals, 2.19 sends nil.
type Event = wire.Event

// ContinuousQueryOptions configure Cache.Listen.
type ContinuousQueryOptions struct {
	// PageSize is how many events a server node buffers before sending
	// (default 1: every event at once).
	PageSize int32
	// TimeInterval flushes a partially filled buffer after this long (0:
	// never, so keep PageSize 1 then).
	TimeInterval time.Duration
	// IncludeExpired also delivers EXPIRED events.
	IncludeExpired bool
}

// ContinuousQuery is a running continuous query. Events are delivered on a
// goroutine of its own, in the order the server sent them, so a slow
// callback delays only this query (events queue up in memory meanwhile).
type ContinuousQuery struct {
	client   *Client
	conn     *conn
	id       int64
	onEvents func([]Event)
	onLost   func(error)

	mu      sync.Mutex
	queue   []wire.Response
	lostErr error
	stopped bool
	wake    chan struct{}
}

// Listen starts a continuous query on the cache. onEvents receives each
// notification's events; it runs on the query's own goroutine. Only changes
// made after Listen returns are guaranteed to be delivered (the server drops
// events from before it sent its answer). If the query breaks (connection
// lost, undecodable event), onLost is called once, after every event
// received before, and nothing follows; the caller resubscribes and re-reads
// to fill the gap. onLost is not called after Close or Cancel, nor when the
// Client is closed.
func (cc Cache) Listen(ctx context.Context, opts ContinuousQueryOptions, onEvents func([]Event), onLost func(error)) (*ContinuousQuery, error) {
	if onEvents == nil {
		return nil, errors.New("ignite: Listen needs an event callback")
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 1
	}
	if opts.TimeInterval < 0 {
		return nil, fmt.Errorf("ignite: negative continuous query interval %v", opts.TimeInterval)
	}
	cn, err := cc.client.conn(ctx)
	if err != nil {
		return nil, err
	}
	q := &ContinuousQuery{client: cc.client, conn: cn, onEvents: onEvents, onLost: onLost, wake: make(chan struct{}, 1)}
	req := &wire.ContinuousQueryRequest{
		CacheHeader:    cc.header(),
		PageSize:       opts.PageSize,
		TimeIntervalMs: opts.TimeInterval.Milliseconds(),
		IncludeExpired: opts.IncludeExpired,
	}
	// The first notification may follow the response immediately: register
	// while the reader is still on the response, before it reads on.
	hook := func(resp wire.Response) {
		if resp.IsError() {
			return
		}
		id, err := wire.DecodeI64(resp.Payload)
		if err != nil {
			return
		}
		q.id = id
		if !cn.addSink(id, q) {
			q.lost(cn.err())
		}
	}
	ch, err := cn.send(req, hook)
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if err := finish(wire.OpQueryContinuous, r, func(p []byte) error { _, err := wire.DecodeI64(p); return err }); err != nil {
			return nil, err
		}
	case <-ctx.Done():
		cc.client.background(func() {
			if r := <-ch; finish(wire.OpQueryContinuous, r, func(p []byte) error { _, err := wire.DecodeI64(p); return err }) == nil {
				q.Close(context.Background())
			}
		})
		return nil, ctx.Err()
	}
	cc.client.wg.Add(1)
	go q.deliver()
	return q, nil
}

// ID returns the server's resource id of the query.
func (q *ContinuousQuery) ID() int64 { return q.id }

// notify queues a notification; called on the connection's reader.
func (q *ContinuousQuery) notify(resp wire.Response) {
	q.mu.Lock()
	if !q.stopped && q.lostErr == nil {
		q.queue = append(q.queue, resp)
	}
	q.mu.Unlock()
	q.signal()
}

// lost records that the query broke; called on the reader or by fail.
func (q *ContinuousQuery) lost(err error) {
	q.mu.Lock()
	if q.lostErr == nil {
		q.lostErr = err
	}
	q.mu.Unlock()
	q.signal()
}

func (q *ContinuousQuery) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// deliver runs the callbacks until the query stops or breaks.
func (q *ContinuousQuery) deliver() {
	defer q.client.wg.Done()
	for {
		q.mu.Lock()
		for len(q.queue) == 0 && !q.stopped && q.lostErr == nil {
			q.mu.Unlock()
			<-q.wake
			q.mu.Lock()
		}
		if q.stopped {
			q.mu.Unlock()
			return
		}
		if len(q.queue) == 0 {
			err := q.lostErr
			q.stopped = true
			q.mu.Unlock()
			if q.onLost != nil && !errors.Is(err, ErrClosed) {
				q.onLost(err)
			}
			return
		}
		batch := q.queue
		q.queue = nil
		q.mu.Unlock()
		for _, resp := range batch {
			events, err := q.decode(resp)
			if err != nil {
				// Something was missed: the caller must resynchronise.
				q.mu.Lock()
				q.queue = nil
				q.mu.Unlock()
				q.lost(err)
				q.conn.removeSink(q.id)
				q.client.background(func() { q.closeRemote(context.Background()) })
				break
			}
			if q.isStopped() {
				return
			}
			q.onEvents(events)
		}
	}
}

func (q *ContinuousQuery) decode(resp wire.Response) ([]Event, error) {
	if resp.IsError() {
		return nil, &StatusError{Op: wire.OpQueryContinuousEvent, Status: resp.Status, Message: resp.Message}
	}
	if resp.NotificationOp != wire.OpQueryContinuousEvent {
		return nil, fmt.Errorf("%w: notification op %s on a continuous query", ErrProtocol, resp.NotificationOp)
	}
	events, err := wire.DecodeEvents(resp.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return events, nil
}

func (q *ContinuousQuery) isStopped() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stopped
}

// stop ends delivery; it reports whether the query was still running.
func (q *ContinuousQuery) stop() bool {
	q.mu.Lock()
	was := !q.stopped
	q.stopped = true
	q.queue = nil
	q.mu.Unlock()
	q.signal()
	q.conn.removeSink(q.id)
	return was
}

// Cancel stops delivery at once and closes the query on the server in the
// background. A callback already running finishes; no other starts.
func (q *ContinuousQuery) Cancel() {
	if q.stop() {
		q.client.background(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			q.closeRemote(ctx)
		})
	}
}

// Close stops delivery and closes the query on the server. A few events the
// server had already queued are dropped.
func (q *ContinuousQuery) Close(ctx context.Context) error {
	q.stop()
	return q.closeRemote(ctx)
}

func (q *ContinuousQuery) closeRemote(ctx context.Context) error {
	if q.conn.err() != nil {
		return nil // closed with the connection
	}
	err := q.conn.call(ctx, &wire.ResourceRequest{Code: wire.OpResourceClose, ResourceID: q.id}, nil, nil)
	if errors.Is(err, ErrConnectionLost) || errors.Is(err, ErrClosed) || IsStatus(err, wire.StatusResourceDoesNotExist) {
		return nil
	}
	return err
}
