package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
)

// DefaultMaxFrame bounds the frames ReadFrame accepts unless told otherwise
// (2.19 servers apply the same 64 MiB bound to a first message).
const DefaultMaxFrame = 64 << 20

// ErrFrame is wrapped by errors about a frame's length prefix.
var ErrFrame = fmt.Errorf("%w: bad frame", ib.ErrMalformed)

// ReadFrame reads one length-prefixed message and returns its body (the bytes
// after the i32 prefix). A length that is not positive or exceeds max is an
// error wrapping ErrFrame; a short read returns the reader's error
// (io.ErrUnexpectedEOF mid-frame). Memory grows with the bytes actually
// received, so a hostile length cannot force a large allocation up front.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	var prefix [4]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return nil, err
	}
	n := int32(binary.LittleEndian.Uint32(prefix[:]))
	if n <= 0 || (max > 0 && int64(n) > int64(max)) {
		return nil, fmt.Errorf("%w: length %d (limit %d)", ErrFrame, n, max)
	}
	const direct = 64 << 10
	if n <= direct {
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return body, nil
	}
	var buf bytes.Buffer
	buf.Grow(direct)
	m, err := io.CopyN(&buf, r, int64(n))
	if m != int64(n) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf.Bytes(), nil
}

// BeginFrame returns a writer holding a placeholder length prefix; write the
// body and call EndFrame.
func BeginFrame() *ib.Writer { return beginFrameIn(make([]byte, 0, 64)) }

func beginFrameIn(buf []byte) *ib.Writer {
	w := ib.NewWriter(buf)
	w.I32(0)
	return w
}

// EndFrame patches the length prefix and returns the complete frame.
func EndFrame(w *ib.Writer) []byte {
	w.PutI32At(0, int32(w.Len()-4))
	return w.Bytes()
}
