// Command ignetcd serves the etcd v3 API from an Apache Ignite cluster (or,
// with no --ignite-endpoints, from memory). Flags follow etcd's names where
// the meaning is the same; package config reads them, the environment and
// the config file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/ignetcd/ignetcd/cmd/ignetcd/config"
	"github.com/ignetcd/ignetcd/embed"
	"github.com/ignetcd/ignetcd/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		// One line, so that it is the last thing an operator reads.
		fmt.Fprintln(os.Stderr, "ignetcd:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. Logs go to logOut; --help and --version print
// to out.
func run(ctx context.Context, args []string, out, logOut io.Writer) error {
	settings, err := config.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		config.Usage(out)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w (see ignetcd --help)", err)
	}
	if settings.Version {
		fmt.Fprintf(out, "ignetcd serving the etcd API version %s\n", server.Version)
		return nil
	}
	cfg := settings.Node
	lg := zerolog.New(logOut).Level(settings.LogLevel).With().Timestamp().Str("member", cfg.Name).Logger()
	cfg.Logger = lg
	engine := "memory"
	if len(cfg.IgniteEndpoints) > 0 {
		engine = "ignite"
		lg.Info().Strs("ignite_endpoints", cfg.IgniteEndpoints).Bool("tls", cfg.Ignite.Client.TLS != nil).
			Bool("authentication", cfg.Ignite.Client.Username != "").Msg("connecting to Ignite")
	}
	node, err := embed.Start(ctx, cfg)
	if err != nil {
		return err
	}
	lg.Info().Strs("client_urls", node.ClientURLs()).Str("engine", engine).Str("version", server.Version).Msg("ignetcd ready")
	<-ctx.Done()
	lg.Info().Msg("shutting down")
	node.Close()
	lg.Info().Msg("stopped")
	return nil
}
