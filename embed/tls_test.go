package embed

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestALPNSteersHTTPClientsToHTTP1(t *testing.T) {
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	cfg := alpnForClient(base)
	for _, tc := range []struct {
		offered []string
		want    []string
	}{
		{[]string{"h2"}, []string{"h2"}},                   // grpc-go, grpc-java, etcdctl
		{[]string{"h2", "http/1.1"}, []string{"http/1.1"}}, // curl, Go's http.Client, browsers
		{[]string{"http/1.1"}, []string{"http/1.1"}},       // HTTP/1 only
		{nil, []string{"h2"}},                              // no ALPN: the bytes decide
	} {
		got, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{SupportedProtos: tc.offered})
		if err != nil || strings.Join(got.NextProtos, ",") != strings.Join(tc.want, ",") {
			t.Errorf("client offering %q: NextProtos %q (%v), want %q", tc.offered, got.NextProtos, err, tc.want)
		}
	}
}

func TestSelfSignedCertCoversListenHosts(t *testing.T) {
	cert, err := selfSignedCert([]string{"node-1.example", "10.1.2.3", "0.0.0.0", ""})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"node-1.example", "localhost", "10.1.2.3", "127.0.0.1"} {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("auto-tls certificate does not cover %s: %v", host, err)
		}
	}
	for _, ip := range leaf.IPAddresses {
		if ip.Equal(net.IPv4zero) {
			t.Error("auto-tls certificate names 0.0.0.0")
		}
	}
}

func TestClientTLSChoices(t *testing.T) {
	lg := zerolog.Nop()
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantNil bool
		wantErr string
	}{
		{"http needs no TLS", Config{ListenClientURLs: []string{"http://127.0.0.1:0"}}, true, ""},
		{"cert files with http are ignored", Config{ListenClientURLs: []string{"http://127.0.0.1:0"}, ClientTLSInfo: TLSInfo{CertFile: "c", KeyFile: "k"}}, true, ""},
		{"https without a certificate", Config{ListenClientURLs: []string{"https://127.0.0.1:0"}}, false, "--cert-file and --key-file (or --auto-tls)"},
		{"https with auto-tls", Config{ListenClientURLs: []string{"https://127.0.0.1:0"}, ClientAutoTLS: true}, false, ""},
		{"client-cert-auth without a CA", Config{ListenClientURLs: []string{"https://127.0.0.1:0"}, ClientAutoTLS: true, ClientTLSInfo: TLSInfo{ClientCertAuth: true}}, false, "--trusted-ca-file"},
		{"a cert without its key", Config{ListenClientURLs: []string{"https://127.0.0.1:0"}, ClientTLSInfo: TLSInfo{CertFile: "c"}}, false, "both its cert file and its key file"},
	} {
		tc.cfg.Logger = lg
		got, err := clientTLS(tc.cfg)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr == "" && (got == nil) != tc.wantNil:
			t.Errorf("%s: TLS config %v, want nil: %v", tc.name, got, tc.wantNil)
		}
	}
}

func TestListenErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct{ url, want string }{
		{"localhost:2379", "invalid client URL"},
		{"grpc://localhost:2379", "unsupported scheme"},
		{"http://", "invalid client URL"},
		{"http://127.0.0.1:2379/v3", "invalid client URL"},
		{"unix:///tmp/etcd.sock", "invalid client URL"},
		{"http://" + busy.Addr().String(), "address already in use"},
	} {
		if l, err := listen(tc.url, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			if l != nil {
				l.root.Close()
			}
			t.Errorf("listen(%q): %v, want an error containing %q", tc.url, err, tc.want)
		}
	}
}
