package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
)

func hx(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func strp(s string) *string { return &s }

// The walkthrough of reference section 11 (derived, not captured): every
// client message built from Go values must match it.
func TestWalkthroughRequests(t *testing.T) {
	p := Proto{Version: V1_7_0, Features: NewFeatures(FeatureHeartbeat)}
	accounts := ib.CacheID("accounts")
	cases := []struct {
		name  string
		reqID int64
		req   Request
		hex   string
	}{
		{"M3 create", 1, &CacheConfigRequest{Code: OpCacheGetOrCreateWithCfg, Config: CacheConfiguration{Properties: []CacheProperty{
			{PropName, "accounts"}, {PropCacheMode, CacheModePartitioned}, {PropAtomicityMode, AtomicityTransactional},
			{PropBackups, int32(1)}, {PropWriteSynchronizationMode, WriteSyncFullSync}}}},
			"37 00 00 00 1E 04 01 00 00 00 00 00 00 00 29 00 00 00 05 00 00 00 09 08 00 00 00 61 63 63 6F 75 6E 74 73 01 00 02 00 00 00 02 00 00 00 00 00 03 00 01 00 00 00 04 00 00 00 00 00"},
		{"M5 tx start", 2, &TxStartRequest{Concurrency: TxPessimistic, Isolation: TxRepeatableRead, TimeoutMs: 10000},
			"15 00 00 00 A0 0F 02 00 00 00 00 00 00 00 01 01 10 27 00 00 00 00 00 00 65"},
		{"M7 get in tx", 3, &CacheKeyRequest{Code: OpCacheGet, CacheHeader: CacheHeader{CacheID: accounts, Flags: CacheFlagTransactional, TxID: 1}, Key: "k1"},
			"1A 00 00 00 E8 03 03 00 00 00 00 00 00 00 E6 BB 9D 80 02 01 00 00 00 09 02 00 00 00 6B 31"},
		{"M9 put in tx", 4, &CacheKeyValueRequest{Code: OpCachePut, CacheHeader: CacheHeader{CacheID: accounts, Flags: CacheFlagTransactional, TxID: 1}, Key: "k1", Value: int64(100)},
			"23 00 00 00 E9 03 04 00 00 00 00 00 00 00 E6 BB 9D 80 02 01 00 00 00 09 02 00 00 00 6B 31 04 64 00 00 00 00 00 00 00"},
		{"M11 commit", 5, &TxEndRequest{TxID: 1, Commit: true}, "0F 00 00 00 A1 0F 05 00 00 00 00 00 00 00 01 00 00 00 01"},
		{"M13 scan", 6, &ScanRequest{CacheHeader: CacheHeader{CacheID: accounts}, PageSize: 1024, Partition: -1},
			"19 00 00 00 D0 07 06 00 00 00 00 00 00 00 E6 BB 9D 80 00 65 00 04 00 00 FF FF FF FF 00"},
		{"M15 continuous query", 7, &ContinuousQueryRequest{CacheHeader: CacheHeader{CacheID: accounts}, PageSize: 1},
			"1D 00 00 00 D6 07 07 00 00 00 00 00 00 00 E6 BB 9D 80 00 01 00 00 00 00 00 00 00 00 00 00 00 00 65"},
		{"M18 close", 8, &ResourceRequest{Code: OpResourceClose, ResourceID: 2},
			"12 00 00 00 00 00 08 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00"},
		{"get with expiry", 9, &CacheKeyRequest{Code: OpCacheGet, CacheHeader: CacheHeader{CacheID: 1, Flags: CacheFlagExpiryPolicy | CacheFlagTransactional, Expiry: ExpiryPolicy{-2, -1, 0}, TxID: 3}, Key: nil}, ""},
		{"put all", 10, &CachePutAllRequest{CacheHeader: CacheHeader{CacheID: 1}, Entries: []KV{{[]byte("a"), []byte("b")}}}, ""},
		{"replace if equals", 11, &CacheReplaceIfEqualsRequest{CacheHeader: CacheHeader{CacheID: 1}, Key: "a", Expected: int64(1), Value: int64(2)}, ""},
		{"remove keys", 12, &CacheKeysRequest{Code: OpCacheRemoveKeys, CacheHeader: CacheHeader{CacheID: 1}, Keys: []any{[]byte("a"), []byte("b")}}, ""},
		{"size", 13, &CacheSizeRequest{CacheHeader: CacheHeader{CacheID: 1}, PeekModes: []int8{PeekPrimary}}, ""},
		{"names", 14, &EmptyRequest{Code: OpCacheGetNames}, "0A 00 00 00 1A 04 0E 00 00 00 00 00 00 00"},
		{"create by name", 15, &CacheNameRequest{Code: OpCacheCreateWithName, Name: "x"}, ""},
		{"destroy", 16, &CacheIDRequest{Code: OpCacheDestroy, CacheID: accounts}, "0E 00 00 00 20 04 10 00 00 00 00 00 00 00 E6 BB 9D 80"},
		{"remove all", 17, &CacheRequest{Code: OpCacheRemoveAll, CacheHeader: CacheHeader{CacheID: 1}}, ""},
		{"scan with filter", 18, &ScanRequest{CacheHeader: CacheHeader{CacheID: 1}, Filter: "f", FilterPlatform: PlatformJava, PageSize: 5, Partition: 3, Local: true}, ""},
		{"tx label", 19, &TxStartRequest{Concurrency: TxOptimistic, Isolation: TxSerializable, Label: strp("etcd")}, ""},
		{"page", 20, &ResourceRequest{Code: OpQueryScanCursorGetPage, ResourceID: 1}, ""},
		{"config full", 21, &CacheConfigRequest{Code: OpCacheCreateWithConfig, Config: CacheConfiguration{Properties: []CacheProperty{
			{PropName, "n"}, {PropExpiryPolicy, &ExpiryPolicy{1, 2, 3}}, {PropKeyConfiguration, []KeyConfiguration{{"T", "f"}}},
			{PropStoragePath, ib.Array{Code: ib.TypeStringArray, Items: []any{"/a", nil}}}, {PropAffinityConfiguration, AffinityConfiguration{64, true}},
		}}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := EncodeRequest(tc.reqID, tc.req, p)
			if err != nil {
				t.Fatal(err)
			}
			if tc.hex != "" {
				if want := hx(t, tc.hex); !bytes.Equal(enc, want) {
					t.Fatalf("\n got % X\nwant % X", enc, want)
				}
			}
			// And the server side decodes it back.
			b, err := ReadFrame(bytes.NewReader(enc), 0)
			if err != nil {
				t.Fatal(err)
			}
			hdr, payload, err := DecodeRequestHeader(b)
			if err != nil || hdr.Op != tc.req.Op() || hdr.ReqID != tc.reqID {
				t.Fatalf("header %+v %v", hdr, err)
			}
			dec, err := DecodeRequest(hdr.Op, payload, p)
			if err != nil {
				t.Fatal(err)
			}
			cook(t, dec)
			if !reflect.DeepEqual(dec, tc.req) {
				t.Fatalf("decoded\n got %#v\nwant %#v", dec, tc.req)
			}
		})
	}
}

func TestWalkthroughHandshake(t *testing.T) {
	hs := Handshake{Version: V1_7_0, ClientType: ClientTypeThin, Features: NewFeatures(FeatureHeartbeat)}
	enc, err := hs.Encode()
	if want := hx(t, "0F 00 00 00 01 01 00 07 00 00 00 02 0C 02 00 00 00 00 08"); err != nil || !bytes.Equal(enc, want) {
		t.Fatalf("M1\n got % X\nwant % X", enc, want)
	}
	m2 := hx(t, "19 00 00 00 01 0C 02 00 00 00 00 08 0A 5F 4E 3D 2B 1A 7C 8F 5E 5B 4A 3F 2E 1D 0C 9B 8A")
	reply, err := DecodeHandshakeReply(m2[4:], V1_7_0)
	if err != nil || !reply.Success || reply.NodeID.String() != "5e8f7c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b" || !reply.Features.Has(FeatureHeartbeat) {
		t.Fatalf("M2 %+v %v", reply, err)
	}
	if got := reply.Encode(V1_7_0); !bytes.Equal(got, m2) {
		t.Fatalf("M2 re-encoded % X", got)
	}
	rej := hx(t, "2A 00 00 00 00 01 00 07 00 00 00 09 1A 00 00 00 55 6E 73 75 70 70 6F 72 74 65 64 20 76 65 72 73 69 6F 6E 3A 20 31 2E 38 2E 30 01 00 00 00")
	reply, err = DecodeHandshakeReply(rej[4:], Version{1, 8, 0})
	if err != nil || reply.Success || reply.ServerVersion != V1_7_0 || reply.Message != "Unsupported version: 1.8.0" || reply.Status != StatusFailed {
		t.Fatalf("rejection %+v %v", reply, err)
	}
	if got := reply.Encode(Version{1, 8, 0}); !bytes.Equal(got, rej) {
		t.Fatalf("rejection re-encoded % X", got)
	}
	// A pre-1.1.0 rejection carries no status.
	old := HandshakeReply{ServerVersion: V1_7_0, Message: "no"}
	got, err := DecodeHandshakeReply(old.Encode(V1_0_0)[4:], V1_0_0)
	if err != nil || got.Status != StatusFailed || got.Message != "no" {
		t.Fatalf("1.0.0 rejection %+v %v", got, err)
	}
	// Older versions: no features; no node id before 1.4.0.
	for _, v := range ServerVersions {
		h := Handshake{Version: v, ClientType: ClientTypeThin, Features: NewFeatures(FeatureUserAttributes)}
		if v.AtLeast(V1_1_0) {
			h.Username, h.Password = strp("ignite"), strp("secret")
		}
		if v.AtLeast(V1_7_0) {
			h.UserAttributes = &ib.Map{Kind: ib.MapHashMap, Entries: []ib.MapEntry{{Key: "a", Value: "b"}}}
		}
		enc, err := h.Encode()
		if err != nil {
			t.Fatal(err)
		}
		dec, err := DecodeHandshake(enc[4:])
		if !v.AtLeast(V1_7_0) {
			h.Features = nil
		}
		if err != nil || !reflect.DeepEqual(dec, h) {
			t.Fatalf("%s: decoded %+v, %v; want %+v", v, dec, err, h)
		}
		ok := HandshakeReply{Success: true, Features: NewFeatures(FeatureHeartbeat), NodeID: ib.UUID{1}}
		back, err := DecodeHandshakeReply(ok.Encode(v)[4:], v)
		if err != nil || !back.Success || (v.AtLeast(V1_4_0) != (back.NodeID == ib.UUID{1})) {
			t.Fatalf("%s reply %+v %v", v, back, err)
		}
	}
}

func TestDecodeHandshakeRejects(t *testing.T) {
	for _, tc := range []struct {
		hex   string
		fault HandshakeFault
	}{
		{"01 02 00 00 00 00 00 02", HandshakeBadPrefix},                                  // major 2
		{"02 01 00 07 00 00 00 02", HandshakeBadPrefix},                                  // not a handshake
		{"01", HandshakeBadPrefix},                                                       // too short
		{"01 01 00 07 00 00 00 02", HandshakeMalformed},                                  // 1.7.0 without features
		{"01 01 00 07 00 00 00 02 0C 01 00 00 00 01", HandshakeMalformed},                // attributes bit without map
		{"01 01 00 07 00 00 00 02 0C 00 00 00 00 09 01 00 00 00 61", HandshakeMalformed}, // user without password
		{"01 01 00 07 00", HandshakeMalformed},                                           // truncated version
	} {
		_, err := DecodeHandshake(hx(t, tc.hex))
		var he *HandshakeError
		if !errors.As(err, &he) || he.Fault != tc.fault {
			t.Errorf("DecodeHandshake(%s) = %v, want fault %d", tc.hex, err, tc.fault)
		}
	}
	// Unsupported versions are returned unparsed for the caller to reject.
	h, err := DecodeHandshake(hx(t, "01 01 00 08 00 00 00 02"))
	if err != nil || h.Version != (Version{1, 8, 0}) {
		t.Errorf("1.8.0: %+v %v", h, err)
	}
}

func TestResponses(t *testing.T) {
	cases := []Response{
		{ReqID: 1, Topology: &TopologyVersion{1, 3}},
		{ReqID: 2, Payload: []byte{1, 0, 0, 0}},
		{ReqID: 9, Status: StatusCacheDoesNotExist, Message: "Cache does not exist [cacheId= -2137146394]"},
		{ReqID: 4, Topology: &TopologyVersion{2, 0}, Status: 1, Message: "x"},
		{ReqID: 2, NotificationOp: OpQueryContinuousEvent, Payload: []byte{0, 0, 0, 0}},
	}
	for _, want := range cases {
		enc := EncodeResponse(&want, true)
		got, err := DecodeResponse(enc[4:], true)
		if err != nil {
			t.Fatal(err)
		}
		got.Flags = 0
		if len(got.Payload) == 0 {
			got.Payload = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip\n got %+v\nwant %+v", got, want)
		}
	}
	e1 := hx(t, "3E 00 00 00 09 00 00 00 00 00 00 00 01 00 E8 03 00 00 09 2B 00 00 00 43 61 63 68 65 20 64 6F 65 73 20 6E 6F 74 20 65 78 69 73 74 20 5B 63 61 63 68 65 49 64 3D 20 2D 32 31 33 37 31 34 36 33 39 34 5D")
	r, err := DecodeResponse(e1[4:], true)
	if err != nil || r.Status != 1000 || r.ReqID != 9 {
		t.Fatalf("E1 %+v %v", r, err)
	}
	// Legacy header.
	for _, want := range []Response{{ReqID: 3, Payload: []byte{7}}, {ReqID: 4, Status: 1, Message: "bad", Flags: FlagError}} {
		got, err := DecodeResponse(EncodeResponse(&want, false)[4:], false)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("legacy %+v %v, want %+v", got, err, want)
		}
	}
	for _, h := range []string{
		"01 00 00 00 00 00 00 00",                         // no flags
		"01 00 00 00 00 00 00 00 08 00",                   // unknown flag
		"01 00 00 00 00 00 00 00 02 00 01 00",             // short topology
		"01 00 00 00 00 00 00 00 01 00 01 00 00 00",       // error without message
		"01 00 00 00 00 00 00 00 01 00 01 00 00 00 65 00", // bytes after the message
		"01 00 00 00 00 00 00 00 06 00 D7 07",             // notification with topology
	} {
		if _, err := DecodeResponse(hx(t, h), true); !errors.Is(err, ib.ErrMalformed) {
			t.Errorf("DecodeResponse(%s) = %v", h, err)
		}
	}
}

