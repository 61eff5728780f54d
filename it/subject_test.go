package it

import (
	"testing"

	"github.com/ignetcd/ignetcd/it/etcdbin"
)

// startSubject starts the server under test and returns its client endpoint
// ("host:port"). It is called once per differential sequence and must return
// a FRESH, empty server (revision 1, no leases, nothing compacted), stopped in
// t.Cleanup.
//
// TEMPORARY: until the ignetcd server exists, the subject is a second real
// etcd, so the harness itself is checked (etcd vs etcd must pass). The server
// engineer replaces this file.
func startSubject(t *testing.T) string {
	return etcdbin.StartEtcd(t)
}
