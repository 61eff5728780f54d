// Command ignetcd serves the etcd v3 API from an Apache Ignite cluster (or,
// with no --ignite-endpoints, from memory). Flags follow etcd's names where
// the meaning is the same.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/ignetcd/ignetcd/embed"
	"github.com/ignetcd/ignetcd/server"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ignetcd:", err)
		os.Exit(1)
	}
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

func run(args []string) error {
	fs := flag.NewFlagSet("ignetcd", flag.ContinueOnError)
	name := fs.String("name", "default", "human-readable name for this member")
	listen := fs.String("listen-client-urls", embed.DefaultListenClientURL, "comma-separated URLs to listen on for client traffic")
	advertise := fs.String("advertise-client-urls", "", "comma-separated client URLs to advertise (default: the listen URLs)")
	maxReq := fs.Int("max-request-bytes", server.DefaultMaxRequestBytes, "maximum client request size in bytes")
	maxOps := fs.Int("max-txn-ops", server.DefaultMaxTxnOps, "maximum number of operations permitted in a transaction")
	progress := fs.Duration("watch-progress-notify-interval", 10*time.Minute, "duration of periodic watch progress notifications")
	ignite := fs.String("ignite-endpoints", "", "comma-separated Ignite thin-client endpoints host:port; empty runs on the in-memory engine (not durable)")
	prefix := fs.String("ignite-cache-prefix", "ignetcd-", "prefix of the Ignite cache names holding this keyspace")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	level, err := zerolog.ParseLevel(*logLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	lg := zerolog.New(os.Stderr).Level(level).With().Timestamp().Str("member", *name).Logger()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	node, err := embed.Start(ctx, embed.Config{
		Name: *name, ListenClientURLs: splitList(*listen), AdvertiseClientURLs: splitList(*advertise),
		MaxRequestBytes: *maxReq, MaxTxnOps: *maxOps, WatchProgressNotifyInterval: *progress,
		IgniteEndpoints: splitList(*ignite), Prefix: *prefix, Logger: lg,
	})
	if err != nil {
		return err
	}
	lg.Info().Strs("client_urls", node.ClientURLs()).Str("version", server.Version).Msg("ignetcd ready")
	<-ctx.Done()
	lg.Info().Msg("shutting down")
	node.Close()
	lg.Info().Msg("stopped")
	return nil
}
