package wire

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
)

// The captures in testdata/captures are copies of shared/testdata/ignite-wire:
// real traffic between Ignite 2.19's Java thin client and a 2.19 server.

type captured struct {
	Dir  string `json:"dir"`
	Note string `json:"note"`
	Hex  string `json:"hex"`
	raw  []byte
}

func loadCapture(t *testing.T, path string) []captured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []captured
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c captured
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		if c.raw, err = hex.DecodeString(c.Hex); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func captures(t *testing.T) map[string][]captured {
	files, err := filepath.Glob("testdata/captures/*.jsonl")
	if err != nil || len(files) != 9 {
		t.Fatalf("captures: %v %v", files, err)
	}
	out := map[string][]captured{}
	for _, f := range files {
		out[filepath.Base(f)] = loadCapture(t, f)
	}
	return out
}

// body strips and checks the length prefix of a captured frame.
func body(t *testing.T, frame []byte) []byte {
	t.Helper()
	b, err := ReadFrame(bytes.NewReader(frame), DefaultMaxFrame)
	if err != nil {
		t.Fatalf("ReadFrame(% X): %v", frame, err)
	}
	if len(b)+4 != len(frame) {
		t.Fatalf("frame has %d bytes after its body", len(frame)-4-len(b))
	}
	return b
}

// cook replaces the binary.Raw values of a decoded request by Go values, so
// that re-encoding it exercises the Go value encoder as a client would.
func cook(t *testing.T, req Request) {
	t.Helper()
	dec := func(v any) any {
		raw, ok := v.(ib.Raw)
		if !ok {
			return v
		}
		g, err := ib.Decode(raw)
		if err != nil {
			t.Fatalf("decode %X: %v", []byte(raw), err)
		}
		return g
	}
	switch q := req.(type) {
	case *CacheKeyRequest:
		q.Key = dec(q.Key)
	case *CacheKeyValueRequest:
		q.Key, q.Value = dec(q.Key), dec(q.Value)
	case *CacheReplaceIfEqualsRequest:
		q.Key, q.Expected, q.Value = dec(q.Key), dec(q.Expected), dec(q.Value)
	case *CacheKeysRequest:
		for i := range q.Keys {
			q.Keys[i] = dec(q.Keys[i])
		}
	case *CachePutAllRequest:
		for i := range q.Entries {
			q.Entries[i].Key, q.Entries[i].Value = dec(q.Entries[i].Key), dec(q.Entries[i].Value)
		}
	case *ScanRequest:
		q.Filter = dec(q.Filter)
	case *ContinuousQueryRequest:
		q.Filter = dec(q.Filter)
	}
}

// TestCapturedTraffic decodes every captured frame with this codec and
// re-encodes it: client frames byte for byte (request ids included, since the
// re-encoding keeps them), server frames likewise.
func TestCapturedTraffic(t *testing.T) {
	for name, frames := range captures(t) {
		t.Run(name, func(t *testing.T) {
			replayCapture(t, frames)
		})
	}
}

