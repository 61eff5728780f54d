package it

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ignetcd/ignetcd/it/etcdbin"
)

// etcdctl runs the real etcdctl binary against endpoint and returns stdout;
// a non-zero exit fails the test unless wantErr.
func etcdctl(t *testing.T, endpoint, stdin string, wantErr bool, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, etcdbin.Etcdctl(t), append([]string{"--endpoints=" + endpoint, "--dial-timeout=5s"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if (err != nil) != wantErr {
		t.Fatalf("etcdctl %s: err = %v (want error: %v)\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, wantErr, out.String(), errOut.String())
	}
	if wantErr {
		return errOut.String()
	}
	return out.String()
}

func TestEtcdctlWalkthrough(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		n := env.startNode(t, nodeOptions{})
		ep := n.Endpoints()[0]
		run := func(args ...string) string { return etcdctl(t, ep, "", false, args...) }
		expect := func(got, want string) {
			t.Helper()
			if got != want {
				t.Fatalf("etcdctl output:\n got %q\nwant %q", got, want)
			}
		}

		expect(run("put", "foo", "bar"), "OK\n")
		expect(run("put", "foo/a", "1"), "OK\n")
		expect(run("put", "foo/b", "2"), "OK\n")
		expect(run("get", "foo"), "foo\nbar\n")
		expect(run("get", "foo/", "--prefix", "--keys-only"), "foo/a\n\nfoo/b\n\n")
		expect(run("get", "foo/", "--prefix", "--print-value-only", "--limit=1"), "1\n")
		expect(run("get", "foo", "--rev=2"), "foo\nbar\n")
		if f := run("get", "foo/", "--prefix", "--count-only", "-w", "fields"); !strings.Contains(f, `"Count" : 2`) {
			t.Fatalf("get --count-only -w fields: %q", f)
		}

		var got struct {
			Header struct{ Revision int64 }
			Kvs    []struct {
				Key         []byte
				ModRevision int64 `json:"mod_revision"`
			}
			Count int64
		}
		if err := json.Unmarshal([]byte(run("get", "foo/", "--prefix", "-w", "json")), &got); err != nil {
			t.Fatal(err)
		}
		if got.Header.Revision != 4 || got.Count != 2 || string(got.Kvs[1].Key) != "foo/b" || got.Kvs[1].ModRevision != 4 {
			t.Fatalf("get -w json: %+v", got)
		}

		// Interactive txn from stdin: compares, success ops, failure ops.
		out := etcdctl(t, ep, "mod(\"foo\") = \"2\"\n\nput foo baz\n\nget foo\n\n", false, "txn")
		expect(out, "SUCCESS\n\nOK\n")
		out = etcdctl(t, ep, "value(\"foo\") = \"nope\"\n\nput foo never\n\nget foo\n\n", false, "txn")
		expect(out, "FAILURE\n\nfoo\nbaz\n")

		expect(run("del", "foo/", "--prefix"), "2\n")
		expect(run("del", "missing"), "0\n")

		// Watch from a past revision replays, then the command is stopped.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, etcdbin.Etcdctl(t), "--endpoints="+ep, "watch", "foo", "--rev=2", "--prev-kv")
		wout, _ := cmd.Output() // ends when the context kills it
		if w := string(wout); !strings.HasPrefix(w, "PUT\nfoo\nbar\nPUT\nfoo\nbar\nfoo\nbaz\n") {
			t.Fatalf("etcdctl watch --rev=2 output %q", w)
		}

		// Leases.
		lease := strings.Fields(run("lease", "grant", "100"))
		if len(lease) < 2 || lease[0] != "lease" {
			t.Fatalf("lease grant output %q", lease)
		}
		id := lease[1]
		expect(run("put", "leased", "v", "--lease="+id), "OK\n")
		if ttl := run("lease", "timetolive", id, "--keys"); !strings.Contains(ttl, "granted with TTL(100s)") || !strings.Contains(ttl, "attached keys([leased])") {
			t.Fatalf("lease timetolive output %q", ttl)
		}
		if ls := run("lease", "list"); !strings.Contains(ls, id) {
			t.Fatalf("lease list output %q lacks %s", ls, id)
		}
		if ka := run("lease", "keep-alive", "--once", id); !strings.Contains(ka, "keepalived with TTL(100)") {
			t.Fatalf("lease keep-alive output %q", ka)
		}
		expect(run("lease", "revoke", id), "lease "+id+" revoked\n")
		expect(run("get", "leased"), "")

		// Compaction and its error.
		if c := run("compact", "3"); !strings.Contains(c, "compacted revision 3") {
			t.Fatalf("compact output %q", c)
		}
		if e := etcdctl(t, ep, "", true, "get", "foo", "--rev=2"); !strings.Contains(e, "required revision has been compacted") {
			t.Fatalf("get below compaction: stderr %q", e)
		}

		// Cluster and maintenance views.
		if st := run("endpoint", "status", "-w", "json"); !strings.Contains(st, `"version":"3.6.`) {
			t.Fatalf("endpoint status: %q", st)
		}
		if h := etcdctl(t, ep, "", false, "endpoint", "health"); !strings.Contains(h, "is healthy") {
			t.Fatalf("endpoint health: %q", h)
		}
		if ml := run("member", "list"); !strings.Contains(ml, "it, ") || !strings.Contains(ml, "http://127.0.0.1:") {
			t.Fatalf("member list: %q", ml)
		}
		if e := etcdctl(t, ep, "", true, "put", "", "x"); !strings.Contains(e, "key is not provided") {
			t.Fatalf("put with empty key: stderr %q", e)
		}
	})
}
