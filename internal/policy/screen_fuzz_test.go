package policy

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/smtp"
)

// FuzzGreylistLoad: any saved file loads without a panic, within the bound, and what loaded
// saves again.
func FuzzGreylistLoad(f *testing.F) {
	f.Add(`{"net":"192.0.2.0/24","from":"a@x.test","rcpt":"b@y.test","first":"2026-01-01T00:00:00Z","passed":true,"last":"2026-01-01T00:05:00Z"}` + "\n")
	f.Add(`{"net":"2001:db8::/64","from":"","rcpt":"b@y.test","first":"2026-01-01T00:00:00Z"}`)
	f.Add(`{"net":"bad"}`)
	f.Fuzz(func(t *testing.T, saved string) {
		now := time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)
		g := NewGreylist(GreylistOptions{MaxEntries: 5, Now: func() time.Time { return now }})
		n, _ := g.Load(strings.NewReader(saved))
		if n > 5 || g.Len() > 5 {
			t.Fatalf("loaded %d (%d kept), bound 5", n, g.Len())
		}
		var b strings.Builder
		if err := g.Save(&b); err != nil {
			t.Fatal(err)
		}
		g.Check(netip.MustParseAddr("192.0.2.1"), "a@x.test", "b@y.test")
	})
}

// BenchmarkScreenCheckRcpt: the screen's cost per recipient of a client the lists scored, with
// greylisting on and the triplet passed (the common case of a known correspondent).
func BenchmarkScreenCheckRcpt(b *testing.B) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &Screen{Threshold: 1, AllowThreshold: -1, RejectUnknownClient: true,
		Greylist: NewGreylist(GreylistOptions{Now: func() time.Time { return now }})}
	c := Client{IP: netip.MustParseAddr("192.0.2.1")}
	rep := ClientReport{IP: c.IP, Looked: true}
	rep.Name.Name = "mail.example.test"
	from, rcpt := smtp.Address{Local: "alice", Domain: "example.org"}, smtp.Address{Local: "bob", Domain: "example.test"}
	s.CheckRcpt(c, rep, from, rcpt)
	now = now.Add(time.Hour) // past the delay: the triplet passes from now on
	b.ReportAllocs()
	for b.Loop() {
		if r := s.CheckRcpt(c, rep, from, rcpt); !r.Positive() {
			b.Fatal(r)
		}
	}
}
