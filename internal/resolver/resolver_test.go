package resolver

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/testutil"
)

// clock is a settable clock for the cache's expiry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTest(t *testing.T, z *testutil.DNS, opts Options) (*Resolver, *clock) {
	t.Helper()
	c, err := NewClient(z.Addr, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts.Now = clk.Now
	return New(c, opts), clk
}

// TestLookup: answers, NXDOMAIN and NODATA as answers, void or not; SERVFAIL and a server that
// does not answer as errors, the latter a timeout.
func TestLookup(t *testing.T) {
	t.Parallel()
	z := testutil.StartDNS(t,
		`a.test. 300 TXT "v=spf1 " "-all"`,
		"a.test. 300 A 192.0.2.1",
		"fail.test. A 192.0.2.2",
		"slow.test. A 192.0.2.3",
	)
	z.Fail("fail.test", dns.RcodeServerFailure)
	z.Drop("slow.test")
	r, _ := newTest(t, z, Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name          string
		qtype         uint16
		nrr           int
		nx, timeout   bool
		wantErr, void bool
	}{
		{name: "a.test", qtype: dns.TypeTXT, nrr: 1},
		{name: "A.Test.", qtype: dns.TypeA, nrr: 1},
		{name: "a.test", qtype: dns.TypeMX, void: true},
		{name: "none.test", qtype: dns.TypeA, nx: true, void: true},
		{name: "fail.test", qtype: dns.TypeA, wantErr: true},
		{name: "slow.test", qtype: dns.TypeA, wantErr: true, timeout: true},
	} {
		a, err := r.Lookup(ctx, tc.name, tc.qtype)
		var de *Error
		switch {
		case tc.wantErr && !errors.As(err, &de):
			t.Errorf("%s %s: error %v, want an *Error", tc.name, dns.TypeToString[tc.qtype], err)
		case tc.wantErr && de.Timeout() != tc.timeout:
			t.Errorf("%s: Timeout() = %v, want %v (%v)", tc.name, de.Timeout(), tc.timeout, err)
		case tc.wantErr:
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case len(a.RRs) != tc.nrr || a.NXDomain != tc.nx || a.Void() != tc.void:
			t.Errorf("%s %s: %d records, NXDomain %v, Void %v; want %d, %v, %v", tc.name,
				dns.TypeToString[tc.qtype], len(a.RRs), a.NXDomain, a.Void(), tc.nrr, tc.nx, tc.void)
		}
	}
}

// TestCacheTTL: an answer is asked once while its TTL lasts and again after; a failure is
// asked once while FailureTTL lasts; a negative answer without a SOA is not cached (RFC 2308 §5).
func TestCacheTTL(t *testing.T) {
	t.Parallel()
	z := testutil.StartDNS(t, "a.test. 60 A 192.0.2.1", "fail.test. A 192.0.2.2")
	z.Fail("fail.test", dns.RcodeServerFailure)
	r, clk := newTest(t, z, Options{MaxTTL: 30 * time.Second})
	ctx := context.Background()
	look := func(name string) {
		t.Helper()
		_, _ = r.Lookup(ctx, name, dns.TypeA) // the counts below are what is checked
	}
	look("a.test")
	look("a.test")
	clk.Add(29 * time.Second)
	look("a.test")
	if n := z.Count("a.test", dns.TypeA); n != 1 {
		t.Errorf("within the TTL: %d queries, want 1", n)
	}
	clk.Add(time.Second) // MaxTTL (30s) caps the record's 60s
	look("a.test")
	if n := z.Count("a.test", dns.TypeA); n != 2 {
		t.Errorf("after MaxTTL: %d queries, want 2", n)
	}
	look("fail.test")
	look("fail.test")
	look("none.test")
	look("none.test")
	if n, m := z.Count("fail.test", dns.TypeA), z.Count("none.test", dns.TypeA); n != 1 || m != 2 {
		t.Errorf("SERVFAIL asked %d times, NXDOMAIN without SOA %d times; want 1 and 2", n, m)
	}
}

