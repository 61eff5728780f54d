package it

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ignetcd/ignetcd/embed"
	"github.com/ignetcd/ignetcd/ignite/ignitetest"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and localhost and
// a client certificate, as PEM files in a temporary directory.
type testPKI struct {
	dir                     string
	caFile                  string
	serverCert, serverKey   string
	clientCert, clientKey   string
	pool                    *x509.CertPool
	clientPair, strangerKey tls.Certificate // strangerKey: signed by another CA
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), pool: x509.NewCertPool()}
	ca, caKey := newCert(t, "ignetcd test CA", nil, nil, true, 0)
	p.pool.AddCert(ca)
	p.caFile = p.writePEM(t, "ca.pem", "CERTIFICATE", ca.Raw)
	srv, srvKey := newCert(t, "ignetcd", ca, caKey, false, x509.ExtKeyUsageServerAuth)
	p.serverCert = p.writePEM(t, "server.pem", "CERTIFICATE", srv.Raw)
	p.serverKey = p.writeKey(t, "server-key.pem", srvKey)
	cli, cliKey := newCert(t, "root", ca, caKey, false, x509.ExtKeyUsageClientAuth)
	p.clientCert = p.writePEM(t, "client.pem", "CERTIFICATE", cli.Raw)
	p.clientKey = p.writeKey(t, "client-key.pem", cliKey)
	p.clientPair = tls.Certificate{Certificate: [][]byte{cli.Raw}, PrivateKey: cliKey}
	otherCA, otherKey := newCert(t, "another CA", nil, nil, true, 0)
	stranger, strangerKey := newCert(t, "stranger", otherCA, otherKey, false, x509.ExtKeyUsageClientAuth)
	p.strangerKey = tls.Certificate{Certificate: [][]byte{stranger.Raw}, PrivateKey: strangerKey}
	return p
}

var serial = struct {
	sync.Mutex
	n int64
}{}

// newCert makes a certificate signed by parent (self-signed when nil).
func newCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool, usage x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial.Lock()
	serial.n++
	sn := big.NewInt(serial.n)
	serial.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func (p *testPKI) writePEM(t *testing.T, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (p *testPKI) writeKey(t *testing.T, name string, key *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p.writePEM(t, name, "EC PRIVATE KEY", der)
}

// tlsNode starts a memory node serving https with the PKI's server
// certificate, requiring client certificates when mutual.
func tlsNode(t *testing.T, pki *testPKI, mutual bool) *embed.Node {
	return newEnv(t, "memory").startNode(t, nodeOptions{cfg: func(c *embed.Config) {
		c.ListenClientURLs = []string{"https://127.0.0.1:0"}
		c.ClientTLSInfo = embed.TLSInfo{CertFile: pki.serverCert, KeyFile: pki.serverKey, TrustedCAFile: pki.caFile, ClientCertAuth: mutual}
	}})
}

// tlsClient connects clientv3 over TLS, presenting certs.
func tlsClient(t *testing.T, endpoint string, tc *tls.Config) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: tc, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("clientv3.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestOpsMutualTLS(t *testing.T) {
	pki := newPKI(t)
	n := tlsNode(t, pki, true)
	url := n.ClientURLs()[0]
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("client URL %q, want https", url)
	}

	t.Run("clientv3 with a client certificate", func(t *testing.T) {
		c := tlsClient(t, url, &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.clientPair}})
		ctx := testCtx(t)
		if _, err := c.Put(ctx, "tls", "yes"); err != nil {
			t.Fatalf("put over mTLS: %v", err)
		}
		resp, err := c.Get(ctx, "tls")
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "yes" {
			t.Fatalf("get over mTLS: %v %v", resp, err)
		}
	})
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
	}{{"clientv3 without a certificate", nil}, {"clientv3 with a certificate of another CA", []tls.Certificate{pki.strangerKey}}} {
		t.Run(tc.name, func(t *testing.T) {
			c := tlsClient(t, url, &tls.Config{RootCAs: pki.pool, Certificates: tc.certs})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if _, err := c.Put(ctx, "tls", "no"); err == nil {
				t.Fatal("put succeeded; want the TLS handshake refused")
			}
		})
	}
	t.Run("etcdctl", func(t *testing.T) {
		tlsArgs := []string{"--cacert=" + pki.caFile, "--cert=" + pki.clientCert, "--key=" + pki.clientKey}
		if out := etcdctl(t, url, "", false, append(tlsArgs, "put", "ctl", "mtls")...); out != "OK\n" {
			t.Fatalf("etcdctl put: %q", out)
		}
		if out := etcdctl(t, url, "", false, append(tlsArgs, "get", "ctl", "--print-value-only")...); out != "mtls\n" {
			t.Fatalf("etcdctl get: %q", out)
		}
		if out := etcdctl(t, url, "", false, append(tlsArgs, "endpoint", "health")...); !strings.Contains(out, "is healthy") {
			t.Fatalf("etcdctl endpoint health: %q", out)
		}
		etcdctl(t, url, "", true, "--cacert="+pki.caFile, "--command-timeout=2s", "put", "ctl", "no-cert")
	})
	t.Run("HTTP endpoints need the certificate too", func(t *testing.T) {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.clientPair}}}}
		if code, body := httpGet(t, hc, url+"/health"); code != 200 || body != `{"health":"true","reason":""}` {
			t.Fatalf("/health over mTLS: %d %q", code, body)
		}
		anon := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool}}}
		if resp, err := anon.Get(url + "/health"); err == nil {
			resp.Body.Close()
			t.Fatalf("/health without a client certificate: %s, want the handshake refused", resp.Status)
		}
	})
}

