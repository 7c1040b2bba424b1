package tlsutil

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"
)

// handshake runs a TLS handshake over net.Pipe between a server using ServerConfig(cert) and a
// client using clientCfg, and returns both sides' connection states.
func handshake(t *testing.T, cert tls.Certificate, clientCfg *tls.Config) (client, server tls.ConnectionState, err error) {
	t.Helper()
	return handshakeWith(t, ServerConfig(cert), clientCfg)
}

// handshakeWith is handshake with the server's configuration given.
func handshakeWith(t *testing.T, srvCfg, clientCfg *tls.Config) (client, server tls.ConnectionState, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	srv := tls.Server(s, srvCfg)
	srvErr := make(chan error, 1)
	go func() {
		err := srv.HandshakeContext(ctx)
		if err != nil {
			s.Close() // Unblock the client, which may be waiting for our reply.
		}
		srvErr <- err
	}()
	cli := tls.Client(c, clientCfg)
	err = cli.HandshakeContext(ctx)
	if err != nil {
		c.Close() // Unblock the server.
	}
	if serr := <-srvErr; err == nil {
		err = serr
	}
	return cli.ConnectionState(), srv.ConnectionState(), err
}

func TestHandshake(t *testing.T) {
	cert, _, err := LoadOrCreate(t.TempDir(), "mx.example.com")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		client *tls.Config
		want   *regexp.Regexp
	}{
		{
			// TLS 1.3 suites cannot be chosen; Go prefers AES-GCM where the CPU has AES
			// instructions and ChaCha20 elsewhere.
			name:   "tls 1.3",
			client: &tls.Config{MinVersion: tls.VersionTLS13},
			want:   regexp.MustCompile(`^TLSv1\.3 with cipher (TLS_AES_128_GCM_SHA256 \(128/128|TLS_AES_256_GCM_SHA384 \(256/256|TLS_CHACHA20_POLY1305_SHA256 \(256/256) bits\)$`),
		},
		{
			name: "tls 1.2 aes-128",
			client: &tls.Config{MaxVersion: tls.VersionTLS12,
				CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}},
			want: regexp.MustCompile(`^TLSv1\.2 with cipher TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 \(128/128 bits\)$`),
		},
		{
			name: "tls 1.2 aes-256",
			client: &tls.Config{MaxVersion: tls.VersionTLS12,
				CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}},
			want: regexp.MustCompile(`^TLSv1\.2 with cipher TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 \(256/256 bits\)$`),
		},
		{
			name: "tls 1.2 chacha20",
			client: &tls.Config{MaxVersion: tls.VersionTLS12,
				CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}},
			want: regexp.MustCompile(`^TLSv1\.2 with cipher TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 \(256/256 bits\)$`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.client.Clone()
			// Opportunistic SMTP clients do not verify (RFC 3207 §4.1); the SANs are checked
			// by hand below.
			cfg.InsecureSkipVerify = true
			cfg.ServerName = "mx.example.com"
			cs, ss, err := handshake(t, cert, cfg)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if len(cs.PeerCertificates) != 1 {
				t.Fatalf("client got %d certificates, want 1", len(cs.PeerCertificates))
			}
			leaf := cs.PeerCertificates[0]
			for _, name := range []string{"mx.example.com", "localhost", "127.0.0.1", "::1"} {
				if err := leaf.VerifyHostname(name); err != nil {
					t.Errorf("served certificate does not name %s: %v", name, err)
				}
			}
			if !slices.Contains(leaf.DNSNames, "mx.example.com") {
				t.Errorf("DNS SANs %q lack the host name", leaf.DNSNames)
			}
			for side, st := range map[string]tls.ConnectionState{"client": cs, "server": ss} {
				if got := Describe(st); !tt.want.MatchString(got) {
					t.Errorf("%s: Describe = %q, want match for %s", side, got, tt.want)
				}
			}
		})
	}
}

func TestServerConfigRefusesOldTLS(t *testing.T) {
	cert, _, err := LoadOrCreate(t.TempDir(), "mx.example.com")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if _, _, err := handshake(t, cert, cfg); err == nil {
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

func TestServerConfig(t *testing.T) {
	cert, _, err := LoadOrCreate(t.TempDir(), "mx")
	if err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig(cert)
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x, want TLS 1.2", cfg.MinVersion)
	}
	if len(cfg.Certificates) != 1 {
		t.Errorf("%d certificates, want 1", len(cfg.Certificates))
	}
	if cfg.CipherSuites != nil || cfg.InsecureSkipVerify || cfg.ClientAuth != tls.NoClientCert {
		t.Error("config sets more than the certificate and minimum version")
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		name string
		cs   tls.ConnectionState
		want string
	}{
		{"tls13 aes128", tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256},
			"TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits)"},
		{"tls13 aes256", tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_256_GCM_SHA384},
			"TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"},
		{"tls13 chacha", tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_CHACHA20_POLY1305_SHA256},
			"TLSv1.3 with cipher TLS_CHACHA20_POLY1305_SHA256 (256/256 bits)"},
		{"tls12 rsa aes128", tls.ConnectionState{Version: tls.VersionTLS12, CipherSuite: tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
			"TLSv1.2 with cipher TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (128/128 bits)"},
		{"tls10 3des", tls.ConnectionState{Version: tls.VersionTLS10, CipherSuite: tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA},
			"TLSv1.0 with cipher TLS_RSA_WITH_3DES_EDE_CBC_SHA (112/168 bits)"},
		{"unknown", tls.ConnectionState{Version: 0x0305, CipherSuite: 0x1234},
			"0x0305 with cipher 0x1234"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Describe(tt.cs); got != tt.want {
				t.Errorf("Describe = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	want, _, err := LoadOrCreate(dir, "mx")
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, certName), filepath.Join(dir, keyName)
	tests := []struct {
		name          string
		cert, key     string
		wantErr       bool
		wantSameChain bool
	}{
		{"ok", certPath, keyPath, false, true},
		{"missing certificate", filepath.Join(dir, "nope.pem"), keyPath, true, false},
		{"swapped", keyPath, certPath, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadFiles(tt.cert, tt.key)
			if (err != nil) != tt.wantErr {
				t.Fatalf("LoadFiles = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantSameChain && !slices.EqualFunc(got.Certificate, want.Certificate, slices.Equal) {
				t.Error("LoadFiles returned a different chain")
			}
		})
	}
}

// ClientConfig trusts a CA file's certificates only, refuses a file without one, and verifies
// nothing with insecure.
func TestClientConfig(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadOrCreate(dir, "mx.example.test"); err != nil {
		t.Fatal(err)
	}
	cfg, err := ClientConfig("mx.example.test", filepath.Join(dir, "cert.pem"), false)
	if err != nil || cfg.RootCAs == nil || cfg.ServerName != "mx.example.test" || cfg.InsecureSkipVerify || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("with a CA file: %+v, %v", cfg, err)
	}
	if cfg, err := ClientConfig("h", "", true); err != nil || cfg.RootCAs != nil || !cfg.InsecureSkipVerify {
		t.Errorf("insecure: %+v, %v", cfg, err)
	}
	if _, err := ClientConfig("h", filepath.Join(dir, "key.pem"), false); !errors.Is(err, ErrNoCertificates) {
		t.Errorf("a key as the CA file: %v", err)
	}
	if _, err := ClientConfig("h", filepath.Join(dir, "none.pem"), false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing CA file: %v", err)
	}
}
