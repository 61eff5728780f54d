package ignitetest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
	"github.com/ignetcd/ignetcd/ignite/wire"
)

// These tests speak raw frames to the double to pin the server behaviours
// the reference describes.

type rawConn struct {
	t     *testing.T
	nc    net.Conn
	br    *bufio.Reader
	proto wire.Proto
	next  int64
}

func dialRaw(t *testing.T, s *Server) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (r *rawConn) write(frame []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(frame); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) read() ([]byte, error) { return wire.ReadFrame(r.br, wire.DefaultMaxFrame) }

func (r *rawConn) handshake(v wire.Version, features wire.Features) wire.HandshakeReply {
	r.t.Helper()
	hs := wire.Handshake{Version: v, ClientType: wire.ClientTypeThin, Features: features}
	frame, err := hs.Encode()
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(frame)
	body, err := r.read()
	if err != nil {
		r.t.Fatal(err)
	}
	reply, err := wire.DecodeHandshakeReply(body, v)
	if err != nil {
		r.t.Fatal(err)
	}
	if reply.Success {
		r.proto = wire.Proto{Version: v, Features: reply.Features}
	}
	return reply
}

func (r *rawConn) send(req wire.Request) int64 {
	r.t.Helper()
	r.next++
	frame, err := wire.EncodeRequest(r.next, req, r.proto)
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(frame)
	return r.next
}

// call sends req and returns its response, skipping notifications.
func (r *rawConn) call(req wire.Request) wire.Response {
	r.t.Helper()
	id := r.send(req)
	for {
		body, err := r.read()
		if err != nil {
			r.t.Fatalf("%s: %v", req.Op(), err)
		}
		resp, err := wire.DecodeResponse(body, r.proto.HasFlags())
		if err != nil {
			r.t.Fatal(err)
		}
		if resp.IsNotification() {
			continue
		}
		if resp.ReqID != id {
			r.t.Fatalf("response to %d, want %d", resp.ReqID, id)
		}
		return resp
	}
}

func (r *rawConn) expectClosed() {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.read(); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.t.Fatal("connection still open")
		}
		if err == nil {
			r.t.Fatal("got a reply, want the connection closed")
		}
	}
}

func TestHandshakeVersions(t *testing.T) {
	s := New(t, Options{})
	r := dialRaw(t, s)
	reply := r.handshake(wire.Version{Major: 1, Minor: 8}, nil)
	if reply.Success || reply.ServerVersion != wire.V1_7_0 || reply.Status != wire.StatusFailed ||
		reply.Message != "Unsupported version: 1.8.0" {
		t.Fatalf("1.8.0: %+v", reply)
	}
	// Same socket, next attempt.
	reply = r.handshake(wire.V1_7_0, wire.NewFeatures(wire.FeatureHeartbeat, 60))
	if !reply.Success || !bytes.Equal(reply.Features, wire.NewFeatures(wire.FeatureHeartbeat)) {
		t.Fatalf("1.7.0: %+v", reply)
	}
	// The Java client's mask comes back without bit 18, as from 2.19.
	r = dialRaw(t, s)
	var all []wire.Feature
	for b := wire.Feature(0); b <= 24; b++ {
		all = append(all, b)
	}
	if reply := r.handshake(wire.V1_7_0, wire.NewFeatures(all...)); !bytes.Equal(reply.Features, []byte{0xff, 0xff, 0xfb, 0x01}) {
		t.Fatalf("features % X", []byte(reply.Features))
	}
	// A major version other than 1: no reply, closed.
	r = dialRaw(t, s)
	r.write([]byte{8, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 2})
	r.expectClosed()
}

func TestMalformedHandshakeTimesOut(t *testing.T) {
	s := New(t, Options{HandshakeTimeout: 200 * time.Millisecond})
	r := dialRaw(t, s)
	r.write([]byte{8, 0, 0, 0, 1, 1, 0, 7, 0, 0, 0, 2}) // 1.7.0 without features
	start := time.Now()
	r.expectClosed()
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("closed after %v, before the handshake timeout", d)
	}
}

