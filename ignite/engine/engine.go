// Package engine implements mvcc.Engine on Apache Ignite through the thin
// client: every table is a TRANSACTIONAL cache, keys and values are Ignite
// byte[] (byte-exact, content-hashed by the server: see ignite/NOTES.md),
// transactions are PESSIMISTIC REPEATABLE_READ, each on a connection of its
// own taken from a pool, subscriptions are continuous queries on a
// dedicated connection (which also carries the change feed's reads), and
// the readers' requests share a third.
package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ignetcd/ignetcd/ignite/client"
	"github.com/ignetcd/ignetcd/ignite/wire"
	"github.com/ignetcd/ignetcd/mvcc"
)

// Config configures the engine.
type Config struct {
	Client client.Config
	// TxConnections is how many connections run transactions (one
	// transaction per connection at a time; design brief section 3).
	// Default 4.
	TxConnections int
	// ReadConnections serve non-transactional reads and scans. Default 2.
	ReadConnections int
	// Backups is the number of backup copies of each cache partition
	// (default 1). Caches are PARTITIONED, TRANSACTIONAL, FULL_SYNC.
	Backups int32
	// TxTimeout is Ignite's transaction timeout; 0 (the default) leaves it
	// to the request's context, which measured twice as fast (design 3).
	TxTimeout time.Duration
}

// Engine is an mvcc.Engine on an Ignite cluster.
type Engine struct {
	cfg   Config
	txs   *client.Pool
	reads *client.Pool
	feed  *client.Client // continuous queries live on their connection

	mu     sync.Mutex
	caches map[string]*cacheState
}

type cacheState struct {
	once sync.Once
	err  error
}

var _ mvcc.Engine = (*Engine)(nil)

// Open connects to the cluster (failing fast if no endpoint answers).
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.TxConnections <= 0 {
		cfg.TxConnections = 4
	}
	if cfg.ReadConnections <= 0 {
		cfg.ReadConnections = 2
	}
	if cfg.Backups == 0 {
		cfg.Backups = 1
	}
	e := &Engine{cfg: cfg, caches: map[string]*cacheState{}}
	var err error
	if e.txs, err = client.NewPool(cfg.Client, cfg.TxConnections); err != nil {
		return nil, err
	}
	if e.reads, err = client.NewPool(cfg.Client, cfg.ReadConnections); err != nil {
		e.txs.Close()
		return nil, err
	}
	if e.feed, err = client.New(cfg.Client); err != nil {
		e.Close()
		return nil, err
	}
	// Connect now, so that a wrong endpoint is reported at start-up.
	if _, err := e.reads.Shared().Connection(ctx); err != nil {
		e.Close()
		return nil, wrap(err)
	}
	return e, nil
}

// Close closes every connection.
func (e *Engine) Close() error {
	if e.feed != nil {
		e.feed.Close()
	}
	if e.reads != nil {
		e.reads.Close()
	}
	if e.txs != nil {
		e.txs.Close()
	}
	return nil
}

// wrap marks errors of an unreachable cluster as mvcc.ErrEngineUnavailable
// (and unknown commit outcomes as mvcc.ErrCommitUnknown) for the etcd layer.
func wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrCommitUnknown):
		return fmt.Errorf("%w: %w", mvcc.ErrCommitUnknown, err)
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrClosed):
		return fmt.Errorf("%w: %w", mvcc.ErrEngineUnavailable, err)
	}
	return err
}

// CreateTables gets or creates each table's cache. Creating a cache is a
// partition map exchange, which waits for every open transaction in the
// cluster to end; seen on Ignite 2.17, a transaction whose first write
// created its cache held its locks until its timeout. The store therefore
// creates its tables here, at Open, before any transaction.
func (e *Engine) CreateTables(ctx context.Context, tables ...string) error {
	for _, t := range tables {
		if _, err := e.cache(ctx, e.reads.Shared(), t); err != nil {
			return err
		}
	}
	return nil
}

// cache returns the named cache, creating it with the engine's configuration
// on first use (CreateTables has normally done it). Every node creates caches
// the same way, and get-or-create leaves an existing cache as it is, so nodes
// can start in any order.
func (e *Engine) cache(ctx context.Context, c *client.Client, name string) (client.Cache, error) {
	e.mu.Lock()
	st := e.caches[name]
	if st == nil {
		st = &cacheState{}
		e.caches[name] = st
	}
	e.mu.Unlock()
	st.once.Do(func() {
		_, st.err = e.reads.Shared().GetOrCreateCache(ctx, client.CacheConfig{
			Name: name, Mode: client.Partitioned, Atomicity: client.Transactional,
			Backups: e.cfg.Backups, WriteSync: client.FullSync,
		})
	})
	if st.err != nil {
		err := st.err
		// Let a later call try again (the cluster may have been away).
		e.mu.Lock()
		if e.caches[name] == st {
			delete(e.caches, name)
		}
		e.mu.Unlock()
		return client.Cache{}, wrap(fmt.Errorf("creating cache %s: %w", name, err))
	}
	return c.Cache(name), nil
}

// GetAll reads committed values without locks.
func (e *Engine) GetAll(ctx context.Context, table string, keys [][]byte) ([][]byte, error) {
	cc, err := e.cache(ctx, e.reads.Shared(), table)
	if err != nil {
		return nil, err
	}
	vals, err := cc.GetAllBytes(ctx, keys)
	return vals, wrap(err)
}

