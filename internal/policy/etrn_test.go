package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// req is the request the server parses from "ETRN node".
func req(node string) ETRNRequest {
	return ETRNRequest{Node: node, Domain: strings.TrimLeft(node, "@#"), Subdomains: strings.HasPrefix(node, "@")}
}

func TestETRN(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	relay := NewRelay([]string{"example.test"}, fakeAccounts{})
	e := NewETRN(relay.IsLocal, ETRNLimits{Burst: 3, Interval: 20 * time.Second, Now: clock.now})
	anon := Client{IP: netip.MustParseAddr("192.0.2.1")}
	bob := Client{IP: netip.MustParseAddr("192.0.2.2"), Authenticated: true, User: "bob@example.test"}
	bob6 := Client{IP: netip.MustParseAddr("2001:db8::1"), Authenticated: true, User: "bob@example.test"}
	bob6b := Client{IP: netip.MustParseAddr("2001:db8::2"), Authenticated: true, User: "bob@example.test"}
	for i, tc := range []struct {
		after time.Duration
		c     Client
		node  string
		want  string
	}{
		{0, anon, "remote.example", "459 4.7.1 Node remote.example not allowed: ETRN requires authentication"},
		{0, anon, "@remote.example", "459 4.7.1 Node @remote.example not allowed: ETRN requires authentication"},
		{0, anon, "Example.TEST", "459 4.7.1 Node Example.TEST not allowed: mail for it is delivered here"},
		{0, bob, "#example.test", "459 4.7.1 Node #example.test not allowed: mail for it is delivered here"},
		// Three at once, then one every 20 seconds.
		{0, bob, "remote.example", "250 2.0.0"},
		{0, bob, "@remote.example", "250 2.0.0"},
		{0, bob, "#remote.example", "250 2.0.0"},
		{0, bob, "remote.example", "458 4.7.0 Unable to queue messages for node remote.example: too many ETRN requests, try again later"},
		{19 * time.Second, bob, "remote.example", "458 4.7.0"},
		{time.Second, bob, "remote.example", "250 2.0.0"},
		{0, bob, "remote.example", "458 4.7.0"},
		{time.Hour, bob, "a.example", "250 2.0.0"},
		{0, bob, "a.example", "250 2.0.0"},
		{0, bob, "a.example", "250 2.0.0"},
		{0, bob, "a.example", "458 4.7.0"},
		// Refused requests cost nothing; an IPv6 /64 is one client.
		{0, bob6, "a.example", "250 2.0.0"},
		{0, bob6b, "a.example", "250 2.0.0"},
		{0, bob6, "a.example", "250 2.0.0"},
		{0, bob6b, "a.example", "458 4.7.0"},
	} {
		clock.advance(tc.after)
		if got := e.CheckETRN(tc.c, req(tc.node)).String(); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%d: ETRN %s from %s: got %q, want %q", i+1, tc.node, tc.c.IP, got, tc.want)
		}
	}
}

// The budgets of many clients do not pile up.
func TestETRNSweep(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	e := NewETRN(nil, ETRNLimits{Now: clock.now})
	for i := range 5000 {
		e.CheckETRN(Client{IP: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Authenticated: true}, req("a.example"))
	}
	clock.advance(time.Minute)
	e.CheckETRN(Client{IP: netip.MustParseAddr("192.0.2.1"), Authenticated: true}, req("a.example"))
	if n := len(e.buckets); n > 1000 {
		t.Errorf("%d budgets kept", n)
	}
}

func ExampleETRN_CheckETRN() {
	relay := NewRelay([]string{"example.test"}, fakeAccounts{})
	etrn := NewETRN(relay.IsLocal, ETRNLimits{})
	ip := netip.MustParseAddr("192.0.2.1")
	fmt.Println(strings.TrimSpace(etrn.CheckETRN(Client{IP: ip}, ETRNRequest{Node: "remote.example", Domain: "remote.example"}).String()))
	fmt.Println(strings.TrimSpace(etrn.CheckETRN(Client{IP: ip, Authenticated: true, User: "bob@example.test"}, ETRNRequest{Node: "remote.example", Domain: "remote.example"}).String()))
	// Output:
	// 459 4.7.1 Node remote.example not allowed: ETRN requires authentication
	// 250 2.0.0 Ok
}
