package wire

import (
	"testing"
)

// Fuzz targets for the decoders fuzz_test.go does not reach: the request
// header (the test double's first step on every frame) and the scalar
// payload decoders the client uses for counts, flags and resource ids.

func FuzzDecodeRequestHeader(f *testing.F) {
	f.Add(hx(f, "E8 03 01 00 00 00 00 00 00 00 E6 BB 9D 80 02 01 00 00 00 09 02 00 00 00 6B 31"))
	f.Add(hx(f, "D6 07 02 00 00 00 00 00 00 00"))
	f.Add(hx(f, "D6 07 02"))
	p := Proto{Version: V1_7_0, Features: Features{0xff, 0xff, 0xfb, 0x01}}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, rest, err := DecodeRequestHeader(b)
		if err != nil {
			return
		}
		if len(rest) != len(b)-10 {
			t.Fatalf("header of %d bytes left %d of %d", 10, len(rest), len(b))
		}
		DecodeRequest(h.Op, rest, p)
	})
}

func FuzzDecodeScalars(f *testing.F) {
	f.Add(hx(f, "01"))
	f.Add(hx(f, "2A 00 00 00"))
	f.Add(hx(f, "2A 00 00 00 00 00 00 00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := DecodeBool(b); err == nil && len(b) != 1 {
			t.Fatalf("DecodeBool(% X) = %v from %d bytes", b, v, len(b))
		}
		if v, err := DecodeI32(b); err == nil && len(b) != 4 {
			t.Fatalf("DecodeI32(% X) = %v from %d bytes", b, v, len(b))
		}
		if v, err := DecodeI64(b); err == nil && len(b) != 8 {
			t.Fatalf("DecodeI64(% X) = %v from %d bytes", b, v, len(b))
		}
		if err := DecodeEmpty(b); err == nil && len(b) != 0 {
			t.Fatalf("DecodeEmpty accepted %d bytes", len(b))
		}
	})
}
