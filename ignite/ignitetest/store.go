package ignitetest

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
	"github.com/ignetcd/ignetcd/ignite/wire"
)

// statusError is an error the server reports with a status code.
type statusError struct {
	status int32
	msg    string
}

func (e *statusError) Error() string { return e.msg }

func failed(format string, args ...any) error {
	return &statusError{status: wire.StatusFailed, msg: fmt.Sprintf(format, args...)}
}

func cacheMissing(id int32) error {
	return &statusError{status: wire.StatusCacheDoesNotExist, msg: fmt.Sprintf("Cache does not exist [cacheId= %d]", id)}
}

// errAtomicInTx is the 2.19 reply to a transactional op on an ATOMIC cache
// (captured, 08-errors).
var errAtomicInTx = failed("Transaction spans operations on atomic cache (don't use atomic cache inside a transaction). " +
	"Since 2.15.0 atomic operations inside transactions are not allowed by default. " +
	"Since 2.16.0 atomic operations inside transactions are finally forbidden.")

type entry struct {
	key, val ib.Raw
	version  uint64
}

type cache struct {
	id         int32
	name       string
	cfg        wire.CacheConfiguration
	atomic     bool
	partitions int
	entries    map[string]*entry
	listeners  map[*subscription]struct{}
}

// lockKey identifies an entry across caches; key is the exact bytes of the
// typed key, so two keys are equal iff their encodings are equal (for
// primitives, strings and arrays this is Ignite's own equality).
type lockKey struct {
	cache int32
	key   string
}

type lock struct {
	owner    *tx
	released chan struct{}
}

type txState int

const (
	txActive txState = iota
	txAborted
	txDone
)

type write struct {
	cache int32
	key   ib.Raw
	val   ib.Raw // nil: remove
}

// tx is a server transaction: explicit (owned by a connection) or implicit
// (one non-transactional op on a TRANSACTIONAL cache).
type tx struct {
	id          int32
	serial      int64
	pessimistic bool
	isolation   int8
	timeout     time.Duration
	label       string
	implicit    bool // one non-transactional op: never fails by injection

	opMu sync.Mutex // one operation at a time, like the server's tx context

	// Guarded by store.mu.
	state    txState
	abortErr error
	abort    chan struct{} // closed on abort
	held     map[lockKey]bool
	timer    *time.Timer

	// Guarded by opMu.
	writes map[lockKey]*write
	order  []lockKey
	reads  map[lockKey]uint64 // versions seen, for OPTIMISTIC SERIALIZABLE
}

func (t *tx) String() string {
	return fmt.Sprintf("GridNearTxLocal [xid=%d, label=%s, timeout=%d]", t.serial, t.label, t.timeout.Milliseconds())
}

// store is the data of the whole "cluster".
type store struct {
	mu       sync.Mutex
	caches   map[int32]*cache
	topology wire.TopologyVersion
	locks    map[lockKey]*lock
	serial   int64
	version  uint64
	closed   chan struct{}

	// A cache being created is a partition map exchange: it waits until no
	// transaction holds a lock, and new locks wait for it (exchange != nil).
	// A transaction that holds locks and needs the new cache therefore waits
	// for itself until its timeout, as on Ignite 2.17 (ignite/NOTES.md).
	exchange   chan struct{} // closed when the running exchange ends
	locksFreed chan struct{} // closed (and replaced) whenever locks are released
	failCommit *string       // fault: fail the next commit with this message
	dropCommit *bool         // fault: drop the connection at the next commit; apply it first if true
	notify     func(events []pendingEvent)
}

// pendingEvent is an event to deliver to one subscription.
type pendingEvent struct {
	sub   *subscription
	hash  int32
	event wire.Event
}

func newStore() *store {
	return &store{
		caches:     map[int32]*cache{},
		topology:   wire.TopologyVersion{Major: 1, Minor: 0},
		locks:      map[lockKey]*lock{},
		closed:     make(chan struct{}),
		locksFreed: make(chan struct{}),
	}
}

// exchangeLocked runs fn once no transaction holds a lock, keeping new locks
// from being taken meanwhile. Called with s.mu held; it is released while
// waiting.
func (s *store) exchangeLocked(fn func()) error {
	for s.exchange != nil { // one exchange at a time
		if err := s.waitLocked(s.exchange); err != nil {
			return err
		}
	}
	s.exchange = make(chan struct{})
	defer func() { close(s.exchange); s.exchange = nil }()
	for len(s.locks) > 0 {
		if err := s.waitLocked(s.locksFreed); err != nil {
			return err
		}
	}
	fn()
	return nil
}