func TestResponseHeaders(t *testing.T) {
	s := New(t, Options{})
	r := dialRaw(t, s)
	r.handshake(wire.V1_7_0, nil)
	first := r.call(&wire.EmptyRequest{Code: wire.OpCacheGetNames})
	if first.Topology == nil {
		t.Fatal("first response without topology version")
	}
	second := r.call(&wire.EmptyRequest{Code: wire.OpCacheGetNames})
	if second.Topology != nil {
		t.Fatal("second response with topology version")
	}
	create := r.call(&wire.CacheNameRequest{Code: wire.OpCacheGetOrCreateWithName, Name: "c"})
	if create.Topology == nil || create.Topology.Minor != first.Topology.Minor+1 {
		t.Fatalf("cache creation: topology %+v after %+v", create.Topology, first.Topology)
	}
	// Unknown op: status 2, connection kept.
	unknown := r.call(&wire.EmptyRequest{Code: wire.Op(4242)})
	if unknown.Status != wire.StatusInvalidOpCode || unknown.Message != "Invalid request op code: 4242" {
		t.Fatalf("unknown op: %+v", unknown)
	}
	missing := r.call(&wire.CacheKeyRequest{Code: wire.OpCacheGet, CacheHeader: wire.CacheHeader{CacheID: ib.CacheID("nope")}, Key: "k"})
	if missing.Status != wire.StatusCacheDoesNotExist || missing.Message != fmt.Sprintf("Cache does not exist [cacheId= %d]", ib.CacheID("nope")) {
		t.Fatalf("missing cache: %+v", missing)
	}
	// A request the server cannot parse: no reply, connection closed.
	r.write([]byte{11, 0, 0, 0, 0xE8, 0x03, 1, 0, 0, 0, 0, 0, 0, 0, 1})
	r.expectClosed()
}

func TestLegacyProtocol(t *testing.T) {
	s := New(t, Options{})
	r := dialRaw(t, s)
	if reply := r.handshake(wire.V1_2_0, nil); !reply.Success {
		t.Fatalf("1.2.0: %+v", reply)
	}
	resp := r.call(&wire.CacheNameRequest{Code: wire.OpCacheGetOrCreateWithName, Name: "c"})
	if resp.Status != 0 || resp.Topology != nil {
		t.Fatalf("legacy response %+v", resp)
	}
	resp = r.call(&wire.CacheIDRequest{Code: wire.OpCacheDestroy, CacheID: 1})
	if resp.Status != wire.StatusCacheDoesNotExist {
		t.Fatalf("legacy error %+v", resp)
	}
}

