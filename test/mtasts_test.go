package test

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// mtastsHostIP is where the test's MTA-STS policy server listens: an address of its own, which
// only the world's DNS server gives for mta-sts.b.test.
const mtastsHostIP = "127.0.0.6"

// TestMTASTSThroughResolver: b.test publishes an enforced MTA-STS policy whose host,
// mta-sts.b.test, only the world's DNS server (A's --resolver) knows. A fetches the policy
// there, over HTTPS verified against the name (SSL_CERT_FILE holds the policy server's
// certificate), and holds B, whose certificate A cannot verify, to it: the message is deferred
// with 4.7.5, never sent over unverified TLS. Before, A asked the system's resolver for the
// policy host, found nothing, and delivered without the policy.
func TestMTASTSThroughResolver(t *testing.T) {
	t.Parallel()
	cert := testutil.SelfSigned(t, "mta-sts.b.test")
	roots := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "mta-sts.b.test" || r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		fetches.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = fmt.Fprint(w, "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 86400\n")
	}))
	ln, err := net.Listen("tcp", net.JoinHostPort(mtastsHostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	w := startWorld(t, worldOpts{Schedule: "1h",
		AConfig: fmt.Sprintf("[delivery]\nmta_sts_port = %d\n", ln.Addr().(*net.TCPAddr).Port),
		AEnv:    []string{"SSL_CERT_FILE=" + roots}})
	w.DNS.Add(t, `_mta-sts.b.test. TXT "v=STSv1; id=20261205;"`, "mta-sts.b.test. A "+mtastsHostIP)
	tok := token(t)
	id := w.submit(t, outMsg{Rcpts: []string{bobB}, Tok: tok})
	waitLog(t, w.A, 15*time.Second, 1, "remote: MTA-STS policy", "remote=b.test", "mode=enforce")
	waitLog(t, w.A, 15*time.Second, 1, "delivery deferred", "msgid="+id)
	mustMatch(t, "queue list", queueEntry(w.A.QueueList(), id), `454 4\.7\.5 .*mx\.b\.test`)
	if n := fetches.Load(); n != 1 {
		t.Errorf("policy fetched %d times, want 1", n)
	}
	if got := messagesWith(w.B, bobB, tok); len(got) != 0 {
		t.Errorf("B got the message over TLS that the enforced policy does not allow")
	}
}