// Scan pages through a cache.
func (e *Engine) Scan(ctx context.Context, table string, fn func(key, value []byte) error) error {
	cc, err := e.cache(ctx, e.reads.Shared(), table)
	if err != nil {
		return err
	}
	return wrap(cc.ScanAll(ctx, 1024, func(k, v any) error {
		kb, ok1 := k.([]byte)
		vb, ok2 := v.([]byte)
		if !ok1 || !ok2 {
			return fmt.Errorf("ignite engine: %s holds a %T → %T entry, want byte[] → byte[]", table, k, v)
		}
		return fn(kb, vb)
	}))
}

type subscription struct {
	e *Engine
	q *client.ContinuousQuery
}

// GetAll reads over the feed's connection.
func (s subscription) GetAll(ctx context.Context, table string, keys [][]byte) ([][]byte, error) {
	cc, err := s.e.cache(ctx, s.e.feed, table)
	if err != nil {
		return nil, err
	}
	vals, err := cc.GetAllBytes(ctx, keys)
	return vals, wrap(err)
}

func (s subscription) Cancel() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.q.Close(ctx)
}

// Subscribe starts a continuous query delivering puts.
func (e *Engine) Subscribe(ctx context.Context, table string, onPut func(key, value []byte), onLost func(error)) (mvcc.Subscription, error) {
	cc, err := e.cache(ctx, e.feed, table)
	if err != nil {
		return nil, err
	}
	q, err := cc.Listen(ctx, client.ContinuousQueryOptions{PageSize: 1}, func(evs []client.Event) {
		for _, ev := range evs {
			// The event type, not the new value, tells a put from a
			// removal: 2.11 servers repeat the old value on removals.
			if ev.Type != wire.EventCreated && ev.Type != wire.EventUpdated {
				continue
			}
			k, ok1 := ev.Key.([]byte)
			v, ok2 := ev.New.([]byte)
			if ok1 && ok2 {
				onPut(k, v)
			}
		}
	}, func(err error) { onLost(wrap(err)) })
	if err != nil {
		return nil, wrap(err)
	}
	return subscription{e: e, q: q}, nil
}

// Begin takes a connection from the pool and starts a pessimistic,
// repeatable-read transaction on it.
func (e *Engine) Begin(ctx context.Context) (mvcc.Txn, error) {
	c, err := e.txs.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := c.Begin(ctx, client.TxOptions{Concurrency: client.Pessimistic, Isolation: client.RepeatableRead, Timeout: e.cfg.TxTimeout})
	if err != nil {
		e.txs.Release(c)
		return nil, wrap(err)
	}
	return &txn{e: e, c: c, tx: tx}, nil
}

type txn struct {
	e    *Engine
	c    *client.Client
	tx   *client.Tx
	done bool
}

func (t *txn) cache(ctx context.Context, table string) (client.Cache, error) {
	cc, err := t.e.cache(ctx, t.c, table)
	if err != nil {
		return cc, err
	}
	return cc.WithTx(t.tx), nil
}

func (t *txn) GetAll(ctx context.Context, table string, keys [][]byte) ([][]byte, error) {
	cc, err := t.cache(ctx, table)
	if err != nil {
		return nil, err
	}
	vals, err := cc.GetAllBytes(ctx, keys)
	return vals, wrap(err)
}

func (t *txn) PutAll(ctx context.Context, table string, entries []mvcc.Entry) error {
	cc, err := t.cache(ctx, table)
	if err != nil {
		return err
	}
	kvs := make([]wire.BytesKV, len(entries))
	for i, en := range entries {
		kvs[i] = wire.BytesKV{Key: en.Key, Value: en.Value}
	}
	return wrap(cc.PutAllBytes(ctx, kvs))
}

// Replace is Ignite's REPLACE_IF_EQUALS inside the transaction; an absent
// expected value is PUT_IF_ABSENT.
func (t *txn) Replace(ctx context.Context, table string, key, expected, value []byte) (bool, error) {
	cc, err := t.cache(ctx, table)
	if err != nil {
		return false, err
	}
	var ok bool
	if expected == nil {
		ok, err = cc.PutIfAbsent(ctx, key, value)
	} else {
		ok, err = cc.ReplaceIfEquals(ctx, key, expected, value)
	}
	return ok, wrap(err)
}

func (t *txn) RemoveAll(ctx context.Context, table string, keys [][]byte) error {
	cc, err := t.cache(ctx, table)
	if err != nil {
		return err
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	return wrap(cc.RemoveKeys(ctx, args))
}

func (t *txn) release() {
	if !t.done {
		t.done = true
		t.e.txs.Release(t.c)
	}
}

// Commit ends the transaction. A commit the server refused was not applied;
// it is reported as unavailable (retryable), unlike an unknown outcome.
func (t *txn) Commit(ctx context.Context) error {
	if t.done {
		return client.ErrTxDone
	}
	defer t.release()
	err := t.tx.Commit(ctx)
	if err != nil && !errors.Is(err, client.ErrCommitUnknown) && !errors.Is(err, client.ErrUnavailable) {
		return fmt.Errorf("%w: commit refused: %w", mvcc.ErrEngineUnavailable, err)
	}
	return wrap(err)
}

func (t *txn) Rollback(ctx context.Context) error {
	if t.done {
		return nil
	}
	defer t.release()
	return wrap(t.tx.Rollback(ctx))
}
