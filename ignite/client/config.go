package client

import (
	"crypto/tls"
	"time"

	"github.com/ignetcd/ignetcd/ignite/wire"
)

// Config configures a Client. Only Endpoints is required.
type Config struct {
	// Endpoints are host:port addresses of Ignite client connectors (default
	// port 10800). The client connects to one at a time and moves to the
	// next when a connection fails.
	Endpoints []string
	// TLS, when set, wraps every connection in TLS with this configuration.
	// If ServerName is empty it is set from the endpoint's host.
	TLS *tls.Config
	// Username and Password authenticate the handshake when Username is not
	// empty.
	Username, Password string
	// DialTimeout bounds connecting plus the handshake (default 10s).
	DialTimeout time.Duration
	// WriteTimeout bounds writing one frame to the socket (default 30s); a
	// write that times out breaks the connection.
	WriteTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection rounds
	// (defaults 50ms and 5s). The first attempt after a loss is immediate.
	MinBackoff, MaxBackoff time.Duration
	// MaxFrameSize bounds the size of a server frame (default 64 MiB).
	MaxFrameSize int
	// Versions are the protocol versions to propose, newest first; the
	// default (and the most this client supports) is 1.7.0, 1.6.0, 1.5.0,
	// 1.4.0. After a rejection the client retries with the version the
	// server offers if it is in this list.
	Versions []wire.Version
	// Features is the feature mask advertised at 1.7.0. Default: HEARTBEAT
	// only, the one optional feature this client implements. Never include
	// bits whose layout changes are not implemented by ignite/wire.
	Features wire.Features
	// Logf, when set, receives connection-level events.
	Logf func(format string, args ...any)
}

// SupportedVersions are the protocol versions this client can speak, newest
// first. Continuous queries need 1.4.0 (response flags), transactions 1.5.0.
var SupportedVersions = []wire.Version{wire.V1_7_0, wire.V1_6_0, wire.V1_5_0, wire.V1_4_0}

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 50 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = 5 * time.Second
		if c.MaxBackoff < c.MinBackoff {
			c.MaxBackoff = c.MinBackoff
		}
	}
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = wire.DefaultMaxFrame
	}
	if len(c.Versions) == 0 {
		c.Versions = SupportedVersions
	}
	if c.Features == nil {
		c.Features = wire.NewFeatures(wire.FeatureHeartbeat)
	}
	return c
}

func (c *Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}
