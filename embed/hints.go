package embed

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"

	ignclient "github.com/ignetcd/ignetcd/ignite/client"
	"github.com/ignetcd/ignetcd/ignite/wire"
)

// igniteHint says what an operator should check when connecting to Ignite
// at start-up failed with err.
func igniteHint(err error) string {
	var handshake *ignclient.HandshakeError
	var record tls.RecordHeaderError
	var verify *tls.CertificateVerificationError
	var authority x509.UnknownAuthorityError
	switch {
	case errors.As(err, &handshake) && handshake.Status == wire.StatusAuthFailed:
		return "Ignite refused the credentials: check --ignite-username and --ignite-password"
	case errors.As(err, &record):
		return "the Ignite endpoint does not speak TLS: drop the --ignite-tls* flags, or enable SSL on its client connector"
	case errors.As(err, &verify), errors.As(err, &authority):
		return "Ignite's certificate was not trusted: check --ignite-tls-trusted-ca-file"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection was closed during the handshake: if Ignite's client connector requires TLS, set --ignite-tls"
	}
	return "is an Ignite node running with its thin-client connector on that port? the default port is 10800"
}
