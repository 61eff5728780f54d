package server

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// fakeStream is a server stream that accepts every message.
type fakeStream struct{ grpc.ServerStream }

func (fakeStream) SendMsg(any) error        { return nil }
func (fakeStream) Context() context.Context { return context.Background() }

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		panic(err)
	}
	return m.GetGauge().GetValue()
}

func TestWatcherGauges(t *testing.T) {
	m := newMetrics(nil, false)
	sends := []*pb.WatchResponse{
		{WatchId: 0, Created: true},
		{WatchId: 1, Created: true},
		{WatchId: 1, Events: nil},                    // events change nothing
		{WatchId: -1, Created: true, Canceled: true}, // a refused create
		{WatchId: 0, Canceled: true},
		{WatchId: 0, Canceled: true}, // a second cancel counts once
		{WatchId: 2, Created: true},
	}
	inside := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- m.countWatchers(nil, fakeStream{}, &grpc.StreamServerInfo{FullMethod: watchMethod}, func(_ any, ss grpc.ServerStream) error {
			for _, resp := range sends {
				if err := ss.SendMsg(resp); err != nil {
					return err
				}
			}
			close(inside)
			<-release
			return nil
		})
	}()
	select {
	case <-inside:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler never ran")
	}
	if got := gaugeValue(m.watchers); got != 2 {
		t.Errorf("watchers while the stream is open = %v, want 2 (ids 1 and 2)", got)
	}
	if got := gaugeValue(m.watchStreams); got != 1 {
		t.Errorf("watch streams = %v, want 1", got)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for name, g := range map[string]prometheus.Gauge{"watchers": m.watchers, "watch streams": m.watchStreams} {
		if got := gaugeValue(g); got != 0 {
			t.Errorf("%s after the stream ended = %v, want 0", name, got)
		}
	}
}

func TestKeepaliveDefaults(t *testing.T) {
	s := New(nil, Config{})
	if s.cfg.KeepaliveMinTime != 5*time.Second || s.cfg.KeepaliveInterval != 2*time.Hour || s.cfg.KeepaliveTimeout != 20*time.Second {
		t.Fatalf("keepalive defaults %v %v %v, want etcd's 5s 2h 20s", s.cfg.KeepaliveMinTime, s.cfg.KeepaliveInterval, s.cfg.KeepaliveTimeout)
	}
	s = New(nil, Config{KeepaliveMinTime: time.Second, KeepaliveInterval: time.Minute, KeepaliveTimeout: 3 * time.Second})
	if s.cfg.KeepaliveMinTime != time.Second || s.cfg.KeepaliveInterval != time.Minute || s.cfg.KeepaliveTimeout != 3*time.Second {
		t.Fatalf("keepalive settings not kept: %+v", s.cfg)
	}
}