func replayCapture(t *testing.T, frames []captured) {
	if frames[0].Dir != "c2s" || frames[1].Dir != "s2c" {
		t.Fatal("capture does not start with a handshake")
	}
	hs, err := DecodeHandshake(body(t, frames[0].raw))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := hs.Encode()
	if err != nil || !bytes.Equal(enc, frames[0].raw) {
		t.Fatalf("handshake re-encoded\n got % X (%v)\nwant % X", enc, err, frames[0].raw)
	}
	// The Java client advertises bits 0-24 and sends null user attributes.
	javaHS := Handshake{Version: V1_7_0, ClientType: ClientTypeThin, Features: allBits(24)}
	if enc, _ := javaHS.Encode(); !bytes.Equal(enc, frames[0].raw) {
		t.Fatalf("handshake built from Go values\n got % X\nwant % X", enc, frames[0].raw)
	}
	reply, err := DecodeHandshakeReply(body(t, frames[1].raw), hs.Version)
	if err != nil || !reply.Success {
		t.Fatalf("handshake reply %+v, %v", reply, err)
	}
	if got := reply.NodeID.String(); got != "26378722-a2fc-40c0-9415-5fac20c8fdf3" {
		t.Errorf("node id %s", got)
	}
	if reply.Features.Has(FeatureTxAwareQueries) || !reply.Features.Has(FeatureHeartbeat) {
		t.Errorf("negotiated features %v", reply.Features)
	}
	if enc := reply.Encode(hs.Version); !bytes.Equal(enc, frames[1].raw) {
		t.Fatalf("handshake reply re-encoded\n got % X\nwant % X", enc, frames[1].raw)
	}
	proto := Proto{Version: hs.Version, Features: reply.Features}

	requests := map[int64]Op{}
	first := true
	for i, f := range frames[2:] {
		b := body(t, f.raw)
		if f.Dir == "c2s" {
			hdr, payload, err := DecodeRequestHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			req, err := DecodeRequest(hdr.Op, payload, proto)
			if err != nil {
				t.Fatalf("frame %d (%s): %v", i+2, f.Note, err)
			}
			cook(t, req)
			enc, err := EncodeRequest(hdr.ReqID, req, proto)
			if err != nil || !bytes.Equal(enc, f.raw) {
				t.Fatalf("frame %d (%s) re-encoded\n got % X (%v)\nwant % X", i+2, f.Note, enc, err, f.raw)
			}
			requests[hdr.ReqID] = hdr.Op
			continue
		}
		resp, err := DecodeResponse(b, true)
		if err != nil {
			t.Fatalf("frame %d (%s): %v", i+2, f.Note, err)
		}
		if first && resp.Topology == nil {
			t.Errorf("first response has no topology version")
		}
		first = false
		payload := resp.Payload
		if resp.IsNotification() {
			if resp.NotificationOp != OpQueryContinuousEvent {
				t.Fatalf("notification op %v", resp.NotificationOp)
			}
			ev, err := DecodeEvents(payload)
			if err != nil {
				t.Fatal(err)
			}
			if payload, err = EncodeEvents(ev); err != nil {
				t.Fatal(err)
			}
		} else if !resp.IsError() {
			op, ok := requests[resp.ReqID]
			if !ok {
				t.Fatalf("response to unknown request %d", resp.ReqID)
			}
			payload = reencodePayload(t, op, payload, proto)
		}
		resp.Payload = payload
		if enc := EncodeResponse(&resp, true); !bytes.Equal(enc, f.raw) {
			t.Fatalf("frame %d (%s) re-encoded\n got % X\nwant % X", i+2, f.Note, enc, f.raw)
		}
	}
}

func allBits(n int) Features {
	var bits []Feature
	for i := 0; i <= n; i++ {
		bits = append(bits, Feature(i))
	}
	return NewFeatures(bits...)
}

// reencodePayload decodes a response payload by its request's op and encodes
// the result again.
func reencodePayload(t *testing.T, op Op, payload []byte, p Proto) []byte {
	t.Helper()
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatalf("%s payload % X: %v", op, payload, err)
		}
		return b
	}
	switch op {
	case OpCacheGet, OpCacheGetAndPut, OpCacheGetAndRemove, OpCacheGetAndReplace, OpCacheGetAndPutIfAbsent:
		v, err := DecodeValue(payload)
		must(nil, err)
		return must(EncodeValue(v))
	case OpCachePutIfAbsent, OpCacheReplace, OpCacheReplaceIfEquals, OpCacheContainsKey, OpCacheContainsKeys,
		OpCacheRemoveKey, OpCacheRemoveIfEquals:
		v, err := DecodeBool(payload)
		must(nil, err)
		return EncodeBool(v)
	case OpCacheGetAll:
		v, err := DecodeEntries(payload)
		must(nil, err)
		return must(EncodeEntries(v))
	case OpCacheGetSize, OpQueryContinuous:
		v, err := DecodeI64(payload)
		must(nil, err)
		return EncodeI64(v)
	case OpTxStart:
		v, err := DecodeI32(payload)
		must(nil, err)
		return EncodeI32(v)
	case OpCacheGetNames:
		v, err := DecodeStrings(payload)
		must(nil, err)
		return EncodeStrings(v)
	case OpQueryScan, OpQueryScanCursorGetPage:
		v, err := DecodeScanPage(payload, op == OpQueryScan)
		must(nil, err)
		return must(v.Encode(op == OpQueryScan))
	case OpBinaryConfigurationGet:
		v, err := DecodeBinaryConfiguration(payload)
		must(nil, err)
		return v.Encode()
	case OpClusterGroupGetEndpoints:
		v, err := DecodeNodeEndpoints(payload)
		must(nil, err)
		return v.Encode()
	case OpCachePartitions:
		v, err := DecodeCachePartitions(payload, p)
		must(nil, err)
		return v.Encode(p)
	default:
		must(nil, DecodeEmpty(payload))
		return nil
	}
}

