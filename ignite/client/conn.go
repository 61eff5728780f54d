package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
	"github.com/ignetcd/ignetcd/ignite/wire"
)

// result is what a waiter receives: a response or the error that ended the
// connection.
type result struct {
	resp wire.Response
	err  error
}

// waiter is one request in flight. ch has room for its one result, so the
// reader never blocks on it. hook, if set, runs on the reader goroutine when
// the response arrives, before the next frame is read (continuous queries
// register their listener there).
type waiter struct {
	op   wire.Op
	ch   chan result
	hook func(wire.Response)
}

// notificationSink receives the notifications of one resource (a
// continuous query); both methods are called on the reader goroutine and
// must not block.
type notificationSink interface {
	notify(resp wire.Response)
	lost(err error)
}

// conn is one handshaken connection. It never reconnects: when it breaks,
// everything bound to it fails and the Client makes a new conn.
type conn struct {
	cfg      *Config
	endpoint string
	nc       net.Conn
	proto    wire.Proto
	nodeID   ib.UUID

	writeMu  sync.Mutex
	frameBuf []byte // guarded by writeMu

	mu        sync.Mutex
	nextReqID int64
	pending   map[int64]*waiter
	sinks     map[int64]notificationSink
	closeErr  error // set once, when the connection ends
	topology  wire.TopologyVersion

	done chan struct{} // closed when the connection ends
	wg   sync.WaitGroup
}

// dial connects to endpoint and performs the handshake, falling back to the
// version the server offers when it rejects the proposed one.
func dial(ctx context.Context, cfg *Config, endpoint string) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", endpoint)
	if err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		tc := cfg.TLS.Clone()
		if tc.ServerName == "" {
			if host, _, err := net.SplitHostPort(endpoint); err == nil {
				tc.ServerName = host
			}
		}
		tlsConn := tls.Client(nc, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls: %w", err)
		}
		nc = tlsConn
	}
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	// Closing the socket is the only way to interrupt a blocked read when
	// the caller gives up.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	br := bufio.NewReaderSize(nc, 64<<10)
	proto, nodeID, err := handshake(nc, br, cfg, endpoint)
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, err
	}
	if !stop() {
		nc.Close()
		return nil, ctx.Err()
	}
	nc.SetDeadline(time.Time{})
	c := &conn{
		cfg: cfg, endpoint: endpoint, nc: nc, proto: proto, nodeID: nodeID,
		pending: map[int64]*waiter{}, sinks: map[int64]notificationSink{},
		done: make(chan struct{}),
	}
	c.wg.Add(1)
	go c.readLoop(br)
	if proto.Has(wire.FeatureHeartbeat) {
		c.wg.Add(1)
		go c.heartbeatLoop()
	}
	cfg.logf("ignite: connected to %s, protocol %s, features %v, node %s", endpoint, proto.Version, proto.Features, nodeID)
	return c, nil
}

