package ignitetest

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
	"github.com/ignetcd/ignetcd/ignite/wire"
)

// cursor is an open scan cursor.
type cursor struct {
	entries  []wire.KV
	pageSize int
}

// handle runs one decoded request and responds.
func (c *srvConn) handle(reqID int64, req wire.Request) {
	payload, after, err := c.dispatch(req)
	if err != nil {
		after = nil
	}
	c.respondThen(reqID, payload, err, after)
}

func isNullRaw(v any) bool {
	raw, _ := v.(ib.Raw)
	return len(raw) == 1 && raw[0] == ib.TypeNull
}

func raw(v any) ib.Raw {
	r, _ := v.(ib.Raw)
	return r
}

func nullArg(name string) error { return failed("Ouch! Argument cannot be null: %s", name) }

func (c *srvConn) dispatch(req wire.Request) (payload []byte, after func(), err error) {
	st := c.srv.store
	switch q := req.(type) {
	case *wire.CacheKeyRequest:
		payload, err = c.keyOp(q)
	case *wire.CacheKeyValueRequest:
		payload, err = c.keyValueOp(q)
	case *wire.CacheReplaceIfEqualsRequest:
		if isNullRaw(q.Key) || isNullRaw(q.Expected) || isNullRaw(q.Value) {
			return nil, nil, nullArg("key")
		}
		payload, err = c.withTx(&q.CacheHeader, []ib.Raw{raw(q.Key)}, func(t *tx, ch *cache) ([]byte, error) {
			if err := st.lockForWrite(t, ch, raw(q.Key)); err != nil {
				return nil, err
			}
			cur := st.read(t, ch, raw(q.Key))
			ok := cur != nil && bytes.Equal(cur, raw(q.Expected))
			if ok {
				t.stage(ch, raw(q.Key), raw(q.Value))
			}
			return wire.EncodeBool(ok), nil
		})
	case *wire.CacheKeysRequest:
		payload, err = c.keysOp(q)
	case *wire.CachePutAllRequest:
		keys := make([]ib.Raw, len(q.Entries))
		for i, e := range q.Entries {
			if isNullRaw(e.Key) || isNullRaw(e.Value) {
				return nil, nil, nullArg("key or value")
			}
			keys[i] = raw(e.Key)
		}
		payload, err = c.withTx(&q.CacheHeader, keys, func(t *tx, ch *cache) ([]byte, error) {
			for _, e := range q.Entries {
				if err := st.lockForWrite(t, ch, raw(e.Key)); err != nil {
					return nil, err
				}
				t.stage(ch, raw(e.Key), raw(e.Value))
			}
			return nil, nil
		})
	case *wire.CacheRequest:
		// CLEAR and REMOVE_ALL read a tx id but never run in the tx.
		hdr := q.CacheHeader
		hdr.Flags &^= wire.CacheFlagTransactional
		ch, err := st.getCache(hdr.CacheID)
		if err != nil {
			return nil, nil, err
		}
		st.mu.Lock()
		keys := make([]ib.Raw, 0, len(ch.entries))
		for _, e := range ch.entries {
			keys = append(keys, e.key)
		}
		st.mu.Unlock()
		payload, err = c.withTx(&hdr, keys, func(t *tx, ch *cache) ([]byte, error) {
			for _, k := range keys {
				t.stage(ch, k, nil)
			}
			return nil, nil
		})
		return payload, nil, err
	case *wire.CacheSizeRequest:
		ch, err := st.getCache(q.CacheID)
		if err != nil {
			return nil, nil, err
		}
		st.mu.Lock()
		n := len(ch.entries)
		st.mu.Unlock()
		return wire.EncodeI64(int64(n)), nil, nil
	case *wire.CacheNameRequest:
		cfg := wire.CacheConfiguration{Properties: []wire.CacheProperty{{Code: wire.PropName, Value: q.Name}}}
		err = c.createCache(cfg, q.Code == wire.OpCacheCreateWithName)
	case *wire.CacheConfigRequest:
		err = c.createCache(q.Config, q.Code == wire.OpCacheCreateWithConfig)
	case *wire.CacheIDRequest:
		err = c.destroyCache(q.CacheID)
	case *wire.EmptyRequest:
		switch q.Code {
		case wire.OpCacheGetNames:
			payload = wire.EncodeStrings(c.srv.CacheNames())
		case wire.OpHeartbeat:
		case wire.OpGetIdleTimeout:
			payload = wire.EncodeI64(c.srv.opts.IdleTimeout.Milliseconds())
		case wire.OpBinaryConfigurationGet:
			cfg := wire.BinaryConfiguration{CompactFooter: true}
			payload = cfg.Encode()
		}
	case *wire.ResourceRequest:
		payload, err = c.resourceOp(q)
	case *wire.TxStartRequest:
		payload, err = c.txStart(q)
	case *wire.TxEndRequest:
		err = c.txEnd(q)
	case *wire.ScanRequest:
		payload, err = c.scan(q)
	case *wire.ContinuousQueryRequest:
		return c.listen(q)
	case *wire.NodeEndpointsRequest:
		payload = c.endpoints()
	case *wire.CachePartitionsRequest:
		payload = c.partitions(q)
	default:
		err = &statusError{status: wire.StatusInvalidOpCode, msg: fmt.Sprintf("Invalid request op code: %d", int16(req.Op()))}
	}
	return payload, nil, err
}