// TestFailureCache: SERVFAIL and a server that does not answer are remembered for FailureTTL
// (the same error again, no query), then asked again; a lookup ended by its own context is
// not remembered.
func TestFailureCache(t *testing.T) {
	t.Parallel()
	z := testutil.StartDNS(t, "fail.test. A 192.0.2.2", "slow.test. A 192.0.2.3")
	z.Fail("fail.test", dns.RcodeServerFailure)
	z.Drop("slow.test")
	r, clk := newTest(t, z, Options{FailureTTL: 10 * time.Second})
	ctx := context.Background()
	for _, name := range []string{"fail.test", "slow.test"} {
		_, err1 := r.Lookup(ctx, name, dns.TypeA)
		if err1 == nil || !strings.HasPrefix(err1.Error(), "DNS A "+name+": ") {
			t.Errorf("%s: %v, want a DNS error naming the query", name, err1)
		}
		clk.Add(9 * time.Second)
		_, err2 := r.Lookup(ctx, name, dns.TypeA)
		var de *Error
		if !errors.As(err2, &de) || err2.Error() != err1.Error() {
			t.Errorf("%s within FailureTTL: %v, want the first error %v", name, err2, err1)
		}
		if n := z.Count(name, dns.TypeA); n != 1 {
			t.Errorf("%s within FailureTTL: %d queries, want 1", name, n)
		}
		clk.Add(time.Second)
		if _, err := r.Lookup(ctx, name, dns.TypeA); err == nil {
			t.Errorf("%s after FailureTTL: no error", name)
		}
		if n := z.Count(name, dns.TypeA); n != 2 {
			t.Errorf("%s after FailureTTL: %d queries, want 2", name, n)
		}
	}

	z.Drop("gone.test")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Lookup(cctx, "gone.test", dns.TypeA); err == nil {
		t.Fatal("a cancelled lookup succeeded")
	}
	if r.Len() != 2 {
		t.Errorf("after a cancelled lookup the cache holds %d entries, want 2 (its failure not kept)", r.Len())
	}
}

// TestSharedQuery: a lookup of a name and type that is already being asked waits for that
// query instead of sending its own, and gets its answer. The answer has TTL 0 (not cached) and
// the server holds the first query until the second lookup waits, so only sharing keeps the
// count at one.
func TestSharedQuery(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		n       int
		first   = make(chan struct{})
		release = make(chan struct{})
	)
	addr := startServer(t, func(w dns.ResponseWriter, q *dns.Msg) {
		mu.Lock()
		n++
		held := n == 1
		mu.Unlock()
		if held {
			close(first)
			<-release
		}
		m := new(dns.Msg)
		m.SetReply(q)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(192, 0, 2, 1)}}
		_ = w.WriteMsg(m) // a lost reply shows as a timeout
	})
	c, err := NewClient(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	let := func() { once.Do(func() { close(release) }) }
	t.Cleanup(let) // before the server's shutdown, which waits for the held query
	r := New(c, Options{})
	r.waits = let // the second lookup waits: let the first answer go
	errs := make(chan error, 2)
	lookup := func() {
		a, err := r.Lookup(context.Background(), "a.test", dns.TypeA)
		if err == nil && len(a.RRs) != 1 {
			err = errors.New("no record")
		}
		errs <- err
	}
	go lookup()
	<-first // the first lookup's query is at the server, held
	go lookup()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n != 1 {
		t.Errorf("two concurrent lookups: %d queries, want 1", n)
	}
}

// soaServer answers every query NXDOMAIN with a SOA in the authority section (TTL soaTTL,
// MINIMUM minimum), counting the queries.
func soaServer(t *testing.T, soaTTL, minimum uint32) (addr string, count func() int) {
	t.Helper()
	var mu sync.Mutex
	n := 0
	addr = startServer(t, func(w dns.ResponseWriter, q *dns.Msg) {
		mu.Lock()
		n++
		mu.Unlock()
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeNameError)
		m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: soaTTL},
			Ns: "ns.test.", Mbox: "hostmaster.test.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: minimum}}
		_ = w.WriteMsg(m) // a lost reply shows as a timeout
	})
	return addr, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// startServer serves DNS on a loopback UDP port with h (each query on a goroutine of its own)
// until the test ends, and returns the address.
func startServer(t *testing.T, h dns.HandlerFunc) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: h}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Error(err)
		}
		<-done
	})
	return pc.LocalAddr().String()
}