// TestCapturedValues checks that the decoded server frames say what the
// scenarios imply.
func TestCapturedValues(t *testing.T) {
	all := captures(t)
	proto := Proto{Version: V1_7_0, Features: Features{0xff, 0xff, 0xfb, 0x01}}
	resp := func(name string, reqID int64) Response {
		t.Helper()
		for _, f := range all[name][2:] {
			if f.Dir != "s2c" {
				continue
			}
			r, err := DecodeResponse(body(t, f.raw), true)
			if err != nil {
				t.Fatal(err)
			}
			if !r.IsNotification() && r.ReqID == reqID {
				return r
			}
		}
		t.Fatalf("%s: no response %d", name, reqID)
		return Response{}
	}
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", what, got, want)
		}
	}

	// 02: cache creation bumps the topology version; names; destroy.
	r := resp("02-create-transactional-cache-and-destroy.jsonl", 3)
	check("02 create topology", *r.Topology, TopologyVersion{1, 3})
	names, _ := DecodeStrings(resp("02-create-transactional-cache-and-destroy.jsonl", 4).Payload)
	check("02 names", names, []string{"wire-create"})

	// 03: byte[] keys and values.
	const kv = "03-byte-array-kv-ops.jsonl"
	v, _ := DecodeValue(resp(kv, 5).Payload)
	check("03 get", v, []byte("v1"))
	v, _ = DecodeValue(resp(kv, 6).Payload)
	check("03 get missing", v, nil)
	bv, _ := DecodeBool(resp(kv, 8).Payload)
	check("03 putIfAbsent", bv, false)
	bv, _ = DecodeBool(resp(kv, 9).Payload)
	check("03 replace", bv, true)
	entries, _ := DecodeEntries(resp(kv, 11).Payload)
	check("03 getAll", entries, []KV{{[]byte("/registry/a"), []byte("v2")}, {[]byte("/registry/b"), []byte("vb")}})
	n, _ := DecodeI64(resp(kv, 12).Payload)
	check("03 size", n, int64(3))
	n, _ = DecodeI64(resp(kv, 17).Payload)
	check("03 size after removes", n, int64(0))

	// 04: long and string keys.
	v, _ = DecodeValue(resp("04-long-and-string-kv-ops.jsonl", 5).Payload)
	check("04 get revision", v, int64(42))
	v, _ = DecodeValue(resp("04-long-and-string-kv-ops.jsonl", 7).Payload)
	check("04 get 7", v, []byte("revlog-entry"))

	// 05: transactions.
	const tx = "05-pessimistic-tx-commit-and-rollback.jsonl"
	id, _ := DecodeI32(resp(tx, 5).Payload)
	check("05 first tx id", id, int32(1))
	id, _ = DecodeI32(resp(tx, 11).Payload)
	check("05 second tx id", id, int32(2))
	v, _ = DecodeValue(resp(tx, 16).Payload)
	check("05 counter after rollback", v, int64(2))

	// 06: paged scan, cursor id 1, 2+2+1 entries.
	const scan = "06-scan-query-paged.jsonl"
	p1, _ := DecodeScanPage(resp(scan, 9).Payload, true)
	p2, _ := DecodeScanPage(resp(scan, 10).Payload, false)
	p3, _ := DecodeScanPage(resp(scan, 11).Payload, false)
	check("06 cursor", p1.CursorID, int64(1))
	check("06 pages", []int{len(p1.Entries), len(p2.Entries), len(p3.Entries)}, []int{2, 2, 1})
	check("06 has more", []bool{p1.HasMore, p2.HasMore, p3.HasMore}, []bool{true, true, false})
	seen := map[string]string{}
	for _, p := range []ScanPage{p1, p2, p3} {
		for _, e := range p.Entries {
			seen[string(e.Key.([]byte))] = string(e.Value.([]byte))
		}
	}
	check("06 entries", seen, map[string]string{"/k/0": "v0", "/k/1": "v1", "/k/2": "v2", "/k/3": "v3", "/k/4": "v4"})

	// 07: continuous query id 1 and its events.
	const cq = "07-continuous-query-events.jsonl"
	qid, _ := DecodeI64(resp(cq, 4).Payload)
	check("07 query id", qid, int64(1))
	var events []Event
	for _, f := range all[cq] {
		if f.Dir != "s2c" || f.Note == "" {
			continue
		}
		r, err := DecodeResponse(body(t, f.raw), true)
		if err != nil || !r.IsNotification() {
			continue
		}
		check("07 resource id", r.ReqID, qid)
		ev, err := DecodeEvents(r.Payload)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev...)
	}
	check("07 events", events, []Event{
		{Key: int64(1), Old: nil, New: []byte("rev1"), Type: EventCreated},
		{Key: int64(2), Old: nil, New: []byte("rev2"), Type: EventCreated},
		{Key: int64(1), Old: []byte("rev1"), New: []byte("rev1-updated"), Type: EventUpdated},
		{Key: int64(2), Old: []byte("rev2"), New: nil, Type: EventRemoved},
	})

	// 08: errors.
	r = resp("08-errors.jsonl", 2)
	check("08 unknown cache status", r.Status, StatusCacheDoesNotExist)
	check("08 unknown cache message", r.Message, "Cache does not exist [cacheId= -1966015296]")
	r = resp("08-errors.jsonl", 6)
	check("08 atomic in tx status", r.Status, StatusFailed)
	if !bytes.HasPrefix([]byte(r.Message), []byte("Transaction spans operations on atomic cache")) {
		t.Errorf("08 atomic in tx message %q", r.Message)
	}

	// 09: partition map of one node, 1024 partitions.
	parts, err := DecodeCachePartitions(resp("09-partition-awareness.jsonl", 4).Payload, proto)
	if err != nil {
		t.Fatal(err)
	}
	g := parts.Groups[0]
	check("09 groups", len(parts.Groups), 1)
	check("09 applicable", g.Applicable, true)
	check("09 partitions", len(g.Nodes[0].Partitions), 1024)
	check("09 default affinity", g.DefaultAffinity, true)
	check("09 cache id", g.Caches[0].CacheID, ib.CacheID("wire-pa"))
}