// withTx runs fn for a cache data request: inside the connection's
// transaction named by the header, or in an implicit single-op transaction
// when there is none — also when the header names an id this connection does
// not know, which a real server silently runs outside any transaction. keys
// are locked up front (sorted) for implicit transactions, so that concurrent
// multi-key ops cannot deadlock each other.
func (c *srvConn) withTx(hdr *wire.CacheHeader, keys []ib.Raw, fn func(t *tx, ch *cache) ([]byte, error)) ([]byte, error) {
	st := c.srv.store
	ch, err := st.getCache(hdr.CacheID)
	if err != nil {
		return nil, err
	}
	if hdr.InTx() {
		c.mu.Lock()
		t := c.txs[hdr.TxID]
		c.mu.Unlock()
		if t != nil {
			if ch.atomic {
				return nil, errAtomicInTx
			}
			t.opMu.Lock()
			defer t.opMu.Unlock()
			if err := st.usable(t); err != nil {
				return nil, err
			}
			return fn(t, ch)
		}
	}
	t := st.newTx(true, wire.TxReadCommitted, 0, "")
	t.implicit = true
	t.opMu.Lock()
	defer t.opMu.Unlock()
	sorted := make([]lockKey, len(keys))
	for i, k := range keys {
		sorted[i] = lockKeyFor(ch.id, k)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].key < sorted[j].key })
	if err := st.acquireAll(t, sorted); err != nil {
		st.rollback(t)
		return nil, err
	}
	out, err := fn(t, ch)
	if err != nil {
		st.rollback(t)
		return nil, err
	}
	if err := st.commit(t); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *srvConn) keyOp(q *wire.CacheKeyRequest) ([]byte, error) {
	st := c.srv.store
	key := raw(q.Key)
	if isNullRaw(key) {
		return nil, nullArg("key")
	}
	if q.Code == wire.OpCacheGet {
		c.srv.waitHeldReads(q.CacheID, q.Flags)
	}
	var lockKeys []ib.Raw
	if q.Code != wire.OpCacheGet && q.Code != wire.OpCacheContainsKey {
		lockKeys = []ib.Raw{key}
	}
	return c.withTx(&q.CacheHeader, lockKeys, func(t *tx, ch *cache) ([]byte, error) {
		switch q.Code {
		case wire.OpCacheGet, wire.OpCacheContainsKey:
			if err := st.lockForRead(t, ch, key); err != nil {
				return nil, err
			}
			v := st.read(t, ch, key)
			if q.Code == wire.OpCacheContainsKey {
				return wire.EncodeBool(v != nil), nil
			}
			return valuePayload(v), nil
		}
		if err := st.lockForWrite(t, ch, key); err != nil {
			return nil, err
		}
		old := st.read(t, ch, key)
		if old != nil {
			t.stage(ch, key, nil)
		}
		switch q.Code {
		case wire.OpCacheGetAndRemove:
			return valuePayload(old), nil
		case wire.OpCacheRemoveKey:
			return wire.EncodeBool(old != nil), nil
		}
		return nil, nil // CLEAR_KEY
	})
}