func handshake(nc net.Conn, br *bufio.Reader, cfg *Config, endpoint string) (wire.Proto, ib.UUID, error) {
	tried := map[wire.Version]bool{}
	version := cfg.Versions[0]
	for {
		tried[version] = true
		hs := wire.Handshake{Version: version, ClientType: wire.ClientTypeThin}
		if version.AtLeast(wire.V1_7_0) {
			hs.Features = cfg.Features
		}
		if cfg.Username != "" {
			user, pass := cfg.Username, cfg.Password
			hs.Username, hs.Password = &user, &pass
		}
		frame, err := hs.Encode()
		if err != nil {
			return wire.Proto{}, ib.UUID{}, err
		}
		if _, err := nc.Write(frame); err != nil {
			return wire.Proto{}, ib.UUID{}, err
		}
		body, err := wire.ReadFrame(br, cfg.MaxFrameSize)
		if err != nil {
			return wire.Proto{}, ib.UUID{}, fmt.Errorf("reading handshake reply: %w", err)
		}
		reply, err := wire.DecodeHandshakeReply(body, version)
		if err != nil {
			return wire.Proto{}, ib.UUID{}, fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		if reply.Success {
			return wire.Proto{Version: version, Features: reply.Features}, reply.NodeID, nil
		}
		herr := &HandshakeError{Endpoint: endpoint, Proposed: version, ServerVersion: reply.ServerVersion,
			Status: reply.Status, Message: reply.Message}
		// The socket stays open after a rejection; the next message is a
		// fresh handshake attempt.
		if reply.Status == wire.StatusAuthFailed || reply.ServerVersion == version || tried[reply.ServerVersion] ||
			!supports(cfg.Versions, reply.ServerVersion) {
			return wire.Proto{}, ib.UUID{}, herr
		}
		cfg.logf("ignite: %s rejected protocol %s (%s), retrying with %s", endpoint, version, reply.Message, reply.ServerVersion)
		version = reply.ServerVersion
	}
}

func supports(versions []wire.Version, v wire.Version) bool {
	for _, s := range versions {
		if s == v {
			return true
		}
	}
	return false
}

// err returns the error that ended the connection, or nil while it is up.
func (c *conn) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// fail ends the connection with cause: every waiter and every notification
// sink learns it at once. Only the first call counts.
func (c *conn) fail(cause error) {
	c.mu.Lock()
	if c.closeErr != nil {
		c.mu.Unlock()
		return
	}
	err := cause
	if !errors.Is(cause, ErrClosed) {
		err = lostError(c.endpoint, cause)
	}
	c.closeErr = err
	pending, sinks := c.pending, c.sinks
	c.pending, c.sinks = map[int64]*waiter{}, map[int64]notificationSink{}
	close(c.done)
	c.mu.Unlock()

	c.nc.Close()
	for _, w := range pending {
		w.ch <- result{err: err}
	}
	for _, s := range sinks {
		s.lost(err)
	}
	c.cfg.logf("ignite: connection to %s ended: %v", c.endpoint, cause)
}

// close ends the connection and waits for its goroutines.
func (c *conn) close(cause error) {
	c.fail(cause)
	c.wg.Wait()
}

func (c *conn) readLoop(br *bufio.Reader) {
	defer c.wg.Done()
	hasFlags := c.proto.HasFlags()
	for {
		body, err := wire.ReadFrame(br, c.cfg.MaxFrameSize)
		if err != nil {
			c.fail(err)
			return
		}
		resp, err := wire.DecodeResponse(body, hasFlags)
		if err != nil {
			c.fail(fmt.Errorf("%w: %w", ErrProtocol, err))
			return
		}
		if resp.IsNotification() {
			c.mu.Lock()
			sink := c.sinks[resp.ReqID]
			c.mu.Unlock()
			// No sink: a late event for a query already closed. Drop it.
			if sink != nil {
				sink.notify(resp)
			}
			continue
		}
		c.mu.Lock()
		if resp.Topology != nil {
			c.topology = *resp.Topology
		}
		w := c.pending[resp.ReqID]
		delete(c.pending, resp.ReqID)
		c.mu.Unlock()
		if w == nil {
			// Every request stays registered until answered, so this is the
			// server answering something never asked.
			c.fail(fmt.Errorf("%w: response to unknown request id %d", ErrProtocol, resp.ReqID))
			return
		}
		if w.hook != nil {
			w.hook(resp)
		}
		w.ch <- result{resp: resp}
	}
}

// heartbeatLoop keeps the connection alive when the server has an idle
// timeout (only servers that negotiated FeatureHeartbeat, 2.13+).
func (c *conn) heartbeatLoop() {
	defer c.wg.Done()
	// Requests on this connection always get a result, at the latest when
	// it ends, so a background context cannot hang here.
	ctx := context.Background()
	var idleMs int64
	err := c.call(ctx, &wire.EmptyRequest{Code: wire.OpGetIdleTimeout}, nil, func(p []byte) (err error) {
		idleMs, err = wire.DecodeI64(p)
		return err
	})
	if err != nil || idleMs <= 0 {
		return
	}
	interval := time.Duration(idleMs) * time.Millisecond / 3
	if interval < 10*time.Millisecond {
		interval = 10 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if err := c.call(ctx, &wire.EmptyRequest{Code: wire.OpHeartbeat}, nil, nil); err != nil {
				return
			}
		}
	}
}

// maxKeptFrameBuf bounds the frame buffer a connection keeps between
// requests; a larger frame's buffer is left to the garbage collector.
const maxKeptFrameBuf = 4 << 20

// send writes req and returns the channel its result will arrive on.
func (c *conn) send(req wire.Request, hook func(wire.Response)) (chan result, error) {
	c.mu.Lock()
	if c.closeErr != nil {
		err := c.closeErr
		c.mu.Unlock()
		return nil, err
	}
	c.nextReqID++
	id := c.nextReqID
	w := &waiter{op: req.Op(), ch: make(chan result, 1), hook: hook}
	c.pending[id] = w
	c.mu.Unlock()

	// The frame is encoded into the connection's buffer, reused for every
	// request (a new buffer per PutAll was a third of the node's
	// allocations under a write load).
	c.writeMu.Lock()
	frame, err := wire.AppendRequest(c.frameBuf, id, req, c.proto)
	if err != nil {
		c.writeMu.Unlock()
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, err
	}
	if cap(frame) <= maxKeptFrameBuf {
		c.frameBuf = frame
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	_, err = c.nc.Write(frame)
	c.writeMu.Unlock()
	if err != nil {
		// A partial frame would desynchronise the stream: the connection is
		// done for. fail() delivers the error to this waiter too.
		c.fail(fmt.Errorf("write: %w", err))
	}
	return w.ch, nil
}

// call sends req and waits for its response; decode (optional) parses the
// payload. If ctx ends first the request stays registered until its
// response arrives, so the reader still recognises it.
func (c *conn) call(ctx context.Context, req wire.Request, hook func(wire.Response), decode func([]byte) error) error {
	ch, err := c.send(req, hook)
	if err != nil {
		return err
	}
	select {
	case r := <-ch:
		return finish(req.Op(), r, decode)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// finish turns a result into an error or a decoded payload.
func finish(op wire.Op, r result, decode func([]byte) error) error {
	if r.err != nil {
		return r.err
	}
	if r.resp.IsError() {
		return &StatusError{Op: op, Status: r.resp.Status, Message: r.resp.Message}
	}
	if decode == nil {
		decode = wire.DecodeEmpty
	}
	if err := decode(r.resp.Payload); err != nil {
		return fmt.Errorf("%w: %s response: %w", ErrProtocol, op, err)
	}
	return nil
}

// addSink registers a notification sink for a resource id; called from a
// response hook, so the sink is in place before the next frame is read. It
// reports false if the connection has already ended.
func (c *conn) addSink(id int64, s notificationSink) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeErr != nil {
		return false
	}
	c.sinks[id] = s
	return true
}

func (c *conn) removeSink(id int64) {
	c.mu.Lock()
	delete(c.sinks, id)
	c.mu.Unlock()
}
