package test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// acmeValidity is how long pebble's certificates are valid in TestACMERenewal: tern renews a
// certificate after two thirds of its life (autocert's default), here after about 20 seconds.
const acmeValidity = 30

// TestACMERenewal: with certificates valid for acmeValidity seconds, tern renews its
// certificate before it expires and serves the new one without a restart: a new session sees
// another serial, valid longer, that verifies against pebble's root, while a session opened
// before the renewal carries on.
func TestACMERenewal(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.63" // a loopback address of its own, as in TestACMEPebble
	z := testutil.StartDNS(t, testHostname+". A "+host)
	submissions := freePortOn(t, host)
	_, tlsPort, _ := net.SplitHostPort(submissions)
	_, httpPort, _ := net.SplitHostPort(freePortOn(t, host))
	pb := startPebbleValidity(t, z.Addr, tlsPort, httpPort, acmeValidity)
	tn := startTern(t, ternOpts{
		Config: fmt.Sprintf("[acme]\nenabled = true\ndirectory_url = %q\ndomains = [%q]\nchallenge = \"tls-alpn-01\"\n",
			pb.dir, testHostname),
		ServeArgs: []string{"--submissions", submissions},
		Env:       []string{"SSL_CERT_FILE=" + pb.serverCert},
	})
	waitLog(t, tn, 60*time.Second, 1, "ACME certificate ready")
	roots := pb.roots(t)
	leaf := func() *x509.Certificate {
		t.Helper()
		conn, err := tls.Dial("tcp", tn.Submissions, &tls.Config{ServerName: testHostname, InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }() // only its certificate was wanted
		chain := conn.ConnectionState().PeerCertificates
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: testHostname, Roots: roots, Intermediates: inter}); err != nil {
			t.Fatalf("465: %v", err)
		}
		return chain[0]
	}
	first := leaf()
	if life := first.NotAfter.Sub(first.NotBefore); life > 2*acmeValidity*time.Second {
		t.Fatalf("pebble issued a certificate valid for %v, not about %ds: this pebble ignores certificateValidityPeriod", life, acmeValidity)
	}
	old := dialTLS(t, tn.Submissions)
	old.expect(`220 .*`)

	// The renewal is logged when the new certificate is stored; then a new session gets it.
	logged := waitLog(t, tn, 3*acmeValidity*time.Second, 1, "ACME certificate renewed", "name="+testHostname)
	var renewed *x509.Certificate
	waitFor(t, 10*time.Second, "a session with the renewed certificate", func() bool {
		renewed = leaf()
		return renewed.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %v, the first %v", renewed.NotAfter, first.NotAfter)
	}
	mustMatch(t, "the renewal's log line", logged[0].Text, `expires=20\d\d-`)
	old.ehlo("client.example.com")
	old.cmd("QUIT", `221 .*`)
}
