package mvcc

import (
	"context"
	"errors"
)

// Engine is the small transactional key-value store that etcd semantics are
// written over (design brief section 8). Ignite implements it with the thin
// client (package ignite/engine); memengine implements it in process. Keys
// and values are opaque bytes whose equality is byte-exact.
//
// The interface is declared here, by its user, so that nothing in this package
// or in server/ ever depends on an engine's types.
type Engine interface {
	// CreateTables creates the tables that do not exist yet. The store calls
	// it once, at Open, before any transaction: on Ignite, creating a cache
	// waits for every open transaction to end (a partition map exchange),
	// so a transaction that created one would wait for itself until its
	// timeout. Other calls may not create tables.
	CreateTables(ctx context.Context, tables ...string) error
	// Begin starts a pessimistic, repeatable-read transaction. Every key read
	// through it is locked until Commit or Rollback; a second transaction
	// reading the same key waits. A transaction is used by one goroutine.
	Begin(ctx context.Context) (Txn, error)
	// GetAll reads committed values without taking locks; the result has one
	// element per key, nil where the key is absent.
	GetAll(ctx context.Context, table string, keys [][]byte) ([][]byte, error)
	// Scan calls fn for every committed entry of table, in no particular
	// order and not as a snapshot: entries committed during the scan may or
	// may not be seen. fn's arguments are only valid during the call.
	Scan(ctx context.Context, table string, fn func(key, value []byte) error) error
	// Subscribe delivers every put committed on table after Subscribe returns
	// to onPut, in any order, possibly more than once. onPut must not block.
	// If the subscription breaks (connection lost, node failure), onLost is
	// called once and no further puts are delivered: the caller resubscribes
	// and fills the gap by reading. Cancel stops delivery.
	Subscribe(ctx context.Context, table string, onPut func(key, value []byte), onLost func(error)) (Subscription, error)
	// Close releases the engine's connections.
	Close() error
}

// Txn is one pessimistic engine transaction. Nothing it writes is visible to
// others before Commit; after a failed Commit nothing of it is.
type Txn interface {
	// GetAll reads and locks keys; one element per key, nil where absent.
	GetAll(ctx context.Context, table string, keys [][]byte) ([][]byte, error)
	PutAll(ctx context.Context, table string, entries []Entry) error
	// Replace sets key to value only if it currently holds expected (nil:
	// absent), and reports whether it did. The write path sets the revision
	// counter with it, so that a write the engine applies late, outside
	// its transaction (see ignite/NOTES.md), can never move it backwards.
	Replace(ctx context.Context, table string, key, expected, value []byte) (bool, error)
	RemoveAll(ctx context.Context, table string, keys [][]byte) error
	Commit(ctx context.Context) error
	// Rollback discards the transaction; it is safe after a failed Commit.
	Rollback(ctx context.Context) error
}

// Entry is one key and value to write.
type Entry struct {
	Key, Value []byte
}

// Subscription is a running Subscribe.
type Subscription interface {
	// GetAll is Engine.GetAll over the subscription's own connection: the
	// change feed reads what it was told of there, so that its reads and
	// the readers' requests never queue behind each other (design brief
	// section 3: the writer, the readers and the feed use separate
	// connections).
	GetAll(ctx context.Context, table string, keys [][]byte) ([][]byte, error)
	Cancel()
}

// ErrEngineUnavailable marks errors where the engine could not be reached or
// the connection broke; the operation was not applied (for a write that was
// not yet committing) and may be retried. Engines wrap their connection errors
// with it so that errors.Is works.
var ErrEngineUnavailable = errors.New("storage engine unavailable")

// ErrCommitUnknown marks a commit whose outcome is unknown (the connection
// broke while the commit was in flight). Engines wrap such errors with it.
var ErrCommitUnknown = errors.New("storage engine commit outcome unknown")