func TestReadFrame(t *testing.T) {
	b, err := ReadFrame(bytes.NewReader(hx(t, "02 00 00 00 AA BB")), 10)
	if err != nil || !bytes.Equal(b, []byte{0xAA, 0xBB}) {
		t.Fatalf("%X %v", b, err)
	}
	for _, tc := range []struct {
		hex  string
		want error
	}{
		{"00 00 00 00", ErrFrame},
		{"FF FF FF FF", ErrFrame},
		{"0B 00 00 00", ErrFrame},
		{"05 00 00 00 01", io.ErrUnexpectedEOF},
		{"02 00", io.ErrUnexpectedEOF},
		{"", io.EOF},
	} {
		if _, err := ReadFrame(bytes.NewReader(hx(t, tc.hex)), 10); !errors.Is(err, tc.want) {
			t.Errorf("ReadFrame(%s) = %v, want %v", tc.hex, err, tc.want)
		}
	}
	// A large frame cut short.
	big := append(hx(t, "00 00 10 00"), make([]byte, 100000)...)
	if _, err := ReadFrame(bytes.NewReader(big), 0); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("big short frame: %v", err)
	}
	full := append(hx(t, "A0 86 01 00"), make([]byte, 100000)...)
	if b, err := ReadFrame(bytes.NewReader(full), 0); err != nil || len(b) != 100000 {
		t.Errorf("big frame: %d %v", len(b), err)
	}
}