func TestOpsServerTLSOnly(t *testing.T) {
	pki := newPKI(t)
	n := tlsNode(t, pki, false)
	url := n.ClientURLs()[0]
	c := tlsClient(t, url, &tls.Config{RootCAs: pki.pool})
	if _, err := c.Put(testCtx(t), "k", "v"); err != nil {
		t.Fatalf("put over TLS: %v", err)
	}
	if out := etcdctl(t, url, "", false, "--cacert="+pki.caFile, "get", "k", "--print-value-only"); out != "v\n" {
		t.Fatalf("etcdctl get over TLS: %q", out)
	}
	// A plain-text client on the TLS port gets nowhere.
	plain := newClient(t, n.Endpoints()...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := plain.Get(ctx, "k"); err == nil {
		t.Fatal("plain-text get on the TLS port succeeded")
	}
}

func TestOpsAutoTLS(t *testing.T) {
	n := newEnv(t, "memory").startNode(t, nodeOptions{cfg: func(c *embed.Config) {
		c.ListenClientURLs = []string{"https://127.0.0.1:0"}
		c.ClientAutoTLS = true
	}})
	url := n.ClientURLs()[0]
	if out := etcdctl(t, url, "", false, "--insecure-skip-tls-verify", "put", "auto", "tls"); out != "OK\n" {
		t.Fatalf("etcdctl put with --auto-tls: %q", out)
	}
	c := tlsClient(t, url, &tls.Config{InsecureSkipVerify: true})
	if resp, err := c.Get(testCtx(t), "auto"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("clientv3 get with --auto-tls: %v %v", resp, err)
	}
	// curl negotiates HTTP/1.1 or h2 by ALPN; both must reach the HTTP side.
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: h2}
		hc := &http.Client{Timeout: 5 * time.Second, Transport: tr}
		if code, body := httpGet(t, hc, url+"/version"); code != 200 || !strings.Contains(body, `"etcdserver":"3.6.16"`) {
			t.Fatalf("/version over auto-tls (h2 offered: %v): %d %q", h2, code, body)
		}
	}
}

