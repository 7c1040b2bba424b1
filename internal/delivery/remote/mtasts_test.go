package remote

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
)

// stsServer serves mta-sts.dest.test's policy over HTTPS on loopback.
type stsServer struct {
	srv *httptest.Server

	mu      sync.Mutex
	policy  string
	status  int    // default 200
	ctype   string // default text/plain
	fetches int
}

func (h *harness) stsServer(policy string) *stsServer {
	h.t.Helper()
	return h.stsServerAt(policy, "127.0.0.1:0")
}

// stsServerAt is stsServer listening on addr.
func (h *harness) stsServerAt(policy, addr string) *stsServer {
	h.t.Helper()
	return h.stsServerWith(policy, addr, h.ca.issue(h.t, "mta-sts.dest.test"))
}

// stsServerWith is stsServerAt with cert for its certificate.
func (h *harness) stsServerWith(policy, addr string, cert tls.Certificate) *stsServer {
	h.t.Helper()
	s := &stsServer{policy: policy}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		h.t.Fatal(err)
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.fetches++
		if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != "mta-sts.dest.test" {
			http.NotFound(w, r)
			return
		}
		if s.status == http.StatusFound {
			http.Redirect(w, r, "https://mta-sts.dest.test/elsewhere", s.status)
			return
		}
		ct := s.ctype
		if ct == "" {
			ct = "text/plain; charset=utf-8"
		}
		w.Header().Set("Content-Type", ct)
		if s.status != 0 {
			w.WriteHeader(s.status)
		}
		_, _ = w.Write([]byte(s.policy)) // a failed write shows as the fetch failing
	}))
	s.srv.Listener.Close()
	s.srv.Listener = ln
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.srv.StartTLS()
	h.t.Cleanup(s.srv.Close)
	return s
}

func (s *stsServer) set(f func(s *stsServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *stsServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// client reaches the server whatever host name it asks for, and trusts h.ca.
func (s *stsServer) client(h *harness) *http.Client {
	addr := s.srv.Listener.Addr().String()
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: h.ca.pool},
	}}
}

const enforcePolicy = "version: STSv1\nmode: enforce\nmx: *.dest.test\nmax_age: 86400\n"

