// Package config turns ignetcd's command line, its IGNETCD_* environment
// variables and its --config-file into an embed.Config. It is the one place
// that reads them: cmd/ignetcd calls Parse, and docker/ checks the demo's
// commands against NewFlagSet.
//
// Flags, environment and file are read by github.com/peterbourgon/ff/v3: it
// is the leanest library that does all three over the standard library's
// flag.FlagSet (no dependencies of its own; etcd-style --flag=value parsing
// and errors stay the standard library's), where spf13/pflag+viper would
// bring a dozen modules and a second flag syntax. Precedence: command line,
// then environment, then config file.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/rs/zerolog"

	"github.com/ignetcd/ignetcd/embed"
	ignclient "github.com/ignetcd/ignetcd/ignite/client"
	"github.com/ignetcd/ignetcd/mvcc"
	"github.com/ignetcd/ignetcd/server"
)

// EnvPrefix prefixes the environment variable of every flag:
// --listen-client-urls is IGNETCD_LISTEN_CLIENT_URLS.
const EnvPrefix = "IGNETCD"

// Settings is what the command line configures.
type Settings struct {
	Node     embed.Config
	LogLevel zerolog.Level
	// Version asks for the version to be printed instead of serving.
	Version bool
}

// values holds the flags as parsed.
type values struct {
	name, listen, advertise                        string
	maxRequestBytes, maxTxnOps                     int
	progressInterval                               time.Duration
	watchMaxLag                                    int64
	autoCompactionMode, autoCompactionRetention    string
	clientTLS                                      embed.TLSInfo
	autoTLS, enablePprof                           bool
	keepaliveMinTime, keepaliveInterval, keepalive time.Duration
	igniteEndpoints, ignitePrefix                  string
	igniteUser, ignitePassword                     string
	igniteTLS                                      bool
	igniteTLSInfo                                  embed.TLSInfo
	logLevel, configFile, metrics                  string
	version                                        bool
}

// NewFlagSet returns a flag set with every ignetcd flag, parsing into a
// fresh set of values; its errors are returned, never printed.
func NewFlagSet() *flag.FlagSet {
	fs, _ := newFlagSet()
	return fs
}

