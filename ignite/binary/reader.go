package binary

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrMalformed is wrapped by every decoding error caused by the input bytes.
var ErrMalformed = errors.New("ignite/binary: malformed data")

// MaxDepth bounds the nesting of collections, maps and arrays the codec reads
// or writes, so that hostile input cannot exhaust the stack.
const MaxDepth = 64

// Reader reads little-endian fields and typed values from a byte slice. The
// first failure is sticky: later reads return zero values and Err reports it.
// Slices it returns alias the input.
type Reader struct {
	buf []byte
	pos int
	err error
}

// NewReader returns a reader over b.
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Err returns the first error met, or nil.
func (r *Reader) Err() error { return r.err }

// Pos returns the read position.
func (r *Reader) Pos() int { return r.pos }

// Remaining returns the number of unread bytes (0 after an error).
func (r *Reader) Remaining() int {
	if r.err != nil {
		return 0
	}
	return len(r.buf) - r.pos
}

// Rest returns the unread bytes and consumes them.
func (r *Reader) Rest() []byte {
	if r.err != nil {
		return nil
	}
	b := r.buf[r.pos:]
	r.pos = len(r.buf)
	return b
}

// Fail records err (wrapped with ErrMalformed) unless an error is already set.
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s (at byte %d)", ErrMalformed, fmt.Sprintf(format, args...), r.pos)
	}
}

// End fails the reader if unread bytes remain, and returns Err. Decoders of
// whole messages call it so that trailing garbage is an error.
func (r *Reader) End() error {
	if r.err == nil && r.pos != len(r.buf) {
		r.Fail("%d unexpected trailing bytes", len(r.buf)-r.pos)
	}
	return r.err
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.buf)-r.pos {
		r.Fail("need %d bytes, have %d", n, len(r.buf)-r.pos)
		return nil
	}
	b := r.buf[r.pos : r.pos+n : r.pos+n]
	r.pos += n
	return b
}

// Bytes reads n raw bytes.
func (r *Reader) Bytes(n int) []byte { return r.take(n) }

func (r *Reader) U8() byte {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}
func (r *Reader) I8() int8 { return int8(r.U8()) }
func (r *Reader) I16() int16 {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return int16(binary.LittleEndian.Uint16(b))
}
func (r *Reader) I32() int32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return int32(binary.LittleEndian.Uint32(b))
}
func (r *Reader) I64() int64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(b))
}
func (r *Reader) F32() float32 { return math.Float32frombits(uint32(r.I32())) }
func (r *Reader) F64() float64 { return math.Float64frombits(uint64(r.I64())) }

// Bool reads a raw bool. Any non-zero byte is true, as in Java.
func (r *Reader) Bool() bool { return r.U8() != 0 }

// Count reads an i32 element count and checks that count elements of at least
// minSize bytes each can still be in the input, so that a hostile count never
// makes the caller allocate more than the input could fill.
func (r *Reader) Count(minSize int) int {
	n := r.I32()
	if r.err != nil {
		return 0
	}
	if n < 0 {
		r.Fail("negative count %d", n)
		return 0
	}
	if minSize < 1 {
		minSize = 1
	}
	if int64(n)*int64(minSize) > int64(len(r.buf)-r.pos) {
		r.Fail("count %d of %d-byte elements exceeds the %d remaining bytes", n, minSize, len(r.buf)-r.pos)
		return 0
	}
	return int(n)
}

// RawUUID reads 16 bytes of UUID without a type code.
func (r *Reader) RawUUID() UUID {
	msb := r.I64()
	lsb := r.I64()
	return UUIDFromHalves(msb, lsb)
}

// expect reads a type code and fails unless it is code.
func (r *Reader) expect(code byte, what string) bool {
	c := r.U8()
	if r.err != nil {
		return false
	}
	if c != code {
		r.Fail("%s: type code %d, want %d", what, c, code)
		return false
	}
	return true
}

// String reads a typed string (code 9). Null is an error; use NullableString.
func (r *Reader) String() string {
	if !r.expect(TypeString, "string") {
		return ""
	}
	return string(r.take(r.Count(1)))
}

// NullableString reads a typed string or null.
func (r *Reader) NullableString() *string {
	if r.err != nil {
		return nil
	}
	if r.pos < len(r.buf) && r.buf[r.pos] == TypeNull {
		r.pos++
		return nil
	}
	s := r.String()
	if r.err != nil {
		return nil
	}
	return &s
}

