package client

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"net"
	"testing"
	"time"

	"github.com/ignetcd/ignetcd/ignite/wire"
)

// FuzzServerReplies complements FuzzServerBytes: the server answers each
// request with a well-formed frame (right request id and flags) around a
// fuzzed payload, so that the payload decoders behind every operation the
// Ignite engine uses are reached through the client's own code paths: get
// and getAll of byte arrays, scan pages, continuous-query start and event
// notifications, transaction start and commit, cache names, size. The
// operation must end with a result or an error; nothing may panic or hang.
func FuzzServerReplies(f *testing.F) {
	hexes := []string{
		"0c03000000010203", // byte[] value
		"65",               // null
		"01000000" + "0c0100000061" + "0c0100000062",                             // one entry
		"0100000000000000" + "01000000" + "0c0100000061" + "0c0100000062" + "00", // scan page
		"01000000" + "0c0100000061" + "65" + "0c0100000062" + "00",               // CQ event
		"2a000000", // tx id
		"0100000009010000006100",
	}
	for op := byte(0); op < 7; op++ {
		for _, h := range hexes {
			b, err := hex.DecodeString(h)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(op, b)
		}
	}
	f.Fuzz(func(t *testing.T, op byte, payload []byte) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		served := make(chan struct{})
		go func() {
			defer close(served)
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(nc)
			if _, err := wire.ReadFrame(br, 0); err != nil {
				return
			}
			reply := wire.HandshakeReply{Success: true}
			nc.Write(reply.Encode(wire.V1_7_0))
			for {
				body, err := wire.ReadFrame(br, 0)
				if err != nil {
					return
				}
				h, _, err := wire.DecodeRequestHeader(body)
				if err != nil {
					return
				}
				out := payload
				if h.Op == wire.OpQueryContinuous {
					// Start the query as resource 7, then notify with the
					// fuzzed payload.
					id := make([]byte, 8)
					binary.LittleEndian.PutUint64(id, 7)
					out = id
				}
				nc.Write(wire.EncodeResponse(&wire.Response{ReqID: h.ReqID, Payload: out}, true))
				if h.Op == wire.OpQueryContinuous {
					nc.Write(wire.EncodeResponse(&wire.Response{ReqID: 7, NotificationOp: wire.OpQueryContinuousEvent, Payload: payload}, true))
				}
			}
		}()
		c, err := Connect(context.Background(), Config{Endpoints: []string{ln.Addr().String()}, DialTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		cc := c.Cache("c")
		switch op % 7 {
		case 0:
			cc.Get(ctx, []byte("k"))
		case 1:
			cc.GetAllBytes(ctx, [][]byte{[]byte("a"), []byte("b")})
		case 2:
			cc.ScanAll(ctx, 2, func(k, v any) error { return nil })
		case 3:
			q, err := cc.Listen(ctx, ContinuousQueryOptions{PageSize: 1}, func([]Event) {}, func(error) {})
			if err == nil {
				time.Sleep(5 * time.Millisecond)
				q.Cancel()
			}
		case 4:
			if tx, err := c.Begin(ctx, TxOptions{Concurrency: Pessimistic, Isolation: RepeatableRead}); err == nil {
				cc.WithTx(tx).GetAllBytes(ctx, [][]byte{[]byte("a")})
				tx.Commit(ctx)
			}
		case 5:
			c.CacheNames(ctx)
		case 6:
			cc.Size(ctx)
		}
		done := make(chan struct{})
		go func() { c.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Close hung")
		}
		ln.Close()
		<-served
	})
}
