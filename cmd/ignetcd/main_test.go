package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHelpAndVersion(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"--help", "-listen-client-urls"},
		{"--version", "3.6.16"},
	} {
		var out, logs bytes.Buffer
		if err := run(context.Background(), []string{tc.arg}, &out, &logs); err != nil {
			t.Fatalf("%s: %v", tc.arg, err)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s printed %q, want %q in it", tc.arg, out.String(), tc.want)
		}
	}
}

func TestRunErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "flag provided but not defined: -bogus (see ignetcd --help)"},
		{[]string{"--listen-client-urls=http://" + busy.Addr().String()}, "address already in use"},
		{[]string{"--listen-client-urls=https://127.0.0.1:0"}, "--cert-file and --key-file (or --auto-tls)"},
		{[]string{"--listen-client-urls=grpc://127.0.0.1:0"}, "unsupported scheme"},
		{[]string{"--listen-client-urls=http://127.0.0.1:0", "--ignite-endpoints=127.0.0.1:1"}, "is an Ignite node running"},
	} {
		var out, logs bytes.Buffer
		err := run(context.Background(), tc.args, &out, &logs)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("run(%q): err = %v, want one line containing %q", tc.args, err, tc.want)
		}
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--listen-client-urls=http://" + addr}, &bytes.Buffer{}, &logs) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/health never answered 200: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	for _, want := range []string{"in-memory engine", "serving etcd clients", `"engine":"memory"`, "ignetcd ready", "stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("start-up logs lack %q:\n%s", want, logs.String())
		}
	}
}
