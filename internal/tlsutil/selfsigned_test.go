package tlsutil

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// readFile returns the content of dir/name, or nil if it does not exist.
func readFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, _, err := readIfExists(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantMode fails unless path has permission bits perm.
func wantMode(t *testing.T, path string, perm os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != perm {
		t.Errorf("%s: mode %o, want %o", path, got, perm)
	}
}

// wantNoLeftovers fails if dir holds temporary files from writing a pair.
func wantNoLeftovers(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{certName + pendingSuffix, keyName + pendingSuffix, certName + ".old.tmp", keyName + ".old.tmp"} {
		if readFile(t, dir, name) != nil {
			t.Errorf("%s left behind", name)
		}
	}
}

// makePair returns a fresh pair for hostname, valid from now, without touching any directory.
func makePair(t *testing.T, hostname string, now time.Time) *pemPair {
	t.Helper()
	p, err := generate(hostname, now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// writeFiles writes the given files (name -> content) into dir.
func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadOrCreateThenReuse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "tls") // Neither exists yet.
	cert1, created, err := LoadOrCreate(dir, "mx.example.com")
	if err != nil {
		t.Fatalf("first LoadOrCreate: %v", err)
	}
	if !created {
		t.Error("first LoadOrCreate: created = false, want true")
	}
	wantMode(t, dir, 0o700)
	wantMode(t, filepath.Join(dir, keyName), 0o600)
	wantMode(t, filepath.Join(dir, certName), 0o644)
	wantNoLeftovers(t, dir)
	certPEM, keyPEM := readFile(t, dir, certName), readFile(t, dir, keyName)

	cert2, created, err := LoadOrCreate(dir, "mx.example.com")
	if err != nil {
		t.Fatalf("second LoadOrCreate: %v", err)
	}
	if created {
		t.Error("second LoadOrCreate: created = true, want false")
	}
	if !bytes.Equal(cert1.Certificate[0], cert2.Certificate[0]) {
		t.Error("second LoadOrCreate returned a different certificate")
	}
	if !bytes.Equal(certPEM, readFile(t, dir, certName)) || !bytes.Equal(keyPEM, readFile(t, dir, keyName)) {
		t.Error("second LoadOrCreate rewrote the files")
	}
	if cert2.Leaf == nil {
		t.Error("Leaf not set")
	}
}

func TestGeneratedCertificate(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	loopback := []string{"127.0.0.1", "::1"}
	tests := []struct {
		hostname string
		cn       string
		dns      []string
		ips      []string
	}{
		{"mx.example.com", "mx.example.com", []string{"mx.example.com", "localhost"}, loopback},
		{"mx.example.com.", "mx.example.com.", []string{"mx.example.com", "localhost"}, loopback},
		{"localhost", "localhost", []string{"localhost"}, loopback},
		{"", "localhost", []string{"localhost"}, loopback},
		{"192.0.2.1", "192.0.2.1", []string{"localhost"}, []string{"192.0.2.1", "127.0.0.1", "::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.hostname, func(t *testing.T) {
			t.Parallel()
			cert, _, err := loadOrCreate(t.TempDir(), tt.hostname, func() time.Time { return now })
			if err != nil {
				t.Fatal(err)
			}
			leaf := cert.Leaf
			if leaf.Subject.CommonName != tt.cn {
				t.Errorf("CN %q, want %q", leaf.Subject.CommonName, tt.cn)
			}
			if !slices.Equal(leaf.DNSNames, tt.dns) {
				t.Errorf("DNS SANs %q, want %q", leaf.DNSNames, tt.dns)
			}
			var ips []string
			for _, ip := range leaf.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.ips) {
				t.Errorf("IP SANs %q, want %q", ips, tt.ips)
			}
			pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
			if !ok || pub.Curve != elliptic.P256() {
				t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
			}
			if !leaf.NotBefore.Equal(now.Add(-time.Hour)) {
				t.Errorf("NotBefore %v, want %v", leaf.NotBefore, now.Add(-time.Hour))
			}
			if d := leaf.NotAfter.Sub(now); d < 365*24*time.Hour || d > 825*24*time.Hour {
				t.Errorf("valid for %v after now, want 1 to 825 days", d)
			}
			if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 || leaf.SerialNumber.BitLen() < 64 {
				t.Errorf("serial %v is not a random positive 128-bit number", leaf.SerialNumber)
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("KeyUsage %v, want DigitalSignature", leaf.KeyUsage)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
				t.Errorf("ExtKeyUsage %v, want ServerAuth", leaf.ExtKeyUsage)
			}
			if leaf.IsCA {
				t.Error("certificate is a CA")
			}
			if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
				t.Errorf("not self-signed: %v", err)
			}
		})
	}
}