func TestTransactionEdges(t *testing.T) {
	s := New(t, Options{MaxTxPerConn: 2})
	r := dialRaw(t, s)
	r.handshake(wire.V1_7_0, nil)
	r.call(&wire.CacheConfigRequest{Code: wire.OpCacheGetOrCreateWithCfg, Config: wire.CacheConfiguration{Properties: []wire.CacheProperty{
		{Code: wire.PropName, Value: "tx"}, {Code: wire.PropAtomicityMode, Value: wire.AtomicityTransactional}}}})
	cache := ib.CacheID("tx")

	// An op naming a tx id the connection does not know runs outside any
	// transaction (and so is visible at once).
	resp := r.call(&wire.CacheKeyValueRequest{Code: wire.OpCachePut,
		CacheHeader: wire.CacheHeader{CacheID: cache, Flags: wire.CacheFlagTransactional, TxID: 77}, Key: "k", Value: int64(1)})
	if resp.Status != 0 {
		t.Fatalf("put with unknown tx id: %+v", resp)
	}
	if v, found, _ := s.Get("tx", "k"); !found || v != int64(1) {
		t.Fatalf("put with unknown tx id not applied: %v %v", v, found)
	}
	// TX_END of an unknown id: rollback succeeds, commit fails with 1021.
	if resp := r.call(&wire.TxEndRequest{TxID: 9}); resp.Status != 0 {
		t.Fatalf("rollback unknown: %+v", resp)
	}
	if resp := r.call(&wire.TxEndRequest{TxID: 9, Commit: true}); resp.Status != wire.StatusTxNotFound ||
		resp.Message != "Transaction with id 9 not found." {
		t.Fatalf("commit unknown: %+v", resp)
	}
	// Ids start at 1; the per-connection limit applies.
	for want := int32(1); want <= 2; want++ {
		resp := r.call(&wire.TxStartRequest{Concurrency: wire.TxPessimistic, Isolation: wire.TxRepeatableRead})
		if id, _ := wire.DecodeI32(resp.Payload); id != want {
			t.Fatalf("tx id %d, want %d", id, want)
		}
	}
	if resp := r.call(&wire.TxStartRequest{Concurrency: wire.TxPessimistic}); resp.Status != wire.StatusTxLimitExceeded {
		t.Fatalf("third tx: %+v", resp)
	}
	// A lock held by tx 1 ...
	r.call(&wire.CacheKeyValueRequest{Code: wire.OpCachePut,
		CacheHeader: wire.CacheHeader{CacheID: cache, Flags: wire.CacheFlagTransactional, TxID: 1}, Key: "k", Value: int64(2)})
	if s.Locks() != 1 {
		t.Fatalf("%d locks", s.Locks())
	}
	// ... goes when the connection closes, and the write with it.
	r.nc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.Locks() != 0 || len(s.Conns()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("locks or connection left after close")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if v, _, _ := s.Get("tx", "k"); v != int64(1) {
		t.Fatalf("k = %v after the tx's connection closed", v)
	}
}

func TestResources(t *testing.T) {
	s := New(t, Options{MaxCursorsPerConn: 2})
	r := dialRaw(t, s)
	r.handshake(wire.V1_7_0, nil)
	r.call(&wire.CacheNameRequest{Code: wire.OpCacheGetOrCreateWithName, Name: "c"})
	cache := ib.CacheID("c")
	for i := 0; i < 5; i++ {
		r.call(&wire.CacheKeyValueRequest{Code: wire.OpCachePut, CacheHeader: wire.CacheHeader{CacheID: cache}, Key: int64(i), Value: int64(i)})
	}
	scan := &wire.ScanRequest{CacheHeader: wire.CacheHeader{CacheID: cache}, PageSize: 2, Partition: -1}
	for want := int64(1); want <= 2; want++ {
		page, err := wire.DecodeScanPage(r.call(scan).Payload, true)
		if err != nil || page.CursorID != want || !page.HasMore || len(page.Entries) != 2 {
			t.Fatalf("scan %d: %+v %v", want, page, err)
		}
	}
	if resp := r.call(scan); resp.Status != wire.StatusTooManyCursors {
		t.Fatalf("third cursor: %+v", resp)
	}
	if resp := r.call(&wire.ResourceRequest{Code: wire.OpResourceClose, ResourceID: 2}); resp.Status != 0 {
		t.Fatalf("close: %+v", resp)
	}
	if resp := r.call(&wire.ResourceRequest{Code: wire.OpResourceClose, ResourceID: 2}); resp.Status != wire.StatusResourceDoesNotExist {
		t.Fatalf("close twice: %+v", resp)
	}
	// Paging to the end releases the cursor.
	for _, more := range []bool{true, false} {
		page, err := wire.DecodeScanPage(r.call(&wire.ResourceRequest{Code: wire.OpQueryScanCursorGetPage, ResourceID: 1}).Payload, false)
		if err != nil || page.HasMore != more {
			t.Fatalf("page: %+v %v", page, err)
		}
	}
	if resp := r.call(&wire.ResourceRequest{Code: wire.OpQueryScanCursorGetPage, ResourceID: 1}); resp.Status != wire.StatusResourceDoesNotExist {
		t.Fatalf("page of a released cursor: %+v", resp)
	}
	// Continuous query events arrive as notifications for its resource id.
	id, _ := wire.DecodeI64(r.call(&wire.ContinuousQueryRequest{CacheHeader: wire.CacheHeader{CacheID: cache}, PageSize: 1}).Payload)
	if id != 3 {
		t.Fatalf("query id %d, want 3 (ids are shared with cursors)", id)
	}
	r.send(&wire.CacheKeyValueRequest{Code: wire.OpCachePut, CacheHeader: wire.CacheHeader{CacheID: cache}, Key: int64(9), Value: "x"})
	var gotEvent, gotResponse bool
	for !gotEvent || !gotResponse {
		body, err := r.read()
		if err != nil {
			t.Fatal(err)
		}
		resp, _ := wire.DecodeResponse(body, true)
		if resp.IsNotification() {
			ev, err := wire.DecodeEvents(resp.Payload)
			if err != nil || resp.ReqID != id || len(ev) != 1 || ev[0].Key != int64(9) || ev[0].Type != wire.EventCreated {
				t.Fatalf("notification %+v %+v %v", resp, ev, err)
			}
			gotEvent = true
		} else {
			gotResponse = true
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	s := New(t, Options{IdleTimeout: 150 * time.Millisecond})
	r := dialRaw(t, s)
	r.handshake(wire.V1_7_0, wire.NewFeatures(wire.FeatureHeartbeat))
	ms, _ := wire.DecodeI64(r.call(&wire.EmptyRequest{Code: wire.OpGetIdleTimeout}).Payload)
	if ms != 150 {
		t.Fatalf("idle timeout %d", ms)
	}
	for i := 0; i < 4; i++ {
		time.Sleep(50 * time.Millisecond)
		if resp := r.call(&wire.EmptyRequest{Code: wire.OpHeartbeat}); resp.Status != 0 {
			t.Fatalf("heartbeat %+v", resp)
		}
	}
	r.expectClosed()
}

func TestEndpointsHelper(t *testing.T) {
	t.Setenv(EnvCluster, "h1:10800, h2:10801")
	eps, srv := Endpoints(t, Options{})
	if srv != nil || len(eps) != 2 || eps[1] != "h2:10801" {
		t.Fatalf("Endpoints = %v, %v", eps, srv)
	}
	t.Setenv(EnvCluster, "")
	eps, srv = Endpoints(t, Options{Nodes: 2})
	if srv == nil || len(eps) != 2 {
		t.Fatalf("Endpoints = %v, %v", eps, srv)
	}
}

func TestClusterOps(t *testing.T) {
	s := New(t, Options{Nodes: 2})
	r := dialRaw(t, s)
	r.handshake(wire.V1_7_0, wire.Features{0xff, 0xff, 0xff, 0x01})
	cfg, err := wire.DecodeBinaryConfiguration(r.call(&wire.EmptyRequest{Code: wire.OpBinaryConfigurationGet}).Payload)
	if err != nil || !cfg.CompactFooter {
		t.Fatalf("binary configuration %+v %v", cfg, err)
	}
	eps, err := wire.DecodeNodeEndpoints(r.call(&wire.NodeEndpointsRequest{StartTopologyVersion: -1, EndTopologyVersion: -1}).Payload)
	if err != nil || len(eps.Added) != 2 || eps.Added[0].Addresses[0] != "127.0.0.1" {
		t.Fatalf("endpoints %+v %v", eps, err)
	}
	// The Java client's configuration request (leading sql bool with bit 21).
	r.call(&wire.CacheConfigRequest{Code: wire.OpCacheGetOrCreateWithCfg, Config: wire.CacheConfiguration{Properties: []wire.CacheProperty{
		{Code: wire.PropName, Value: "pa"}}}})
	parts, err := wire.DecodeCachePartitions(r.call(&wire.CachePartitionsRequest{CacheIDs: []int32{ib.CacheID("pa")}}).Payload, r.proto)
	if err != nil || len(parts.Groups) != 1 || parts.Groups[0].Applicable {
		t.Fatalf("partitions %+v %v", parts, err)
	}
}