// ByteArray reads a typed byte[] (code 12).
func (r *Reader) ByteArray() []byte {
	if !r.expect(TypeByteArray, "byte[]") {
		return nil
	}
	n := r.Count(1)
	return r.take(n)
}

// UUID reads a typed UUID.
func (r *Reader) UUID() UUID {
	if !r.expect(TypeUUID, "UUID") {
		return UUID{}
	}
	return r.RawUUID()
}

// PeekNull reports whether the next typed value is null, without consuming it.
func (r *Reader) PeekNull() bool {
	return r.err == nil && r.pos < len(r.buf) && r.buf[r.pos] == TypeNull
}

// Object reads one typed value and returns it as the Go type listed in the
// package documentation.
func (r *Reader) Object() any {
	return r.object(0)
}

// Raw reads one typed value, validating it completely, and returns its bytes.
func (r *Reader) Raw() Raw {
	start := r.pos
	r.object(0)
	if r.err != nil {
		return nil
	}
	return Raw(r.buf[start:r.pos:r.pos])
}

func (r *Reader) object(depth int) any {
	if depth > MaxDepth {
		r.Fail("value nested deeper than %d", MaxDepth)
		return nil
	}
	start := r.pos
	code := r.U8()
	if r.err != nil {
		return nil
	}
	switch code {
	case TypeNull:
		return nil
	case TypeByte:
		return r.I8()
	case TypeShort:
		return r.I16()
	case TypeInt:
		return r.I32()
	case TypeLong:
		return r.I64()
	case TypeFloat:
		return r.F32()
	case TypeDouble:
		return r.F64()
	case TypeChar:
		return Char(r.I16())
	case TypeBool:
		return r.Bool()
	case TypeString:
		return string(r.take(r.Count(1)))
	case TypeUUID:
		return r.RawUUID()
	case TypeDate:
		return Date(r.I64())
	case TypeTime:
		return Time(r.I64())
	case TypeTimestamp:
		ms := r.I64()
		ns := r.I32()
		return Timestamp{Millis: ms, Nanos: ns}
	case TypeDecimal:
		scale := r.I32()
		mag := r.take(r.Count(1))
		return Decimal{Scale: scale, Magnitude: mag}
	case TypeByteArray:
		return r.take(r.Count(1))
	case TypeShortArray:
		n := r.Count(2)
		out := make([]int16, n)
		for i := range out {
			out[i] = r.I16()
		}
		return out
	case TypeIntArray:
		n := r.Count(4)
		out := make([]int32, n)
		for i := range out {
			out[i] = r.I32()
		}
		return out
	case TypeLongArray:
		n := r.Count(8)
		out := make([]int64, n)
		for i := range out {
			out[i] = r.I64()
		}
		return out
	case TypeFloatArray:
		n := r.Count(4)
		out := make([]float32, n)
		for i := range out {
			out[i] = r.F32()
		}
		return out
	case TypeDoubleArray:
		n := r.Count(8)
		out := make([]float64, n)
		for i := range out {
			out[i] = r.F64()
		}
		return out
	case TypeCharArray:
		n := r.Count(2)
		out := make([]Char, n)
		for i := range out {
			out[i] = Char(r.I16())
		}
		return out
	case TypeBoolArray:
		n := r.Count(1)
		out := make([]bool, n)
		for i := range out {
			out[i] = r.Bool()
		}
		return out
	case TypeStringArray, TypeUUIDArray, TypeDateArray, TypeDecimalArray, TypeTimestampArr, TypeTimeArray:
		elem, _ := arrayElem(code)
		n := r.Count(1)
		a := Array{Code: code, Items: make([]any, n)}
		for i := range a.Items {
			if r.PeekNull() {
				r.pos++
				continue
			}
			if r.err == nil && r.pos < len(r.buf) && r.buf[r.pos] != elem {
				r.Fail("element of array type %d has type code %d", code, r.buf[r.pos])
			}
			a.Items[i] = r.object(depth + 1)
		}
		return a
	case TypeObjectArray, TypeEnumArray:
		a := ObjectArray{Code: code}
		a.TypeID, a.ClassName = r.typeRef()
		n := r.Count(1)
		a.Items = make([]any, n)
		for i := range a.Items {
			a.Items[i] = r.object(depth + 1)
		}
		return a
	case TypeCollection:
		n := r.Count(1)
		c := Collection{Kind: r.I8(), Items: make([]any, n)}
		for i := range c.Items {
			c.Items[i] = r.object(depth + 1)
		}
		return c
	case TypeMap:
		n := r.Count(2)
		m := Map{Kind: r.I8(), Entries: make([]MapEntry, n)}
		for i := range m.Entries {
			m.Entries[i].Key = r.object(depth + 1)
			m.Entries[i].Value = r.object(depth + 1)
		}
		return m
	case TypeEnum, TypeBinaryEnum:
		e := Enum{Binary: code == TypeBinaryEnum}
		e.TypeID, e.ClassName = r.typeRef()
		e.Ordinal = r.I32()
		return e
	case TypeClass:
		var c Class
		c.TypeID, c.ClassName = r.typeRef()
		return c
	case TypeWrapped:
		n := r.Count(1)
		data := r.take(n)
		off := r.I32()
		if r.err == nil {
			if off < 0 || int(off) >= len(data) {
				r.Fail("wrapped object offset %d outside %d bytes", off, len(data))
				return nil
			}
			if _, err := ParseObjectHeader(data[off:]); err != nil {
				r.Fail("wrapped object: %v", err)
				return nil
			}
		}
		return Wrapped{Data: data, Offset: off}
	case TypeHandle:
		off := r.I32()
		if r.err == nil && (off <= 0 || int(off) > start) {
			// A handle points back into the enclosing value; it cannot point
			// forward or before the start of the input.
			r.Fail("handle offset %d", off)
		}
		return Handle(off)
	case TypeComplexObject:
		r.pos = start
		h, err := ParseObjectHeader(r.buf[start:])
		if err != nil {
			r.Fail("%v", err)
			return nil
		}
		return Object(r.take(int(h.TotalLength)))
	default:
		r.Fail("unsupported type code %d", code)
		return nil
	}
}

