package ignitetest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/ignetcd/ignetcd/ignite/wire"
)

// srvConn is one client connection.
type srvConn struct {
	srv  *Server
	node *node
	id   int64
	nc   net.Conn

	proto wire.Proto // set by the handshake, then read-only

	outMu     sync.Mutex
	outCond   *sync.Cond
	out       [][]byte
	outClosed bool

	mu         sync.Mutex
	handshaken bool
	txs        map[int32]*tx
	nextTxID   int32
	resources  map[int64]any // *cursor or *subscription
	nextResID  int64
	reported   bool // a response carried the topology version
	lastTop    wire.TopologyVersion
	closed     bool

	closeOnce sync.Once
	wg        sync.WaitGroup // writer and request handlers
}

func newSrvConn(s *Server, n *node, id int64, nc net.Conn) *srvConn {
	c := &srvConn{srv: s, node: n, id: id, nc: nc, txs: map[int32]*tx{}, resources: map[int64]any{}}
	c.outCond = sync.NewCond(&c.outMu)
	return c
}

// serve runs the connection until it ends.
func (c *srvConn) serve() {
	c.wg.Add(1)
	go c.writeLoop()
	defer func() {
		c.close()
		c.wg.Wait()
	}()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	if !c.handshake(br) {
		return
	}
	for {
		if d := c.srv.opts.IdleTimeout; d > 0 {
			c.nc.SetReadDeadline(time.Now().Add(d))
		}
		body, err := wire.ReadFrame(br, wire.DefaultMaxFrame)
		if err != nil {
			return
		}
		hdr, payload, err := wire.DecodeRequestHeader(body)
		if err != nil {
			c.srv.logf("ignitetest: conn %d: %v; closing", c.id, err)
			return
		}
		req, err := wire.DecodeRequest(hdr.Op, payload, c.proto)
		if errors.Is(err, wire.ErrUnknownOp) {
			c.respond(hdr.ReqID, nil, &statusError{status: wire.StatusInvalidOpCode,
				msg: fmt.Sprintf("Invalid request op code: %d", int16(hdr.Op))})
			continue
		}
		if err != nil {
			// A real server drops the connection, without a reply, on a
			// request it cannot parse.
			c.srv.logf("ignitetest: conn %d: %v; closing", c.id, err)
			return
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.handle(hdr.ReqID, req)
		}()
	}
}

// handshake runs handshake attempts until one succeeds; false means the
// connection must close.
func (c *srvConn) handshake(br *bufio.Reader) bool {
	opts := &c.srv.opts
	deadline := time.Now().Add(opts.HandshakeTimeout)
	c.nc.SetReadDeadline(deadline)
	defer c.nc.SetReadDeadline(time.Time{})
	for {
		body, err := wire.ReadFrame(br, wire.DefaultMaxFrame)
		if err != nil {
			return false
		}
		hs, err := wire.DecodeHandshake(body)
		if err != nil {
			var he *wire.HandshakeError
			if errors.As(err, &he) && he.Fault == wire.HandshakeMalformed {
				// No reply; the server closes when its handshake timeout
				// expires.
				c.srv.logf("ignitetest: conn %d: malformed handshake: %v", c.id, err)
				c.idleUntil(br, deadline)
			}
			return false
		}
		reply := wire.HandshakeReply{Status: wire.StatusFailed}
		switch {
		case hs.ClientType != wire.ClientTypeThin:
			reply.Message = fmt.Sprintf("Unsupported client type: %d", hs.ClientType)
		case !wire.IsServerVersion(hs.Version):
			reply.ServerVersion = wire.V1_7_0
			reply.Message = "Unsupported version: " + hs.Version.String()
		case opts.Username != "" && (hs.Username == nil || hs.Password == nil ||
			*hs.Username != opts.Username || *hs.Password != opts.Password):
			reply.Status = wire.StatusAuthFailed
			user := ""
			if hs.Username != nil {
				user = *hs.Username
			}
			reply.Message = fmt.Sprintf("The user name or password is incorrect [userName=%s]", user)
		default:
			reply = wire.HandshakeReply{Success: true, NodeID: c.node.nodeID}
			if hs.Version.AtLeast(wire.V1_7_0) {
				reply.Features = hs.Features.Intersect(opts.Features)
			}
			c.proto = wire.Proto{Version: hs.Version, Features: reply.Features}
			c.mu.Lock()
			c.handshaken = true
			c.mu.Unlock()
			c.enqueue(reply.Encode(hs.Version))
			return true
		}
		// The socket stays open: the next message is a new attempt.
		c.enqueue(reply.Encode(hs.Version))
	}
}