func TestMTASTS(t *testing.T) {
	t.Parallel()
	const mx = "mx1.dest.test"
	tests := []struct {
		name    string
		policy  string
		txt     string // the _mta-sts TXT record; default "v=STSv1; id=1;"
		serve   func(s *stsServer)
		trusted bool // the MX's certificate is from h.ca
		noTLS   bool // the MX offers no STARTTLS
		dane    bool // a matching DANE-EE record, with the AD bits
		reqTLS  bool
		ext     []string
		want    string
		noConn  bool
	}{
		{name: "enforce, trusted", policy: enforcePolicy, trusted: true, want: "ok"},
		{name: "enforce, MX not in the policy", policy: "version: STSv1\nmode: enforce\nmx: mail.other.test\nmax_age: 600\n", trusted: true, want: "temp 451 4.7.5", noConn: true},
		{name: "enforce, untrusted certificate", policy: enforcePolicy, want: "temp 454 4.7.5"},
		{name: "enforce, no STARTTLS", policy: enforcePolicy, noTLS: true, want: "temp 454 4.7.4"},
		{name: "testing, untrusted certificate: only logged", policy: strings.Replace(enforcePolicy, "enforce", "testing", 1), want: "ok"},
		{name: "none", policy: "version: STSv1\nmode: none\nmax_age: 600\n", want: "ok"},
		{name: "no TXT record: no policy", policy: enforcePolicy, txt: "-", want: "ok"},
		{name: "TXT record of another kind", policy: enforcePolicy, txt: "v=spf1 -all", want: "ok"},
		{name: "two STS records: no policy", policy: enforcePolicy, txt: "v=STSv1; id=1;|v=STSv1; id=2;", want: "ok"},
		{name: "policy not found: no policy", policy: enforcePolicy, serve: func(s *stsServer) { s.status = 404 }, want: "ok"},
		{name: "redirect not followed: no policy", policy: enforcePolicy, serve: func(s *stsServer) { s.status = 302 }, want: "ok"},
		{name: "wrong content type: no policy", policy: enforcePolicy, serve: func(s *stsServer) { s.ctype = "text/html" }, want: "ok"},
		{name: "bad policy: no policy", policy: "version: STSv1\nmode: enforce\n", want: "ok"},
		{name: "DANE takes precedence", policy: enforcePolicy, dane: true, want: "ok"},
		{name: "DANE host outside the policy's mx", policy: "version: STSv1\nmode: enforce\nmx: mail.other.test\nmax_age: 600\n", dane: true, want: "ok"},
		{name: "REQUIRETLS with an insecure MX under enforce", policy: enforcePolicy, trusted: true, reqTLS: true, ext: []string{"REQUIRETLS"}, want: "ok"},
		{name: "REQUIRETLS, enforce, untrusted certificate: bounced at once", policy: enforcePolicy, reqTLS: true, ext: []string{"REQUIRETLS"}, want: "perm 550 5.7.30"},
		{name: "REQUIRETLS, enforce, MX not in the policy", policy: "version: STSv1\nmode: enforce\nmx: mail.other.test\nmax_age: 600\n", trusted: true, reqTLS: true, ext: []string{"REQUIRETLS"}, want: "perm 550 5.7.30", noConn: true},
		{name: "REQUIRETLS with an insecure MX under testing", policy: strings.Replace(enforcePolicy, "enforce", "testing", 1), trusted: true, reqTLS: true, ext: []string{"REQUIRETLS"}, want: "perm 550 5.7.30", noConn: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.mx("dest.test", 10, mx, "127.0.0.2")
			switch tc.txt {
			case "-":
			case "":
				h.dns.Add(t, `_mta-sts.dest.test. TXT "v=STSv1; id=1;"`)
			default:
				for _, r := range strings.Split(tc.txt, "|") {
					h.dns.Add(t, `_mta-sts.dest.test. TXT "`+r+`"`)
				}
			}
			s := h.stsServer(tc.policy)
			if tc.serve != nil {
				s.set(tc.serve)
			}
			other := newCA(t)
			cert := other.issue(t, mx)
			if tc.trusted {
				cert = h.ca.issue(t, mx)
			}
			if tc.dane {
				h.dns.SetSecure("dest.test", mx, "_"+itoa(h.port)+"._tcp."+mx)
				h.dns.Add(t, tlsaRR(t, "_"+itoa(h.port)+"._tcp."+mx+".", 3, 1, 1, cert.Leaf))
			}
			p := &peer{name: mx, ext: tc.ext}
			if !tc.noTLS {
				p.tls = tlsConfig(cert)
			}
			h.peer("127.0.0.2", p)
			d := h.deliverer(func(o *Options) {
				o.HTTPClient = s.client(h)
				o.RequireTLS = func(*envelope.Envelope) bool { return tc.reqTLS }
			})
			out := deliverAll(d, newEnv("bob@dest.test"), testMessage)
			checkOutcome(t, 0, out[0], tc.want)
			if tc.noConn && p.connections() != 0 {
				t.Errorf("connected %d times", p.connections())
			}
		})
	}
}

