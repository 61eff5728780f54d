// Package mvcc holds etcd's semantics — revisions, versions, compares, ranges,
// watches, leases, compaction — written once over the small transactional
// Engine interface (engine.go).
//
// Flow: server/ validates a request and calls Store. Writes run as one
// pessimistic engine transaction each (kvstore_txn.go) that locks the revision
// counter, evaluates the request against the state at that counter, and writes
// kv, history, revlog and the counter. Nothing is applied to memory on the
// write path: every committed revision comes back through the change feed
// (feed.go: engine subscription → ordering → safeinterval), which applies it
// to the in-memory index (index.go, key_index.go) and wakes watchers
// (watchable.go) strictly in revision order, each revision once. Reads are
// served from the index (kvstore_read.go).
package mvcc