func valuePayload(v ib.Raw) []byte {
	if v == nil {
		return []byte{ib.TypeNull}
	}
	return v
}

func (c *srvConn) keyValueOp(q *wire.CacheKeyValueRequest) ([]byte, error) {
	st := c.srv.store
	key, val := raw(q.Key), raw(q.Value)
	if isNullRaw(key) {
		return nil, nullArg("key")
	}
	if isNullRaw(val) {
		return nil, nullArg("val")
	}
	return c.withTx(&q.CacheHeader, []ib.Raw{key}, func(t *tx, ch *cache) ([]byte, error) {
		if err := st.lockForWrite(t, ch, key); err != nil {
			return nil, err
		}
		if q.Code == wire.OpCachePut {
			t.stage(ch, key, val)
			return nil, nil
		}
		old := st.read(t, ch, key)
		switch q.Code {
		case wire.OpCachePutIfAbsent:
			if old == nil {
				t.stage(ch, key, val)
			}
			return wire.EncodeBool(old == nil), nil
		case wire.OpCacheGetAndPut:
			t.stage(ch, key, val)
			return valuePayload(old), nil
		case wire.OpCacheGetAndReplace:
			if old != nil {
				t.stage(ch, key, val)
			}
			return valuePayload(old), nil
		case wire.OpCacheGetAndPutIfAbsent:
			if old == nil {
				t.stage(ch, key, val)
			}
			return valuePayload(old), nil
		case wire.OpCacheReplace:
			if old != nil {
				t.stage(ch, key, val)
			}
			return wire.EncodeBool(old != nil), nil
		case wire.OpCacheRemoveIfEquals:
			ok := old != nil && bytes.Equal(old, val)
			if ok {
				t.stage(ch, key, nil)
			}
			return wire.EncodeBool(ok), nil
		}
		return nil, fmt.Errorf("unexpected op %s", q.Code)
	})
}

func (c *srvConn) keysOp(q *wire.CacheKeysRequest) ([]byte, error) {
	st := c.srv.store
	if q.Code == wire.OpCacheGetAll {
		c.srv.waitHeldReads(q.CacheID, q.Flags)
	}
	keys := make([]ib.Raw, len(q.Keys))
	for i, k := range q.Keys {
		if isNullRaw(k) {
			return nil, nullArg("key")
		}
		keys[i] = raw(k)
	}
	var lockKeys []ib.Raw
	if q.Code == wire.OpCacheClearKeys || q.Code == wire.OpCacheRemoveKeys {
		lockKeys = keys
	}
	return c.withTx(&q.CacheHeader, lockKeys, func(t *tx, ch *cache) ([]byte, error) {
		switch q.Code {
		case wire.OpCacheGetAll, wire.OpCacheContainsKeys:
			var found []wire.KV
			seen := map[string]bool{}
			all := true
			for _, k := range keys {
				if err := st.lockForRead(t, ch, k); err != nil {
					return nil, err
				}
				v := st.read(t, ch, k)
				if v == nil {
					all = false
				} else if !seen[string(k)] {
					seen[string(k)] = true
					found = append(found, wire.KV{Key: k, Value: v})
				}
			}
			if q.Code == wire.OpCacheContainsKeys {
				return wire.EncodeBool(all), nil
			}
			return wire.EncodeEntries(found)
		default: // CLEAR_KEYS, REMOVE_KEYS
			for _, k := range keys {
				if err := st.lockForWrite(t, ch, k); err != nil {
					return nil, err
				}
				if st.read(t, ch, k) != nil {
					t.stage(ch, k, nil)
				}
			}
			return nil, nil
		}
	})
}