// typeRef reads an i32 type id and, when it is 0, the typed class name.
func (r *Reader) typeRef() (int32, string) {
	id := r.I32()
	if r.err != nil || id != 0 {
		return id, ""
	}
	return 0, r.String()
}

// Decode decodes exactly one typed value from b.
func Decode(b []byte) (any, error) {
	r := NewReader(b)
	v := r.Object()
	if err := r.End(); err != nil {
		return nil, err
	}
	return v, nil
}

// ObjectHeader is the 24-byte header of a complex object (reference 4.5).
type ObjectHeader struct {
	Version      byte
	Flags        int16
	TypeID       int32
	HashCode     int32
	TotalLength  int32
	SchemaID     int32
	SchemaOffset int32
}

// Complex-object header flags.
const (
	ObjUserType      int16 = 0x0001
	ObjHasSchema     int16 = 0x0002
	ObjHasRaw        int16 = 0x0004
	ObjOffsetOneByte int16 = 0x0008
	ObjOffsetTwoByte int16 = 0x0010
	ObjCompactFooter int16 = 0x0020
)

// ObjectHeaderSize is the size of a complex-object header.
const ObjectHeaderSize = 24

// ParseObjectHeader reads and checks the header of the complex object at the
// start of b: type code 103, version 1, a total length that fits b and a
// schema offset inside the object.
func ParseObjectHeader(b []byte) (ObjectHeader, error) {
	var h ObjectHeader
	if len(b) < ObjectHeaderSize {
		return h, fmt.Errorf("%w: complex object shorter than its header", ErrMalformed)
	}
	if b[0] != TypeComplexObject {
		return h, fmt.Errorf("%w: complex object with type code %d", ErrMalformed, b[0])
	}
	le := binary.LittleEndian
	h.Version = b[1]
	h.Flags = int16(le.Uint16(b[2:]))
	h.TypeID = int32(le.Uint32(b[4:]))
	h.HashCode = int32(le.Uint32(b[8:]))
	h.TotalLength = int32(le.Uint32(b[12:]))
	h.SchemaID = int32(le.Uint32(b[16:]))
	h.SchemaOffset = int32(le.Uint32(b[20:]))
	if h.Version != 1 {
		return h, fmt.Errorf("%w: complex object format version %d", ErrMalformed, h.Version)
	}
	if h.TotalLength < ObjectHeaderSize || int64(h.TotalLength) > int64(len(b)) {
		return h, fmt.Errorf("%w: complex object length %d (have %d bytes)", ErrMalformed, h.TotalLength, len(b))
	}
	if h.SchemaOffset < ObjectHeaderSize || h.SchemaOffset > h.TotalLength {
		return h, fmt.Errorf("%w: complex object schema offset %d outside length %d", ErrMalformed, h.SchemaOffset, h.TotalLength)
	}
	return h, nil
}
