package policy

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/testutil"
)

// connStep opens n connections from ip (or from n addresses counting up from ip, with spread)
// and expects the outcome of each: "220" admitted, or the start of the 421 reply.
type connStep struct {
	ip     string
	kind   ConnKind
	n      int
	spread bool
	want   string
	// release closes this many of the connections this step opened, afterwards.
	release int
}

func TestConnLimiter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lim   ConnLimits
		steps []connStep
	}{
		{
			name: "per client",
			lim:  ConnLimits{Max: 3, PerIP: 2},
			steps: []connStep{
				{ip: "192.0.2.1", n: 1, want: "220"},
				{ip: "::ffff:192.0.2.1", n: 1, want: "220"}, // the same client, IPv4-mapped
				{ip: "192.0.2.1", n: 1, want: "421 4.7.0 Too many connections from 192.0.2.1\r\n"},
				{ip: "2001:db8::1", n: 1, want: "220"},
				{ip: "198.51.100.1", n: 1, want: "421 4.7.0 Too many connections, try again later"},
			},
		},
		{
			name: "IPv6 clients count per /64",
			lim:  ConnLimits{PerIP: 2},
			steps: []connStep{
				{ip: "2001:db8::1", n: 2, spread: true, want: "220"},
				{ip: "2001:db8::ffff", n: 1, want: "421 4.7.0 Too many connections from 2001:db8::/64"},
				{ip: "2001:db8:0:1::1", n: 1, want: "220"},
			},
		},
		{
			name: "ten addresses holding a hundred each do not starve the rest",
			lim:  ConnLimits{Max: 1000, PerIP: 100, Reserved: 200, BusyPerIP: 10},
			steps: []connStep{
				// Eight take their hundred; then the server is busy, and the next two get ten
				// each.
				{ip: "192.0.2.1", n: 100, want: "220"},
				{ip: "192.0.2.2", n: 100, want: "220"},
				{ip: "192.0.2.3", n: 100, want: "220"},
				{ip: "192.0.2.4", n: 100, want: "220"},
				{ip: "192.0.2.5", n: 100, want: "220"},
				{ip: "192.0.2.6", n: 100, want: "220"},
				{ip: "192.0.2.7", n: 100, want: "220"},
				{ip: "192.0.2.8", n: 100, want: "220"},
				{ip: "192.0.2.9", n: 10, want: "220"},
				{ip: "192.0.2.9", n: 90, want: "421 4.7.0 Server busy: too many connections from 192.0.2.9, try again later"},
				{ip: "192.0.2.10", n: 10, want: "220"},
				{ip: "192.0.2.10", n: 90, want: "421 4.7.0 Server busy: too many connections from 192.0.2.10"},
				{ip: "192.0.2.9", kind: ConnSubmission, n: 1, want: "421 4.7.0 Server busy: too many connections from 192.0.2.9"},
				// A new client is served, on either kind of port.
				{ip: "198.51.100.7", n: 1, want: "220"},
				{ip: "198.51.100.8", kind: ConnSubmission, n: 1, want: "220"},
			},
		},
		{
			name: "the MX listener leaves the second half of the reserve to submission",
			lim:  ConnLimits{Max: 100, Reserved: 20, BusyPerIP: 2},
			steps: []connStep{
				{ip: "10.0.0.1", n: 90, spread: true, want: "220"},
				{ip: "10.0.1.1", n: 5, spread: true, want: "421 4.7.0 Server busy, try again later"},
				{ip: "10.0.2.1", kind: ConnSubmission, n: 10, spread: true, want: "220"},
				{ip: "10.0.3.1", kind: ConnSubmission, n: 1, want: "421 4.7.0 Too many connections, try again later", release: 0},
			},
		},
		{
			name: "released slots come back, once each",
			lim:  ConnLimits{Max: 2},
			steps: []connStep{
				{ip: "192.0.2.1", n: 2, want: "220", release: 1},
				{ip: "192.0.2.2", n: 1, want: "220"},
				{ip: "192.0.2.3", n: 1, want: "421 4.7.0 Too many connections"},
			},
		},
		{
			name: "no limits",
			lim:  ConnLimits{},
			steps: []connStep{
				{ip: "10.0.0.1", n: 5000, spread: true, want: "220"},
				{ip: "10.0.0.1", n: 5000, want: "220"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewConnLimiter(tc.lim)
			for i, s := range tc.steps {
				ip := netip.MustParseAddr(s.ip)
				var releases []func()
				for j := range s.n {
					rel, r, ok := l.Acquire(ip, s.kind)
					got := "220"
					if !ok {
						got = r.String()
					} else {
						releases = append(releases, rel)
					}
					if !strings.HasPrefix(got, s.want) {
						t.Fatalf("step %d (%s), connection %d: got %q, want %q", i+1, s.ip, j+1, got, s.want)
					}
					if s.spread {
						ip = ip.Next()
					}
				}
				for _, rel := range releases[:s.release] {
					rel()
					rel() // a second release must not free a second slot
				}
			}
		})
	}
}

// The limiter logs when the server becomes busy and when it no longer is, with how many
// connections it refused meanwhile.
func TestConnLimiterBusyLog(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	l := NewConnLimiter(ConnLimits{Max: 10, Reserved: 4, BusyPerIP: 1, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	var rels []func()
	ip := netip.MustParseAddr("192.0.2.1")
	for range 6 {
		rel, _, ok := l.Acquire(ip, ConnMX)
		if !ok {
			t.Fatal("refused before the reserve")
		}
		rels = append(rels, rel)
	}
	if _, _, ok := l.Acquire(ip, ConnMX); ok {
		t.Fatal("a client holding six got a reserved slot")
	}
	for _, rel := range rels {
		rel()
	}
	got := logs.String()
	for _, want := range []string{
		`level=WARN msg="connections: busy, keeping the reserve for clients holding few" connections=6 reserved=4 busy_per_ip=1`,
		`level=INFO msg="connections: no longer busy" connections=1 refused=1`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in the log:\n%s", want, got)
		}
	}
}

func ExampleConnLimiter() {
	l := NewConnLimiter(ConnLimits{Max: 10, PerIP: 10, Reserved: 4, BusyPerIP: 2})
	hog := netip.MustParseAddr("192.0.2.1")
	for range 6 {
		l.Acquire(hog, ConnMX)
	}
	_, r, _ := l.Acquire(hog, ConnMX)
	fmt.Println("hog:", strings.TrimSpace(r.String()))
	_, _, ok := l.Acquire(netip.MustParseAddr("198.51.100.7"), ConnMX)
	fmt.Println("newcomer served:", ok)
	// Output:
	// hog: 421 4.7.0 Server busy: too many connections from 192.0.2.1, try again later
	// newcomer served: true
}
