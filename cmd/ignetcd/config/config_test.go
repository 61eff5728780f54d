package config

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ignetcd/ignetcd/embed"
	"github.com/ignetcd/ignetcd/mvcc"
	"github.com/ignetcd/ignetcd/server"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	s, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Node
	if c.Name != "default" || !reflect.DeepEqual(c.ListenClientURLs, []string{embed.DefaultListenClientURL}) ||
		c.MaxRequestBytes != server.DefaultMaxRequestBytes || c.MaxTxnOps != server.DefaultMaxTxnOps ||
		c.GRPCKeepAliveMinTime != 5*time.Second || c.GRPCKeepAliveInterval != 2*time.Hour || c.GRPCKeepAliveTimeout != 20*time.Second ||
		c.IgniteEndpoints != nil || c.Prefix != "ignetcd-" || c.Ignite.Client.TLS != nil || s.LogLevel != zerolog.InfoLevel {
		t.Fatalf("defaults: got %+v", s)
	}
}

func TestFlagsEnvironmentAndFile(t *testing.T) {
	file := writeFile(t, "ignetcd.yaml", `
# etcd's form: flag names as keys, TLS under client-transport-security.
name: from-file
listen-client-urls: https://127.0.0.1:2379,https://127.0.0.1:3379
max-txn-ops: 64
grpc-keepalive-min-time: 7000000000   # etcd writes durations as nanoseconds
grpc-keepalive-timeout: 3s
ignite-endpoints: [ignite-1:10800, ignite-2:10800]
ignite-username: ignite
client-transport-security:
  cert-file: /certs/server.pem
  key-file: /certs/server-key.pem
  trusted-ca-file: /certs/ca.pem
  client-cert-auth: true
data-dir:
`)
	t.Setenv("IGNETCD_MAX_TXN_OPS", "32") // environment beats the file
	t.Setenv("IGNETCD_NAME", "from-env")  // the command line beats the environment
	t.Setenv("IGNETCD_IGNITE_PASSWORD", "s3cret")
	s, err := Parse([]string{"--config-file=" + file, "--name=from-flag", "--log-level", "debug"})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Node
	want := embed.TLSInfo{CertFile: "/certs/server.pem", KeyFile: "/certs/server-key.pem", TrustedCAFile: "/certs/ca.pem", ClientCertAuth: true}
	switch {
	case c.Name != "from-flag":
		t.Errorf("name = %q, want the flag's", c.Name)
	case c.MaxTxnOps != 32:
		t.Errorf("max-txn-ops = %d, want the environment's 32", c.MaxTxnOps)
	case !reflect.DeepEqual(c.ListenClientURLs, []string{"https://127.0.0.1:2379", "https://127.0.0.1:3379"}):
		t.Errorf("listen-client-urls = %q", c.ListenClientURLs)
	case c.GRPCKeepAliveMinTime != 7*time.Second || c.GRPCKeepAliveTimeout != 3*time.Second:
		t.Errorf("keepalive = %v, %v; want 7s, 3s", c.GRPCKeepAliveMinTime, c.GRPCKeepAliveTimeout)
	case !reflect.DeepEqual(c.IgniteEndpoints, []string{"ignite-1:10800", "ignite-2:10800"}):
		t.Errorf("ignite-endpoints = %q", c.IgniteEndpoints)
	case c.Ignite.Client.Username != "ignite" || c.Ignite.Client.Password != "s3cret":
		t.Errorf("ignite credentials = %q/%q", c.Ignite.Client.Username, c.Ignite.Client.Password)
	case c.ClientTLSInfo != want:
		t.Errorf("client TLS = %+v, want %+v", c.ClientTLSInfo, want)
	case s.LogLevel != zerolog.DebugLevel:
		t.Errorf("log level = %v", s.LogLevel)
	}
}

func TestIgniteTLS(t *testing.T) {
	s, err := Parse([]string{"--ignite-tls", "--ignite-tls-insecure-skip-verify"})
	if err != nil {
		t.Fatal(err)
	}
	if tc := s.Node.Ignite.Client.TLS; tc == nil || !tc.InsecureSkipVerify {
		t.Fatalf("--ignite-tls: client TLS = %+v", tc)
	}
	if _, err := Parse([]string{"--ignite-tls-trusted-ca-file=/nonexistent/ca.pem"}); err == nil || !strings.Contains(err.Error(), "ca.pem") {
		t.Fatalf("missing Ignite CA file: err = %v", err)
	}
}

