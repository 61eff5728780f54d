// Package wire holds the Apache Ignite 2.x thin-client protocol above the
// binary format: frames, the handshake, protocol versions and the feature
// bitmask, request and response headers, notifications, op and status codes,
// and the payload of every operation ignetcd uses.
//
// The codec is symmetric: each request type can be encoded (ignite/client) and
// decoded (ignite/ignitetest), and each response payload likewise, so the test
// double speaks exactly the bytes the client does. Decoders mirror what a
// real 2.19 server accepts: where the server would fail to parse a request
// (and therefore close the connection without a reply), DecodeRequest returns
// an error wrapping binary.ErrMalformed. They never panic on any input.
//
// On the server side, keys and values in decoded requests are binary.Raw (the
// exact bytes the client sent); on the client side response values are decoded
// into Go values (see ignite/binary).
//
// The wire reference is /work/shared/docs/ignite-thin-protocol.md; section
// numbers in comments refer to it.
package wire
