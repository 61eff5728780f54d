package client

import (
	"errors"
	"fmt"

	"github.com/ignetcd/ignetcd/ignite/wire"
)

type sentinel struct {
	msg    string
	parent error
}

func (s *sentinel) Error() string { return s.msg }
func (s *sentinel) Unwrap() error { return s.parent }

var (
	// ErrUnavailable matches every error caused by the cluster being out of
	// reach: a lost connection or no endpoint accepting one. The operation was
	// not applied, unless the error also matches ErrCommitUnknown.
	ErrUnavailable error = &sentinel{msg: "ignite: unavailable"}
	// ErrConnectionLost matches errors of requests whose connection broke
	// before their response arrived, and of every later use of a Tx, cursor
	// or continuous query bound to that connection. It also matches
	// ErrUnavailable.
	ErrConnectionLost error = &sentinel{msg: "ignite: connection lost", parent: ErrUnavailable}
	// ErrNoEndpoint matches errors from failing to connect to any endpoint.
	// It also matches ErrUnavailable.
	ErrNoEndpoint error = &sentinel{msg: "ignite: no endpoint reachable", parent: ErrUnavailable}
	// ErrCommitUnknown marks a Commit whose outcome is unknown: the
	// connection broke (or the caller gave up) while TX_END was in flight.
	ErrCommitUnknown = errors.New("ignite: commit outcome unknown")
	// ErrClosed is returned after Client.Close.
	ErrClosed = errors.New("ignite: client closed")
	// ErrTxDone is returned by operations on a committed or rolled-back Tx.
	ErrTxDone = errors.New("ignite: transaction already ended")
	// ErrProtocol matches errors about server frames this client cannot make
	// sense of.
	ErrProtocol = errors.New("ignite: protocol error")
)

// StatusError is an error response from the server: Ignite's status code and
// message for one operation.
type StatusError struct {
	Op      wire.Op
	Status  int32
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("ignite: %s failed: status %d: %s", e.Op, e.Status, e.Message)
}

// IsStatus reports whether err carries the given Ignite status code.
func IsStatus(err error, status int32) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == status
}

// HandshakeError is a handshake the server rejected. Status is
// wire.StatusAuthFailed for bad or missing credentials.
type HandshakeError struct {
	Endpoint      string
	Proposed      wire.Version
	ServerVersion wire.Version
	Status        int32
	Message       string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("ignite: handshake with %s (protocol %s) rejected: status %d: %s (server prefers %s)",
		e.Endpoint, e.Proposed, e.Status, e.Message, e.ServerVersion)
}

func lostError(endpoint string, cause error) error {
	return fmt.Errorf("%w: %s: %w", ErrConnectionLost, endpoint, cause)
}
