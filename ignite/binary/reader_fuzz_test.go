package binary

import (
	"testing"
)

// FuzzReader drives every Reader method in an order the input chooses over
// arbitrary bytes: no panic, the position never passes the end, and an
// error, once set, stays.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 9, 10}, mustHex(f, "01 02 00 03 00 00 00 04 00 00 00 00 00 00 00 09 01 00 00 00 61"))
	f.Add([]byte{13, 14, 15, 13}, mustHex(f, "18 02 00 00 00 01 03 01 00 00 00 65 65"))
	f.Add([]byte{11, 12, 16}, mustHex(f, "0A 5F 4E 3D 2B 1A 7C 8F 5E 5B 4A 3F 2E 1D 0C 9B 8A 65"))
	f.Add([]byte{8, 8, 8}, mustHex(f, "FF FF FF 7F 00"))
	f.Fuzz(func(t *testing.T, ops, data []byte) {
		r := NewReader(data)
		var failed bool
		for _, op := range ops {
			switch op % 19 {
			case 0:
				r.U8()
			case 1:
				r.I16()
			case 2:
				r.I32()
			case 3:
				r.I64()
			case 4:
				r.F32()
			case 5:
				r.F64()
			case 6:
				r.Bool()
			case 7:
				r.Bytes(int(op >> 2))
			case 8:
				r.Count(int(op>>5) + 1)
			case 9:
				_ = r.String()
			case 10:
				r.NullableString()
			case 11:
				r.RawUUID()
			case 12:
				r.UUID()
			case 13:
				r.Object()
			case 14:
				r.Raw()
			case 15:
				r.PeekNull()
			case 16:
				r.ByteArray()
			case 17:
				r.End()
			case 18:
				r.Rest()
			}
			if r.Pos() < 0 || r.Pos() > len(data) || r.Remaining() < 0 {
				t.Fatalf("after op %d: position %d, remaining %d of %d bytes", op%19, r.Pos(), r.Remaining(), len(data))
			}
			if failed && r.Err() == nil {
				t.Fatalf("op %d cleared the reader's error", op%19)
			}
			failed = r.Err() != nil
		}
	})
}

// FuzzParseObjectHeader: any bytes give a header or an error, and a parsed
// header describes bytes that are there.
func FuzzParseObjectHeader(f *testing.F) {
	f.Add(mustHex(f, account))
	f.Add(mustHex(f, "67 01 00 00 00 00 00 00 00 00 00 00 00 00 00 18 00 00 00 00 00 00 00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseObjectHeader(b)
		if err != nil {
			return
		}
		if h.TotalLength < ObjectHeaderSize || int(h.TotalLength) > len(b) || h.SchemaOffset < 0 || h.SchemaOffset > h.TotalLength {
			t.Fatalf("header %+v of a %d-byte input", h, len(b))
		}
	})
}
