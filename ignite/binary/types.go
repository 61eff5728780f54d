package binary

import (
	"encoding/binary"
	"encoding/hex"
)

// Type codes of the binary format (protocol reference section 4.1).
const (
	TypeByte          byte = 1
	TypeShort         byte = 2
	TypeInt           byte = 3
	TypeLong          byte = 4
	TypeFloat         byte = 5
	TypeDouble        byte = 6
	TypeChar          byte = 7
	TypeBool          byte = 8
	TypeString        byte = 9
	TypeUUID          byte = 10
	TypeDate          byte = 11
	TypeByteArray     byte = 12
	TypeShortArray    byte = 13
	TypeIntArray      byte = 14
	TypeLongArray     byte = 15
	TypeFloatArray    byte = 16
	TypeDoubleArray   byte = 17
	TypeCharArray     byte = 18
	TypeBoolArray     byte = 19
	TypeStringArray   byte = 20
	TypeUUIDArray     byte = 21
	TypeDateArray     byte = 22
	TypeObjectArray   byte = 23
	TypeCollection    byte = 24
	TypeMap           byte = 25
	TypeWrapped       byte = 27
	TypeEnum          byte = 28
	TypeEnumArray     byte = 29
	TypeDecimal       byte = 30
	TypeDecimalArray  byte = 31
	TypeClass         byte = 32
	TypeTimestamp     byte = 33
	TypeTimestampArr  byte = 34
	TypeProxy         byte = 35
	TypeTime          byte = 36
	TypeTimeArray     byte = 37
	TypeBinaryEnum    byte = 38
	TypeNull          byte = 101
	TypeHandle        byte = 102
	TypeComplexObject byte = 103
)

// Collection kinds (the kind byte of a collection is only a deserialisation hint).
const (
	CollectionUserSet       int8 = -1
	CollectionUser          int8 = 0
	CollectionArrayList     int8 = 1
	CollectionLinkedList    int8 = 2
	CollectionHashSet       int8 = 3
	CollectionLinkedHashSet int8 = 4
	CollectionSingletonList int8 = 5
)

// Map kinds.
const (
	MapHashMap       int8 = 1
	MapLinkedHashMap int8 = 2
)

// Char is a Java char: one UTF-16 code unit.
type Char uint16

// UUID is a UUID in its canonical (big-endian, RFC 4122) byte order. On the
// wire each 8-byte half is little-endian (reference section 4.3); the codec
// converts.
type UUID [16]byte

// String formats u as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// MostSig and LeastSig return the two halves as Java's UUID holds them.
func (u UUID) MostSig() int64  { return int64(binary.BigEndian.Uint64(u[0:8])) }
func (u UUID) LeastSig() int64 { return int64(binary.BigEndian.Uint64(u[8:16])) }

// UUIDFromHalves builds a UUID from Java's most- and least-significant halves.
func UUIDFromHalves(msb, lsb int64) UUID {
	var u UUID
	binary.BigEndian.PutUint64(u[0:8], uint64(msb))
	binary.BigEndian.PutUint64(u[8:16], uint64(lsb))
	return u
}

// Date is a java.util.Date: milliseconds since the Unix epoch (type 11).
type Date int64

// Time is a java.sql.Time: milliseconds (type 36).
type Time int64

// Timestamp is a java.sql.Timestamp (type 33): milliseconds since the epoch
// plus the nanoseconds within that millisecond (0..999999).
type Timestamp struct {
	Millis int64
	Nanos  int32
}

// Decimal is a java.math.BigDecimal (type 30): value = magnitude * 10^-scale,
// Magnitude is big-endian with the sign in the top bit of the first byte. It is
// kept in wire form; 1.0 and 1.00 are different keys on the server.
type Decimal struct {
	Scale     int32
	Magnitude []byte
}

// Enum is an enum value: type 28 (Binary false) or binary enum 38 (Binary
// true). TypeID 0 means the type is given by ClassName.
type Enum struct {
	Binary    bool
	TypeID    int32
	ClassName string
	Ordinal   int32
}

// Class is a Java class reference (type 32). TypeID 0 means ClassName names it.
type Class struct {
	TypeID    int32
	ClassName string
}

// Array is an array whose elements are typed values or null: string[] (20),
// UUID[] (21), date[] (22), decimal[] (31), timestamp[] (34), time[] (37).
// Code is the array's type code; each item is nil or the element's Go type.
type Array struct {
	Code  byte
	Items []any
}

// ObjectArray is object[] (23, Code TypeObjectArray) or enum[] (29, Code
// TypeEnumArray). TypeID -1 means java.lang.Object; 0 means ClassName names
// the component type.
type ObjectArray struct {
	Code      byte
	TypeID    int32
	ClassName string
	Items     []any
}

// Collection is a collection (type 24).
type Collection struct {
	Kind  int8
	Items []any
}

// Map is a map (type 25); entries keep their wire order.
type Map struct {
	Kind    int8
	Entries []MapEntry
}

// MapEntry is one key and value of a Map.
type MapEntry struct {
	Key, Value any
}

// Object is a complete complex object (type 103), from its 0x67 byte to the end
// of its footer, kept as raw bytes. Use ObjectHeader to inspect it.
type Object []byte

// Wrapped is a wrapped binary object (type 27): Data holds one or more complete
// objects and Offset is where the wrapped one starts inside Data.
type Wrapped struct {
	Data   []byte
	Offset int32
}

// Handle is a back-reference (type 102) to a value that starts Handle bytes
// before the handle's own type byte. The codec does not resolve handles.
type Handle int32

// Raw is one complete, already-encoded typed value. The writer copies it
// verbatim; ReadRaw produces it. ignitetest keeps keys and values as Raw so that
// it stores and echoes exactly the bytes a client sent.
type Raw []byte
