package remote

import (
	"context"
	"crypto/tls"
	"errors"
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
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{h.ca.issue(h.t, "mta-sts.dest.test")}}
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
			d.stsPolicy(context.Background(), "dest.test") // cache it (fetch 4)
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

func TestParseSTSPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		mode   string
		mx     []string
		maxAge time.Duration
		err    bool
	}{
		{in: enforcePolicy, mode: "enforce", mx: []string{"*.dest.test"}, maxAge: 86400 * time.Second},
		{in: "version: STSv1\r\nmode: testing\r\nmx: MX1.Example.COM.\r\nmx: *.example.net\r\nmax_age: 0\r\n", mode: "testing", mx: []string{"mx1.example.com", "*.example.net"}},
		{in: "version: STSv1\nmode: none\nmax_age: 31557600", mode: "none", maxAge: 31557600 * time.Second},
		{in: "version:STSv1\nmode:\tenforce \nmx:mx.example.com\nmax_age:60\nextension: whatever\n", mode: "enforce", mx: []string{"mx.example.com"}, maxAge: time.Minute},
		{in: "version: STSv1\nmode: enforce\nmode: testing\nmx: a.example\nmax_age: 1\n", mode: "enforce", mx: []string{"a.example"}, maxAge: time.Second},
		{in: "", err: true},
		{in: "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", err: true},
		{in: "version: STSv1\nmode: enforce\nmax_age: 1\n", err: true},                                                  // no mx
		{in: "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", err: true},                                    // bad mode
		{in: "version: STSv1\nmode: enforce\nmx: a.example\n", err: true},                                               // no max_age
		{in: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", err: true},                            // too long
		{in: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", err: true},                                  // negative
		{in: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 99999999999\n", err: true},                         // 11 digits
		{in: "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n", err: true},                                 // two wildcards
		{in: "version: STSv1\nmode: enforce\nmx: a.example:25\nmax_age: 1\n", err: true},                                // a port
		{in: "version: STSv1\nmode enforce\nmx: a.example\nmax_age: 1\n", err: true},                                    // no colon
		{in: "version: STSv1\n mode: enforce\nmx: a.example\nmax_age: 1\n", err: true},                                  // space before key
		{in: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n" + strings.Repeat("x: y\n", 20000), err: true}, // too big
	}
	for _, tc := range tests {
		p, err := parseSTSPolicy([]byte(tc.in))
		if tc.err {
			if err == nil {
				t.Errorf("parseSTSPolicy(%q) = %+v, want an error", tc.in, p)
			} else if !errors.Is(err, errSTSPolicy) {
				t.Errorf("parseSTSPolicy(%q): error %v is not errSTSPolicy", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseSTSPolicy(%q): %v", tc.in, err)
			continue
		}
		if p.Mode != tc.mode || strings.Join(p.MX, ",") != strings.Join(tc.mx, ",") || p.MaxAge != tc.maxAge {
			t.Errorf("parseSTSPolicy(%q) = %+v, want mode %s mx %v max_age %v", tc.in, p, tc.mode, tc.mx, tc.maxAge)
		}
	}
}

func TestSTSMatches(t *testing.T) {
	t.Parallel()
	p := &stsPolicy{MX: []string{"mail.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mail.example.com": true, "MAIL.example.com.": true, "x.mail.example.com": false,
		"mx.example.net": true, "example.net": false, "a.b.example.net": false, ".example.net": false,
		"other.test": false,
	} {
		if got := p.matches(host); got != want {
			t.Errorf("matches(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestParseSTSRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		id      string
		isSTS   bool
		wantErr bool
	}{
		{"v=STSv1; id=20160831085700Z;", "20160831085700Z", true, false},
		{"v=STSv1;id=abc", "abc", true, false},
		{"v=STSv1; id=abc; ext=1", "abc", true, false},
		{"v=spf1 -all", "", false, false},
		{"v=STSv10; id=1", "", false, false},
		{"v=STSv1;", "", true, true},
		{"v=STSv1; id=a-b", "", true, true},
		{"v=STSv1; id=" + strings.Repeat("a", 33), "", true, true},
		{"v=STSv1; junk", "", true, true},
	}
	for _, tc := range tests {
		id, ok, err := parseSTSRecord(tc.in)
		if id != tc.id || ok != tc.isSTS || (err != nil) != tc.wantErr {
			t.Errorf("parseSTSRecord(%q) = %q, %v, %v; want %q, %v, error %v", tc.in, id, ok, err, tc.id, tc.isSTS, tc.wantErr)
		}
	}
}

func FuzzParseSTSPolicy(f *testing.F) {
	f.Add([]byte(enforcePolicy))
	f.Add([]byte("version: STSv1\r\nmode: testing\r\nmx: mx1.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n"))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 0"))
	f.Add([]byte("version:STSv1\nmode:enforce\nmx:*.*\nmax_age:1e9\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseSTSPolicy(b)
		if err != nil {
			if !errors.Is(err, errSTSPolicy) {
				t.Fatalf("error %v is not errSTSPolicy", err)
			}
			return
		}
		switch {
		case p.Mode != stsEnforce && p.Mode != stsTesting && p.Mode != stsNone:
			t.Fatalf("mode %q", p.Mode)
		case p.Mode != stsNone && len(p.MX) == 0:
			t.Fatalf("mode %s without mx", p.Mode)
		case p.MaxAge < 0 || p.MaxAge > maxSTSMaxAge*time.Second:
			t.Fatalf("max_age %v", p.MaxAge)
		}
		for _, m := range p.MX {
			if m == "" || strings.ToLower(m) != m || strings.Count(m, "*") > 1 || strings.Contains(m, "*") && !strings.HasPrefix(m, "*.") {
				t.Fatalf("mx pattern %q", m)
			}
			// A pattern must match the names it names.
			host := m
			if rest, ok := strings.CutPrefix(m, "*."); ok {
				host = "x." + rest
			}
			if !p.matches(host) {
				t.Fatalf("pattern %q does not match %q", m, host)
			}
		}
	})
}

func FuzzParseSTSRecord(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1;id=1;x=y")
	f.Add("v=spf1 -all")
	f.Fuzz(func(t *testing.T, s string) {
		id, ok, err := parseSTSRecord(s)
		if err == nil && ok && (id == "" || len(id) > maxSTSIDLen || !isAlnum(id)) {
			t.Fatalf("accepted id %q", id)
		}
		if !ok && (id != "" || err != nil) {
			t.Fatalf("not a record, yet id %q err %v", id, err)
		}
	})
}
