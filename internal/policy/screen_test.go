package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/dnsbl"
	"github.com/tern-mail/tern/internal/smtp"
)

// TestGreylist: a new triplet waits for the delay, then passes and stays allowed while it is
// seen; its neighbours in the same /24 share it, another sender does not; expired entries as
// configured.
func TestGreylist(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGreylist(GreylistOptions{Delay: time.Minute, RetryWindow: time.Hour, Expire: 24 * time.Hour,
		Now: func() time.Time { return now }})
	ip := netip.MustParseAddr("192.0.2.10")
	step := func(name string, ip netip.Addr, from, rcpt string, wantPass bool, wantWait time.Duration) {
		t.Helper()
		wait, pass := g.Check(ip, from, rcpt)
		if pass != wantPass || wait != wantWait {
			t.Errorf("%s: Check = %v, %v; want %v, %v", name, wait, pass, wantWait, wantPass)
		}
	}
	step("first", ip, "a@x.test", "b@y.test", false, time.Minute)
	now = now.Add(20 * time.Second)
	step("too early", ip, "A@X.test", "b@y.test", false, 40*time.Second)
	step("other sender", ip, "c@x.test", "b@y.test", false, time.Minute)
	now = now.Add(40 * time.Second)
	step("retry from the same /24", netip.MustParseAddr("192.0.2.99"), "a@x.test", "b@y.test", true, 0)
	now = now.Add(23 * time.Hour)
	step("seen within expire", ip, "a@x.test", "b@y.test", true, 0)
	now = now.Add(24 * time.Hour)
	step("expired", ip, "a@x.test", "b@y.test", false, time.Minute)
	now = now.Add(2 * time.Hour)
	step("retry window over", ip, "a@x.test", "b@y.test", false, time.Minute)
	step("ipv6 /64", netip.MustParseAddr("2001:db8::1"), "", "b@y.test", false, time.Minute)
	now = now.Add(time.Minute)
	step("ipv6 /64 retry", netip.MustParseAddr("2001:db8::2"), "", "b@y.test", true, 0)
}

// TestGreylistBound: the entries never pass MaxEntries; passed triplets survive a flood of new ones.
func TestGreylistBound(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGreylist(GreylistOptions{Delay: time.Minute, MaxEntries: 10, Now: func() time.Time { return now }})
	ip := netip.MustParseAddr("192.0.2.10")
	g.Check(ip, "ok@x.test", "b@y.test")
	now = now.Add(time.Minute)
	if _, pass := g.Check(ip, "ok@x.test", "b@y.test"); !pass {
		t.Fatal("retry not passed")
	}
	for i := range 100 {
		g.Check(ip, string(rune('a'+i%26))+"@flood.test"+string(rune('0'+i/26)), "b@y.test")
	}
	if n := g.Len(); n > 10 {
		t.Errorf("%d entries, bound 10", n)
	}
	if _, pass := g.Check(ip, "ok@x.test", "b@y.test"); !pass {
		t.Error("the passed triplet was evicted by pending ones")
	}
}