func TestRegenerate(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string) // Leaves the files to start from in dir.
		create bool                           // Whether the files are to be replaced.
	}{
		{
			name: "valid is kept",
			setup: func(t *testing.T, dir string) {
				if _, _, err := loadOrCreate(dir, "mx", func() time.Time { return now.Add(-365 * 24 * time.Hour) }); err != nil {
					t.Fatal(err)
				}
			},
			create: false,
		},
		{
			name: "expired",
			setup: func(t *testing.T, dir string) {
				if _, _, err := loadOrCreate(dir, "mx", func() time.Time { return now.Add(-3 * 365 * 24 * time.Hour) }); err != nil {
					t.Fatal(err)
				}
			},
			create: true,
		},
		{
			name: "expires within a day",
			setup: func(t *testing.T, dir string) {
				made := now.Add(-validity + 12*time.Hour)
				if _, _, err := loadOrCreate(dir, "mx", func() time.Time { return made }); err != nil {
					t.Fatal(err)
				}
			},
			create: true,
		},
		{
			name: "garbage files",
			setup: func(t *testing.T, dir string) {
				writeFiles(t, dir, map[string][]byte{certName: []byte("not a cert"), keyName: []byte("not a key")})
			},
			create: true,
		},
		{
			name: "empty files",
			setup: func(t *testing.T, dir string) {
				writeFiles(t, dir, map[string][]byte{certName: nil, keyName: nil})
			},
			create: true,
		},
		{
			name: "valid certificate, key does not parse",
			setup: func(t *testing.T, dir string) {
				p := makePair(t, "mx", now)
				writeFiles(t, dir, map[string][]byte{certName: p.cert, keyName: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")})
			},
			create: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tt.setup(t, dir)
			oldCert, oldKey := readFile(t, dir, certName), readFile(t, dir, keyName)

			cert, created, err := LoadOrCreate(dir, "mx")
			if err != nil {
				t.Fatalf("LoadOrCreate: %v", err)
			}
			if created != tt.create {
				t.Fatalf("created = %v, want %v", created, tt.create)
			}
			wantNoLeftovers(t, dir)
			newCert := readFile(t, dir, certName)
			if !tt.create {
				if !bytes.Equal(newCert, oldCert) {
					t.Error("files were replaced")
				}
				return
			}
			if bytes.Equal(newCert, oldCert) {
				t.Fatal("files were not replaced")
			}
			if time.Until(cert.Leaf.NotAfter) < 365*24*time.Hour || time.Now().Before(cert.Leaf.NotBefore) {
				t.Errorf("new certificate valid %v to %v", cert.Leaf.NotBefore, cert.Leaf.NotAfter)
			}
			// The replaced pair may be an operator's: it must be kept, the key still private.
			if !bytes.Equal(readFile(t, dir, certName+".old"), oldCert) || !bytes.Equal(readFile(t, dir, keyName+".old"), oldKey) {
				t.Error("replaced files not kept as .old")
			}
			wantMode(t, filepath.Join(dir, keyName+".old"), 0o600)
			wantMode(t, filepath.Join(dir, keyName), 0o600)
			wantMode(t, filepath.Join(dir, certName), 0o644)
			// And the next start reuses the new one.
			if _, created, err := LoadOrCreate(dir, "mx"); err != nil || created {
				t.Errorf("LoadOrCreate after regeneration: created %v, %v", created, err)
			}
		})
	}
}

