package test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// certPEM is the PEM of c's leaf, as s_client prints it.
func certPEM(c tls.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
}

// writePair writes c as cert and key PEM files at the given paths (only the one named when the
// other is "": a renewal caught halfway).
func writePair(t *testing.T, c tls.Certificate, certPath, keyPath string) {
	t.Helper()
	if certPath != "" {
		if err := os.WriteFile(certPath, []byte(certPEM(c)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if keyPath != "" {
		der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := os.WriteFile(keyPath, key, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// servedPEM connects with openssl s_client (STARTTLS when starttls) asking for sni, and returns
// its output, which holds the server's certificate in PEM.
func servedPEM(t *testing.T, openssl, addr string, starttls bool, sni string) string {
	t.Helper()
	args := []string{"s_client", "-connect", addr, "-servername", sni, "-crlf", "-ign_eof"}
	if starttls {
		args = append(args, "-starttls", "smtp")
	}
	stdout, _, code := runTool(t, 30*time.Second, "QUIT\n", openssl, args...)
	if code != 0 {
		t.Fatalf("s_client to %s exited with status %d", addr, code)
	}
	return stdout
}

// TestTLSCertificatesReload replaces the certificate files of a running server: the new
// certificate is served on 25, 587 and 465 without a restart, a session opened before stays
// up, and SNI picks the second certificate.
func TestTLSCertificatesReload(t *testing.T) {
	t.Parallel()
	openssl := needTool(t, "openssl")
	dir := t.TempDir()
	mxCrt, mxKey := filepath.Join(dir, "mx.crt"), filepath.Join(dir, "mx.key")
	subCrt, subKey := filepath.Join(dir, "sub.crt"), filepath.Join(dir, "sub.key")
	old := testutil.SelfSigned(t, testHostname)
	sub := testutil.SelfSigned(t, "smtp.example.org")
	writePair(t, old, mxCrt, mxKey)
	writePair(t, sub, subCrt, subKey)
	tn := startTern(t, ternOpts{Config: fmt.Sprintf("[tls]\ncert = %q\nkey = %q\nreload = \"50ms\"\n[[tls.certs]]\ncert = %q\nkey = %q\n",
		mxCrt, mxKey, subCrt, subKey)})

	listeners := []struct {
		name     string
		addr     string
		starttls bool
	}{{"smtp", tn.SMTP, true}, {"submission", tn.Submission, true}, {"submissions", tn.Submissions, false}}
	for _, l := range listeners {
		if out := servedPEM(t, openssl, l.addr, l.starttls, testHostname); !strings.Contains(out, certPEM(old)) {
			t.Fatalf("%s: not serving the configured certificate for %s", l.name, testHostname)
		}
		if out := servedPEM(t, openssl, l.addr, l.starttls, "smtp.example.org"); !strings.Contains(out, certPEM(sub)) {
			t.Fatalf("%s: SNI smtp.example.org did not get its certificate", l.name)
		}
		if out := servedPEM(t, openssl, l.addr, l.starttls, "unknown.example"); !strings.Contains(out, certPEM(old)) {
			t.Fatalf("%s: an unknown name did not get the default certificate", l.name)
		}
	}

	// A session in TLS before the renewal.
	conn, err := tls.Dial("tcp", tn.Submissions, &tls.Config{InsecureSkipVerify: true, ServerName: testHostname})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }() // best effort: the session ended with QUIT
	r := bufio.NewReader(conn)
	expectReply(t, r, "220 ")

	renewed := testutil.SelfSigned(t, testHostname)
	// certbot and lego write the two files one after the other; the watcher may look between.
	writePair(t, renewed, mxCrt, mxKey)
	for _, l := range listeners {
		waitServed(t, openssl, l.addr, l.starttls, certPEM(renewed))
	}

	if _, err := fmt.Fprintf(conn, "EHLO client.example\r\n"); err != nil {
		t.Fatalf("the session opened before the reload: %v", err)
	}
	expectReply(t, r, "250 ")
	if _, err := fmt.Fprintf(conn, "QUIT\r\n"); err != nil {
		t.Fatal(err)
	}
	expectReply(t, r, "221 ")
}

// TestTLSCertificatesSIGHUP reloads on SIGHUP only (reload = 0): a half-written renewal (the
// new certificate beside the old key) is refused and logged, the old pair kept; with the key
// in, the next SIGHUP serves the new pair. A TLS 1.1 client is refused.
func TestTLSCertificatesSIGHUP(t *testing.T) {
	t.Parallel()
	openssl := needTool(t, "openssl")
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "mx.crt"), filepath.Join(dir, "mx.key")
	old := testutil.SelfSigned(t, testHostname)
	writePair(t, old, crt, key)
	tn := startTern(t, ternOpts{Config: fmt.Sprintf("[tls]\ncert = %q\nkey = %q\nreload = \"0s\"\n", crt, key)})

	renewed := testutil.SelfSigned(t, testHostname)
	writePair(t, renewed, crt, "")
	tn.Signal(syscall.SIGHUP)
	waitLog(t, tn, 15*time.Second, 1, "reload failed: the previous one stays in force")
	if out := servedPEM(t, openssl, tn.Submission, true, testHostname); !strings.Contains(out, certPEM(old)) {
		t.Fatal("a half-written renewal replaced the certificate")
	}

	writePair(t, renewed, "", key)
	tn.Signal(syscall.SIGHUP)
	waitLog(t, tn, 15*time.Second, 1, "TLS certificates reloaded")
	for _, addr := range []string{tn.SMTP, tn.Submission} {
		if out := servedPEM(t, openssl, addr, true, testHostname); !strings.Contains(out, certPEM(renewed)) {
			t.Fatalf("%s: the renewed certificate is not served after SIGHUP", addr)
		}
	}
	if out := servedPEM(t, openssl, tn.Submissions, false, testHostname); !strings.Contains(out, certPEM(renewed)) {
		t.Fatal("465: the renewed certificate is not served after SIGHUP")
	}

	// TLS 1.1: OpenSSL's own security level would refuse it on the client side; level 0 lets
	// it try, so the refusal seen is the server's.
	stdout, stderr, code := runTool(t, 30*time.Second, "QUIT\n", openssl, "s_client", "-connect", tn.Submissions,
		"-servername", testHostname, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
	if code == 0 {
		t.Fatal("a TLS 1.1 client was accepted")
	}
	mustMatch(t, "s_client -tls1_1", stdout+stderr, `alert protocol version`)
}

// waitServed waits until addr serves want (the watcher looks at the files every 50ms).
func waitServed(t *testing.T, openssl, addr string, starttls bool, want string) {
	t.Helper()
	waitFor(t, 15*time.Second, addr+" serving the renewed certificate", func() bool {
		return strings.Contains(servedPEM(t, openssl, addr, starttls, testHostname), want)
	})
}

// expectReply reads one SMTP reply (all its lines) and checks its last line's start.
func expectReply(t *testing.T, r *bufio.Reader, prefix string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the reply: %v", err)
		}
		if len(line) >= 4 && line[3] == '-' {
			continue
		}
		if !strings.HasPrefix(line, prefix) {
			t.Fatalf("reply %q, want %q", line, prefix)
		}
		return
	}
}