// TestScreenCheckRcpt: what each verdict answers, and who is never judged.
func TestScreenCheckRcpt(t *testing.T) {
	t.Parallel()
	site := func(s string) dnsbl.Site {
		v, err := dnsbl.ParseSite(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	zen, wl := site("zen.example.test*2"), site("wl.example.test*-5")
	lists := &dnsbl.Lists{Sites: []dnsbl.Site{zen, wl}}
	ip := netip.MustParseAddr("192.0.2.1")
	listed := ClientReport{IP: ip, Lists: dnsbl.Result{Score: 2, Hits: []dnsbl.Hit{{Site: zen}}}}
	both := ClientReport{IP: ip, Lists: dnsbl.Result{Score: -3, Hits: []dnsbl.Hit{{Site: zen}, {Site: wl}}}}
	named := ClientReport{IP: ip, Looked: true, Name: dnsbl.Name{Name: "mail.example.test"}}
	unknown := ClientReport{IP: ip, Looked: true}
	temp := ClientReport{IP: ip, Looked: true, Name: dnsbl.Name{Temporary: true}}
	anon, authed := Client{IP: ip}, Client{IP: ip, Authenticated: true, User: "alice"}
	from, rcpt := smtp.Address{Local: "a", Domain: "x.test"}, smtp.Address{Local: "b", Domain: "y.test"}
	for _, tc := range []struct {
		name   string
		screen *Screen
		c      Client
		rep    ClientReport
		want   string
	}{
		{"listed", &Screen{Lists: lists, Threshold: 2}, anon, listed, "554 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.example.test"},
		{"below threshold", &Screen{Lists: lists, Threshold: 3}, anon, listed, "250 2.1.5 Ok"},
		{"allow list cancels", &Screen{Lists: lists, Threshold: 2, AllowThreshold: -1}, anon, both, "250 2.1.5 Ok"},
		{"authenticated", &Screen{Lists: lists, Threshold: 1}, authed, listed, "250 2.1.5 Ok"},
		{"unknown name", &Screen{RejectUnknownClient: true}, anon, unknown, "550 5.7.25 Client host rejected: cannot find your hostname, [192.0.2.1]"},
		{"name lookup failed", &Screen{RejectUnknownClient: true}, anon, temp, "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.1]"},
		{"named", &Screen{RejectUnknownClient: true}, anon, named, "250 2.1.5 Ok"},
		{"unknown, not asked", &Screen{}, anon, unknown, "250 2.1.5 Ok"},
		{"greylisted", &Screen{Greylist: NewGreylist(GreylistOptions{})}, anon, named, "450 4.7.1 <b@y.test>: Recipient address rejected: Greylisted, try again in 300 seconds"},
		{"greylist, allow-listed", &Screen{Lists: lists, Threshold: 2, AllowThreshold: -1, Greylist: NewGreylist(GreylistOptions{})}, anon, both, "250 2.1.5 Ok"},
		{"greylist, authenticated", &Screen{Greylist: NewGreylist(GreylistOptions{})}, authed, named, "250 2.1.5 Ok"},
		{"exempt", &Screen{Lists: lists, Threshold: 2, RejectUnknownClient: true, Greylist: NewGreylist(GreylistOptions{})}, anon, ClientReport{IP: ip, Looked: true, Exempt: true}, "250 2.1.5 Ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var told []string
			tc.screen.Refused = func(check string) { told = append(told, check) }
			r := tc.screen.CheckRcpt(tc.c, tc.rep, from, rcpt)
			if got := string(r.Append(nil)); got != tc.want+"\r\n" {
				t.Errorf("CheckRcpt = %q, want %q", got, tc.want)
			}
			// A refusal is told by its check's name, for metrics.
			var want []string
			if check, ok := map[string]string{"listed": ScreenDNSBL, "unknown name": ScreenRDNS,
				"name lookup failed": ScreenRDNS, "greylisted": ScreenGreylist}[tc.name]; ok {
				want = []string{check}
			}
			if !slices.Equal(told, want) {
				t.Errorf("Refused told %q, want %q", told, want)
			}
		})
	}
}

// TestGreylistSaveLoad: a restart keeps the passed and pending triplets, not the expired ones;
// a damaged file keeps what came before the damage.
func TestGreylistSaveLoad(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	opts := GreylistOptions{Delay: time.Minute, RetryWindow: time.Hour, Expire: 24 * time.Hour, Now: clock}
	g := NewGreylist(opts)
	ip := netip.MustParseAddr("192.0.2.10")
	g.Check(ip, "old@x.test", "b@y.test") // will expire
	now = now.Add(2 * time.Hour)
	g.Check(ip, "passed@x.test", "b@y.test")
	now = now.Add(time.Minute)
	g.Check(ip, "passed@x.test", "b@y.test")
	g.Check(ip, "pending@x.test", "b@y.test")
	var buf strings.Builder
	if err := g.Save(&buf); err != nil {
		t.Fatal(err)
	}

	h := NewGreylist(opts)
	if n, err := h.Load(strings.NewReader(buf.String())); n != 2 || err != nil {
		t.Fatalf("Load = %d, %v; want the passed and the pending triplet\n%s", n, err, buf.String())
	}
	if _, pass := h.Check(ip, "passed@x.test", "b@y.test"); !pass {
		t.Error("the passed triplet is greylisted again after the restart")
	}
	now = now.Add(time.Minute)
	if _, pass := h.Check(ip, "pending@x.test", "b@y.test"); !pass {
		t.Error("the pending triplet started over after the restart")
	}
	k := NewGreylist(opts)
	if n, err := k.Load(strings.NewReader(buf.String() + "{\"net\":")); n != 2 || err == nil {
		t.Errorf("damaged file: Load = %d, %v; want 2 and an error", n, err)
	}
}
