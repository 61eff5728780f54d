package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ignetcd/ignetcd/ignite/wire"
)

// TxConcurrency is a transaction's concurrency mode.
type TxConcurrency int

const (
	Pessimistic TxConcurrency = iota // lock on first access (the default)
	Optimistic                       // lock at commit
)

// TxIsolation is a transaction's isolation level.
type TxIsolation int

const (
	RepeatableRead TxIsolation = iota // the default; pessimistic reads lock
	ReadCommitted                     // reads do not lock
	Serializable
)

// TxOptions configure Begin. The zero value is PESSIMISTIC REPEATABLE_READ
// without timeout; always set a Timeout in production (reference 6.3): it is
// what frees locks of a transaction whose client vanished mid-operation.
type TxOptions struct {
	Concurrency TxConcurrency
	Isolation   TxIsolation
	Timeout     time.Duration
	Label       string
}

type txState int

const (
	txActive txState = iota
	txEnded          // TX_END sent: the server has forgotten the id
	txLost           // the connection broke: the server rolled it back
)

// Tx is a transaction. It lives on the connection that started it; its
// operations go only there, one at a time: each waits for the previous one's
// response. Cache operations join it through Cache.WithTx. A Tx may be used
// from several goroutines, but they take turns.
type Tx struct {
	client *Client
	conn   *conn
	id     int32

	mu       sync.Mutex
	state    txState
	lostErr  error
	inflight chan result // response of an operation whose caller gave up
}

// Begin starts a transaction on the client's current connection.
func (c *Client) Begin(ctx context.Context, opts TxOptions) (*Tx, error) {
	req := &wire.TxStartRequest{TimeoutMs: opts.Timeout.Milliseconds()}
	if opts.Timeout > 0 && req.TimeoutMs == 0 {
		req.TimeoutMs = 1
	}
	switch opts.Concurrency {
	case Pessimistic:
		req.Concurrency = wire.TxPessimistic
	case Optimistic:
		req.Concurrency = wire.TxOptimistic
	default:
		return nil, fmt.Errorf("ignite: unknown tx concurrency %d", opts.Concurrency)
	}
	switch opts.Isolation {
	case RepeatableRead:
		req.Isolation = wire.TxRepeatableRead
	case ReadCommitted:
		req.Isolation = wire.TxReadCommitted
	case Serializable:
		req.Isolation = wire.TxSerializable
	default:
		return nil, fmt.Errorf("ignite: unknown tx isolation %d", opts.Isolation)
	}
	if opts.Label != "" {
		label := opts.Label
		req.Label = &label
	}
	cn, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := cn.send(req, nil)
	if err != nil {
		return nil, err
	}
	decodeID := func(r result) (int32, error) {
		var id int32
		err := finish(wire.OpTxStart, r, func(p []byte) (err error) {
			id, err = wire.DecodeI32(p)
			return err
		})
		return id, err
	}
	select {
	case r := <-ch:
		id, err := decodeID(r)
		if err != nil {
			return nil, err
		}
		return &Tx{client: c, conn: cn, id: id}, nil
	case <-ctx.Done():
		// The server may still start it; end it then, or it holds one of
		// the connection's 100 transaction slots until the connection ends.
		c.background(func() {
			if id, err := decodeID(<-ch); err == nil {
				cn.call(context.Background(), &wire.TxEndRequest{TxID: id}, nil, nil)
			}
		})
		return nil, ctx.Err()
	}
}

// background runs f on a goroutine that Close waits for.
func (c *Client) background(f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// ID returns the server's id of the transaction (meaningful only on its
// connection).
func (tx *Tx) ID() int32 { return tx.id }

// ready waits for an abandoned operation and checks that the tx can take
// another one. Called with tx.mu held.
func (tx *Tx) ready(ctx context.Context) error {
	switch tx.state {
	case txEnded:
		return ErrTxDone
	case txLost:
		return tx.lostErr
	}
	if tx.inflight != nil {
		select {
		case r := <-tx.inflight:
			tx.inflight = nil
			if r.err != nil {
				tx.markLost(r.err)
				return r.err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := tx.conn.err(); err != nil {
		tx.markLost(err)
		return err
	}
	return nil
}

func (tx *Tx) markLost(err error) {
	if tx.state == txActive {
		tx.state = txLost
		tx.lostErr = err
	}
}

// call runs one operation inside the transaction: hdr (part of req) gets
// the tx flag and id.
func (tx *Tx) call(ctx context.Context, req wire.Request, hdr *wire.CacheHeader, decode func([]byte) error) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if err := tx.ready(ctx); err != nil {
		return err
	}
	if hdr != nil {
		hdr.Flags |= wire.CacheFlagTransactional
		hdr.TxID = tx.id
	}
	ch, err := tx.conn.send(req, nil)
	if err != nil {
		if errors.Is(err, ErrConnectionLost) || errors.Is(err, ErrClosed) {
			tx.markLost(err)
		}
		return err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			tx.markLost(r.err)
		}
		return finish(req.Op(), r, decode)
	case <-ctx.Done():
		// The operation still runs on the server; the next one must wait
		// for its response, or the two could run in either order.
		tx.inflight = ch
		return ctx.Err()
	}
}

// Commit commits the transaction. Whatever the outcome, the transaction is
// over afterwards (the server forgets it); a failed commit rolled it back.
// If the connection breaks (or ctx ends) while the commit is in flight, the
// error matches ErrCommitUnknown: it may or may not have been applied.
func (tx *Tx) Commit(ctx context.Context) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if err := tx.ready(ctx); err != nil {
		return err
	}
	ch, err := tx.conn.send(&wire.TxEndRequest{TxID: tx.id, Commit: true}, nil)
	if err != nil {
		// Not sent: the connection is gone and the server rolls back.
		tx.markLost(err)
		return err
	}
	tx.state = txEnded
	select {
	case r := <-ch:
		if r.err != nil {
			return fmt.Errorf("%w: %w", ErrCommitUnknown, r.err)
		}
		return finish(wire.OpTxEnd, r, nil)
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrCommitUnknown, ctx.Err())
	}
}

// Rollback rolls the transaction back. It returns nil when there is nothing
// left to roll back: after Commit (failed or not) and after a connection
// loss (the server rolled back). If an abandoned operation is still in
// flight and ctx ends before it is answered, Rollback closes the connection:
// that is the only way to make sure the operation cannot run after the
// transaction has ended, outside it.
func (tx *Tx) Rollback(ctx context.Context) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.state != txActive {
		return nil
	}
	if err := tx.ready(ctx); err != nil {
		if tx.state == txLost {
			return nil
		}
		tx.conn.fail(fmt.Errorf("transaction %d abandoned with an operation in flight", tx.id))
		tx.markLost(tx.conn.err())
		return nil
	}
	ch, err := tx.conn.send(&wire.TxEndRequest{TxID: tx.id, Commit: false}, nil)
	if err != nil {
		tx.markLost(err)
		return nil
	}
	tx.state = txEnded
	select {
	case r := <-ch:
		if r.err != nil {
			return nil // the connection ended: rolled back by the server
		}
		return finish(wire.OpTxEnd, r, nil)
	case <-ctx.Done():
		return ctx.Err()
	}
}