func httpGet(t *testing.T, hc *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func httpPost(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func TestOpsHTTPEndpoints(t *testing.T) {
	n := newEnv(t, "memory").startNode(t, nodeOptions{})
	base := n.ClientURLs()[0]
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct{ path, want string }{
		{"/health", `{"health":"true","reason":""}`},
		{"/health?serializable=true", `{"health":"true","reason":""}`},
		{"/version", `{"etcdserver":"3.6.16","etcdcluster":"3.6.0","storage":"3.6.0"}`},
		{"/livez", "ok\n"},
		{"/readyz", "ok\n"},
		{"/readyz?verbose", "[+]serializable_read ok\n[+]linearizable_read ok\nok\n"},
	} {
		if code, body := httpGet(t, hc, base+tc.path); code != 200 || body != tc.want {
			t.Errorf("GET %s: %d %q, want 200 %q", tc.path, code, body, tc.want)
		}
	}
	// etcd's JSON gateway: base64 keys and values, etcd's field names.
	if code, body := httpPost(t, base+"/v3/kv/put", `{"key":"Z3c=","value":"anNvbg=="}`); code != 200 || !strings.Contains(body, `"revision":"2"`) {
		t.Fatalf("/v3/kv/put: %d %s", code, body)
	}
	code, body := httpPost(t, base+"/v3/kv/range", `{"key":"Z3c="}`)
	var rng struct {
		Kvs []struct {
			Key, Value     []byte
			ModRevision    string `json:"mod_revision"`
			CreateRevision string `json:"create_revision"`
		}
		Count string
	}
	if err := json.Unmarshal([]byte(body), &rng); code != 200 || err != nil || len(rng.Kvs) != 1 ||
		string(rng.Kvs[0].Key) != "gw" || string(rng.Kvs[0].Value) != "json" || rng.Kvs[0].ModRevision != "2" || rng.Count != "1" {
		t.Fatalf("/v3/kv/range: %d %s (%v)", code, body, err)
	}
	if got, err := newClient(t, n.Endpoints()...).Get(testCtx(t), "gw"); err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "json" {
		t.Fatalf("gRPC get of a key put through the gateway: %v %v", got, err)
	}
	// etcd's errors come through as gRPC status JSON.
	if code, body := httpPost(t, base+"/v3/kv/range", `{"key":"Z3c=","revision":"99"}`); code == 200 || !strings.Contains(body, "required revision is a future revision") {
		t.Fatalf("/v3/kv/range at a future revision: %d %s", code, body)
	}
}

// scrape reads the node's /metrics in Prometheus's text format.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// metricValue is the value of the family's series whose labels include
// labels (name=value pairs); ok is false when there is none.
func metricValue(families map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	fam := families[name]
	if fam == nil {
		return 0, false
	}
next:
	for _, m := range fam.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestOpsMetrics(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		// etcd's --metrics=extensive: the handling-time histograms too.
		n := env.startNode(t, nodeOptions{cfg: func(c *embed.Config) { c.Metrics = "extensive" }})
		base := n.ClientURLs()[0]
		c := newClient(t, n.Endpoints()...)
		ctx := testCtx(t)
		var lastRev int64
		for i := range 5 {
			resp, err := c.Put(ctx, fmt.Sprintf("m/%d", i), "v")
			if err != nil {
				t.Fatal(err)
			}
			lastRev = resp.Header.Revision
		}
		if _, err := c.Get(ctx, "m/", clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
		tooMany := make([]clientv3.Op, 200)
		for i := range tooMany {
			tooMany[i] = clientv3.OpGet("m/0")
		}
		if _, err := c.Txn(ctx).Then(tooMany...).Commit(); err == nil {
			t.Fatal("a txn of 200 ops succeeded; want too many operations")
		}
		watchCtx, cancelWatches := context.WithCancel(ctx)
		w1 := c.Watch(watchCtx, "m/0")
		w2 := c.Watch(watchCtx, "m/", clientv3.WithPrefix(), clientv3.WithRev(1))
		<-w2 // the replay proves the watchers exist

		want := map[string]float64{
			"etcd_debugging_mvcc_watcher_total":      2,
			"etcd_debugging_mvcc_watch_stream_total": 1,
			"etcd_debugging_mvcc_current_revision":   float64(lastRev),
			"ignetcd_feed_lag_revisions":             0,
			"ignetcd_storage_up":                     1,
			"etcd_server_has_leader":                 1,
		}
		var fams map[string]*dto.MetricFamily
		eventually(t, 5*time.Second, func() error {
			fams = scrape(t, base)
			for name, v := range want {
				if got, ok := metricValue(fams, name); !ok || got != v {
					return fmt.Errorf("%s = %v (present: %v), want %v", name, got, ok, v)
				}
			}
			return nil
		})
		for _, tc := range []struct {
			name   string
			labels []string
			min    float64
		}{
			{"grpc_server_handled_total", []string{"grpc_service", "etcdserverpb.KV", "grpc_method", "Put", "grpc_code", "OK"}, 5},
			{"grpc_server_handled_total", []string{"grpc_method", "Txn", "grpc_code", "InvalidArgument"}, 1},
			{"grpc_server_started_total", []string{"grpc_method", "Range"}, 1},
			{"grpc_server_handling_seconds", []string{"grpc_method", "Put"}, 5},
			{"grpc_server_started_total", []string{"grpc_method", "Watch", "grpc_type", "bidi_stream"}, 1},
			{"etcd_mvcc_db_total_size_in_bytes", nil, 1},
			{"etcd_server_version", []string{"server_version", "3.6.16"}, 1},
			{"go_goroutines", nil, 1},
		} {
			if got, ok := metricValue(fams, tc.name, tc.labels...); !ok || got < tc.min {
				t.Errorf("%s%v = %v (present: %v), want at least %v", tc.name, tc.labels, got, ok, tc.min)
			}
		}
		if _, ok := metricValue(fams, "ignetcd_storage_round_trip_seconds"); !ok {
			t.Error("ignetcd_storage_round_trip_seconds missing")
		}
		// Every method has its series from the start, as in etcd.
		if got, ok := metricValue(fams, "grpc_server_handled_total", "grpc_method", "Defragment", "grpc_code", "OK"); !ok || got != 0 {
			t.Errorf("Defragment's series: %v (present: %v), want 0", got, ok)
		}

		cancelWatches()
		for range w1 {
		}
		eventually(t, 5*time.Second, func() error {
			if got, _ := metricValue(scrape(t, base), "etcd_debugging_mvcc_watcher_total"); got != 0 {
				return fmt.Errorf("etcd_debugging_mvcc_watcher_total = %v after the watches ended, want 0", got)
			}
			return nil
		})
	})
}

// eventually retries check until it passes or timeout passes.
func eventually(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOpsHealthFollowsIgnite(t *testing.T) {
	env := newEnv(t, "ignite")
	ignitetest.NeedDouble(t, env.double)
	n := env.startNode(t, nodeOptions{})
	base := n.ClientURLs()[0]
	hc := &http.Client{Timeout: 10 * time.Second}
	health := func(wantCode int, wantHealth string) error {
		code, body := httpGet(t, hc, base+"/health")
		var h struct{ Health, Reason string }
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			return fmt.Errorf("/health: %d %q: %v", code, body, err)
		}
		if code != wantCode || h.Health != wantHealth || (wantHealth == "false") != (h.Reason != "") {
			return fmt.Errorf("/health: %d %q, want %d with health %q", code, body, wantCode, wantHealth)
		}
		return nil
	}
	eventually(t, 10*time.Second, func() error { return health(200, "true") })

	env.double.StopNode(0)
	eventually(t, 15*time.Second, func() error { return health(503, "false") })
	if code, body := httpGet(t, hc, base+"/readyz"); code != 503 || !strings.Contains(body, "[-]linearizable_read failed") {
		t.Errorf("/readyz with Ignite stopped: %d %q", code, body)
	}
	if code, body := httpGet(t, hc, base+"/livez"); code != 200 || body != "ok\n" {
		t.Errorf("/livez with Ignite stopped: %d %q, want 200 (restarting ignetcd would not help)", code, body)
	}
	fams := scrape(t, base)
	if v, _ := metricValue(fams, "etcd_server_has_leader"); v != 0 {
		t.Errorf("etcd_server_has_leader = %v with Ignite stopped, want 0", v)
	}
	if v, _ := metricValue(fams, "ignetcd_storage_up"); v != 0 {
		t.Errorf("ignetcd_storage_up = %v with Ignite stopped, want 0", v)
	}

	if err := env.double.StartNode(0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error { return health(200, "true") })
	if _, err := newClient(t, n.Endpoints()...).Put(testCtx(t), "back", "again"); err != nil {
		t.Fatalf("put after Ignite came back: %v", err)
	}
}

// ignetcdBinary builds cmd/ignetcd into the test's temporary directory.
func ignetcdBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ignetcd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/ignetcd/ignetcd/cmd/ignetcd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBinary runs ignetcd to completion (it must fail) and returns its
// stderr's last line.
func runBinary(t *testing.T, bin string, env []string, args ...string) (exitCode int, lastLine string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("ignetcd %q: %v, want a non-zero exit\n%s", args, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	return exit.ExitCode(), lines[len(lines)-1]
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestOpsBinaryErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	listen := "--listen-client-urls=http://" + freeAddr(t)
	bin := ignetcdBinary(t)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"wrong flag", nil, []string{"--listen-client-url=http://127.0.0.1:2379"},
			"ignetcd: flag provided but not defined: -listen-client-url (see ignetcd --help)"},
		{"wrong value", nil, []string{"--max-txn-ops=lots"}, `ignetcd: invalid value "lots" for flag -max-txn-ops`},
		{"wrong environment variable", []string{"IGNETCD_GRPC_KEEPALIVE_TIMEOUT=soon"}, nil, "IGNETCD_GRPC_KEEPALIVE_TIMEOUT"},
		{"unreachable Ignite", nil, []string{listen, "--ignite-endpoints=127.0.0.1:1"},
			"(is an Ignite node running with its thin-client connector on that port? the default port is 10800)"},
		{"port in use", nil, []string{"--listen-client-urls=http://" + busy.Addr().String()},
			"address already in use (is another etcd or ignetcd running there? pick another port with --listen-client-urls)"},
		{"https without a certificate", nil, []string{"--listen-client-urls=https://127.0.0.1:0"},
			"ignetcd: client TLS: TLS needs --cert-file and --key-file (or --auto-tls)"},
		{"missing certificate file", nil, []string{"--listen-client-urls=https://127.0.0.1:0", "--cert-file=/nonexistent.pem", "--key-file=/nonexistent-key.pem"},
			"/nonexistent.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, last := runBinary(t, bin, tc.env, tc.args...)
			if code != 1 || !strings.HasPrefix(last, "ignetcd: ") || !strings.Contains(last, tc.want) {
				t.Fatalf("exit %d, last line %q; want exit 1 and a line containing %q", code, last, tc.want)
			}
		})
	}
}

