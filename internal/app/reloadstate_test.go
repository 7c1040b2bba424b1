package app

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/policy"
)

// testClock is a clock that moves only when told.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// reloadTo is a Loader that returns what *next holds when it is called.
func reloadTo(next *config.Config) Loader {
	return func() (config.Config, error) { return *next, nil }
}

// A reload rebuilds the screening of new sessions from [screen] over the same greylist: a
// triplet seen before the reload is judged by the new delay, and the DNS lists turn on.
func TestReloadScreen(t *testing.T) {
	cfg := config.Default()
	cfg.Screen.Greylist = true
	cfg.Screen.GreylistDelay.Duration = time.Hour
	next := cfg
	s, _ := reloadServer(t, cfg, reloadTo(&next))
	clock := &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s.screen = newScreening(t.TempDir(), nil, s.log)
	s.screen.now = clock.now
	o := s.srv.Options()
	var err error
	if o.Screen, err = s.screen.options(cfg); err != nil {
		t.Fatal(err)
	}
	s.srv.SetOptions(o)
	ip := netip.MustParseAddr("192.0.2.1")
	check := func() (time.Duration, bool) {
		t.Helper()
		p, ok := s.srv.Options().Screen.Screener.(*policy.Screen)
		if !ok || p.Greylist == nil {
			t.Fatalf("no greylist in force: %+v", s.srv.Options().Screen)
		}
		return p.Greylist.Check(ip, "a@example.org", "b@example.com")
	}
	if wait, pass := check(); pass || wait != time.Hour {
		t.Fatalf("first attempt: wait %v, pass %v; want 1h, refused", wait, pass)
	}
	clock.add(30 * time.Minute)
	next.Screen.GreylistDelay.Duration = 20 * time.Minute
	next.Screen.PregreetWait.Duration = 2 * time.Second
	next.Screen.DNSBLSites = []string{"zen.example.test"}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, pass := check(); !pass {
		t.Error("a retry 30m after the first attempt, after a reload to a 20m delay, is refused: the delay or the triplet was lost")
	}
	got := s.srv.Options().Screen
	if got.PregreetWait != 2*time.Second || got.Screener.(*policy.Screen).Lists == nil {
		t.Errorf("after the reload: pregreet %v, lists %v; want 2s and a list", got.PregreetWait, got.Screener.(*policy.Screen).Lists)
	}
	// Off, then on again: the same triplets.
	next.Screen = config.Default().Screen
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if sc := s.srv.Options().Screen.Screener; sc != nil {
		t.Errorf("screening off: a screener %+v is still in force", sc)
	}
	next.Screen.Greylist = true
	next.Screen.GreylistDelay.Duration = time.Hour
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, pass := check(); !pass {
		t.Error("greylisting off and on again forgot a triplet that had passed")
	}
}
