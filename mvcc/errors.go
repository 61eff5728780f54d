package mvcc

import "errors"

// Errors a client can observe. server/ maps each to etcd's gRPC status in
// one table; the messages here are for logs.
var (
	ErrCompacted          = errors.New("mvcc: required revision has been compacted")
	ErrFutureRev          = errors.New("mvcc: required revision is a future revision")
	ErrKeyNotFound        = errors.New("etcdserver: key not found")
	ErrLeaseNotFound      = errors.New("lease not found")
	ErrLeaseExists        = errors.New("lease already exists")
	ErrLeaseTTLTooLarge   = errors.New("too large lease TTL")
	ErrWatcherDuplicateID = errors.New("mvcc: duplicate watch ID provided on the WatchStream")
	ErrEmptyWatcherRange  = errors.New("mvcc: watcher range is empty")
	// ErrStopped is returned once the store is closed.
	ErrStopped = errors.New("mvcc: store stopped")
)
