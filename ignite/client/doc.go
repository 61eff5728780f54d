// Package client is a thin client for Apache Ignite 2.x clusters, written for
// ignetcd's storage engine (ignite/engine) but usable on its own.
//
// A Client holds one connection at a time to one of its endpoints and
// reconnects (to the next endpoint, with backoff) when that connection is
// lost. Requests from any number of goroutines are multiplexed on it by
// request id; one reader goroutine demultiplexes responses and continuous-query
// notifications and never waits for a consumer.
//
// What a connection loss means to callers:
//   - every request in flight fails at once with an error matching
//     ErrConnectionLost (and ErrUnavailable);
//   - a Tx is bound to the connection that started it: after a loss every
//     operation on it fails with ErrConnectionLost and the server has rolled
//     it back; a Commit in flight at that moment fails with ErrCommitUnknown
//     too. A Tx is never carried over to a new connection, because the server
//     runs an operation whose tx id it does not know outside any transaction;
//   - a ContinuousQuery reports the loss once through its onLost callback,
//     after delivering everything received before it; events during the
//     outage are gone, so the caller resubscribes and re-reads.
//
// Ignite keeps transactions, cursors and continuous queries per connection,
// and two transactions sharing a connection run far slower than two
// connections (ignetcd design, section 3). Give each concurrent writer,
// the readers and the change feed a Client of their own.
//
// Keys and values are Go values mapped to Ignite types as described in
// ignite/binary. ignetcd uses []byte keys (type byte[]): the server compares
// and hashes them by content, so equal etcd keys always meet in the same entry.
package client