// TestNegativeCache: NXDOMAIN is kept for the least of the SOA's TTL and MINIMUM, capped by
// MaxNegativeTTL.
func TestNegativeCache(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		soaTTL, minimum uint32
		max, kept       time.Duration
	}{
		{soaTTL: 3600, minimum: 120, max: time.Hour, kept: 120 * time.Second},
		{soaTTL: 60, minimum: 120, max: time.Hour, kept: 60 * time.Second},
		{soaTTL: 86400, minimum: 86400, max: 10 * time.Minute, kept: 10 * time.Minute},
	} {
		addr, count := soaServer(t, tc.soaTTL, tc.minimum)
		c, err := NewClient(addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		r := New(c, Options{MaxNegativeTTL: tc.max, Now: clk.Now})
		for _, step := range []time.Duration{0, tc.kept - time.Second, time.Second} {
			clk.Add(step)
			a, err := r.Lookup(context.Background(), "gone.test", dns.TypeTXT)
			if err != nil || !a.NXDomain {
				t.Fatalf("%+v: %+v, %v; want NXDOMAIN", tc, a, err)
			}
		}
		if n := count(); n != 2 {
			t.Errorf("%+v: %d queries, want 2 (one, then one after %v)", tc, n, tc.kept)
		}
	}
}

// TestCacheBound: the cache never holds more than MaxEntries answers.
func TestCacheBound(t *testing.T) {
	t.Parallel()
	var rrs []string
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}
	for _, n := range names {
		rrs = append(rrs, n+".test. 300 A 192.0.2.1")
	}
	z := testutil.StartDNS(t, rrs...)
	r, _ := newTest(t, z, Options{MaxEntries: 8})
	for _, n := range names {
		if _, err := r.Lookup(context.Background(), n+".test", dns.TypeA); err != nil {
			t.Fatal(err)
		}
		if r.Len() > 8 {
			t.Fatalf("%d entries, want at most 8", r.Len())
		}
	}
}

func TestNewClient(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"localhost", ":53", "127.0.0.1:0", "127.0.0.1:x", "127.0.0.1:70000"} {
		if _, err := NewClient(bad, time.Second); err == nil {
			t.Errorf("NewClient(%q) accepted", bad)
		}
	}
	// Without an address: resolv.conf's servers, or the loopback default.
	if _, err := NewClient("", time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestAddr(t *testing.T) {
	for _, tc := range []struct {
		rr   string
		want string // "" for not an address
	}{
		{"a.test. A 192.0.2.1", "192.0.2.1"},
		{"a.test. AAAA 2001:db8::1", "2001:db8::1"},
		{"a.test. AAAA ::ffff:192.0.2.1", "192.0.2.1"},
		{"a.test. MX 10 mx.test.", ""},
	} {
		rr, err := dns.NewRR(tc.rr)
		if err != nil {
			t.Fatal(err)
		}
		addr, ok := Addr(rr)
		if got := addr.String(); ok != (tc.want != "") || ok && got != tc.want {
			t.Errorf("Addr(%s) = %s, %v; want %q", tc.rr, got, ok, tc.want)
		}
	}
}

// TXTs joins each TXT record's character-strings without separator and skips other records.
func TestTXTs(t *testing.T) {
	rrs := []dns.RR{
		&dns.TXT{Txt: []string{"v=spf1 ", "ip4:192.0.2.1 -all"}},
		&dns.A{},
		&dns.TXT{Txt: []string{"v=DMARC1; p=none"}},
	}
	got := TXTs(rrs)
	want := []string{"v=spf1 ip4:192.0.2.1 -all", "v=DMARC1; p=none"}
	if !slices.Equal(got, want) {
		t.Errorf("TXTs = %q, want %q", got, want)
	}
}

// BenchmarkRememberedFailure: a lookup answered by a remembered failure, and its text, as
// each SPF lookup asks while the servers are down.
func BenchmarkRememberedFailure(b *testing.B) {
	z := testutil.StartDNS(b, "fail.test. TXT \"v=spf1 -all\"")
	z.Fail("fail.test", dns.RcodeServerFailure)
	c, err := NewClient(z.Addr, 300*time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	r := New(c, Options{FailureTTL: time.Hour})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, err := r.Lookup(ctx, "fail.test", dns.TypeTXT)
		if err == nil || err.Error() == "" {
			b.Fatal("no failure")
		}
	}
}