func TestErrors(t *testing.T) {
	badFile := writeFile(t, "bad.yaml", "listen-client-url: http://x:1\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen-client-url=http://x:1"}, "flag provided but not defined: -listen-client-url"},
		{[]string{"--max-txn-ops=many"}, `invalid value "many" for flag -max-txn-ops`},
		{[]string{"--max-txn-ops=0"}, "--max-txn-ops 0: must be positive"},
		{[]string{"--log-level=loud"}, `--log-level "loud"`},
		{[]string{"serve"}, `unexpected argument "serve"`},
		{[]string{"--config-file=/nonexistent.yaml"}, "/nonexistent.yaml"},
		{[]string{"--config-file=" + badFile}, `"listen-client-url" not defined`},
		{[]string{"--ignite-password=x"}, "--ignite-password needs --ignite-username"},
		{[]string{"--listen-client-urls= , "}, "at least one URL"},
	} {
		_, err := Parse(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): err = %v, want it to contain %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q): error spans lines: %q", tc.args, err)
		}
	}
	if _, err := Parse([]string{"-h"}); err != flag.ErrHelp {
		t.Errorf("-h: err = %v, want flag.ErrHelp", err)
	}
}

func TestEnvironmentErrorNamesTheVariable(t *testing.T) {
	t.Setenv("IGNETCD_MAX_REQUEST_BYTES", "lots")
	if _, err := Parse(nil); err == nil || !strings.Contains(err.Error(), "IGNETCD_MAX_REQUEST_BYTES") {
		t.Fatalf("err = %v, want it to name IGNETCD_MAX_REQUEST_BYTES", err)
	}
}

func TestUsageListsEveryFlag(t *testing.T) {
	var b strings.Builder
	Usage(&b)
	NewFlagSet().VisitAll(func(f *flag.Flag) {
		if !strings.Contains(b.String(), "-"+f.Name) {
			t.Errorf("usage does not mention -%s", f.Name)
		}
	})
}

func TestAutoCompactionFlags(t *testing.T) {
	cases := []struct {
		args    []string
		want    mvcc.AutoCompaction
		wantErr bool
	}{
		{nil, mvcc.AutoCompaction{}, false},
		{[]string{"--auto-compaction-retention=1"}, mvcc.AutoCompaction{Periodic: time.Hour}, false},
		{[]string{"--auto-compaction-retention=30m"}, mvcc.AutoCompaction{Periodic: 30 * time.Minute}, false},
		{[]string{"--auto-compaction-mode=revision", "--auto-compaction-retention=1000"}, mvcc.AutoCompaction{Revisions: 1000}, false},
		{[]string{"--auto-compaction-mode=revision", "--auto-compaction-retention=1h"}, mvcc.AutoCompaction{}, true},
		{[]string{"--auto-compaction-mode=sometimes"}, mvcc.AutoCompaction{}, true},
	}
	for _, c := range cases {
		s, err := Parse(c.args)
		if (err != nil) != c.wantErr {
			t.Errorf("%v: err = %v, want error %v", c.args, err, c.wantErr)
			continue
		}
		if err == nil && s.Node.Store.AutoCompaction != c.want {
			t.Errorf("%v: auto-compaction %+v, want %+v", c.args, s.Node.Store.AutoCompaction, c.want)
		}
	}
}

func TestWatchMaxLagFlag(t *testing.T) {
	for _, c := range []struct {
		args    []string
		env     string
		want    int64
		wantErr string
	}{
		{nil, "", mvcc.DefaultWatchMaxLag, ""},
		{[]string{"--watch-max-lag-revisions=5000"}, "", 5000, ""},
		{[]string{"--watch-max-lag-revisions=-1"}, "", -1, ""},
		{nil, "250", 250, ""},
		{[]string{"--watch-max-lag-revisions=0"}, "", 0, "--watch-max-lag-revisions 0: must be positive, or negative to disable"},
		{[]string{"--watch-max-lag-revisions=lots"}, "", 0, `invalid value "lots" for flag -watch-max-lag-revisions`},
	} {
		t.Run(strings.Join(c.args, " ")+" env="+c.env, func(t *testing.T) {
			if c.env != "" {
				t.Setenv("IGNETCD_WATCH_MAX_LAG_REVISIONS", c.env)
			}
			s, err := Parse(c.args)
			switch {
			case c.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Errorf("err = %v, want %q", err, c.wantErr)
				}
			case err != nil:
				t.Error(err)
			case s.Node.Store.WatchMaxLag != c.want:
				t.Errorf("WatchMaxLag = %d, want %d", s.Node.Store.WatchMaxLag, c.want)
			}
		})
	}
}

// TestMetricsFlag: etcd's --metrics, basic by default.
func TestMetricsFlag(t *testing.T) {
	for _, c := range []struct {
		args    []string
		want    string
		wantErr string
	}{
		{nil, "basic", ""},
		{[]string{"--metrics=extensive"}, "extensive", ""},
		{[]string{"--metrics=all"}, "", `--metrics "all": want basic or extensive`},
	} {
		s, err := Parse(c.args)
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%v: err = %v, want %q", c.args, err, c.wantErr)
			}
		case err != nil:
			t.Errorf("%v: %v", c.args, err)
		case s.Node.Metrics != c.want:
			t.Errorf("%v: Metrics = %q, want %q", c.args, s.Node.Metrics, c.want)
		}
	}
}
