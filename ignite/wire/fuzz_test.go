package wire

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// Fuzz targets: every decoder must turn arbitrary bytes into a value or an
// error, never a panic or a hang. Seeds are the walkthrough messages.

func FuzzReadFrame(f *testing.F) {
	f.Add(hx(f, "02 00 00 00 AA BB"))
	f.Add(hx(f, "FF FF FF 7F"))
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := ReadFrame(bytes.NewReader(b), 1<<20)
		if err == nil && len(body) != int(binary.LittleEndian.Uint32(b)) {
			t.Fatalf("body of %d bytes", len(body))
		}
	})
}

func FuzzDecodeHandshake(f *testing.F) {
	f.Add(hx(f, "01 01 00 07 00 00 00 02 0C 02 00 00 00 00 08"))
	f.Add(hx(f, "01 01 00 07 00 00 00 02 0C 04 00 00 00 FF FF FF 01 65"))
	f.Add(hx(f, "01 01 00 06 00 00 00 02 09 01 00 00 00 61 09 01 00 00 00 62"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHandshake(b)
		if err != nil || !IsServerVersion(h.Version) || h.ClientType != ClientTypeThin {
			return
		}
		enc, err := h.Encode()
		if err != nil {
			t.Fatalf("Encode(%+v): %v", h, err)
		}
		if _, err := DecodeHandshake(enc[4:]); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func FuzzDecodeHandshakeReply(f *testing.F) {
	f.Add(hx(f, "01 0C 02 00 00 00 00 08 0A 5F 4E 3D 2B 1A 7C 8F 5E 5B 4A 3F 2E 1D 0C 9B 8A"), int16(7))
	f.Add(hx(f, "00 01 00 07 00 00 00 09 01 00 00 00 61 01 00 00 00"), int16(8))
	f.Fuzz(func(t *testing.T, b []byte, minor int16) {
		DecodeHandshakeReply(b, Version{1, minor, 0})
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(hx(f, "01 00 00 00 00 00 00 00 02 00 01 00 00 00 00 00 00 00 03 00 00 00"), true)
	f.Add(hx(f, "02 00 00 00 00 00 00 00 04 00 D7 07 01 00 00 00 09 02 00 00 00 6B 31 65 65 00"), true)
	f.Add(hx(f, "09 00 00 00 00 00 00 00 01 00 E8 03 00 00 09 01 00 00 00 43"), true)
	f.Add(hx(f, "09 00 00 00 00 00 00 00 01 00 00 00 09 01 00 00 00 43"), false)
	f.Fuzz(func(t *testing.T, b []byte, flags bool) {
		resp, err := DecodeResponse(b, flags)
		if err != nil {
			return
		}
		if resp.IsNotification() {
			DecodeEvents(resp.Payload)
		}
	})
}

// FuzzDecodeRequest drives the server-side request decoder: the first two bytes
// pick the op code.
func FuzzDecodeRequest(f *testing.F) {
	p := Proto{Version: V1_7_0, Features: Features{0xff, 0xff, 0xfb, 0x01}}
	for _, s := range []string{
		"E8 03 E6 BB 9D 80 02 01 00 00 00 09 02 00 00 00 6B 31",
		"E9 03 E6 BB 9D 80 02 01 00 00 00 09 02 00 00 00 6B 31 04 64 00 00 00 00 00 00 00",
		"1E 04 00 29 00 00 00 05 00 00 00 09 08 00 00 00 61 63 63 6F 75 6E 74 73 01 00 02 00 00 00 02 00 00 00 00 00 03 00 01 00 00 00 04 00 00 00 00 00",
		"A0 0F 01 01 10 27 00 00 00 00 00 00 65",
		"D0 07 E6 BB 9D 80 00 65 00 04 00 00 FF FF FF FF 00",
		"D6 07 E6 BB 9D 80 00 01 00 00 00 00 00 00 00 00 00 00 00 00 65",
		"EC 03 01 00 00 00 00 01 00 00 00 0C 01 00 00 00 61 0C 01 00 00 00 62",
		"4D 04 00 65 01 00 00 00 39 7C A7 50",
	} {
		f.Add(hx(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 2 {
			return
		}
		op := Op(int16(binary.LittleEndian.Uint16(b)))
		req, err := DecodeRequest(op, b[2:], p)
		if err != nil {
			return
		}
		enc, err := EncodeRequest(1, req, p)
		if err != nil {
			// Only client-side validation the server does not apply may
			// refuse what decoded (e.g. scan page size, tx enum values).
			return
		}
		body, err := ReadFrame(bytes.NewReader(enc), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeRequest(op, body[10:], p); err != nil {
			t.Fatalf("re-decode of %s: %v", op, err)
		}
	})
}

func FuzzDecodePayloads(f *testing.F) {
	f.Add(hx(f, "01 00 00 00 00 00 00 00 01 00 00 00 09 02 00 00 00 6B 31 04 64 00 00 00 00 00 00 00 00"))
	f.Add(hx(f, "01 00 00 00 09 02 00 00 00 6B 31 04 64 00 00 00 00 00 00 00 04 C8 00 00 00 00 00 00 00 01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := Proto{Version: V1_7_0, Features: Features{0xff, 0xff, 0xfb, 0x01}}
		DecodeValue(b)
		DecodeEntries(b)
		DecodeScanPage(b, true)
		DecodeScanPage(b, false)
		DecodeEvents(b)
		DecodeStrings(b)
		DecodeNodeEndpoints(b)
		DecodeCachePartitions(b, p)
		DecodeCachePartitions(b, Proto{Version: V1_7_0})
		DecodeBinaryConfiguration(b)
	})
}
