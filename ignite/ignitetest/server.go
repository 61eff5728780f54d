package ignitetest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
	"github.com/ignetcd/ignetcd/ignite/wire"
)

// Options configure a Server. The zero value is a one-node cluster without
// authentication.
type Options struct {
	// Nodes is the number of listeners ("server nodes") sharing the data
	// (default 1).
	Nodes int
	// Partitions is the number of notification partitions, each with its own
	// delivery goroutine (default 8). Keys are hashed to them as Ignite hashes
	// keys to partitions.
	Partitions int
	// Username and Password, when Username is set, are required in every
	// handshake (status 2000 otherwise).
	Username, Password string
	// TLS, when set, makes every node serve TLS.
	TLS *tls.Config
	// Features is the server's feature set; the handshake answers the
	// intersection with the client's. Default: what a 2.19 server answers,
	// bits 0-24 without 18.
	Features wire.Features
	// IdleTimeout is reported by GET_IDLE_TIMEOUT and closes connections idle
	// for longer (default 0: never).
	IdleTimeout time.Duration
	// HandshakeTimeout closes connections that do not complete a handshake
	// in time (default 10s).
	HandshakeTimeout time.Duration
	// MaxTxPerConn and MaxCursorsPerConn are the per-connection limits
	// (defaults 100 and 128, the server's).
	MaxTxPerConn, MaxCursorsPerConn int
	// Logf, when set, receives server events.
	Logf func(format string, args ...any)
}

func (o Options) withDefaults() Options {
	if o.Nodes <= 0 {
		o.Nodes = 1
	}
	if o.Partitions <= 0 {
		o.Partitions = 8
	}
	if o.Features == nil {
		var bits []wire.Feature
		for b := wire.Feature(0); b <= wire.FeatureCacheAffinityCfg; b++ {
			if b != wire.FeatureTxAwareQueries {
				bits = append(bits, b)
			}
		}
		o.Features = wire.NewFeatures(bits...)
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.MaxTxPerConn <= 0 {
		o.MaxTxPerConn = 100
	}
	if o.MaxCursorsPerConn <= 0 {
		o.MaxCursorsPerConn = 128
	}
	return o
}

// node is one listener.
type node struct {
	index  int
	addr   string
	nodeID ib.UUID
	ln     net.Listener // nil while stopped
}

// Server is a running test double. Its methods are safe for concurrent use.
type Server struct {
	opts  Options
	store *store
	notif *notifier

	// heldReads blocks reads outside transactions of one cache (by cache
	// id) until closed (HoldReads).
	heldMu    sync.Mutex
	heldCache int32
	heldReads chan struct{}

	mu         sync.Mutex
	nodes      []*node
	conns      map[int64]*srvConn
	nextConnID int64
	closed     bool
	wg         sync.WaitGroup // accept loops and connections
}

// Start starts a server whose nodes listen on free ports of 127.0.0.1.
func Start(opts Options) (*Server, error) {
	opts = opts.withDefaults()
	s := &Server{opts: opts, store: newStore(), conns: map[int64]*srvConn{}}
	s.notif = newNotifier(opts.Partitions, opts.Logf)
	s.store.notify = s.notif.enqueue
	for i := 0; i < opts.Nodes; i++ {
		n := &node{index: i, nodeID: ib.UUID{0x5e, 0x8f, 0x7c, 0x1a, 0x2b, 0x3d, 0x4e, 0x5f, 0x8a, 0x9b, 0, 0, 0, 0, 0, byte(i + 1)}}
		s.nodes = append(s.nodes, n)
		if err := s.listen(n, "127.0.0.1:0"); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

func (s *Server) listen(n *node, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if s.opts.TLS != nil {
		ln = tls.NewListener(ln, s.opts.TLS)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return errClosed
	}
	n.ln = ln
	n.addr = ln.Addr().String()
	s.wg.Add(1)
	s.mu.Unlock()
	go s.accept(n, ln)
	return nil
}

func (s *Server) accept(n *node, ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed || n.ln != ln {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.nextConnID++
		c := newSrvConn(s, n, s.nextConnID, nc)
		s.conns[c.id] = c
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c.id)
			s.mu.Unlock()
		}()
	}
}

// Addr returns the address of node 0.
func (s *Server) Addr() string { return s.Addrs()[0] }

// Addrs returns the address of every node (also of stopped ones: a node
// restarts on the same address).
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		out[i] = n.addr
	}
	return out
}

