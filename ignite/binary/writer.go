package binary

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Writer appends little-endian fields and typed values to a byte slice. The
// zero value is ready to use.
type Writer struct {
	buf []byte
}

// NewWriter returns a writer that appends to buf (which may be nil).
func NewWriter(buf []byte) *Writer { return &Writer{buf: buf} }

// Bytes returns everything written so far.
func (w *Writer) Bytes() []byte { return w.buf }

// Len returns the number of bytes written so far.
func (w *Writer) Len() int { return len(w.buf) }

// Raw fields: just the bytes of the number.

func (w *Writer) I8(v int8)   { w.buf = append(w.buf, byte(v)) }
func (w *Writer) U8(v byte)   { w.buf = append(w.buf, v) }
func (w *Writer) I16(v int16) { w.buf = binary.LittleEndian.AppendUint16(w.buf, uint16(v)) }
func (w *Writer) I32(v int32) { w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(v)) }
func (w *Writer) I64(v int64) { w.buf = binary.LittleEndian.AppendUint64(w.buf, uint64(v)) }
func (w *Writer) F32(v float32) {
	w.buf = binary.LittleEndian.AppendUint32(w.buf, math.Float32bits(v))
}
func (w *Writer) F64(v float64) {
	w.buf = binary.LittleEndian.AppendUint64(w.buf, math.Float64bits(v))
}
func (w *Writer) Bool(v bool) {
	if v {
		w.buf = append(w.buf, 1)
	} else {
		w.buf = append(w.buf, 0)
	}
}

// Bytes appends b verbatim.
func (w *Writer) RawBytes(b []byte) { w.buf = append(w.buf, b...) }

// PutI32At overwrites four bytes at off (used to patch length prefixes).
func (w *Writer) PutI32At(off int, v int32) {
	binary.LittleEndian.PutUint32(w.buf[off:off+4], uint32(v))
}

// Typed values: type code, then the value.

// Null writes the null value (0x65).
func (w *Writer) Null() { w.buf = append(w.buf, TypeNull) }

// String writes a typed string.
func (w *Writer) String(s string) {
	w.buf = append(w.buf, TypeString)
	w.I32(int32(len(s)))
	w.buf = append(w.buf, s...)
}

// NullableString writes a typed string, or null when s is nil.
func (w *Writer) NullableString(s *string) {
	if s == nil {
		w.Null()
		return
	}
	w.String(*s)
}

// ByteArray writes a typed byte[]; a nil slice is written as an empty array,
// not as null (use Null for that).
func (w *Writer) ByteArray(b []byte) {
	w.buf = append(w.buf, TypeByteArray)
	w.I32(int32(len(b)))
	w.buf = append(w.buf, b...)
}

// UUID writes a typed UUID.
func (w *Writer) UUID(u UUID) {
	w.buf = append(w.buf, TypeUUID)
	w.RawUUID(u)
}

// RawUUID writes the 16 bytes of a UUID without a type code.
func (w *Writer) RawUUID(u UUID) {
	w.I64(u.MostSig())
	w.I64(u.LeastSig())
}

// maxLen is the largest element count the format can carry.
const maxLen = math.MaxInt32

func checkLen(n int) error {
	if n > maxLen {
		return fmt.Errorf("ignite/binary: %d elements do not fit an i32 length", n)
	}
	return nil
}

// Object writes v as a typed value; see the package documentation for the
// supported Go types. It fails for other types and for values too large for
// the format, leaving the writer unchanged.
func (w *Writer) Object(v any) error {
	mark := len(w.buf)
	if err := w.object(v, 0); err != nil {
		w.buf = w.buf[:mark]
		return err
	}
	return nil
}

