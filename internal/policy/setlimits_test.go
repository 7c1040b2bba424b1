package policy

import (
	"net/netip"
	"testing"
	"time"
)

// A reload's new limits apply over what the limiters counted: the connections open, the AUTH
// failures and blocks, the greylist's triplets; the local domains are replaced whole.
func TestSetLimitsConn(t *testing.T) {
	l := NewConnLimiter(ConnLimits{PerIP: 3})
	ip := netip.MustParseAddr("192.0.2.1")
	var rels []func()
	for range 2 {
		rel, _, ok := l.Acquire(ip, ConnMX)
		if !ok {
			t.Fatal("refused under the limit")
		}
		rels = append(rels, rel)
	}
	l.SetLimits(ConnLimits{PerIP: 2})
	if _, r, ok := l.Acquire(ip, ConnMX); ok || r.Code != 421 {
		t.Fatalf("third connection under a new limit of 2: ok %v %v", ok, r)
	}
	rels[0]()
	rel, _, ok := l.Acquire(ip, ConnMX)
	if !ok {
		t.Fatal("refused once one of the two ended")
	}
	rel()
	rels[1]()
}

func TestSetLimitsAuth(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := NewAuthLimiter(AuthLimits{MaxFailures: 5, Window: time.Hour, Block: time.Hour, Now: clock.now})
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")
	l.Failed(a, "bob@example.test")
	l.Failed(b, "carol@example.test")
	l.SetLimits(AuthLimits{MaxFailures: 2, Window: time.Hour, Block: time.Minute})
	if _, _, blocked := l.Failed(a, "bob@example.test"); !blocked {
		t.Fatal("the second failure under a new limit of 2 does not block: the first was forgotten")
	}
	clock.advance(2 * time.Minute) // past the new block time
	if _, ok := l.Allow(a); !ok {
		t.Error("still blocked after the new block time")
	}
	l.SetLimits(AuthLimits{MaxFailures: 9, Window: time.Hour, Block: time.Hour})
	if _, _, blocked := l.Failed(b, "carol@example.test"); blocked {
		t.Error("the second failure under a limit raised to 9 blocks")
	}
}

func TestSetLimitsGreylist(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	g := NewGreylist(GreylistOptions{Delay: time.Hour, Now: func() time.Time { return now }})
	ip := netip.MustParseAddr("192.0.2.1")
	if _, pass := g.Check(ip, "a@x.test", "b@y.test"); pass {
		t.Fatal("first attempt passed")
	}
	now = now.Add(10 * time.Minute)
	g.SetOptions(GreylistOptions{Delay: 5 * time.Minute})
	if _, pass := g.Check(ip, "a@x.test", "b@y.test"); !pass {
		t.Error("a retry after 10m under a new delay of 5m is refused: the delay or the triplet was lost")
	}
}

func TestSetLocalDomains(t *testing.T) {
	r := NewRelay([]string{"a.test"}, nil)
	r.SetLocalDomains([]string{"B.test"})
	if r.IsLocal("a.test") || !r.IsLocal("b.TEST") {
		t.Errorf("after SetLocalDomains(B.test): a.test local %v, b.test local %v", r.IsLocal("a.test"), r.IsLocal("b.test"))
	}
}
