package test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// pebble is Let's Encrypt's test ACME server, started on loopback and stopped by PID.
type pebble struct {
	dir        string // its HTTPS directory URL
	mgmt       string // management address: /roots/0 is its root certificate
	serverCert string // the file with its HTTPS certificate, for SSL_CERT_FILE
}

// startPebble starts pebble validating tls-alpn-01 on tlsPort and http-01 on httpPort, its
// names resolved by the DNS server at dnsAddr.
func startPebble(t *testing.T, dnsAddr, tlsPort, httpPort string) *pebble {
	t.Helper()
	return startPebbleValidity(t, dnsAddr, tlsPort, httpPort, 0)
}

// startPebbleValidity is startPebble issuing certificates valid for that many seconds (0:
// pebble's default, five years).
func startPebbleValidity(t *testing.T, dnsAddr, tlsPort, httpPort string, validity int) *pebble {
	t.Helper()
	bin := needTool(t, "pebble")
	dir := t.TempDir()
	cert := testutil.SelfSigned(t, "127.0.0.1", "localhost")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair(t, cert, certFile, keyFile)
	listen, mgmt := freeLoopbackPort(t), freeLoopbackPort(t)
	validityKey := ""
	if validity > 0 {
		validityKey = fmt.Sprintf(`, "certificateValidityPeriod": %d`, validity)
	}
	cfg := fmt.Sprintf(`{"pebble": {"listenAddress": %q, "managementListenAddress": %q, "certificate": %q,
  "privateKey": %q, "httpPort": %s, "tlsPort": %s, "ocspResponderURL": "", "externalAccountBindingRequired": false%s}}`,
		listen, mgmt, certFile, keyFile, httpPort, tlsPort, validityKey)
	cfgFile := writeFileIn(t, dir, "pebble.json", cfg)

	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", dnsAddr)
	// No random sleeps before validation; no nonces refused at random (tern's client would
	// retry, but the test would be slower and less predictable).
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	var out testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pebble: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // by PID; it keeps nothing worth a graceful stop
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("pebble's log:\n%s", out.String())
		}
	})
	waitFor(t, 15*time.Second, "pebble listening on "+listen, func() bool {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return &pebble{dir: "https://" + listen + "/dir", mgmt: mgmt, serverCert: certFile}
}

// roots returns a pool with pebble's root, which it makes anew at each start.
func (p *pebble) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if b := p.rootPEM(t); !pool.AppendCertsFromPEM([]byte(b)) {
		t.Fatalf("pebble's root does not parse: %q", b)
	}
	return pool
}

// rootPEM returns pebble's root as PEM, from its management port.
func (p *pebble) rootPEM(t *testing.T) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	resp, err := client.Get("https://" + p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }() // read in full below
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFileIn(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestACMEPebble gets tern's certificate from pebble by each challenge: the certificate served
// on 465 and on 25 after STARTTLS verifies against pebble's root for the domain, and the
// account key and certificate are stored 0600 in <data>/acme.
func TestACMEPebble(t *testing.T) {
	t.Parallel()
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			t.Parallel()
			// The ports pebble validates on are chosen before tern binds them: on a loopback
			// address of their own, so that no other test's port 0 on 127.0.0.1 takes them
			// meanwhile.
			host := map[string]string{"tls-alpn-01": "127.0.0.61", "http-01": "127.0.0.62"}[challenge]
			z := testutil.StartDNS(t, testHostname+". A "+host)
			submissions, httpListen := freePortOn(t, host), freePortOn(t, host)
			_, tlsPort, _ := net.SplitHostPort(submissions)
			_, httpPort, _ := net.SplitHostPort(httpListen)
			if challenge == "http-01" {
				// tls-alpn-01, which autocert tries first, fails on a closed port at once.
				_, tlsPort, _ = net.SplitHostPort(freePortOn(t, host))
			}
			pb := startPebble(t, z.Addr, tlsPort, httpPort)
			tn := startTern(t, ternOpts{
				Config: fmt.Sprintf("[acme]\nenabled = true\ndirectory_url = %q\ndomains = [%q]\nchallenge = %q\nhttp_listen = %q\n",
					pb.dir, testHostname, challenge, httpListen),
				ServeArgs: []string{"--submissions", submissions},
				Env:       []string{"SSL_CERT_FILE=" + pb.serverCert},
			})
			waitLog(t, tn, 60*time.Second, 1, "ACME certificate ready")

			roots := pb.roots(t)
			conn, err := tls.Dial("tcp", tn.Submissions, &tls.Config{RootCAs: roots, ServerName: testHostname})
			if err != nil {
				t.Fatalf("465: the certificate does not verify against pebble's root: %v", err)
			}
			_ = conn.Close()
			// No SNI (as many MTAs): the first ACME domain's certificate all the same.
			conn, err = tls.Dial("tcp", tn.Submissions, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			chain := conn.ConnectionState().PeerCertificates
			_ = conn.Close()
			inter := x509.NewCertPool()
			for _, c := range chain[1:] {
				inter.AddCert(c)
			}
			if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: testHostname, Roots: roots, Intermediates: inter}); err != nil {
				t.Fatalf("465 without SNI: %v", err)
			}

			caFile := writeFileIn(t, t.TempDir(), "root.pem", pb.rootPEM(t))
			stdout, _, code := runTool(t, 30*time.Second, "QUIT\n", needTool(t, "openssl"), "s_client",
				"-connect", tn.SMTP, "-starttls", "smtp", "-servername", testHostname, "-CAfile", caFile,
				"-verify_return_error", "-verify_hostname", testHostname, "-crlf", "-ign_eof")
			if code != 0 {
				t.Fatalf("s_client -starttls smtp with pebble's root: exit %d", code)
			}
			mustMatch(t, "s_client", stdout, `Verify return code: 0 \(ok\)`)

			files, err := os.ReadDir(filepath.Join(tn.Data, "acme"))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range files {
				names = append(names, f.Name())
				wantMode(t, filepath.Join(tn.Data, "acme", f.Name()), 0o600)
			}
			if !strings.Contains(strings.Join(names, " "), "acme_account+key") || !strings.Contains(strings.Join(names, " "), testHostname) {
				t.Errorf("<data>/acme holds %v, want the account key and %s's certificate", names, testHostname)
			}
		})
	}
}

// freePortOn is host:port with a port free on host a moment ago.
func freePortOn(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }() // only held to learn a free port
	return ln.Addr().String()
}

// wantMode fails unless path has exactly mode perm.
func wantMode(t *testing.T, path string, perm os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != perm {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), perm)
	}
}