func (w *Writer) object(v any, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("ignite/binary: value nested deeper than %d", MaxDepth)
	}
	switch x := v.(type) {
	case nil:
		w.Null()
	case Raw:
		if len(x) == 0 {
			return fmt.Errorf("ignite/binary: empty Raw value")
		}
		w.RawBytes(x)
	case int8:
		w.U8(TypeByte)
		w.I8(x)
	case int16:
		w.U8(TypeShort)
		w.I16(x)
	case int32:
		w.U8(TypeInt)
		w.I32(x)
	case int64:
		w.U8(TypeLong)
		w.I64(x)
	case float32:
		w.U8(TypeFloat)
		w.F32(x)
	case float64:
		w.U8(TypeDouble)
		w.F64(x)
	case Char:
		w.U8(TypeChar)
		w.I16(int16(x))
	case bool:
		w.U8(TypeBool)
		w.Bool(x)
	case string:
		if err := checkLen(len(x)); err != nil {
			return err
		}
		w.String(x)
	case UUID:
		w.UUID(x)
	case Date:
		w.U8(TypeDate)
		w.I64(int64(x))
	case Time:
		w.U8(TypeTime)
		w.I64(int64(x))
	case Timestamp:
		w.U8(TypeTimestamp)
		w.I64(x.Millis)
		w.I32(x.Nanos)
	case Decimal:
		if err := checkLen(len(x.Magnitude)); err != nil {
			return err
		}
		w.U8(TypeDecimal)
		w.I32(x.Scale)
		w.I32(int32(len(x.Magnitude)))
		w.RawBytes(x.Magnitude)
	case []byte:
		if err := checkLen(len(x)); err != nil {
			return err
		}
		w.ByteArray(x)
	case []int16:
		if err := checkLen(len(x)); err != nil {
			return err
		}
		w.U8(TypeShortArray)
		w.I32(int32(len(x)))
		for _, e := range x {
			w.I16(e)
		}
	case []int32:
		if err := checkLen(len(x)); err != nil {
			return err
		}
		w.U8(TypeIntArray)
		w.I32(int32(len(x)))
		for _, e := range x {
			w.I32(e)
		}
	case []int64:
		if err := checkLen(len(x)); err != nil {
			return err
		}
		w.U8(TypeLongArray)
		w.I32(int32(len(x)))
		for _, e := range x {
			w.I64(e)
		}
	case []float32:
		if err := checkLen(len(x)); err != nil {
			return err
		}
		w.U8(TypeFloatArray)
		w.I32(int32(len(x)))
		for _, e := range x {
			w.F32(e)
		}
	case []float64:
		if err := checkLen(len(x)); err != nil {
			return err
		}
		w.U8(TypeDoubleArray)
		w.I32(int32(len(x)))
		for _, e := range x {
			w.F64(e)
		}
	case []Char:
		if err := checkLen(len(x)); err != nil {
			return err
		}
		w.U8(TypeCharArray)
		w.I32(int32(len(x)))
		for _, e := range x {
			w.I16(int16(e))
		}
	case []bool:
		if err := checkLen(len(x)); err != nil {
			return err
		}
		w.U8(TypeBoolArray)
		w.I32(int32(len(x)))
		for _, e := range x {
			w.Bool(e)
		}
	case Array:
		return w.array(x, depth)
	case ObjectArray:
		if x.Code != TypeObjectArray && x.Code != TypeEnumArray {
			return fmt.Errorf("ignite/binary: ObjectArray with type code %d", x.Code)
		}
		if err := checkLen(len(x.Items)); err != nil {
			return err
		}
		w.U8(x.Code)
		w.typeRef(x.TypeID, x.ClassName)
		w.I32(int32(len(x.Items)))
		for _, e := range x.Items {
			if err := w.object(e, depth+1); err != nil {
				return err
			}
		}
	case Collection:
		if err := checkLen(len(x.Items)); err != nil {
			return err
		}
		w.U8(TypeCollection)
		w.I32(int32(len(x.Items)))
		w.I8(x.Kind)
		for _, e := range x.Items {
			if err := w.object(e, depth+1); err != nil {
				return err
			}
		}
	case Map:
		if err := checkLen(len(x.Entries)); err != nil {
			return err
		}
		w.U8(TypeMap)
		w.I32(int32(len(x.Entries)))
		w.I8(x.Kind)
		for _, e := range x.Entries {
			if err := w.object(e.Key, depth+1); err != nil {
				return err
			}
			if err := w.object(e.Value, depth+1); err != nil {
				return err
			}
		}
	case Enum:
		if x.Binary {
			w.U8(TypeBinaryEnum)
		} else {
			w.U8(TypeEnum)
		}
		w.typeRef(x.TypeID, x.ClassName)
		w.I32(x.Ordinal)
	case Class:
		w.U8(TypeClass)
		w.typeRef(x.TypeID, x.ClassName)
	case Object:
		h, err := ParseObjectHeader(x)
		if err != nil {
			return err
		}
		if int(h.TotalLength) != len(x) {
			return fmt.Errorf("ignite/binary: Object of %d bytes has header length %d", len(x), h.TotalLength)
		}
		w.RawBytes(x)
	case Wrapped:
		if err := checkLen(len(x.Data)); err != nil {
			return err
		}
		w.U8(TypeWrapped)
		w.I32(int32(len(x.Data)))
		w.RawBytes(x.Data)
		w.I32(x.Offset)
	case Handle:
		w.U8(TypeHandle)
		w.I32(int32(x))
	default:
		return fmt.Errorf("ignite/binary: cannot encode Go type %T", v)
	}
	return nil
}