// TestCapturedConfiguration checks the 33-property configuration the Java
// client sends, and that a configuration built from Go values reproduces it.
func TestCapturedConfiguration(t *testing.T) {
	frames := captures(t)["02-create-transactional-cache-and-destroy.jsonl"]
	proto := Proto{Version: V1_7_0, Features: Features{0xff, 0xff, 0xfb, 0x01}}
	hdr, payload, _ := DecodeRequestHeader(body(t, frames[6].raw))
	req, err := DecodeRequest(hdr.Op, payload, proto)
	if err != nil {
		t.Fatal(err)
	}
	cfg := req.(*CacheConfigRequest).Config
	if len(cfg.Properties) != 33 || cfg.Name() != "wire-create" {
		t.Fatalf("config %+v", cfg)
	}
	var codes []int
	for _, p := range cfg.Properties {
		codes = append(codes, int(p.Code))
	}
	sort.Ints(codes)
	if codes[0] != 0 || codes[len(codes)-1] != 409 {
		t.Errorf("codes %v", codes)
	}
	built := &CacheConfigRequest{Code: OpCacheGetOrCreateWithCfg, Config: CacheConfiguration{Properties: []CacheProperty{
		{PropName, "wire-create"}, {PropCacheMode, CacheModePartitioned}, {PropAtomicityMode, AtomicityTransactional},
		{PropBackups, int32(1)}, {PropWriteSynchronizationMode, WriteSyncFullSync}, {PropReadFromBackup, true},
		{PropEagerTTL, true}, {PropGroupName, nil}, {PropDefaultLockTimeout, int64(0)}, {PropPartitionLossPolicy, int32(4)},
		{PropRebalanceBatchSize, int32(512 << 10)}, {PropRebalanceBatchesPrefetch, int64(3)}, {PropRebalanceDelay, int64(0)},
		{PropRebalanceMode, int32(1)}, {PropRebalanceOrder, int32(0)}, {PropRebalanceThrottle, int64(0)},
		{PropRebalanceTimeout, int64(10000)}, {PropCopyOnRead, true}, {PropDataRegionName, nil},
		{PropStatisticsEnabled, false}, {PropMaxConcurrentAsyncOps, int32(500)}, {PropMaxQueryIterators, int32(1024)},
		{PropOnheapCacheEnabled, false}, {PropQueryDetailMetricsSize, int32(0)}, {PropQueryParallelism, int32(1)},
		{PropSQLEscapeAll, false}, {PropSQLIndexMaxInlineSize, int32(-1)}, {PropSQLSchema, nil},
		{PropKeyConfiguration, []KeyConfiguration{}}, {PropQueryEntities, nil}, {PropExpiryPolicy, (*ExpiryPolicy)(nil)},
		{PropStoragePath, nil}, {PropIndexPath, nil},
	}}}
	enc, err := EncodeRequest(hdr.ReqID, built, proto)
	if err != nil || !bytes.Equal(enc, frames[6].raw) {
		t.Fatalf("configuration built from Go values\n got % X (%v)\nwant % X", enc, err, frames[6].raw)
	}
}
