package binary

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// account is the worked example of reference 4.7.1.
const account = "67 01 0B 00 2D 8A D3 B9 63 AD 17 30 35 00 00 00 72 1C 40 45 2B 00 00 00 09 05 00 00 00 61 6C 69 63 65 04 64 00 00 00 00 00 00 00 B3 F2 53 06 18 DC 6E C8 EB 22"

func TestRoundTrip(t *testing.T) {
	uuid := UUID{0x5e, 0x8f, 0x7c, 0x1a, 0x2b, 0x3d, 0x4e, 0x5f, 0x8a, 0x9b, 0x0c, 0x1d, 0x2e, 0x3f, 0x4a, 0x5b}
	s := "x"
	_ = s
	cases := []struct {
		name  string
		value any
		hex   string // expected encoding; empty = only check the round trip
	}{
		{"null", nil, "65"},
		{"byte", int8(-2), "01 FE"},
		{"short", int16(0x1234), "02 34 12"},
		{"int", int32(-1), "03 FF FF FF FF"},
		{"long", int64(100), "04 64 00 00 00 00 00 00 00"},
		{"float", float32(1.5), "05 00 00 C0 3F"},
		{"double", float64(-2), "06 00 00 00 00 00 00 00 C0"},
		{"char", Char('A'), "07 41 00"},
		{"bool", true, "08 01"},
		{"string", "k1", "09 02 00 00 00 6B 31"},
		{"empty string", "", "09 00 00 00 00"},
		{"uuid", uuid, "0A 5F 4E 3D 2B 1A 7C 8F 5E 5B 4A 3F 2E 1D 0C 9B 8A"},
		{"date", Date(1), "0B 01 00 00 00 00 00 00 00"},
		{"byte[]", []byte("/registry/a"), "0C 0B 00 00 00 2F 72 65 67 69 73 74 72 79 2F 61"},
		{"empty byte[]", []byte{}, "0C 00 00 00 00"},
		{"short[]", []int16{1, -1}, "0D 02 00 00 00 01 00 FF FF"},
		{"int[]", []int32{7}, "0E 01 00 00 00 07 00 00 00"},
		{"long[]", []int64{1, 2}, "0F 02 00 00 00 01 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00"},
		{"float[]", []float32{0}, "10 01 00 00 00 00 00 00 00"},
		{"double[]", []float64{}, "11 00 00 00 00"},
		{"char[]", []Char{'a'}, "12 01 00 00 00 61 00"},
		{"bool[]", []bool{true, false}, "13 02 00 00 00 01 00"},
		{"string[]", Array{Code: TypeStringArray, Items: []any{"a", nil}}, "14 02 00 00 00 09 01 00 00 00 61 65"},
		{"uuid[]", Array{Code: TypeUUIDArray, Items: []any{uuid}}, ""},
		{"date[]", Array{Code: TypeDateArray, Items: []any{Date(5), nil}}, ""},
		{"decimal[]", Array{Code: TypeDecimalArray, Items: []any{Decimal{Scale: 2, Magnitude: []byte{1}}}}, ""},
		{"timestamp[]", Array{Code: TypeTimestampArr, Items: []any{Timestamp{1, 2}}}, ""},
		{"time[]", Array{Code: TypeTimeArray, Items: []any{Time(3)}}, ""},
		{"object[]", ObjectArray{Code: TypeObjectArray, TypeID: -1, Items: []any{int64(1), "a", nil}}, ""},
		{"object[] unregistered", ObjectArray{Code: TypeObjectArray, TypeID: 0, ClassName: "x.Y", Items: []any{}}, ""},
		{"enum[]", ObjectArray{Code: TypeEnumArray, TypeID: 5, Items: []any{Enum{TypeID: 5, Ordinal: 1}}}, ""},
		{"collection", Collection{Kind: CollectionArrayList, Items: []any{int32(1), Collection{Kind: 0, Items: []any{}}}}, "18 02 00 00 00 01 03 01 00 00 00 18 00 00 00 00 00"},
		{"map", Map{Kind: MapHashMap, Entries: []MapEntry{{"a", "b"}}}, "19 01 00 00 00 01 09 01 00 00 00 61 09 01 00 00 00 62"},
		{"enum", Enum{TypeID: 9, Ordinal: 2}, "1C 09 00 00 00 02 00 00 00"},
		{"binary enum by name", Enum{Binary: true, TypeID: 0, ClassName: "E", Ordinal: 0}, "26 00 00 00 00 09 01 00 00 00 45 00 00 00 00"},
		{"decimal", Decimal{Scale: 1, Magnitude: []byte{0x0a}}, "1E 01 00 00 00 01 00 00 00 0A"},
		{"class", Class{TypeID: 3}, "20 03 00 00 00"},
		{"timestamp", Timestamp{Millis: 1, Nanos: 5}, "21 01 00 00 00 00 00 00 00 05 00 00 00"},
		{"time", Time(2), "24 02 00 00 00 00 00 00 00"},
		{"object", Object(mustHex(t, account)), account},
		{"wrapped", Wrapped{Data: mustHex(t, account), Offset: 0}, "1B 35 00 00 00 " + account + " 00 00 00 00"},
		{"handle in collection", Collection{Kind: 1, Items: []any{"a", Handle(11)}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := Encode(tc.value)
			if err != nil {
				t.Fatalf("Encode(%#v): %v", tc.value, err)
			}
			if tc.hex != "" {
				if want := mustHex(t, tc.hex); !bytes.Equal(enc, want) {
					t.Fatalf("Encode(%#v)\n got % X\nwant % X", tc.value, enc, want)
				}
			}
			dec, err := Decode(enc)
			if err != nil {
				t.Fatalf("Decode(% X): %v", enc, err)
			}
			if !reflect.DeepEqual(dec, tc.value) {
				t.Fatalf("Decode(Encode(v))\n got %#v\nwant %#v", dec, tc.value)
			}
			r := NewReader(enc)
			raw := r.Raw()
			if err := r.End(); err != nil || !bytes.Equal(raw, enc) {
				t.Fatalf("Raw() = % X, %v; want % X", raw, err, enc)
			}
			again, err := Encode(raw)
			if err != nil || !bytes.Equal(again, enc) {
				t.Fatalf("Encode(Raw) = % X, %v", again, err)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, v := range []any{
		int(1), uint32(1), struct{}{}, map[string]string{},
		Array{Code: TypeStringArray, Items: []any{int64(1)}},
		Array{Code: 99},
		ObjectArray{Code: TypeMap},
		Object{0x67, 1},
		Raw{},
		Collection{Items: []any{struct{}{}}},
	} {
		var w Writer
		w.I8(7)
		if err := w.Object(v); err == nil {
			t.Errorf("Object(%#v) succeeded", v)
		}
		if w.Len() != 1 {
			t.Errorf("Object(%#v) left %d bytes behind", v, w.Len()-1)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, h := range []string{
		"",                  // nothing
		"04 01",             // truncated long
		"09 05 00 00 00 61", // string shorter than its length
		"09 FF FF FF FF",    // negative length
		"0F FF FF FF 7F",    // huge long[] count
		"18 FF FF FF 7F 01", // huge collection
		"14 01 00 00 00 04 00 00 00 00 00 00 00 00", // long in string[]
		"67 01 00 00", // short object
		"67 02 00 00 00 00 00 00 00 00 00 00 18 00 00 00 00 00 00 00 18 00 00 00", // bad version
		"67 01 00 00 00 00 00 00 00 00 00 00 FF 00 00 00 00 00 00 00 18 00 00 00", // length beyond input
		"1B 01 00 00 00 67 00 00 00 00",                                           // wrapped garbage
		"66 00 00 00 00",                                                          // handle to itself
		"23",                                                                      // proxy
		"C8",                                                                      // unknown code
		"65 65",                                                                   // trailing bytes
	} {
		_, err := Decode(mustHex(t, h))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%s) error = %v, want ErrMalformed", h, err)
		}
	}
	deep := bytes.Repeat([]byte{0x18, 1, 0, 0, 0, 1}, MaxDepth+2)
	if _, err := Decode(append(deep, 0x65)); !errors.Is(err, ErrMalformed) {
		t.Errorf("deep nesting: error = %v", err)
	}
}

func TestHashes(t *testing.T) {
	if got := CacheID("accounts"); got != -2137146394 {
		t.Errorf("CacheID(accounts) = %d", got)
	}
	if got := TypeID("Account"); got != -1177318867 {
		t.Errorf("TypeID(Account) = %d", got)
	}
	if got := TypeID("owner"); got != 106164915 {
		t.Errorf("TypeID(owner) = %d", got)
	}
	if got := TypeID("balance"); got != -339185956 {
		t.Errorf("TypeID(balance) = %d", got)
	}
	// Cache ids seen in the captured traffic.
	for name, id := range map[string]uint32{"wire-kv": 0x50a77bb3, "wire-tx": 0x50a77ccc, "wire-no-such-cache": 0x8ad0fcc0} {
		if got := CacheID(name); uint32(got) != id {
			t.Errorf("CacheID(%s) = %#x, want %#x", name, uint32(got), id)
		}
	}
	obj := mustHex(t, account)
	h, err := ParseObjectHeader(obj)
	if err != nil {
		t.Fatal(err)
	}
	if got := ObjectDataHash(obj[24:h.SchemaOffset]); got != h.HashCode || got != 806858083 {
		t.Errorf("data hash = %d, header says %d", got, h.HashCode)
	}
	if got, _ := KeyHash(Object(obj)); got != 806858083 {
		t.Errorf("KeyHash(object) = %d", got)
	}
	if got, _ := KeyHash(int64(-1)); got != 0 {
		t.Errorf("KeyHash(long -1) = %d", got)
	}
	if got, _ := KeyHash([]byte{1, 2}); got != 31*(31+1)+2 {
		t.Errorf("KeyHash(byte[]) = %d", got)
	}
	if got, _ := KeyHash("\U0001F600"); got != 31*0xD83D+0xDE00 {
		t.Errorf("KeyHash(non-BMP) = %d", got)
	}
	if p := Partition(-1, 1024); p < 0 || p >= 1024 {
		t.Errorf("Partition = %d", p)
	}
	if p := Partition(-7, 10); p != 7 {
		t.Errorf("Partition(-7,10) = %d", p)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"65", "04 64 00 00 00 00 00 00 00", "09 02 00 00 00 6B 31", "0C 01 00 00 00 00",
		"18 02 00 00 00 01 03 01 00 00 00 18 00 00 00 00 00", account, "1B 35 00 00 00 " + account + " 00 00 00 00",
		"19 01 00 00 00 01 09 01 00 00 00 61 09 01 00 00 00 62", "14 02 00 00 00 09 01 00 00 00 61 65"} {
		f.Add(mustHex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode, and the encoding must be stable
		// (the input itself may differ: any non-zero bool byte reads as true).
		enc, err := Encode(v)
		if err != nil {
			t.Fatalf("Encode(Decode(% X)): %v", b, err)
		}
		if len(enc) != len(b) {
			t.Fatalf("re-encoding has %d bytes, input %d", len(enc), len(b))
		}
		v2, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(% X))): %v", b, err)
		}
		enc2, err := Encode(v2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable\n got % X\nwant % X (%v)", enc2, enc, err)
		}
	})
}