// typeRef writes a type id, followed by the class name when the id is 0.
func (w *Writer) typeRef(typeID int32, className string) {
	w.I32(typeID)
	if typeID == 0 {
		w.String(className)
	}
}

// arrayElem reports the element type code of an Array type code.
func arrayElem(code byte) (byte, bool) {
	switch code {
	case TypeStringArray:
		return TypeString, true
	case TypeUUIDArray:
		return TypeUUID, true
	case TypeDateArray:
		return TypeDate, true
	case TypeDecimalArray:
		return TypeDecimal, true
	case TypeTimestampArr:
		return TypeTimestamp, true
	case TypeTimeArray:
		return TypeTime, true
	}
	return 0, false
}

func (w *Writer) array(a Array, depth int) error {
	elem, ok := arrayElem(a.Code)
	if !ok {
		return fmt.Errorf("ignite/binary: Array with type code %d", a.Code)
	}
	if err := checkLen(len(a.Items)); err != nil {
		return err
	}
	w.U8(a.Code)
	w.I32(int32(len(a.Items)))
	for _, e := range a.Items {
		if e != nil && typeCodeOf(e) != elem {
			return fmt.Errorf("ignite/binary: %T in an array of type %d", e, a.Code)
		}
		if err := w.object(e, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// typeCodeOf returns the type code Object would write for v, 0 if unknown.
func typeCodeOf(v any) byte {
	switch x := v.(type) {
	case nil:
		return TypeNull
	case Raw:
		if len(x) > 0 {
			return x[0]
		}
	case int8:
		return TypeByte
	case int16:
		return TypeShort
	case int32:
		return TypeInt
	case int64:
		return TypeLong
	case float32:
		return TypeFloat
	case float64:
		return TypeDouble
	case Char:
		return TypeChar
	case bool:
		return TypeBool
	case string:
		return TypeString
	case UUID:
		return TypeUUID
	case Date:
		return TypeDate
	case Time:
		return TypeTime
	case Timestamp:
		return TypeTimestamp
	case Decimal:
		return TypeDecimal
	case []byte:
		return TypeByteArray
	case Object:
		return TypeComplexObject
	}
	return 0
}

// Encode returns v as a typed value.
func Encode(v any) ([]byte, error) {
	var w Writer
	if err := w.Object(v); err != nil {
		return nil, err
	}
	return w.Bytes(), nil
}
