package it

import (
	"os"
	"testing"
	"time"

	"github.com/ignetcd/ignetcd/embed"
	"github.com/ignetcd/ignetcd/it/etcdbin"
	"github.com/ignetcd/ignetcd/mvcc"
)

// subjectKind is the engine the differential subject runs on.
var subjectKind = "memory"

// startSubject starts the server under test: a fresh ignetcd node on its own
// empty store. IGNETCD_DIFF_SUBJECT=etcd checks the harness itself by
// comparing etcd with a second etcd.
func startSubject(t *testing.T) string {
	if os.Getenv("IGNETCD_DIFF_SUBJECT") == "etcd" {
		return etcdbin.StartEtcd(t)
	}
	env := newEnv(t, subjectKind)
	n := env.startNode(t, nodeOptions{cfg: func(c *embed.Config) {
		// etcd's smallest lease TTL follows its election timeout: the
		// reference runs with a 100 ms election, which makes it 1 s.
		c.Store = mvcc.Config{MinLeaseTTL: 1, PollInterval: 20 * time.Millisecond, LeaseCheckInterval: 100 * time.Millisecond}
	}})
	return n.Endpoints()[0]
}

// TestDifferentialIgnite runs the differential suite with the subject on the
// Ignite engine (ignitetest, or the cluster named by IGNETCD_TEST_IGNITE).
func TestDifferentialIgnite(t *testing.T) {
	subjectKind = "ignite"
	defer func() { subjectKind = "memory" }()
	TestDifferential(t)
}