// TestMTASTSPolicyHostResolver: with the default HTTP client, the policy host's address comes
// from Options.Resolver, like the TXT record's: a policy host only the test's DNS server knows
// is reached, and its enforced policy refuses an MX with an untrusted certificate. Without an
// address there, there is no policy (RFC 8461 §5.1), and the message goes out.
func TestMTASTSPolicyHostResolver(t *testing.T) {
	t.Parallel()
	const mx = "mx1.dest.test"
	for _, tc := range []struct {
		name    string
		rr      string // the policy host's record in the test's DNS
		want    string
		fetches int
	}{
		{"known to the resolver", "mta-sts.dest.test. A 127.0.0.9", "temp 454 4.7.5", 1},
		{"unknown to the resolver", "", "ok", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.mx("dest.test", 10, mx, "127.0.0.2")
			h.dns.Add(t, `_mta-sts.dest.test. TXT "v=STSv1; id=A1;"`)
			if tc.rr != "" {
				h.dns.Add(t, tc.rr)
			}
			s := h.stsServerAt(enforcePolicy, "127.0.0.9:0")
			port := s.srv.Listener.Addr().(*net.TCPAddr).Port
			h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(newCA(t).issue(t, mx))}) // untrusted
			d := h.deliverer(func(o *Options) { o.PolicyPort = port })
			out := deliverAll(d, newEnv("bob@dest.test"), testMessage)
			checkOutcome(t, 0, out[0], tc.want)
			if n := s.count(); n != tc.fetches {
				t.Errorf("policy fetched %d times, want %d", n, tc.fetches)
			}
		})
	}
}

// TestMTASTSCache checks RFC 8461 §5.1: the policy is fetched again only when the TXT id
// changes or the cached one expires, and a cached policy outlives its TXT record.
func TestMTASTSCache(t *testing.T) {
	t.Parallel()
	const mx = "mx1.dest.test"
	h := newHarness(t)
	h.mx("dest.test", 10, mx, "127.0.0.2")
	h.dns.Add(t, `_mta-sts.dest.test. TXT "v=STSv1; id=A1;"`)
	s := h.stsServer(enforcePolicy)
	h.peer("127.0.0.2", &peer{name: mx, tls: tlsConfig(newCA(t).issue(t, mx))}) // untrusted
	var mu sync.Mutex
	now := time.Now()
	d := h.deliverer(func(o *Options) {
		o.HTTPClient = s.client(h)
		o.Now = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return now
		}
	})
	advance := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
	}
	steps := []struct {
		name    string
		do      func()
		want    string
		fetches int
	}{
		{"first delivery fetches", func() {}, "temp 454 4.7.5", 1},
		{"same id: cached", func() {}, "temp 454 4.7.5", 1},
		{"new id: fetched again", func() {
			h.dns.Replace(t, "_mta-sts.dest.test", `_mta-sts.dest.test. TXT "v=STSv1; id=A2;"`)
			s.set(func(s *stsServer) { s.policy = strings.Replace(enforcePolicy, "enforce", "testing", 1) })
		}, "ok", 2},
		{"back to enforce", func() {
			h.dns.Replace(t, "_mta-sts.dest.test", `_mta-sts.dest.test. TXT "v=STSv1; id=A3;"`)
			s.set(func(s *stsServer) { s.policy = enforcePolicy })
		}, "temp 454 4.7.5", 3},
		{"TXT record gone: the cached policy holds", func() {
			h.dns.Replace(t, "_mta-sts.dest.test")
		}, "temp 454 4.7.5", 3},
		{"the cached policy expires", func() { advance(86401 * time.Second) }, "ok", 3},
		{"policy host down: the cached policy holds", func() {
			h.dns.Replace(t, "_mta-sts.dest.test", `_mta-sts.dest.test. TXT "v=STSv1; id=A4;"`)
			s.set(func(s *stsServer) { s.policy = enforcePolicy })
			if _, err := d.stsPolicy(context.Background(), "dest.test"); err != nil { // cache it (fetch 4)
				t.Fatal(err)
			}
			h.dns.Replace(t, "_mta-sts.dest.test", `_mta-sts.dest.test. TXT "v=STSv1; id=A5;"`)
			s.set(func(s *stsServer) { s.status = 500 })
		}, "temp 454 4.7.5", 5},
	}
	for _, st := range steps {
		st.do()
		out := deliverAll(d, newEnv("bob@dest.test"), testMessage)
		checkOutcome(t, 0, out[0], st.want)
		if got := s.count(); got != st.fetches {
			t.Errorf("%s: %d fetches, want %d", st.name, got, st.fetches)
		}
		if t.Failed() {
			t.Fatalf("step %q failed", st.name)
		}
	}
}