func TestPayloadRoundTrips(t *testing.T) {
	p := Proto{Version: V1_7_0, Features: NewFeatures(FeatureAllAffinityMappings, FeatureDCAware)}
	page := ScanPage{CursorID: 5, Entries: []KV{{[]byte("k"), int64(1)}}, HasMore: true}
	enc, _ := page.Encode(true)
	if got, err := DecodeScanPage(enc, true); err != nil || !reflect.DeepEqual(got, page) {
		t.Errorf("scan page %+v %v", got, err)
	}
	ev := []Event{{Key: []byte("k"), Old: nil, New: []byte("v"), Type: EventCreated}}
	enc, _ = EncodeEvents(ev)
	if got, err := DecodeEvents(enc); err != nil || !reflect.DeepEqual(got, ev) {
		t.Errorf("events %+v %v", got, err)
	}
	ne := NodeEndpoints{TopologyVersion: 3, Added: []NodeEndpoint{{NodeID: ib.UUID{9}, Port: 10800, Addresses: []string{"127.0.0.1"}}}, Removed: []ib.UUID{{1}}}
	if got, err := DecodeNodeEndpoints(ne.Encode()); err != nil || !reflect.DeepEqual(got, ne) {
		t.Errorf("endpoints %+v %v", got, err)
	}
	cp := CachePartitions{Topology: TopologyVersion{1, 2}, Groups: []PartitionsGroup{
		{Applicable: true, Caches: []PartitionsCache{{CacheID: 4, KeyConfigs: [][2]int32{{1, 2}}}},
			Nodes: []NodePartitions{{NodeID: ib.UUID{3}, Partitions: []int32{0, 1}}}, DCNodes: []NodePartitions{}, DefaultAffinity: true},
		{Applicable: false, Caches: []PartitionsCache{{CacheID: 5}}},
	}}
	if got, err := DecodeCachePartitions(cp.Encode(p), p); err != nil || !reflect.DeepEqual(got, cp) {
		t.Errorf("partitions\n got %+v %v\nwant %+v", got, err, cp)
	}
	if _, err := DecodeEvents(hx(t, "01 00 00 00 65 65 65 07")); err == nil {
		t.Error("event type 7 accepted")
	}
}

