// Package tlsutil owns tern's TLS certificates and server-side TLS settings: loading an
// operator's certificate files, creating and renewing the self-signed certificate used when
// there is none, building the server tls.Config (and the tools' client one, ClientConfig), and
// describing a negotiated connection for Received headers and logs.
//
// It does no networking and keeps no state between calls: reloading is calling it again.
//
// # Self-signed certificates
//
// LoadOrCreate keeps a self-signed ECDSA P-256 certificate in dir/cert.pem and dir/key.pem so
// that STARTTLS works from the first start. SMTP between servers is opportunistic (RFC 3207
// §4.1: a client may not insist on a verified certificate), so a self-signed certificate still
// protects against passive eavesdropping. The files are written crash-safely (temporary file,
// fsync, rename, directory fsync), and files it cannot account for are never overwritten: see
// LoadOrCreate.
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrNoCertificates: a CA file holds no PEM certificate.
var ErrNoCertificates = errors.New("no PEM certificate in it")

// ClientConfig is the TLS configuration of tern's client tools (tern send, tern bench): TLS 1.2
// or later, the server's certificate verified for serverName against the system's roots, or
// against only the certificates of caFile when it is not empty (a self-signed server's), or not
// at all with insecure.
func ClientConfig(serverName, caFile string, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	cfg.RootCAs = x509.NewCertPool()
	if !cfg.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: %w", caFile, ErrNoCertificates)
	}
	return cfg, nil
}

// LoadFiles loads a PEM certificate chain and its private key, as configured by an operator.
func LoadFiles(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("loading %s and %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// ServerConfig returns the server TLS configuration for cert: TLS 1.2 or later with Go's
// default cipher suites and curves, which are all AEAD with forward secrecy.
//
// TLS 1.0 and 1.1 are refused (RFC 8996 deprecates them). A sending server that only speaks
// those fails STARTTLS; RFC 3207 §4.1 leaves it to retry in plain text if its policy allows.
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
}

// Describe summarises a negotiated TLS connection the way Postfix does in Received headers and
// logs, e.g. "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits)", so that operators'
// existing greps and parsers keep working. The bits part is left out for unknown ciphers.
func Describe(cs tls.ConnectionState) string {
	// tls.VersionName gives "TLS 1.3"; Postfix (via OpenSSL) writes "TLSv1.3". Unknown versions
	// come back as hex ("0x0305") and are kept as they are.
	version := tls.VersionName(cs.Version)
	if v, ok := strings.CutPrefix(version, "TLS "); ok {
		version = "TLSv" + v
	}
	cipher := tls.CipherSuiteName(cs.CipherSuite)
	s := version + " with cipher " + cipher
	if used, alg := cipherBits(cipher); used > 0 {
		s += fmt.Sprintf(" (%d/%d bits)", used, alg)
	}
	return s
}

// cipherBits returns the effective and nominal symmetric key sizes of a cipher suite, as
// OpenSSL reports them (3DES has 168 key bits but only 112 bits of strength), or 0, 0.
func cipherBits(name string) (used, alg int) {
	switch {
	case strings.Contains(name, "AES_128"):
		return 128, 128
	case strings.Contains(name, "AES_256"), strings.Contains(name, "CHACHA20"):
		return 256, 256
	case strings.Contains(name, "3DES"):
		return 112, 168
	case strings.Contains(name, "RC4_128"):
		return 128, 128
	}
	return 0, 0
}