// runningBinary is an ignetcd process started by startBinary.
type runningBinary struct {
	cmd     *exec.Cmd
	logs    chan string
	startup string // the log lines up to "ignetcd ready"
}

// startBinary starts bin and waits for its "ignetcd ready" log line; it is
// killed at the end of the test if still running.
func startBinary(t *testing.T, bin string, env []string, args ...string) *runningBinary {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &runningBinary{cmd: cmd, logs: make(chan string, 100)}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			b.logs <- sc.Text()
		}
		close(b.logs)
	}()
	var seen []string
	for ready := false; !ready; {
		select {
		case line, ok := <-b.logs:
			if !ok {
				t.Fatalf("ignetcd exited before it was ready:\n%s", strings.Join(seen, "\n"))
			}
			seen = append(seen, line)
			ready = strings.Contains(line, "ignetcd ready")
		case <-time.After(20 * time.Second):
			t.Fatalf("ignetcd not ready after 20s:\n%s", strings.Join(seen, "\n"))
		}
	}
	b.startup = strings.Join(seen, "\n")
	return b
}

// stop sends SIGTERM and expects a clean exit.
func (b *runningBinary) stop(t *testing.T) {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for range b.logs {
		}
		done <- b.cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ignetcd after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("ignetcd did not stop within 15s of SIGTERM")
	}
}