func TestDecodeRequestRejects(t *testing.T) {
	p := Proto{Version: V1_7_0}
	for _, tc := range []struct {
		op  Op
		hex string
	}{
		{OpCacheGet, "01 00 00 00 00"},                                                              // no key
		{OpCacheGet, "01 00 00 00 02 01 00 00 00"},                                                  // tx flag, no key
		{OpCachePut, "01 00 00 00 00 65"},                                                           // no value
		{OpCacheGetAll, "01 00 00 00 00 FF FF FF 7F"},                                               // huge count
		{OpQueryContinuous, "01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 65"},             // page size 0
		{OpQueryContinuous, "01 00 00 00 00 01 00 00 00 FF FF FF FF FF FF FF FF 00 65"},             // negative interval
		{OpQueryContinuous, "01 00 00 00 02 01 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 65"}, // tx flag shifts
		{OpCacheGetOrCreateWithCfg, "07 00 00 00 01 00 01 00 00 00 00 00"},                          // LOCAL cache mode (0)
		{OpCacheGetOrCreateWithCfg, "06 00 00 00 01 00 63 00 00 00"},                                // unknown property 99
		{OpCacheGetOrCreateWithCfg, "08 00 00 00 01 00 00 00 09 00 00 00 00"},                       // wrong length
		{OpTxEnd, "01 00 00 00"},
		{OpCacheGet, "01 00 00 00 00 65 65"}, // trailing bytes
	} {
		if _, err := DecodeRequest(tc.op, hx(t, tc.hex), p); err == nil || errors.Is(err, ErrUnknownOp) {
			t.Errorf("DecodeRequest(%s, %s) = %v", tc.op, tc.hex, err)
		}
	}
	if _, err := DecodeRequest(Op(4242), nil, p); !errors.Is(err, ErrUnknownOp) {
		t.Errorf("unknown op: %v", err)
	}
	// Client-side validation mirrors it.
	for _, req := range []Request{
		&ContinuousQueryRequest{PageSize: 0},
		&ContinuousQueryRequest{PageSize: 1, TimeIntervalMs: -1},
		&ContinuousQueryRequest{PageSize: 1, CacheHeader: CacheHeader{Flags: CacheFlagTransactional}},
		&ScanRequest{PageSize: 0},
		&TxStartRequest{Concurrency: 2},
		&CacheConfigRequest{Config: CacheConfiguration{Properties: []CacheProperty{{Code: 99}}}},
		&CacheConfigRequest{Config: CacheConfiguration{Properties: []CacheProperty{{Code: PropBackups, Value: 1}}}},
		&CacheKeyRequest{Code: OpCacheGet, Key: struct{}{}},
	} {
		if _, err := EncodeRequest(1, req, p); err == nil {
			t.Errorf("EncodeRequest(%#v) succeeded", req)
		}
	}
}