func (c *srvConn) createCache(cfg wire.CacheConfiguration, mustBeNew bool) error {
	name := cfg.Name()
	if name == "" {
		return failed("Cache name must not be null or empty")
	}
	st := c.srv.store
	id := ib.CacheID(name)
	st.mu.Lock()
	defer st.mu.Unlock()
	if existing := st.caches[id]; existing != nil {
		if mustBeNew {
			return &statusError{status: wire.StatusCacheExists,
				msg: fmt.Sprintf("Failed to start cache (a cache with the same name is already started): %s", name)}
		}
		return nil
	}
	partitions := 1024
	if v, ok := cfg.Get(wire.PropAffinityConfiguration); ok {
		if a, ok := v.(wire.AffinityConfiguration); ok && a.Partitions > 0 {
			partitions = int(a.Partitions)
		}
	}
	var exists bool
	err := st.exchangeLocked(func() {
		if st.caches[id] != nil { // created by another request meanwhile
			exists = true
			return
		}
		st.caches[id] = &cache{
			id: id, name: name, cfg: cfg,
			atomic:     cfg.Int32(wire.PropAtomicityMode, wire.AtomicityAtomic) == wire.AtomicityAtomic,
			partitions: partitions,
			entries:    map[string]*entry{},
			listeners:  map[*subscription]struct{}{},
		}
		st.topology.Minor++
	})
	if err == nil && exists && mustBeNew {
		return &statusError{status: wire.StatusCacheExists,
			msg: fmt.Sprintf("Failed to start cache (a cache with the same name is already started): %s", name)}
	}
	return err
}

func (c *srvConn) destroyCache(id int32) error {
	st := c.srv.store
	st.mu.Lock()
	defer st.mu.Unlock()
	ch := st.caches[id]
	if ch == nil {
		return cacheMissing(id)
	}
	for sub := range ch.listeners {
		sub.closed.Store(true)
	}
	delete(st.caches, id)
	st.topology.Minor++
	return nil
}

func (c *srvConn) allocResource(r any) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.resources) >= c.srv.opts.MaxCursorsPerConn {
		return 0, &statusError{status: wire.StatusTooManyCursors,
			msg: fmt.Sprintf("Too many open cursors (either close other open cursors or increase the limit through ClientConnectorConfiguration.maxOpenCursorsPerConnection) [maximum=%d, current=%d]",
				c.srv.opts.MaxCursorsPerConn, len(c.resources))}
	}
	c.nextResID++
	c.resources[c.nextResID] = r
	return c.nextResID, nil
}

func resourceMissing(id int64) error {
	return &statusError{status: wire.StatusResourceDoesNotExist, msg: fmt.Sprintf("Failed to find resource with id: %d", id)}
}

func (c *srvConn) resourceOp(q *wire.ResourceRequest) ([]byte, error) {
	c.mu.Lock()
	r := c.resources[q.ResourceID]
	if q.Code == wire.OpResourceClose && r != nil {
		delete(c.resources, q.ResourceID)
	}
	c.mu.Unlock()
	if r == nil {
		return nil, resourceMissing(q.ResourceID)
	}
	switch q.Code {
	case wire.OpResourceClose:
		if sub, ok := r.(*subscription); ok {
			c.srv.store.unsubscribe(sub)
		}
		return nil, nil
	default: // scan page
		cur, ok := r.(*cursor)
		if !ok {
			return nil, resourceMissing(q.ResourceID)
		}
		page := c.nextPage(q.ResourceID, cur)
		return page.Encode(false)
	}
}