// waitLocked waits for ch to close, with s.mu released meanwhile.
func (s *store) waitLocked(ch chan struct{}) error {
	s.mu.Unlock()
	defer s.mu.Lock()
	select {
	case <-ch:
		return nil
	case <-s.closed:
		return failed("Node is stopping")
	}
}

func (s *store) getCache(id int32) (*cache, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.caches[id]
	if c == nil {
		return nil, cacheMissing(id)
	}
	return c, nil
}

func (s *store) newTx(pessimistic bool, isolation int8, timeout time.Duration, label string) *tx {
	s.mu.Lock()
	s.serial++
	t := &tx{
		serial: s.serial, pessimistic: pessimistic, isolation: isolation, timeout: timeout, label: label,
		abort: make(chan struct{}), held: map[lockKey]bool{},
		writes: map[lockKey]*write{}, reads: map[lockKey]uint64{},
	}
	s.mu.Unlock()
	if timeout > 0 {
		t.timer = time.AfterFunc(timeout, func() {
			s.abortTx(t, failed("Cache transaction timed out (was rolled back automatically) [timeout=%d, tx=%s]",
				timeout.Milliseconds(), t))
		})
	}
	return t
}

// abortTx rolls t back asynchronously: it releases t's locks and wakes its
// lock waits. Used for timeouts and closed connections.
func (s *store) abortTx(t *tx, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.state != txActive {
		return
	}
	t.state = txAborted
	t.abortErr = err
	close(t.abort)
	s.releaseLocked(t)
}

// releaseLocked frees t's locks. Called with s.mu held.
func (s *store) releaseLocked(t *tx) {
	for k := range t.held {
		if l := s.locks[k]; l != nil && l.owner == t {
			close(l.released)
			delete(s.locks, k)
		}
	}
	if len(t.held) > 0 {
		close(s.locksFreed)
		s.locksFreed = make(chan struct{})
	}
	t.held = map[lockKey]bool{}
	if t.timer != nil {
		t.timer.Stop()
	}
}

// usable reports t's state error, if any.
func (s *store) usable(t *tx) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch t.state {
	case txAborted:
		return t.abortErr
	case txDone:
		return failed("Transaction is already completed: %s", t)
	}
	return nil
}

// lockKeyFor makes the lock key of a raw key.
func lockKeyFor(cacheID int32, key ib.Raw) lockKey { return lockKey{cache: cacheID, key: string(key)} }

// acquire takes the lock on k for t, waiting while another transaction
// holds it. The wait ends with an error when t is aborted (timeout, closed
// connection) or the server closes.
func (s *store) acquire(t *tx, k lockKey) error {
	for {
		s.mu.Lock()
		if t.state != txActive {
			err := t.abortErr
			s.mu.Unlock()
			return err
		}
		var ch chan struct{}
		switch l := s.locks[k]; {
		case l == nil && s.exchange != nil:
			ch = s.exchange // a cache is being created: wait for it
		case l == nil:
			s.locks[k] = &lock{owner: t, released: make(chan struct{})}
			t.held[k] = true
			s.mu.Unlock()
			return nil
		case l.owner == t:
			s.mu.Unlock()
			return nil
		default:
			ch = l.released
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-t.abort:
		case <-s.closed:
			return failed("Node is stopping")
		}
	}
}

func (s *store) acquireAll(t *tx, keys []lockKey) error {
	for _, k := range keys {
		if err := s.acquire(t, k); err != nil {
			return err
		}
	}
	return nil
}

