// Package memengine is the in-process implementation of mvcc.Engine: named
// tables of byte keys and values, pessimistic transactions with per-key locks
// that waiters queue on, and subscriptions that see every committed put.
//
// It is the embedded default engine of ignetcd (no durability: everything is
// lost when the process exits) and the fast engine of unit tests. It models
// the Ignite behaviour the etcd layer relies on: a key read in a transaction
// stays locked until commit or rollback, writes become visible atomically at
// commit, and subscribers are told of committed puts only.
package memengine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ignetcd/ignetcd/mvcc"
)

// Engine is an in-memory mvcc.Engine. The zero value is not usable; call New.
type Engine struct {
	mu     sync.Mutex
	tables map[string]map[string][]byte
	locks  map[lockKey]*lockState
	closed bool

	// subsMu orders deliveries: a commit's puts are handed to subscribers
	// before the next commit's, which keeps the in-memory engine's feed
	// in commit order (Ignite gives no such promise; the feed copes either
	// way). It is only ever taken after mu, never the other way round.
	subsMu sync.Mutex
	subs   map[string]map[*subscription]struct{}
}

type lockKey struct{ table, key string }

type lockState struct {
	owner    *txn
	released chan struct{} // closed when owner lets go
}

// ErrClosed is returned by every call after Close.
var ErrClosed = fmt.Errorf("memengine: closed: %w", mvcc.ErrEngineUnavailable)

// New returns an empty engine.
func New() *Engine {
	return &Engine{
		tables: map[string]map[string][]byte{},
		locks:  map[lockKey]*lockState{},
		subs:   map[string]map[*subscription]struct{}{},
	}
}

var _ mvcc.Engine = (*Engine)(nil)

// Begin starts a pessimistic transaction.
func (e *Engine) Begin(ctx context.Context) (mvcc.Txn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	return &txn{e: e, held: map[lockKey]struct{}{}, writes: map[lockKey]*[]byte{}}, nil
}

// GetAll reads committed values without locking.
func (e *Engine) GetAll(ctx context.Context, table string, keys [][]byte) ([][]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	t := e.tables[table]
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = t[string(k)]
	}
	return out, nil
}

// Scan visits a copy of the table taken at the call, so fn may call back
// into the engine.
func (e *Engine) Scan(ctx context.Context, table string, fn func(key, value []byte) error) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	entries := make([]mvcc.Entry, 0, len(e.tables[table]))
	for k, v := range e.tables[table] {
		entries = append(entries, mvcc.Entry{Key: []byte(k), Value: v})
	}
	e.mu.Unlock()
	for _, en := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(en.Key, en.Value); err != nil {
			return err
		}
	}
	return nil
}

type subscription struct {
	e      *Engine
	table  string
	onPut  func(key, value []byte)
	onLost func(error)
}

// GetAll reads the engine (which has no connections).
func (s *subscription) GetAll(ctx context.Context, table string, keys [][]byte) ([][]byte, error) {
	return s.e.GetAll(ctx, table, keys)
}

func (s *subscription) Cancel() {
	s.e.subsMu.Lock()
	delete(s.e.subs[s.table], s)
	s.e.subsMu.Unlock()
}

// Subscribe registers onPut for every later committed put on table.
func (e *Engine) Subscribe(ctx context.Context, table string, onPut func(key, value []byte), onLost func(error)) (mvcc.Subscription, error) {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	s := &subscription{e: e, table: table, onPut: onPut, onLost: onLost}
	e.subsMu.Lock()
	if e.subs[table] == nil {
		e.subs[table] = map[*subscription]struct{}{}
	}
	e.subs[table][s] = struct{}{}
	e.subsMu.Unlock()
	return s, nil
}

// DropSubscriptions breaks every subscription as a lost connection would:
// each onLost is called and no more puts are delivered. Tests use it.
func (e *Engine) DropSubscriptions() {
	e.subsMu.Lock()
	var lost []*subscription
	for _, set := range e.subs {
		for s := range set {
			lost = append(lost, s)
		}
	}
	e.subs = map[string]map[*subscription]struct{}{}
	e.subsMu.Unlock()
	for _, s := range lost {
		if s.onLost != nil {
			s.onLost(errors.New("memengine: subscription dropped"))
		}
	}
}

// CreateTables does nothing: the engine's tables exist once written.
func (e *Engine) CreateTables(ctx context.Context, tables ...string) error { return nil }

// Close fails every later call and breaks subscriptions.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.DropSubscriptions()
	return nil
}

// txn is a pessimistic transaction: locks taken on read or write, writes
// buffered until commit.
type txn struct {
	e      *Engine
	held   map[lockKey]struct{}
	writes map[lockKey]*[]byte // nil pointee: removed
	order  []lockKey           // write order, so commit notifies in it
	done   bool
}