// nextPage takes the next page off cur, releasing it when it is exhausted.
func (c *srvConn) nextPage(id int64, cur *cursor) wire.ScanPage {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(cur.pageSize, len(cur.entries))
	page := wire.ScanPage{CursorID: id, Entries: cur.entries[:n]}
	cur.entries = cur.entries[n:]
	page.HasMore = len(cur.entries) > 0
	if !page.HasMore {
		delete(c.resources, id)
	}
	return page
}

func (c *srvConn) scan(q *wire.ScanRequest) ([]byte, error) {
	st := c.srv.store
	if q.Filter != nil {
		return nil, failed("ignitetest: scan filters are not supported")
	}
	if q.PageSize <= 0 {
		return nil, failed("Page size must be greater than zero: %d", q.PageSize)
	}
	ch, err := st.getCache(q.CacheID)
	if err != nil {
		return nil, err
	}
	if q.InTx() {
		c.mu.Lock()
		t := c.txs[q.TxID]
		c.mu.Unlock()
		if t != nil && ch.atomic {
			return nil, errAtomicInTx
		}
	}
	st.mu.Lock()
	entries := make([]wire.KV, 0, len(ch.entries))
	for _, e := range ch.entries {
		if q.Partition >= 0 {
			h, err := ib.KeyHash(e.key)
			if err != nil {
				h = ib.ByteArrayHash(e.key)
			}
			if ib.Partition(h, ch.partitions) != int(q.Partition) {
				continue
			}
		}
		entries = append(entries, wire.KV{Key: e.key, Value: e.val})
	}
	st.mu.Unlock()
	sort.Slice(entries, func(i, j int) bool { return string(entries[i].Key.(ib.Raw)) < string(entries[j].Key.(ib.Raw)) })
	cur := &cursor{entries: entries, pageSize: int(q.PageSize)}
	id, err := c.allocResource(cur)
	if err != nil {
		return nil, err
	}
	page := c.nextPage(id, cur)
	return page.Encode(true)
}

func (c *srvConn) listen(q *wire.ContinuousQueryRequest) ([]byte, func(), error) {
	st := c.srv.store
	if q.Filter != nil {
		return nil, nil, failed("ignitetest: remote filters are not supported")
	}
	if !c.proto.HasFlags() {
		return nil, nil, failed("ignitetest: continuous queries need protocol 1.4.0 or newer")
	}
	if _, err := st.getCache(q.CacheID); err != nil {
		return nil, nil, err
	}
	sub := &subscription{conn: c, cache: q.CacheID}
	id, err := c.allocResource(sub)
	if err != nil {
		return nil, nil, err
	}
	sub.id = id
	// Events go only to queries whose start response was sent: subscribe
	// after responding, as the server does.
	// Like the server: the listener is registered before the response is
	// sent, but only events committed after the response was queued are
	// forwarded. Arming happens while the response is queued but before the
	// writer can send it, so a change the client makes after reading the
	// response is always delivered, and no notification precedes the
	// response.
	st.mu.Lock()
	ch := st.caches[q.CacheID]
	if ch != nil && !sub.closed.Load() {
		ch.listeners[sub] = struct{}{}
	}
	st.mu.Unlock()
	if ch == nil {
		c.mu.Lock()
		delete(c.resources, id)
		c.mu.Unlock()
		return nil, nil, cacheMissing(q.CacheID)
	}
	return wire.EncodeI64(id), func() { sub.armed.Store(true) }, nil
}

func (s *store) unsubscribe(sub *subscription) {
	sub.closed.Store(true)
	s.mu.Lock()
	if ch := s.caches[sub.cache]; ch != nil {
		delete(ch.listeners, sub)
	}
	s.mu.Unlock()
}