func newFlagSet() (*flag.FlagSet, *values) {
	v := &values{}
	fs := flag.NewFlagSet("ignetcd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&v.name, "name", "default", "human-readable name for this member")
	fs.StringVar(&v.listen, "listen-client-urls", embed.DefaultListenClientURL, "comma-separated http:// or https:// URLs to serve etcd clients on (gRPC and HTTP on each)")
	fs.StringVar(&v.advertise, "advertise-client-urls", "", "comma-separated client URLs to advertise in MemberList (default: the listen URLs)")
	fs.IntVar(&v.maxRequestBytes, "max-request-bytes", server.DefaultMaxRequestBytes, "maximum client request size in bytes")
	fs.IntVar(&v.maxTxnOps, "max-txn-ops", server.DefaultMaxTxnOps, "maximum number of operations permitted in a transaction")
	fs.DurationVar(&v.progressInterval, "watch-progress-notify-interval", 10*time.Minute, "duration of periodic watch progress notifications")
	fs.Int64Var(&v.watchMaxLag, "watch-max-lag-revisions", mvcc.DefaultWatchMaxLag, "cancel a watcher (with a reason naming the revision to re-create it from) once its client falls this many revisions behind; negative disables")
	fs.StringVar(&v.autoCompactionMode, "auto-compaction-mode", "periodic", "interpret --auto-compaction-retention as 'periodic' (a duration: 1h, or hours: 1) or 'revision' (a count)")
	fs.StringVar(&v.autoCompactionRetention, "auto-compaction-retention", "0", "history to keep for auto-compaction; 0 disables it")

	fs.StringVar(&v.clientTLS.CertFile, "cert-file", "", "path to the client server TLS cert file (for https client URLs)")
	fs.StringVar(&v.clientTLS.KeyFile, "key-file", "", "path to the client server TLS key file")
	fs.StringVar(&v.clientTLS.TrustedCAFile, "trusted-ca-file", "", "path to the CA file that signs client certificates (with --client-cert-auth)")
	fs.BoolVar(&v.clientTLS.ClientCertAuth, "client-cert-auth", false, "require clients to present a certificate signed by --trusted-ca-file")
	fs.BoolVar(&v.autoTLS, "auto-tls", false, "serve https client URLs with a generated self-signed certificate (development only)")

	fs.DurationVar(&v.keepaliveMinTime, "grpc-keepalive-min-time", server.DefaultKeepaliveMinTime, "minimum interval a client should wait before pinging the server")
	fs.DurationVar(&v.keepaliveInterval, "grpc-keepalive-interval", server.DefaultKeepaliveInterval, "frequency of server-to-client pings to check if a connection is alive (0 disables)")
	fs.DurationVar(&v.keepalive, "grpc-keepalive-timeout", server.DefaultKeepaliveTimeout, "additional duration of wait before closing a non-responsive connection (0 disables)")

	fs.StringVar(&v.igniteEndpoints, "ignite-endpoints", "", "comma-separated Ignite thin-client endpoints host:port; empty runs on the in-memory engine (not durable)")
	fs.StringVar(&v.ignitePrefix, "ignite-cache-prefix", "ignetcd-", "prefix of the Ignite cache names holding this keyspace")
	fs.StringVar(&v.igniteUser, "ignite-username", "", "user name for Ignite authentication (empty: none)")
	fs.StringVar(&v.ignitePassword, "ignite-password", "", "password for Ignite authentication (prefer the IGNETCD_IGNITE_PASSWORD environment variable)")
	fs.BoolVar(&v.igniteTLS, "ignite-tls", false, "connect to Ignite over TLS (implied by the other --ignite-tls-* flags)")
	fs.StringVar(&v.igniteTLSInfo.CertFile, "ignite-tls-cert-file", "", "client certificate to present to Ignite")
	fs.StringVar(&v.igniteTLSInfo.KeyFile, "ignite-tls-key-file", "", "key of --ignite-tls-cert-file")
	fs.StringVar(&v.igniteTLSInfo.TrustedCAFile, "ignite-tls-trusted-ca-file", "", "CA file to verify Ignite's certificate with (default: the system's roots)")
	fs.BoolVar(&v.igniteTLSInfo.InsecureSkipVerify, "ignite-tls-insecure-skip-verify", false, "do not verify Ignite's certificate (development only)")

	fs.StringVar(&v.metrics, "metrics", "basic", "set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics")
	fs.BoolVar(&v.enablePprof, "enable-pprof", false, "serve Go runtime profiles under /debug/pprof/ on the client URLs")
	fs.StringVar(&v.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&v.configFile, "config-file", "", "path to a YAML file whose keys are these flag names (etcd's form; command line and environment override it)")
	fs.BoolVar(&v.version, "version", false, "print the version and exit")
	return fs, v
}

// Parse reads args (without the program name), the environment and the
// config file. -h and --help return flag.ErrHelp.
func Parse(args []string) (*Settings, error) {
	fs, v := newFlagSet()
	err := ff.Parse(fs, args,
		ff.WithEnvVarPrefix(EnvPrefix),
		ff.WithConfigFileFlag("config-file"),
		ff.WithConfigFileParser(yamlParser(fs)))
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, flag.ErrHelp
		}
		return nil, unwrapFF(err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags are --name=value)", fs.Arg(0))
	}
	return v.settings()
}

// unwrapFF drops ff's generic prefix from a command-line error, leaving the
// standard library's own message (flag provided but not defined: -x).
func unwrapFF(err error) error {
	if inner := errors.Unwrap(err); inner != nil && strings.HasPrefix(err.Error(), "error parsing commandline arguments") {
		return inner
	}
	return err
}