var errTxnDone = errors.New("memengine: transaction already finished")

// lock takes k for t, waiting while another transaction holds it.
func (t *txn) lock(ctx context.Context, k lockKey) error {
	if _, ok := t.held[k]; ok {
		return nil
	}
	for {
		t.e.mu.Lock()
		if t.e.closed {
			t.e.mu.Unlock()
			return ErrClosed
		}
		st := t.e.locks[k]
		if st == nil {
			t.e.locks[k] = &lockState{owner: t, released: make(chan struct{})}
			t.held[k] = struct{}{}
			t.e.mu.Unlock()
			return nil
		}
		wait := st.released
		t.e.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("memengine: waiting for lock: %w", ctx.Err())
		}
	}
}

func (t *txn) GetAll(ctx context.Context, table string, keys [][]byte) ([][]byte, error) {
	if t.done {
		return nil, errTxnDone
	}
	for _, k := range keys {
		if err := t.lock(ctx, lockKey{table, string(k)}); err != nil {
			return nil, err
		}
	}
	out := make([][]byte, len(keys))
	t.e.mu.Lock()
	defer t.e.mu.Unlock()
	for i, k := range keys {
		lk := lockKey{table, string(k)}
		if w, ok := t.writes[lk]; ok {
			if w != nil {
				out[i] = *w
			}
			continue
		}
		out[i] = t.e.tables[table][string(k)]
	}
	return out, nil
}

func (t *txn) write(ctx context.Context, table string, key []byte, value *[]byte) error {
	lk := lockKey{table, string(key)}
	if err := t.lock(ctx, lk); err != nil {
		return err
	}
	if _, seen := t.writes[lk]; !seen {
		t.order = append(t.order, lk)
	}
	t.writes[lk] = value
	return nil
}

func (t *txn) PutAll(ctx context.Context, table string, entries []mvcc.Entry) error {
	if t.done {
		return errTxnDone
	}
	for _, en := range entries {
		v := append([]byte(nil), en.Value...)
		if err := t.write(ctx, table, en.Key, &v); err != nil {
			return err
		}
	}
	return nil
}

func (t *txn) Replace(ctx context.Context, table string, key, expected, value []byte) (bool, error) {
	cur, err := t.GetAll(ctx, table, [][]byte{key})
	if err != nil {
		return false, err
	}
	if (cur[0] == nil) != (expected == nil) || !bytes.Equal(cur[0], expected) {
		return false, nil
	}
	return true, t.PutAll(ctx, table, []mvcc.Entry{{Key: key, Value: value}})
}

func (t *txn) RemoveAll(ctx context.Context, table string, keys [][]byte) error {
	if t.done {
		return errTxnDone
	}
	for _, k := range keys {
		if err := t.write(ctx, table, k, nil); err != nil {
			return err
		}
	}
	return nil
}

func (t *txn) Commit(ctx context.Context) error {
	if t.done {
		return errTxnDone
	}
	t.done = true
	t.e.mu.Lock()
	if t.e.closed {
		t.releaseLocked()
		t.e.mu.Unlock()
		return ErrClosed
	}
	type put struct {
		table      string
		key, value []byte
	}
	var puts []put
	for _, lk := range t.order {
		w := t.writes[lk]
		tbl := t.e.tables[lk.table]
		if tbl == nil {
			tbl = map[string][]byte{}
			t.e.tables[lk.table] = tbl
		}
		if w == nil {
			delete(tbl, lk.key)
			continue
		}
		tbl[lk.key] = *w
		puts = append(puts, put{lk.table, []byte(lk.key), *w})
	}
	// Locks are always taken in the order mu, then subsMu. subsMu is taken
	// before mu is let go, so the next commit delivers after this one.
	t.releaseLocked()
	t.e.subsMu.Lock()
	t.e.mu.Unlock()
	for _, p := range puts {
		for s := range t.e.subs[p.table] {
			s.onPut(p.key, p.value)
		}
	}
	t.e.subsMu.Unlock()
	return nil
}

func (t *txn) Rollback(ctx context.Context) error {
	if t.done {
		return nil
	}
	t.done = true
	t.e.mu.Lock()
	t.releaseLocked()
	t.e.mu.Unlock()
	return nil
}

// releaseLocked frees every lock t holds; e.mu must be held.
func (t *txn) releaseLocked() {
	for k := range t.held {
		if st := t.e.locks[k]; st != nil && st.owner == t {
			delete(t.e.locks, k)
			close(st.released)
		}
	}
	t.held = nil
}
