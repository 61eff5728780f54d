// Package mvcc holds etcd's semantics — revisions, versions, compares, ranges,
// watches, leases, compaction — written once over the small transactional
// Engine interface (engine.go).
//
// Flow: server/ validates a request and calls Store. Writes go to the node's
// one writer (writer.go), which groups pending requests into one pessimistic
// engine transaction that locks the revision counter, evaluates each request
// against the state at that counter, and writes kv, revlog and the counter
// (the history table is compaction's: compact.go). Every committed revision
// reaches the in-memory index (index.go, key_index.go) and the watchers
// (watchable.go) through the feed (feed.go: engine subscription → ordering
// → safeinterval), strictly in revision order, each revision once: the
// node's own groups as soon as their commit returns, other nodes' through
// the change notifications, confirmed by the counter (records.go says why a
// revlog entry alone is not trusted). Reads are served from the index
// (kvstore_read.go).
package mvcc
