// Package ignitetest is an in-process test double for an Apache Ignite 2.x
// cluster: a TCP server on 127.0.0.1 that speaks the thin-client protocol
// (through the same ignite/wire codec as ignite/client) over a small
// in-memory store. It exists for tests only and is never a substitute for
// Ignite: it has no durability, no replication, no SQL, no real partitioning
// and none of Ignite's failure modes beyond the ones injected on purpose.
//
// What it models, because ignetcd depends on it:
//   - the handshake: versions 1.0.0 to 1.7.0 exactly, rejection replies with
//     the server's preferred version, silent close for non-major-1 or
//     malformed handshakes, the feature mask, optional authentication;
//   - response headers with the topology-changed block on a connection's
//     first response and after cache creation/destruction; requests handled
//     concurrently, so responses come back in any order; a request that does
//     not parse closes the connection without a reply;
//   - named caches (PARTITIONED/REPLICATED, TRANSACTIONAL/ATOMIC) and the
//     key-value ops ignite/client uses, with Ignite's status codes and (as far
//     as known) messages; byte-exact key identity;
//   - transactions: PESSIMISTIC locks taken on first write and on reads under
//     REPEATABLE_READ/SERIALIZABLE, with waiters blocking until the holder
//     ends; OPTIMISTIC locks taken at commit (SERIALIZABLE validates reads);
//     tx timeouts that roll back; write sets applied atomically on commit;
//     rollback of every open transaction when its connection closes; an op
//     carrying an unknown tx id runs outside any transaction, as on a real
//     server; ops on ATOMIC caches inside a tx fail as on 2.16+;
//   - scan cursors with paging and release, continuous queries whose events
//     go out after commit, through Options.Partitions delivery goroutines
//     (keys hashed to them), so events of different keys can overtake each
//     other while events of one key stay in order;
//   - fault injection: drop connections, stop and restart nodes (data is
//     kept), pause, delay and reorder notifications, fail the next commit,
//     hold reads outside transactions of one cache (HoldReads).
//
// Options.Nodes > 1 gives several listeners over one store, which is how a
// client sees a multi-node cluster for failover purposes.
package ignitetest