func TestRefuseToOverwrite(t *testing.T) {
	now := time.Now()
	a, b := makePair(t, "a", now), makePair(t, "b", now)
	tests := []struct {
		name  string
		files map[string][]byte
	}{
		{"only certificate", map[string][]byte{certName: a.cert}},
		{"only key", map[string][]byte{keyName: a.key}},
		{"only garbage certificate", map[string][]byte{certName: []byte("x")}},
		{"mismatched pair", map[string][]byte{certName: a.cert, keyName: b.key}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			if _, _, err := LoadOrCreate(dir, "mx"); err == nil {
				t.Fatal("LoadOrCreate succeeded, want an error")
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != len(tt.files) {
				t.Errorf("directory holds %d files, want %d", len(ents), len(tt.files))
			}
			for name, want := range tt.files {
				if !bytes.Equal(readFile(t, dir, name), want) {
					t.Errorf("%s was changed", name)
				}
			}
		})
	}
}

// TestRecoverPending starts from the states a crash can leave writePair in.
func TestRecoverPending(t *testing.T) {
	now := time.Now()
	old, fresh := makePair(t, "mx", now), makePair(t, "mx", now)
	tests := []struct {
		name    string
		files   map[string][]byte
		want    []byte // Certificate expected to be loaded; nil: a new one is created.
		created bool
	}{
		{
			name:    "first write, crash while writing the key",
			files:   map[string][]byte{keyName + pendingSuffix: fresh.key[:40]},
			created: true,
		},
		{
			name:    "first write, crash before the certificate",
			files:   map[string][]byte{keyName + pendingSuffix: fresh.key},
			created: true,
		},
		{
			name:  "first write, crash before renaming",
			files: map[string][]byte{keyName + pendingSuffix: fresh.key, certName + pendingSuffix: fresh.cert},
			want:  fresh.cert,
		},
		{
			name:  "first write, crash between renames",
			files: map[string][]byte{keyName: fresh.key, certName + pendingSuffix: fresh.cert},
			want:  fresh.cert,
		},
		{
			name: "replacement, crash while writing the certificate",
			files: map[string][]byte{certName: old.cert, keyName: old.key,
				keyName + pendingSuffix: fresh.key, certName + pendingSuffix: fresh.cert[:100]},
			want: old.cert,
		},
		{
			name: "replacement, crash before the certificate",
			files: map[string][]byte{certName: old.cert, keyName: old.key,
				keyName + pendingSuffix: fresh.key},
			want: old.cert,
		},
		{
			name: "replacement, crash between renames",
			files: map[string][]byte{certName: old.cert, keyName: fresh.key,
				certName + pendingSuffix: fresh.cert},
			want: fresh.cert,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			cert, created, err := LoadOrCreate(dir, "mx")
			if err != nil {
				t.Fatalf("LoadOrCreate: %v", err)
			}
			if created != tt.created {
				t.Errorf("created = %v, want %v", created, tt.created)
			}
			if tt.want != nil && !bytes.Equal(readFile(t, dir, certName), tt.want) {
				t.Error("unexpected certificate in place")
			}
			if !bytes.Equal(readFile(t, dir, certName), pemOf(cert)) {
				t.Error("returned certificate is not the one on disk")
			}
			wantNoLeftovers(t, dir)
			wantMode(t, filepath.Join(dir, keyName), 0o600)
		})
	}
}

// pemOf returns the PEM encoding of cert's leaf, as generate writes it.
func pemOf(cert tls.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
}

func TestLoadOrCreateDirIsFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(dir, "mx"); err == nil {
		t.Fatal("LoadOrCreate succeeded with dir being a file")
	}
}

func TestSubjectAltNamesVerify(t *testing.T) {
	cert, _, err := LoadOrCreate(t.TempDir(), "mx.example.com")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	for _, name := range []string{"mx.example.com", "localhost", "127.0.0.1", "::1"} {
		t.Run(name, func(t *testing.T) {
			_, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			if err != nil {
				t.Errorf("Verify(%q): %v", name, err)
			}
		})
	}
	if ip := net.ParseIP("192.0.2.1"); cert.Leaf.VerifyHostname(ip.String()) == nil {
		t.Error("certificate valid for an address it does not name")
	}
}