func (c *srvConn) txStart(q *wire.TxStartRequest) ([]byte, error) {
	if q.Concurrency < wire.TxOptimistic || q.Concurrency > wire.TxPessimistic ||
		q.Isolation < wire.TxReadCommitted || q.Isolation > wire.TxSerializable {
		return nil, failed("ignitetest: invalid transaction concurrency %d or isolation %d", q.Concurrency, q.Isolation)
	}
	c.mu.Lock()
	if len(c.txs) >= c.srv.opts.MaxTxPerConn {
		c.mu.Unlock()
		return nil, &statusError{status: wire.StatusTxLimitExceeded,
			msg: fmt.Sprintf("Active transactions per connection limit (%d) exceeded. To start a new transaction you need to wait for some of currently active transactions complete. To change the limit set up ThinClientConfiguration.MaxActiveTxPerConnection property.", c.srv.opts.MaxTxPerConn)}
	}
	c.mu.Unlock()
	label := ""
	if q.Label != nil {
		label = *q.Label
	}
	t := c.srv.store.newTx(q.Concurrency == wire.TxPessimistic, q.Isolation, time.Duration(q.TimeoutMs)*time.Millisecond, label)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.srv.store.abortTx(t, failed("connection closed"))
		return nil, failed("connection closed")
	}
	c.nextTxID++
	t.id = c.nextTxID
	c.txs[t.id] = t
	c.mu.Unlock()
	return wire.EncodeI32(t.id), nil
}

func (c *srvConn) txEnd(q *wire.TxEndRequest) error {
	st := c.srv.store
	c.mu.Lock()
	t := c.txs[q.TxID]
	c.mu.Unlock()
	if t == nil {
		if !q.Commit {
			return nil
		}
		return &statusError{status: wire.StatusTxNotFound, msg: fmt.Sprintf("Transaction with id %d not found.", q.TxID)}
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	// The id is gone whatever the outcome.
	c.mu.Lock()
	delete(c.txs, q.TxID)
	c.mu.Unlock()
	if !q.Commit {
		st.rollback(t)
		return nil
	}
	st.mu.Lock()
	drop := st.dropCommit
	st.dropCommit = nil
	st.mu.Unlock()
	if drop != nil {
		if *drop {
			st.commit(t)
		} else {
			st.rollback(t)
		}
		// No reply: the client cannot know the outcome.
		c.close()
		return errDropped
	}
	return st.commit(t)
}

// errDropped marks a response that must not be sent (the connection was
// dropped on purpose); respond drops it anyway since the connection is
// closed.
var errDropped = failed("ignitetest: connection dropped")

func (c *srvConn) endpoints() []byte {
	s := c.srv
	e := wire.NodeEndpoints{TopologyVersion: s.Topology().Major}
	s.mu.Lock()
	for _, n := range s.nodes {
		host, port := splitHostPort(n.addr)
		e.Added = append(e.Added, wire.NodeEndpoint{NodeID: n.nodeID, Port: port, Addresses: []string{host}})
	}
	s.mu.Unlock()
	return e.Encode()
}

func splitHostPort(addr string) (string, int32) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			var p int32
			fmt.Sscanf(addr[i+1:], "%d", &p)
			return addr[:i], p
		}
	}
	return addr, 0
}

// partitions answers CACHE_PARTITIONS with one group that is not
// applicable: the double does not model partition placement.
func (c *srvConn) partitions(q *wire.CachePartitionsRequest) []byte {
	st := c.srv.store
	st.mu.Lock()
	cp := wire.CachePartitions{Topology: st.topology}
	st.mu.Unlock()
	g := wire.PartitionsGroup{}
	for _, id := range q.CacheIDs {
		g.Caches = append(g.Caches, wire.PartitionsCache{CacheID: id})
	}
	if len(g.Caches) > 0 {
		cp.Groups = append(cp.Groups, g)
	}
	return cp.Encode(c.proto)
}