func TestFeatures(t *testing.T) {
	f := NewFeatures(FeatureHeartbeat)
	if !bytes.Equal(f, []byte{0, 8}) || !f.Has(11) || f.Has(3) || f.Has(-1) || f.Has(100) {
		t.Errorf("features %v % X", f, []byte(f))
	}
	if got := (Features{0xff, 0xff, 0xff, 0x01}).Intersect(Features{0xff, 0xff, 0xfb, 0x01}); !bytes.Equal(got, []byte{0xff, 0xff, 0xfb, 0x01}) {
		t.Errorf("intersect % X", []byte(got))
	}
	if s := NewFeatures(0, 11).String(); s != "{0,11}" {
		t.Errorf("String %s", s)
	}
	if len(NewFeatures()) != 0 {
		t.Error("empty mask not empty")
	}
}

// TestPutAllBytesEncodesAsPutAll: the byte[]-only PUT_ALL is the same frame
// as the general one with the same entries (empty and nil values included).
func TestPutAllBytesEncodesAsPutAll(t *testing.T) {
	hdr := CacheHeader{CacheID: 7, Flags: CacheFlagTransactional, TxID: 3}
	entries := []BytesKV{{[]byte("a"), []byte("value")}, {[]byte{0, 1}, []byte{}}, {[]byte("k"), nil}}
	general := make([]KV, len(entries))
	for i, e := range entries {
		general[i] = KV{Key: e.Key, Value: e.Value}
	}
	for _, p := range []Proto{{Version: V1_7_0, Features: NewFeatures(FeatureHeartbeat)}, {Version: V1_2_0}} {
		want, err := EncodeRequest(5, &CachePutAllRequest{CacheHeader: hdr, Entries: general}, p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := EncodeRequest(5, &CachePutAllBytesRequest{CacheHeader: hdr, Entries: entries}, p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("protocol %v: PUT_ALL of byte[] entries\n got % X\nwant % X", p, got, want)
		}
	}
}
