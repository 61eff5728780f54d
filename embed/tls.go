package embed

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// TLSInfo names the files of one side of a TLS connection, as etcd's
// transport.TLSInfo does: the client port's (etcd's --cert-file, --key-file,
// --trusted-ca-file, --client-cert-auth) or the Ignite connection's.
type TLSInfo struct {
	CertFile, KeyFile string
	// TrustedCAFile verifies the peer: clients when ClientCertAuth is set
	// (server side), the server (client side; empty means the system roots).
	TrustedCAFile string
	// ClientCertAuth makes the server require a client certificate signed
	// by TrustedCAFile.
	ClientCertAuth bool
	// InsecureSkipVerify (client side) accepts any server certificate.
	InsecureSkipVerify bool
}

// Empty reports whether no certificate is configured.
func (i TLSInfo) Empty() bool { return i.CertFile == "" && i.KeyFile == "" }

func (i TLSInfo) keyPair() ([]tls.Certificate, error) {
	switch {
	case i.Empty():
		return nil, nil
	case i.CertFile == "" || i.KeyFile == "":
		return nil, errors.New("a certificate needs both its cert file and its key file")
	}
	cert, err := tls.LoadX509KeyPair(i.CertFile, i.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the key pair %s, %s: %w", i.CertFile, i.KeyFile, err)
	}
	return []tls.Certificate{cert}, nil
}

func (i TLSInfo) caPool() (*x509.CertPool, error) {
	if i.TrustedCAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(i.TrustedCAFile)
	if err != nil {
		return nil, fmt.Errorf("reading the trusted CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("the trusted CA file %s holds no PEM certificate", i.TrustedCAFile)
	}
	return pool, nil
}

// ServerConfig is the server side: the key pair, and client verification
// when ClientCertAuth is set.
func (i TLSInfo) ServerConfig() (*tls.Config, error) {
	if i.Empty() {
		return nil, errors.New("TLS needs --cert-file and --key-file (or --auto-tls)")
	}
	certs, err := i.keyPair()
	if err != nil {
		return nil, err
	}
	return i.serverConfig(certs)
}

func (i TLSInfo) serverConfig(certs []tls.Certificate) (*tls.Config, error) {
	cfg := &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12}
	if i.ClientCertAuth {
		var err error
		if i.TrustedCAFile == "" {
			return nil, errors.New("--client-cert-auth needs --trusted-ca-file to verify client certificates with")
		}
		if cfg.ClientCAs, err = i.caPool(); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientConfig is the client side: the server verified against
// TrustedCAFile (or the system roots), the key pair presented if set.
func (i TLSInfo) ClientConfig() (*tls.Config, error) {
	certs, err := i.keyPair()
	if err != nil {
		return nil, err
	}
	roots, err := i.caPool()
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: certs, RootCAs: roots, InsecureSkipVerify: i.InsecureSkipVerify, MinVersion: tls.VersionTLS12}, nil
}

// selfSignedCert makes a certificate for --auto-tls, valid for a year for
// hosts (names or IP addresses) and localhost. It is kept in memory only:
// clients cannot verify it and connect with --insecure-skip-tls-verify.
func selfSignedCert(hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"ignetcd"}, CommonName: "ignetcd auto-tls"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// alpnForClient picks the one protocol to negotiate with each client so that
// the connection lands on the right server behind the listener (serve.go):
// gRPC clients offer only "h2" and get it; general HTTP clients (curl,
// browsers, Prometheus) also offer "http/1.1" and get that, which the HTTP
// side serves. Without this, curl would negotiate h2 and reach gRPC.
func alpnForClient(base *tls.Config) *tls.Config {
	cfg := base.Clone()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.NextProtos = []string{"h2"}
		for _, p := range hello.SupportedProtos {
			if p == "http/1.1" {
				c.NextProtos = []string{"http/1.1"}
			}
		}
		return c, nil
	}
	return cfg
}
