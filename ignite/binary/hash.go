package binary

import (
	"fmt"
	"math"
	"unicode"
	"unicode/utf16"
)

// JavaStringHash returns Java's String.hashCode of s: h = 31*h + c over the
// UTF-16 code units, with 32-bit wrap-around. Invalid UTF-8 is hashed as
// U+FFFD, which is what a Java UTF-8 decoder would have produced.
func JavaStringHash(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			h = 31*h + int32(hi)
			h = 31*h + int32(lo)
			continue
		}
		h = 31*h + int32(r)
	}
	return h
}

// CacheID returns the cache id of a cache name (reference 4.6): Java's
// String.hashCode, not lower-cased; the server maps 0 to 1.
func CacheID(name string) int32 {
	h := JavaStringHash(name)
	if h == 0 {
		return 1
	}
	return h
}

// TypeID returns the type or field id of a name: the String.hashCode of the
// name lower-cased per UTF-16 unit. Lower-casing uses Go's Unicode tables per
// unit, which matches Java's Character.toLowerCase(char) for every BMP letter
// whose lower case is a single BMP unit (all ASCII and nearly all others).
func TypeID(name string) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(name)) {
		c := rune(u)
		if !(c >= 0xD800 && c <= 0xDFFF) {
			if l := unicode.ToLower(c); l < 0x10000 {
				c = l
			}
		}
		h = 31*h + int32(c)
	}
	return h
}

// ByteArrayHash returns Java's Arrays.hashCode(byte[]) of b.
func ByteArrayHash(b []byte) int32 {
	h := int32(1)
	for _, c := range b {
		h = 31*h + int32(int8(c))
	}
	return h
}

// ObjectDataHash returns the hash a complex object's header must carry for the
// given data section (reference 4.7).
func ObjectDataHash(data []byte) int32 { return ByteArrayHash(data) }

func longHash(v int64) int32 { return int32(v ^ int64(uint64(v)>>32)) }

// KeyHash returns the Java hashCode the server computes for a key value
// (reference 4.9), which decides the key's partition. It supports the key types
// that have a content-based hash; other types return an error.
func KeyHash(v any) (int32, error) {
	switch x := v.(type) {
	case Raw:
		d, err := Decode(x)
		if err != nil {
			return 0, err
		}
		return KeyHash(d)
	case int8:
		return int32(x), nil
	case int16:
		return int32(x), nil
	case int32:
		return x, nil
	case int64:
		return longHash(x), nil
	case float32:
		return int32(math.Float32bits(x)), nil
	case float64:
		return longHash(int64(math.Float64bits(x))), nil
	case Char:
		return int32(x), nil
	case bool:
		if x {
			return 1231, nil
		}
		return 1237, nil
	case string:
		return JavaStringHash(x), nil
	case UUID:
		m := x.MostSig() ^ x.LeastSig()
		return int32(m>>32) ^ int32(m), nil
	case Date:
		return longHash(int64(x)), nil
	case Timestamp:
		return longHash(x.Millis), nil
	case Time:
		return longHash(int64(x)), nil
	case []byte:
		return ByteArrayHash(x), nil
	case []int64:
		h := int32(1)
		for _, e := range x {
			h = 31*h + longHash(e)
		}
		return h, nil
	case []int32:
		h := int32(1)
		for _, e := range x {
			h = 31*h + e
		}
		return h, nil
	case Object:
		hd, err := ParseObjectHeader(x)
		if err != nil {
			return 0, err
		}
		return hd.HashCode, nil
	case Wrapped:
		if x.Offset < 0 || int(x.Offset) >= len(x.Data) {
			return 0, fmt.Errorf("%w: wrapped object offset %d outside %d bytes", ErrMalformed, x.Offset, len(x.Data))
		}
		hd, err := ParseObjectHeader(x.Data[x.Offset:])
		if err != nil {
			return 0, err
		}
		return hd.HashCode, nil
	}
	return 0, fmt.Errorf("ignite/binary: no key hash for %T", v)
}

// Partition maps a key hash to a partition the way Ignite's default
// RendezvousAffinityFunction does.
func Partition(hash int32, partitions int) int {
	if partitions <= 0 {
		return 0
	}
	if partitions&(partitions-1) == 0 {
		return int((hash ^ int32(uint32(hash)>>16)) & int32(partitions-1))
	}
	p := int(hash) % partitions
	if p < 0 {
		p = -p
	}
	return p
}
