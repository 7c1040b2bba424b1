package tlsutil

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// certFiles writes a fresh pair for hostname as dir/<name>.crt and dir/<name>.key.
func certFiles(t *testing.T, dir, name, hostname string) (Pair, *pemPair) {
	t.Helper()
	p := makePair(t, hostname, time.Now())
	pair := Pair{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
	writeFiles(t, dir, map[string][]byte{name + ".crt": p.cert, name + ".key": p.key})
	return pair, p
}

// served returns the PEM of the certificate c picks for a client sending sni.
func served(t *testing.T, c *Certs, sni string) []byte {
	t.Helper()
	crt, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(*crt)
}

func TestCertsSNI(t *testing.T) {
	dir := t.TempDir()
	mxPair, mx := certFiles(t, dir, "mx", "mx.example.com")
	subPair, sub := certFiles(t, dir, "sub", "smtp.example.org")
	wildPair, wild := certFiles(t, dir, "wild", "*.example.net")
	c, err := LoadCerts([]Pair{mxPair, subPair, wildPair}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sni  string
		want *pemPair
	}{
		{"mx.example.com", mx},
		{"SMTP.example.org.", sub}, // case and a trailing dot do not matter
		{"mail.example.net", wild},
		{"a.b.example.net", mx}, // a wildcard covers one label only: the default
		{"other.example", mx},
		{"", mx}, // no SNI: the default (the first pair)
	} {
		if got := served(t, c, tc.sni); !bytes.Equal(got, tc.want.cert) {
			t.Errorf("SNI %q: served the wrong certificate", tc.sni)
		}
	}
}

func TestCertsReload(t *testing.T) {
	dir := t.TempDir()
	pair, old := certFiles(t, dir, "mx", "mx.example.com")
	c, err := LoadCerts([]Pair{pair}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := c.Reload(); changed || err != nil {
		t.Fatalf("Reload of unchanged files = %v, %v; want false, nil", changed, err)
	}
	if !bytes.Equal(served(t, c, "mx.example.com"), old.cert) {
		t.Fatal("not serving the loaded certificate")
	}

	// A renewal half done: the new certificate is in, its key not yet. The old pair stays.
	renewed := makePair(t, "mx.example.com", time.Now())
	writeFiles(t, dir, map[string][]byte{"mx.crt": renewed.cert})
	changed, err := c.Reload()
	if changed || err == nil || !strings.Contains(err.Error(), "mx.crt") {
		t.Fatalf("Reload of a mismatched pair = %v, %v; want false and an error naming the file", changed, err)
	}
	if !bytes.Equal(served(t, c, "mx.example.com"), old.cert) {
		t.Fatal("a half-renewed pair replaced the old certificate")
	}

	// The key follows: the new pair is served.
	writeFiles(t, dir, map[string][]byte{"mx.key": renewed.key})
	if changed, err := c.Reload(); !changed || err != nil {
		t.Fatalf("Reload of the renewed pair = %v, %v; want true, nil", changed, err)
	}
	if !bytes.Equal(served(t, c, "mx.example.com"), renewed.cert) {
		t.Fatal("the renewed certificate is not served")
	}
}

func TestCertsLoadRefusesMismatch(t *testing.T) {
	dir := t.TempDir()
	a, _ := certFiles(t, dir, "a", "a.example.com")
	b, _ := certFiles(t, dir, "b", "b.example.com")
	if _, err := LoadCerts([]Pair{{Cert: a.Cert, Key: b.Key}}, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("LoadCerts accepted a certificate with another's key")
	}
	if _, err := LoadCerts(nil, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("LoadCerts accepted no pair")
	}
}

func TestCertsWatch(t *testing.T) {
	dir := t.TempDir()
	pair, _ := certFiles(t, dir, "mx", "mx.example.com")
	c, err := LoadCerts([]Pair{pair}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Watch(ctx, time.Millisecond) }()
	defer func() { cancel(); <-done }()

	_, renewed := certFiles(t, dir, "mx", "mx.example.com")
	deadline := time.Now().Add(10 * time.Second)
	for !bytes.Equal(served(t, c, "mx.example.com"), renewed.cert) {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not pick up the renewed certificate")
		}
		time.Sleep(time.Millisecond) // waiting for the event, not proving its absence
	}
}

func TestServerConfigCertsHandshake(t *testing.T) {
	dir := t.TempDir()
	mxPair, _ := certFiles(t, dir, "mx", "mx.example.com")
	subPair, _ := certFiles(t, dir, "sub", "smtp.example.org")
	c, err := LoadCerts([]Pair{mxPair, subPair}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfigCerts(c)
	got, _, err := handshakeWith(t, cfg, &tls.Config{InsecureSkipVerify: true, ServerName: "smtp.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if cn := got.PeerCertificates[0].Subject.CommonName; cn != "smtp.example.org" {
		t.Errorf("SNI smtp.example.org: served %s", cn)
	}
	old := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if _, _, err := handshakeWith(t, cfg, old); err == nil {
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}