// TestOpsBinaryServes runs the real binary configured by a config file and
// the environment, over mutual TLS, and stops it with SIGTERM.
func TestOpsBinaryServes(t *testing.T) {
	pki := newPKI(t)
	addr := freeAddr(t)
	cfgFile := filepath.Join(t.TempDir(), "ignetcd.yaml")
	err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
name: from-config-file
listen-client-urls: https://%s
client-transport-security:
  cert-file: %s
  key-file: %s
  trusted-ca-file: %s
  client-cert-auth: true
`, addr, pki.serverCert, pki.serverKey, pki.caFile)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	b := startBinary(t, ignetcdBinary(t), []string{"IGNETCD_CONFIG_FILE=" + cfgFile, "IGNETCD_MAX_TXN_OPS=3"})
	for _, want := range []string{`"member":"from-config-file"`, `"url":"https://` + addr + `"`, `"client_cert_auth":true`, "in-memory engine", `"engine":"memory"`, "loaded keyspace from storage"} {
		if !strings.Contains(b.startup, want) {
			t.Errorf("start-up logs lack %s:\n%s", want, b.startup)
		}
	}

	url := "https://" + addr
	tlsArgs := []string{"--cacert=" + pki.caFile, "--cert=" + pki.clientCert, "--key=" + pki.clientKey}
	if out := etcdctl(t, url, "", false, append(tlsArgs, "put", "bin", "ary")...); out != "OK\n" {
		t.Fatalf("etcdctl put: %q", out)
	}
	// IGNETCD_MAX_TXN_OPS=3 from the environment is in force.
	if out := etcdctl(t, url, "\nput a 1\nput b 2\nput c 3\nput d 4\n\n\n", true, append(tlsArgs, "txn")...); !strings.Contains(out, "too many operations in txn request") {
		t.Fatalf("etcdctl txn of 4 ops with --max-txn-ops=3: %q", out)
	}
	etcdctl(t, url, "", true, "--cacert="+pki.caFile, "--command-timeout=2s", "get", "bin")
	b.stop(t)
}

// TestOpsBinaryIgniteTLSAndAuth runs the binary against an Ignite (the test
// double) that requires TLS and a password, given by flags and environment.
func TestOpsBinaryIgniteTLSAndAuth(t *testing.T) {
	pki := newPKI(t)
	serverPair, err := tls.LoadX509KeyPair(pki.serverCert, pki.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	ignite := ignitetest.New(t, ignitetest.Options{
		Username: "ignite", Password: "s3cret",
		TLS: &tls.Config{Certificates: []tls.Certificate{serverPair}, MinVersion: tls.VersionTLS12},
	})
	bin := ignetcdBinary(t)
	addr := freeAddr(t)
	args := []string{"--listen-client-urls=http://" + addr, "--ignite-endpoints=" + ignite.Addr(),
		"--ignite-tls-trusted-ca-file=" + pki.caFile, "--ignite-username=ignite"}

	otherCA := newPKI(t).caFile
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		hint string
	}{
		{"wrong password", []string{"IGNETCD_IGNITE_PASSWORD=wrong"}, args, "check --ignite-username and --ignite-password"},
		{"plain text to a TLS Ignite", []string{"IGNETCD_IGNITE_PASSWORD=s3cret"}, append(args[:2:2], "--ignite-username=ignite"), "if Ignite's client connector requires TLS, set --ignite-tls"},
		{"untrusted certificate", []string{"IGNETCD_IGNITE_PASSWORD=s3cret"}, append(args[:2:2], "--ignite-tls-trusted-ca-file="+otherCA, "--ignite-username=ignite"),
			"check --ignite-tls-trusted-ca-file"},
	} {
		code, last := runBinary(t, bin, tc.env, tc.args...)
		if code != 1 || !strings.HasPrefix(last, "ignetcd: connecting to Ignite at "+ignite.Addr()) || !strings.Contains(last, tc.hint) {
			t.Errorf("%s: exit %d, %q; want exit 1 and one line with the hint %q", tc.name, code, last, tc.hint)
		}
	}

	b := startBinary(t, bin, []string{"IGNETCD_IGNITE_PASSWORD=s3cret"}, args...)
	for _, want := range []string{`"tls":true`, `"authentication":true`, `"engine":"ignite"`, "connected to Ignite"} {
		if !strings.Contains(b.startup, want) {
			t.Errorf("start-up logs lack %s:\n%s", want, b.startup)
		}
	}
	if out := etcdctl(t, addr, "", false, "put", "over", "tls"); out != "OK\n" {
		t.Fatalf("etcdctl put through an Ignite over TLS: %q", out)
	}
	if out := etcdctl(t, addr, "", false, "get", "over", "--print-value-only"); out != "tls\n" {
		t.Fatalf("etcdctl get: %q", out)
	}
	b.stop(t)
}

// laggingAndWriter starts two nodes on the Ignite double: "lagging", which
// the test keeps from reading revlog (HoldReads), and "writer".
func laggingAndWriter(t *testing.T) (env *testEnv, lagging, writer *embed.Node) {
	env = newEnv(t, "ignite")
	ignitetest.NeedDouble(t, env.double)
	return env, env.startNode(t, nodeOptions{name: "lagging"}), env.startNode(t, nodeOptions{name: "writer"})
}

// TestOpsHealthFeedBehind: a node that learns of another node's write but
// cannot read it from storage yet is unhealthy until it catches up, and
// /metrics shows its lag.
func TestOpsHealthFeedBehind(t *testing.T) {
	env, lagging, writer := laggingAndWriter(t)
	base := lagging.ClientURLs()[0]
	hc := &http.Client{Timeout: 10 * time.Second}
	if code, body := httpGet(t, hc, base+"/health"); code != 200 {
		t.Fatalf("/health before: %d %s", code, body)
	}

	env.double.HoldReads(env.prefix + "revlog")
	defer env.double.ReleaseReads()
	if _, err := newClient(t, writer.Endpoints()...).Put(testCtx(t), "unseen", "yet"); err != nil {
		t.Fatal(err)
	}
	code, body := httpGet(t, hc, base+"/health")
	if code != 503 || !strings.Contains(body, `"health":"false"`) || !strings.Contains(body, "change feed behind") {
		t.Errorf("/health with revlog reads held: %d %s, want 503 and the feed named", code, body)
	}
	if lag, ok := metricValue(scrape(t, base), "ignetcd_feed_lag_revisions"); !ok || lag < 1 {
		t.Errorf("ignetcd_feed_lag_revisions with revlog reads held = %v (present: %v), want at least 1", lag, ok)
	}

	env.double.ReleaseReads()
	eventually(t, 10*time.Second, func() error {
		if code, body := httpGet(t, hc, base+"/health"); code != 200 {
			return fmt.Errorf("/health after reads resumed: %d %s", code, body)
		}
		return nil
	})
}

// TestOpsLivezBehindCompaction: a node that could not read the revisions it
// lacks before another node compacted past them fails /livez (restarting it
// reloads the keyspace), and a node started afterwards serves the latest
// state.
func TestOpsLivezBehindCompaction(t *testing.T) {
	env, lagging, writer := laggingAndWriter(t)
	base := lagging.ClientURLs()[0]
	hc := &http.Client{Timeout: 10 * time.Second}
	env.double.HoldReads(env.prefix + "revlog")
	defer env.double.ReleaseReads()
	c := newClient(t, writer.Endpoints()...)
	ctx := testCtx(t)
	var last int64
	for i := 0; i < 5; i++ {
		p, err := c.Put(ctx, "k", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		last = p.Header.Revision
	}
	if _, err := c.Compact(ctx, last, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the lagging node's poll reads the compacted revision
	if code, body := httpGet(t, hc, base+"/livez"); code != 200 {
		t.Fatalf("/livez before the lagging node read anything: %d %s", code, body)
	}
	env.double.ReleaseReads()
	eventually(t, 10*time.Second, func() error {
		code, body := httpGet(t, hc, base+"/livez")
		if code != 503 || !strings.Contains(body, "[-]view_not_compacted_away failed") || !strings.Contains(body, "restart it") {
			return fmt.Errorf("/livez of a node behind the compacted revision: %d %s", code, body)
		}
		return nil
	})
	fresh := env.startNode(t, nodeOptions{name: "fresh"})
	g, err := newClient(t, fresh.Endpoints()...).Get(ctx, "k")
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "4" || g.Kvs[0].Version != 5 {
		t.Fatalf("a node started after the compaction: %+v %v", g, err)
	}
	if code, body := httpGet(t, hc, fresh.ClientURLs()[0]+"/livez"); code != 200 {
		t.Fatalf("/livez of the fresh node: %d %s", code, body)
	}
}

// TestOpsMetricsBasic: by default (etcd's --metrics=basic) RPCs are counted
// but not timed, as in etcd.
func TestOpsMetricsBasic(t *testing.T) {
	n := newEnv(t, "memory").startNode(t, nodeOptions{})
	c := newClient(t, n.Endpoints()...)
	if _, err := c.Put(testCtx(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, n.ClientURLs()[0])
	if got, ok := metricValue(fams, "grpc_server_handled_total", "grpc_method", "Put", "grpc_code", "OK"); !ok || got < 1 {
		t.Errorf("grpc_server_handled_total{Put,OK} = %v (present: %v), want at least 1", got, ok)
	}
	if _, ok := fams["grpc_server_handling_seconds"]; ok {
		t.Error("grpc_server_handling_seconds exported with basic metrics; etcd exports it only with --metrics=extensive")
	}
}