// read returns the value of key as t sees it: its own write, else the
// committed value. Called with t.opMu held.
func (s *store) read(t *tx, c *cache, key ib.Raw) ib.Raw {
	k := lockKeyFor(c.id, key)
	if t != nil {
		if w, ok := t.writes[k]; ok {
			return w.val
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := c.entries[k.key]
	if t != nil && !t.pessimistic && t.isolation == wire.TxSerializable {
		if _, seen := t.reads[k]; !seen {
			var v uint64
			if e != nil {
				v = e.version
			}
			t.reads[k] = v
		}
	}
	if e == nil {
		return nil
	}
	return e.val
}

// lockForRead locks a key about to be read, if t's mode locks on reads.
func (s *store) lockForRead(t *tx, c *cache, key ib.Raw) error {
	if t == nil || !t.pessimistic || t.isolation == wire.TxReadCommitted {
		return nil
	}
	return s.acquire(t, lockKeyFor(c.id, key))
}

// lockForWrite locks a key about to be written, if t is pessimistic.
func (s *store) lockForWrite(t *tx, c *cache, key ib.Raw) error {
	if t == nil || !t.pessimistic {
		return nil
	}
	return s.acquire(t, lockKeyFor(c.id, key))
}

// stage records a write in t's write set. Called with t.opMu held.
func (t *tx) stage(c *cache, key, val ib.Raw) {
	k := lockKeyFor(c.id, key)
	if w, ok := t.writes[k]; ok {
		w.val = val
		return
	}
	t.writes[k] = &write{cache: c.id, key: key, val: val}
	t.order = append(t.order, k)
}

// commit applies t's writes atomically and releases its locks. Called with
// t.opMu held.
func (s *store) commit(t *tx) error {
	if err := s.usable(t); err != nil {
		return err
	}
	s.mu.Lock()
	if msg := s.failCommit; msg != nil && !t.implicit {
		s.failCommit = nil
		s.mu.Unlock()
		s.rollback(t)
		return failed("%s", *msg)
	}
	s.mu.Unlock()
	if !t.pessimistic {
		// OPTIMISTIC: lock at commit, in a fixed order so that concurrent
		// commits cannot deadlock.
		keys := append([]lockKey(nil), t.order...)
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].cache != keys[j].cache {
				return keys[i].cache < keys[j].cache
			}
			return keys[i].key < keys[j].key
		})
		if err := s.acquireAll(t, keys); err != nil {
			s.rollback(t)
			return err
		}
	}
	s.mu.Lock()
	if t.state != txActive {
		err := t.abortErr
		s.mu.Unlock()
		return err
	}
	if !t.pessimistic && t.isolation == wire.TxSerializable {
		for k, seen := range t.reads {
			var now uint64
			if c := s.caches[k.cache]; c != nil {
				if e := c.entries[k.key]; e != nil {
					now = e.version
				}
			}
			if now != seen {
				t.state = txAborted
				t.abortErr = failed("Failed to prepare transaction, read/write conflict [key=%x, tx=%s]", k.key, t)
				close(t.abort)
				s.releaseLocked(t)
				err := t.abortErr
				s.mu.Unlock()
				return err
			}
		}
	}
	events := s.applyLocked(t.order, t.writes)
	t.state = txDone
	s.releaseLocked(t)
	notify := s.notify
	s.mu.Unlock()
	if notify != nil && len(events) > 0 {
		notify(events)
	}
	return nil
}

// rollback discards t and releases its locks.
func (s *store) rollback(t *tx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.state == txActive {
		t.state = txDone
		close(t.abort)
		t.abortErr = failed("Transaction has been rolled back: %s", t)
	}
	s.releaseLocked(t)
}

// applyLocked writes a write set and returns the events for the caches'
// listeners. Writes to caches destroyed meanwhile are dropped. Called with
// s.mu held.
func (s *store) applyLocked(order []lockKey, writes map[lockKey]*write) []pendingEvent {
	var events []pendingEvent
	for _, k := range order {
		w := writes[k]
		c := s.caches[w.cache]
		if c == nil {
			continue
		}
		old := c.entries[k.key]
		var ev wire.Event
		if w.val == nil {
			if old == nil {
				continue
			}
			delete(c.entries, k.key)
			ev = wire.Event{Key: w.key, Old: old.val, New: nil, Type: wire.EventRemoved}
		} else {
			s.version++
			c.entries[k.key] = &entry{key: w.key, val: w.val, version: s.version}
			if old == nil {
				ev = wire.Event{Key: w.key, Old: nil, New: w.val, Type: wire.EventCreated}
			} else {
				ev = wire.Event{Key: w.key, Old: old.val, New: w.val, Type: wire.EventUpdated}
			}
		}
		if len(c.listeners) == 0 {
			continue
		}
		hash, err := ib.KeyHash(w.key)
		if err != nil {
			hash = ib.ByteArrayHash(w.key)
		}
		for sub := range c.listeners {
			if sub.armed.Load() {
				events = append(events, pendingEvent{sub: sub, hash: hash, event: ev})
			}
		}
	}
	return events
}

// errClosed is returned to operations running while the server stops.
var errClosed = errors.New("ignitetest: server closed")
