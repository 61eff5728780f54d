package ignitetest

import (
	"os"
	"strings"
	"testing"
)

// EnvCluster names the environment variable that points tests at a real
// cluster: IGNETCD_TEST_IGNITE=host:port[,host:port...].
const EnvCluster = "IGNETCD_TEST_IGNITE"

// New starts a server for a test and stops it when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Logf == nil && testing.Verbose() {
		opts.Logf = t.Logf
	}
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("ignitetest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Endpoints returns the cluster a test should use: the endpoints of
// IGNETCD_TEST_IGNITE when it is set (srv is then nil, and tests that need
// fault injection must skip), otherwise those of a fresh test server.
func Endpoints(t testing.TB, opts Options) (endpoints []string, srv *Server) {
	t.Helper()
	if env := os.Getenv(EnvCluster); env != "" {
		for _, ep := range strings.Split(env, ",") {
			if ep = strings.TrimSpace(ep); ep != "" {
				endpoints = append(endpoints, ep)
			}
		}
		return endpoints, nil
	}
	srv = New(t, opts)
	return srv.Addrs(), srv
}

// NeedDouble skips the test when it runs against a real cluster (srv nil).
func NeedDouble(t testing.TB, srv *Server) {
	t.Helper()
	if srv == nil {
		t.Skip("fault injection needs the ignitetest double; " + EnvCluster + " points at a real cluster")
	}
}
