package wire

import (
	"fmt"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
)

// ClientTypeThin is the client type of a thin client in the handshake.
const ClientTypeThin int8 = 2

// handshakeCode is the first byte of every handshake request.
const handshakeCode = 1

// Handshake is the first message of a connection (reference 3.1).
type Handshake struct {
	Version    Version
	ClientType int8
	// Features is sent (and mandatory) from 1.7.0 on.
	Features Features
	// UserAttributes is sent only when Features has FeatureUserAttributes:
	// nil is sent as null, otherwise a typed map (its Kind and entry order are
	// kept).
	UserAttributes *ib.Map
	// Username and Password are sent (both or neither) from 1.1.0 on when
	// Username is not nil.
	Username, Password *string
}

// Encode appends the handshake frame (length prefix included).
func (h *Handshake) Encode() ([]byte, error) {
	w := BeginFrame()
	w.I8(handshakeCode)
	w.I16(h.Version.Major)
	w.I16(h.Version.Minor)
	w.I16(h.Version.Patch)
	w.I8(h.ClientType)
	if h.Version.AtLeast(V1_7_0) {
		w.ByteArray(h.Features)
		if h.Features.Has(FeatureUserAttributes) {
			if h.UserAttributes == nil {
				w.Null()
			} else if err := w.Object(*h.UserAttributes); err != nil {
				return nil, err
			}
		}
	}
	if h.Username != nil {
		if !h.Version.AtLeast(V1_1_0) {
			return nil, fmt.Errorf("ignite/wire: credentials need protocol 1.1.0, have %s", h.Version)
		}
		w.NullableString(h.Username)
		w.NullableString(h.Password)
	}
	return EndFrame(w), nil
}

// HandshakeFault says how a server should treat an undecodable handshake.
type HandshakeFault int

const (
	// HandshakeMalformed: the body cannot be parsed; a real server sends
	// nothing and closes the socket (after its handshake timeout).
	HandshakeMalformed HandshakeFault = iota + 1
	// HandshakeBadPrefix: not a thin-protocol handshake of major version 1;
	// the captured 2.19 server closes the socket at once without a reply.
	HandshakeBadPrefix
)

// HandshakeError is returned by DecodeHandshake.
type HandshakeError struct {
	Fault HandshakeFault
	Err   error
}

func (e *HandshakeError) Error() string { return "ignite/wire: handshake: " + e.Err.Error() }
func (e *HandshakeError) Unwrap() error { return e.Err }

// DecodeHandshake parses a handshake body (without the length prefix) the way
// a 2.19 server does. Like the server, it parses the fields after the client
// type only for a version in ServerVersions and a thin client type; otherwise
// it returns the version and client type alone, and rejecting them is the
// caller's business.
func DecodeHandshake(body []byte) (Handshake, error) {
	var h Handshake
	if len(body) < 3 || body[0] != handshakeCode || body[1] != 1 || body[2] != 0 {
		return h, &HandshakeError{HandshakeBadPrefix, fmt.Errorf("%w: not a major-1 handshake", ib.ErrMalformed)}
	}
	r := ib.NewReader(body)
	r.I8()
	h.Version = Version{r.I16(), r.I16(), r.I16()}
	h.ClientType = r.I8()
	if r.Err() != nil {
		return Handshake{}, &HandshakeError{HandshakeMalformed, r.Err()}
	}
	if !IsServerVersion(h.Version) || h.ClientType != ClientTypeThin {
		return h, nil
	}
	if h.Version.AtLeast(V1_7_0) {
		h.Features = Features(r.ByteArray())
		if r.Err() == nil && h.Features.Has(FeatureUserAttributes) {
			if r.PeekNull() {
				r.U8()
			} else {
				v := r.Object()
				m, ok := v.(ib.Map)
				if r.Err() == nil && !ok {
					r.Fail("user attributes are %T, not a map", v)
				}
				h.UserAttributes = &m
			}
		}
	}
	if r.Err() == nil && r.Remaining() > 0 && h.Version.AtLeast(V1_1_0) {
		h.Username = r.NullableString()
		h.Password = r.NullableString()
		if h.Username == nil {
			// Encode cannot express a null user name followed by a password;
			// keep the distinction out of the model.
			h.Password = nil
		}
	}
	if err := r.End(); err != nil {
		return Handshake{}, &HandshakeError{HandshakeMalformed, err}
	}
	return h, nil
}

// HandshakeReply is the server's answer to a handshake (reference 3.2, 3.3).
type HandshakeReply struct {
	Success bool
	// On success: the negotiated features (1.7.0+) and the server node id
	// (1.4.0+).
	Features Features
	NodeID   ib.UUID
	// On failure: the server's preferred version (0.0.0 for authentication
	// failures), a message, and a status (sent only when the proposed version
	// is 1.1.0 or newer; decoded as StatusFailed otherwise).
	ServerVersion Version
	Message       string
	Status        int32
}

// Encode returns the reply frame for a handshake that proposed version v.
func (h *HandshakeReply) Encode(v Version) []byte {
	w := BeginFrame()
	w.Bool(h.Success)
	if h.Success {
		if v.AtLeast(V1_7_0) {
			w.ByteArray(h.Features)
		}
		if v.AtLeast(V1_4_0) {
			w.UUID(h.NodeID)
		}
		return EndFrame(w)
	}
	w.I16(h.ServerVersion.Major)
	w.I16(h.ServerVersion.Minor)
	w.I16(h.ServerVersion.Patch)
	w.String(h.Message)
	if v.AtLeast(V1_1_0) {
		w.I32(h.Status)
	}
	return EndFrame(w)
}

// DecodeHandshakeReply parses the reply body to a handshake that proposed v.
func DecodeHandshakeReply(body []byte, v Version) (HandshakeReply, error) {
	var h HandshakeReply
	r := ib.NewReader(body)
	h.Success = r.Bool()
	if h.Success {
		if v.AtLeast(V1_7_0) {
			h.Features = Features(r.ByteArray())
		}
		if v.AtLeast(V1_4_0) {
			if r.PeekNull() {
				r.U8()
			} else {
				h.NodeID = r.UUID()
			}
		}
	} else {
		h.ServerVersion = Version{r.I16(), r.I16(), r.I16()}
		if msg := r.NullableString(); msg != nil {
			h.Message = *msg
		}
		h.Status = StatusFailed
		// Like the Java client, read the status whenever it is there.
		if r.Remaining() >= 4 {
			h.Status = r.I32()
		}
	}
	if err := r.End(); err != nil {
		return HandshakeReply{}, fmt.Errorf("ignite/wire: handshake reply: %w", err)
	}
	return h, nil
}
