package client

import (
	"bufio"
	"context"
	"encoding/hex"
	"net"
	"testing"
	"time"

	"github.com/ignetcd/ignetcd/ignite/wire"
)

// FuzzServerBytes feeds arbitrary server output (after a valid handshake) to
// a client with a request in flight: the request must end with a result or
// an error, and Close must return (no panic, no stuck goroutine).
func FuzzServerBytes(f *testing.F) {
	for _, s := range []string{
		"1600000001000000000000000200010000000000000003000000",                                     // empty success
		"0b000000010000000000000000000c",                                                           // truncated value
		"2400000001000000000000000400d70701000000040100000000000000650c040000007265763100",         // notification, unknown id
		"3e0000000100000000000000010000e8030000092b000000436163686520646f6573206e6f74206578697374", // short error
		"ffffff7f",
		"0a00000063000000000000000000", // response to an unknown id
	} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
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
			wire.ReadFrame(br, 0) // the request
			nc.Write(data)
			// Keep the socket open a little: the client must not depend
			// on the server closing it.
			time.Sleep(10 * time.Millisecond)
		}()
		c, err := Connect(context.Background(), Config{Endpoints: []string{ln.Addr().String()}, DialTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		c.Cache("c").Get(ctx, []byte("k"))
		done := make(chan struct{})
		go func() { c.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Close hung")
		}
		<-served
	})
}