// idleUntil discards input until the deadline (or the peer closes).
func (c *srvConn) idleUntil(br *bufio.Reader, deadline time.Time) {
	c.nc.SetReadDeadline(deadline)
	buf := make([]byte, 4096)
	for {
		if _, err := br.Read(buf); err != nil {
			return
		}
	}
}

func (c *srvConn) writeLoop() {
	defer c.wg.Done()
	for {
		c.outMu.Lock()
		for len(c.out) == 0 && !c.outClosed {
			c.outCond.Wait()
		}
		if len(c.out) == 0 {
			c.outMu.Unlock()
			return
		}
		batch := c.out
		c.out = nil
		c.outMu.Unlock()
		// One writev for everything queued, as a server's NIO layer
		// gathers what is ready: a syscall per notification frame was a
		// quarter of the double's CPU under a write load.
		bufs := net.Buffers(batch)
		if _, err := bufs.WriteTo(c.nc); err != nil {
			c.close()
			return
		}
	}
}

// enqueueFrames queues frames for the writer with one wake-up.
func (c *srvConn) enqueueFrames(frames [][]byte) {
	c.outMu.Lock()
	if !c.outClosed {
		c.out = append(c.out, frames...)
	}
	c.outMu.Unlock()
	c.outCond.Signal()
}

// enqueue queues a frame for the writer (unbounded, like the server's
// outbound queue); frames of a closed connection are dropped.
func (c *srvConn) enqueue(frame []byte) { c.enqueueThen(frame, nil) }

// enqueueThen queues frame and runs then (if set) before the writer can
// take the frame: whatever then enables happens before the peer can see the
// frame.
func (c *srvConn) enqueueThen(frame []byte, then func()) {
	c.outMu.Lock()
	if !c.outClosed {
		c.out = append(c.out, frame)
	}
	if then != nil {
		then()
	}
	c.outMu.Unlock()
	c.outCond.Signal()
}

// respond sends the response to request reqID: payload, or err as a status.
// The first response of the connection, and every response after the
// topology changed, carries the topology version.
func (c *srvConn) respond(reqID int64, payload []byte, err error) {
	c.respondThen(reqID, payload, err, nil)
}

// respondThen responds and runs then (if set) before the response can
// reach the client.
func (c *srvConn) respondThen(reqID int64, payload []byte, err error, then func()) {
	c.srv.store.mu.Lock()
	top := c.srv.store.topology
	c.srv.store.mu.Unlock()
	resp := wire.Response{ReqID: reqID, Payload: payload}
	if err != nil {
		resp.Payload = nil
		resp.Status = wire.StatusFailed
		resp.Message = err.Error()
		var se *statusError
		if errors.As(err, &se) {
			resp.Status = se.status
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.reported || top != c.lastTop {
		c.reported = true
		c.lastTop = top
		resp.Topology = &top
	}
	c.enqueueThen(wire.EncodeResponse(&resp, c.proto.HasFlags()), then)
}

// close ends the connection: the socket closes, its continuous queries and
// cursors go, and its open transactions roll back.
func (c *srvConn) close() {
	c.closeOnce.Do(func() {
		c.nc.Close()
		c.outMu.Lock()
		c.outClosed = true
		c.out = nil
		c.outMu.Unlock()
		c.outCond.Broadcast()

		c.mu.Lock()
		c.closed = true
		txs := c.txs
		res := c.resources
		c.txs = map[int32]*tx{}
		c.resources = map[int64]any{}
		c.mu.Unlock()

		st := c.srv.store
		for _, r := range res {
			if sub, ok := r.(*subscription); ok {
				st.unsubscribe(sub)
			}
		}
		for _, t := range txs {
			st.abortTx(t, failed("Transaction rolled back: client connection closed"))
		}
	})
}