func (v *values) settings() (*Settings, error) {
	level, err := zerolog.ParseLevel(v.logLevel)
	if err != nil || v.logLevel == "" {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", v.logLevel)
	}
	if v.maxRequestBytes <= 0 {
		return nil, fmt.Errorf("--max-request-bytes %d: must be positive", v.maxRequestBytes)
	}
	if v.maxTxnOps <= 0 {
		return nil, fmt.Errorf("--max-txn-ops %d: must be positive", v.maxTxnOps)
	}
	if v.watchMaxLag == 0 {
		return nil, errors.New("--watch-max-lag-revisions 0: must be positive, or negative to disable the bound")
	}
	autoCompaction, err := parseAutoCompaction(v.autoCompactionMode, v.autoCompactionRetention)
	if err != nil {
		return nil, err
	}
	if v.metrics != "basic" && v.metrics != "extensive" {
		return nil, fmt.Errorf("--metrics %q: want basic or extensive", v.metrics)
	}
	listen := splitList(v.listen)
	if len(listen) == 0 {
		return nil, errors.New("--listen-client-urls: at least one URL is needed")
	}
	cfg := embed.Config{
		Name: v.name, ListenClientURLs: listen, AdvertiseClientURLs: splitList(v.advertise),
		MaxRequestBytes: v.maxRequestBytes, MaxTxnOps: v.maxTxnOps,
		WatchProgressNotifyInterval: v.progressInterval, EnablePprof: v.enablePprof, Metrics: v.metrics,
		ClientTLSInfo: v.clientTLS, ClientAutoTLS: v.autoTLS,
		GRPCKeepAliveMinTime: v.keepaliveMinTime, GRPCKeepAliveInterval: v.keepaliveInterval,
		GRPCKeepAliveTimeout: v.keepalive,
		IgniteEndpoints:      splitList(v.igniteEndpoints), Prefix: v.ignitePrefix,
	}
	cfg.Store.AutoCompaction = autoCompaction
	cfg.Store.WatchMaxLag = v.watchMaxLag
	cfg.Ignite.Client = ignclient.Config{Username: v.igniteUser, Password: v.ignitePassword}
	if v.ignitePassword != "" && v.igniteUser == "" {
		return nil, errors.New("--ignite-password needs --ignite-username")
	}
	tlsInfo := v.igniteTLSInfo
	if v.igniteTLS || tlsInfo != (embed.TLSInfo{}) {
		if cfg.Ignite.Client.TLS, err = tlsInfo.ClientConfig(); err != nil {
			return nil, fmt.Errorf("--ignite-tls-*: %w", err)
		}
	}
	return &Settings{Node: cfg, LogLevel: level, Version: v.version}, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Usage writes the flags and their defaults.
func Usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: ignetcd [flags]\n\nServes the etcd v3 API from Apache Ignite (or memory). Every flag can also be set\nby the environment variable %s_<FLAG_NAME> (--max-txn-ops is %s_MAX_TXN_OPS)\nor by a key of --config-file.\n\nFlags:\n", EnvPrefix, EnvPrefix)
	fs := NewFlagSet()
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// parseAutoCompaction reads etcd's --auto-compaction-mode and -retention:
// periodic retention is a duration ("1h", "30m") or a whole number of hours
// ("1"); revision retention is a count.
func parseAutoCompaction(mode, retention string) (mvcc.AutoCompaction, error) {
	switch mode {
	case "periodic":
		if n, err := strconv.ParseInt(retention, 10, 64); err == nil && n >= 0 {
			return mvcc.AutoCompaction{Periodic: time.Duration(n) * time.Hour}, nil
		}
		d, err := time.ParseDuration(retention)
		if err != nil || d < 0 {
			return mvcc.AutoCompaction{}, fmt.Errorf("--auto-compaction-retention %q: want a duration (1h) or hours (1) in periodic mode", retention)
		}
		return mvcc.AutoCompaction{Periodic: d}, nil
	case "revision":
		n, err := strconv.ParseInt(retention, 10, 64)
		if err != nil || n < 0 {
			return mvcc.AutoCompaction{}, fmt.Errorf("--auto-compaction-retention %q: want a revision count in revision mode", retention)
		}
		return mvcc.AutoCompaction{Revisions: n}, nil
	}
	return mvcc.AutoCompaction{}, fmt.Errorf("--auto-compaction-mode %q: want periodic or revision", mode)
}
