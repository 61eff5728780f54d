package etcdbin

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestEtcdbinBuildAndVersion(t *testing.T) {
	etcd := Etcd(t)
	ctl := Etcdctl(t)
	want := strings.TrimPrefix(Version, "v")

	out, err := exec.Command(ctl, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("etcdctl version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "etcdctl version: "+want) {
		t.Fatalf("etcdctl version output:\n%s", out)
	}
	out, err = exec.Command(etcd, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("etcd --version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "etcd Version: "+want) {
		t.Fatalf("etcd --version output:\n%s", out)
	}
}

func TestEtcdbinStartEtcd(t *testing.T) {
	start := time.Now()
	ep := StartEtcd(t)
	t.Logf("etcd at %s healthy after %v", ep, time.Since(start))
	ctl := Etcdctl(t)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(ctl, append([]string{"--endpoints=" + ep, "--command-timeout=10s"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("etcdctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("put", "k", "v")
	if got := run("get", "k", "--print-value-only"); strings.TrimSpace(got) != "v" {
		t.Fatalf("get k = %q", got)
	}
}
