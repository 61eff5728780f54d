package wire

import (
	"fmt"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
)

// TopologyVersion is an affinity topology version (reference 2.3).
type TopologyVersion struct {
	Major int64
	Minor int32
}

// RequestHeader is what precedes every request payload (reference 2.2).
type RequestHeader struct {
	Op    Op
	ReqID int64
}

// DecodeRequestHeader splits a request body into header and payload.
func DecodeRequestHeader(body []byte) (RequestHeader, []byte, error) {
	r := ib.NewReader(body)
	h := RequestHeader{Op: Op(r.I16()), ReqID: r.I64()}
	if r.Err() != nil {
		return RequestHeader{}, nil, fmt.Errorf("ignite/wire: request header: %w", r.Err())
	}
	return h, r.Rest(), nil
}

// Response is a decoded server frame after the handshake: a response to a
// request, or (Flags&FlagNotification) a notification whose ReqID is the id of
// the resource that produced it.
type Response struct {
	ReqID int64
	Flags int16
	// Topology is set when Flags has FlagTopologyChanged.
	Topology *TopologyVersion
	// NotificationOp is set on notifications.
	NotificationOp Op
	// Status and Message are set when Flags has FlagError (or, on legacy
	// pre-1.4.0 headers, when the status is not 0).
	Status  int32
	Message string
	// Payload is what follows the header; empty for errors.
	Payload []byte
}

// IsNotification reports whether the frame is a server notification.
func (r *Response) IsNotification() bool { return r.Flags&FlagNotification != 0 }

// IsError reports whether the frame carries an error status.
func (r *Response) IsError() bool { return r.Flags&FlagError != 0 }

// DecodeResponse parses a server frame body (reference 2.6). With hasFlags
// false it reads the legacy pre-1.4.0 header. An error response must not
// carry bytes after its message.
func DecodeResponse(body []byte, hasFlags bool) (Response, error) {
	var resp Response
	r := ib.NewReader(body)
	resp.ReqID = r.I64()
	if !hasFlags {
		resp.Status = r.I32()
		if r.Err() == nil && resp.Status != StatusSuccess {
			resp.Flags = FlagError
			if msg := r.NullableString(); msg != nil {
				resp.Message = *msg
			}
			if err := r.End(); err != nil {
				return Response{}, fmt.Errorf("ignite/wire: response: %w", err)
			}
			return resp, nil
		}
		resp.Payload = r.Rest()
		if r.Err() != nil {
			return Response{}, fmt.Errorf("ignite/wire: response: %w", r.Err())
		}
		return resp, nil
	}
	resp.Flags = r.I16()
	if r.Err() == nil && resp.Flags&^(FlagError|FlagTopologyChanged|FlagNotification) != 0 {
		r.Fail("unknown response flags %#04x", resp.Flags)
	}
	if resp.Flags&FlagNotification != 0 {
		if resp.Flags&FlagTopologyChanged != 0 {
			r.Fail("notification with a topology version")
		}
		resp.NotificationOp = Op(r.I16())
	} else if resp.Flags&FlagTopologyChanged != 0 {
		resp.Topology = &TopologyVersion{Major: r.I64(), Minor: r.I32()}
	}
	if resp.Flags&FlagError != 0 {
		resp.Status = r.I32()
		if msg := r.NullableString(); msg != nil {
			resp.Message = *msg
		}
		if err := r.End(); err != nil {
			return Response{}, fmt.Errorf("ignite/wire: response: %w", err)
		}
		return resp, nil
	}
	resp.Payload = r.Rest()
	if r.Err() != nil {
		return Response{}, fmt.Errorf("ignite/wire: response: %w", r.Err())
	}
	return resp, nil
}

// EncodeResponse returns the frame of a response or notification. Flags is
// derived: FlagError from Status != 0, FlagTopologyChanged from Topology,
// FlagNotification from NotificationOp != 0. With hasFlags false it writes the
// legacy header (no notifications, no topology).
func EncodeResponse(resp *Response, hasFlags bool) []byte {
	w := BeginFrame()
	w.I64(resp.ReqID)
	if !hasFlags {
		w.I32(resp.Status)
		if resp.Status != StatusSuccess {
			w.String(resp.Message)
		} else {
			w.RawBytes(resp.Payload)
		}
		return EndFrame(w)
	}
	var flags int16
	if resp.Status != StatusSuccess {
		flags |= FlagError
	}
	if resp.NotificationOp != 0 {
		flags |= FlagNotification
	} else if resp.Topology != nil {
		flags |= FlagTopologyChanged
	}
	w.I16(flags)
	if resp.NotificationOp != 0 {
		w.I16(int16(resp.NotificationOp))
	} else if resp.Topology != nil {
		w.I64(resp.Topology.Major)
		w.I32(resp.Topology.Minor)
	}
	if resp.Status != StatusSuccess {
		w.I32(resp.Status)
		w.String(resp.Message)
	} else {
		w.RawBytes(resp.Payload)
	}
	return EndFrame(w)
}