// Close stops every node, closes every connection (rolling back their
// transactions) and waits for all goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for _, n := range s.nodes {
		if n.ln != nil {
			n.ln.Close()
			n.ln = nil
		}
	}
	conns := s.connList()
	s.mu.Unlock()
	close(s.store.closed)
	s.ReleaseReads()
	for _, c := range conns {
		c.close()
	}
	s.wg.Wait()
	s.notif.stop()
}

func (s *Server) connList() []*srvConn {
	out := make([]*srvConn, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// StopNode closes node i's listener and every connection to it; the data
// stays. Connections to other nodes are unaffected.
func (s *Server) StopNode(i int) {
	s.mu.Lock()
	n := s.nodes[i]
	if n.ln != nil {
		n.ln.Close()
		n.ln = nil
	}
	var victims []*srvConn
	for _, c := range s.conns {
		if c.node == n {
			victims = append(victims, c)
		}
	}
	s.mu.Unlock()
	for _, c := range victims {
		c.close()
	}
}

// StartNode restarts a stopped node on its previous address.
func (s *Server) StartNode(i int) error {
	s.mu.Lock()
	n := s.nodes[i]
	running := n.ln != nil
	s.mu.Unlock()
	if running {
		return nil
	}
	var err error
	// The port was just released; retry briefly in case it lingers.
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.listen(n, n.addr); err == nil || errors.Is(err, errClosed) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("ignitetest: restart node %d on %s: %w", i, n.addr, err)
}

// Restart stops and restarts every node, keeping the data: all connections
// break (their transactions roll back, their continuous queries end).
func (s *Server) Restart() error {
	for i := range s.nodes {
		s.StopNode(i)
	}
	s.mu.Lock()
	s.store.mu.Lock()
	s.store.topology.Major++
	s.store.topology.Minor = 0
	s.store.mu.Unlock()
	s.mu.Unlock()
	for i := range s.nodes {
		if err := s.StartNode(i); err != nil {
			return err
		}
	}
	return nil
}

// ConnInfo describes a client connection.
type ConnInfo struct {
	ID     int64
	Node   int
	Remote string
	// Handshaken is set once the handshake succeeded.
	Handshaken bool
	// Txs is the number of open transactions.
	Txs int
}

// Conns lists the open connections, oldest first.
func (s *Server) Conns() []ConnInfo {
	s.mu.Lock()
	conns := s.connList()
	s.mu.Unlock()
	out := make([]ConnInfo, 0, len(conns))
	for _, c := range conns {
		c.mu.Lock()
		out = append(out, ConnInfo{ID: c.id, Node: c.node.index, Remote: c.nc.RemoteAddr().String(),
			Handshaken: c.handshaken, Txs: len(c.txs)})
		c.mu.Unlock()
	}
	return out
}

// DropConnection closes one connection abruptly, as a network failure
// would; it reports whether the connection existed.
func (s *Server) DropConnection(id int64) bool {
	s.mu.Lock()
	c := s.conns[id]
	s.mu.Unlock()
	if c == nil {
		return false
	}
	c.close()
	return true
}

// DropConnections closes every connection; listeners stay up.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := s.connList()
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// FailNextCommit makes the next explicit commit fail with status 1 and msg;
// the transaction is rolled back.
func (s *Server) FailNextCommit(msg string) {
	s.store.mu.Lock()
	s.store.failCommit = &msg
	s.store.mu.Unlock()
}

// DropConnectionOnNextCommit makes the server close the connection that
// sends the next commit, without replying; with apply the commit takes
// effect first, otherwise the transaction rolls back (with the connection).
func (s *Server) DropConnectionOnNextCommit(apply bool) {
	s.store.mu.Lock()
	s.store.dropCommit = &apply
	s.store.mu.Unlock()
}

// HoldReads makes GET and GET_ALL outside transactions on cache wait until
// ReleaseReads: a client that learns of a change but cannot read it yet,
// as when a commit has not reached every partition or a node is slow.
func (s *Server) HoldReads(cache string) {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if s.heldReads == nil {
		s.heldReads = make(chan struct{})
	}
	s.heldCache = ib.CacheID(cache)
}

// ReleaseReads lets reads held by HoldReads go on.
func (s *Server) ReleaseReads() {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if s.heldReads != nil {
		close(s.heldReads)
		s.heldReads = nil
	}
}

// waitHeldReads blocks a read outside a transaction of cache id while
// HoldReads holds it.
func (s *Server) waitHeldReads(id int32, flags int8) {
	if flags&wire.CacheFlagTransactional != 0 {
		return
	}
	s.heldMu.Lock()
	ch := s.heldReads
	held := ch != nil && s.heldCache == id
	s.heldMu.Unlock()
	if held {
		<-ch
	}
}

// PauseNotifications holds continuous-query notifications back until
// ResumeNotifications; commits proceed meanwhile.
func (s *Server) PauseNotifications() { s.notif.setPaused(true) }

// ResumeNotifications releases held notifications.
func (s *Server) ResumeNotifications() { s.notif.setPaused(false) }

// SetNotificationDelay makes each partition send its notifications one at a
// time, d apart (0 to stop): a notification path slower than the commits,
// whose backlog grows while the delay lasts. Lifting it (or Close) sends the
// backlog at once.
func (s *Server) SetNotificationDelay(d time.Duration) { s.notif.setDelay(d) }

// ReorderNotifications collects the next n events
// (in commit order, across partitions) and then sends them in reverse order,
// so later events overtake earlier ones, even events of the same key (which
// a real server never does). ReorderNotifications(0) flushes what was
// collected; so does Close.
func (s *Server) ReorderNotifications(n int) { s.notif.setReorder(n) }

// Topology returns the current affinity topology version.
func (s *Server) Topology() wire.TopologyVersion {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	return s.store.topology
}

// CacheNames lists the caches, sorted.
func (s *Server) CacheNames() []string {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	var out []string
	for _, c := range s.store.caches {
		out = append(out, c.name)
	}
	sort.Strings(out)
	return out
}

// Get returns the committed value of key (a Go value, see ignite/binary) in
// the named cache.
func (s *Server) Get(cacheName string, key any) (any, bool, error) {
	raw, err := ib.Encode(key)
	if err != nil {
		return nil, false, err
	}
	s.store.mu.Lock()
	c := s.store.caches[ib.CacheID(cacheName)]
	var e *entry
	if c != nil {
		e = c.entries[string(raw)]
	}
	s.store.mu.Unlock()
	if c == nil {
		return nil, false, cacheMissing(ib.CacheID(cacheName))
	}
	if e == nil {
		return nil, false, nil
	}
	v, err := ib.Decode(e.val)
	return v, true, err
}

// Len returns the number of committed entries of the named cache.
func (s *Server) Len(cacheName string) int {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if c := s.store.caches[ib.CacheID(cacheName)]; c != nil {
		return len(c.entries)
	}
	return 0
}

// Locks returns the number of entry locks currently held.
func (s *Server) Locks() int {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	return len(s.store.locks)
}

// OpenTxs returns the number of explicit transactions open on all
// connections.
func (s *Server) OpenTxs() int {
	n := 0
	for _, c := range s.Conns() {
		n += c.Txs
	}
	return n
}
