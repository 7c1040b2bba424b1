package app

import (
	"crypto/tls"
	"log/slog"
	"testing"

	"golang.org/x/crypto/acme"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/testutil"
	"github.com/tern-mail/tern/internal/tlsutil"
)

// TestACMEGetCertificate: until the CA has issued, every handshake gets the configured (or
// self-signed) certificate at once; a tls-alpn-01 hello is refused when http-01 is the
// challenge. The path through the CA is test/acme_test.go's, against pebble.
func TestACMEGetCertificate(t *testing.T) {
	cfg := config.Default()
	cfg.Hostname = "mx.example.test"
	cfg.ACME.Enabled, cfg.ACME.Challenge, cfg.ACME.HTTPListen = true, config.ChallengeHTTP, "127.0.0.1:0"
	self := testutil.SelfSigned(t, "mx.example.test")
	a, err := newACME(cfg, t.TempDir(), tlsutil.StaticCerts(self), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.httpLn.Close() }() // best effort: nothing listened on it

	for _, sni := range []string{"mx.example.test", "", "other.example"} {
		crt, err := a.getCertificate(&tls.ClientHelloInfo{ServerName: sni})
		if err != nil || crt.Leaf != self.Leaf {
			t.Errorf("SNI %q before issuance: %v, %v; want the configured certificate", sni, crt, err)
		}
	}
	if _, err := a.getCertificate(&tls.ClientHelloInfo{ServerName: "mx.example.test", SupportedProtos: []string{acme.ALPNProto}}); err == nil {
		t.Error("a tls-alpn-01 hello was answered with http-01 configured")
	}
	if err := a.hostPolicy(t.Context(), "mx.example.test:5002"); err != nil {
		t.Errorf("hostPolicy with a port: %v", err)
	}
	if err := a.hostPolicy(t.Context(), "other.example"); err == nil {
		t.Error("hostPolicy let another name through")
	}
	if c := a.serverTLS(); c.MinVersion != tls.VersionTLS12 || len(c.NextProtos) != 0 {
		t.Errorf("http-01 TLS config: min %x, protocols %v", c.MinVersion, c.NextProtos)
	}
}
