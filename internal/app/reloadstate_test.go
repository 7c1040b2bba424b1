package app

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
)

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
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) // only this goroutine checks
	s.screen = newScreening(t.TempDir(), nil, s.log)
	s.screen.now = func() time.Time { return now }
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
	now = now.Add(30 * time.Minute)
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

// A reload gives new sessions and deliveries the settings of [addresses] over the same store:
// the subaddress separator, and SRS's domain; a secret added at the top of srs.secret signs
// from then on while the one below it still verifies the addresses it made.
func TestReloadAddresses(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	cfg := config.Default()
	cfg.Domains = []string{"a.test"}
	next := cfg
	s, _ := reloadServer(t, cfg, reloadTo(&next))
	store := mapLookup{accounts: map[string]bool{"alice@a.test": true}}
	_, s.aliases = newServerRelay(cfg, data, store)
	o := s.srv.Options()
	withAliases(&o, s.aliases)
	s.srv.SetOptions(o)
	exists := func(addr string) bool {
		t.Helper()
		ok, err := s.aliases.Exists(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	forward := func() string {
		t.Helper()
		env, err := s.aliases.srs.forward(&envelope.Envelope{From: "x@remote.example"})
		if err != nil {
			t.Fatal(err)
		}
		return env.From
	}
	if !exists("alice+tag@a.test") || exists("alice-tag@a.test") {
		t.Fatal("before the reload: the separator is not +")
	}
	old := forward() // makes the secret
	secret, err := os.ReadFile(srsSecretPath(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(srsSecretPath(data), append([]byte("a-new-secret-of-enough-length\n"), secret...), 0o600); err != nil {
		t.Fatal(err)
	}
	next.Addresses.SubaddressSeparator = "-"
	next.Addresses.SRSDomain = "srs.a.test"
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if exists("alice+tag@a.test") || !exists("alice-tag@a.test") {
		t.Error("after the reload to -: alice+tag or not alice-tag")
	}
	if got := s.srv.Options().Auth.Senders.(*policy.Senders).Aliases; got != s.aliases.now() {
		t.Error("new sessions' senders check the expansion before the reload")
	}
	renewed := forward()
	if !strings.HasSuffix(renewed, "@srs.a.test") {
		t.Errorf("forward after the reload = %s, want an address at srs.a.test", renewed)
	}
	for _, addr := range []string{old, renewed} {
		if back, _, err := s.aliases.srs.Reverse(addr); err != nil || back != "x@remote.example" {
			t.Errorf("reverse %s after the reload = %q, %v", addr, back, err)
		}
	}
	// The new secret signs: the old secret alone does not verify what it made.
	oldOnly := t.TempDir()
	if err := os.WriteFile(srsSecretPath(oldOnly), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := newSRSKeeper(next, oldOnly, s.aliases.isLocal).Reverse(renewed); err == nil {
		t.Errorf("%s verifies with the old secret alone: the new one does not sign", renewed)
	}
	// A secret file that went bad keeps the SRS in force.
	if err := os.WriteFile(srsSecretPath(data), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.aliases.srs.Reverse(renewed); err != nil {
		t.Errorf("after a reload with an empty secret file: %v, want the secret in force", err)
	}
}

// A reload changes the outbound limits of the deliveries from then on over the same counters:
// a message delivered before the reload counts against the lower limit.
func TestReloadOutboundRate(t *testing.T) {
	cfg := config.Default()
	cfg.Rate.Outbound = 3
	cfg.Rate.OutboundWindow.Duration = time.Hour
	next := cfg
	s, _ := reloadServer(t, cfg, reloadTo(&next))
	withRateLimits(t, s, cfg)
	waits := func(rcpt string) bool {
		return s.rate.throttle(&envelope.Envelope{ID: "q1", Rcpts: []envelope.Recipient{{Addr: rcpt}}}) > 0
	}
	if waits("a@gmail.test") {
		t.Fatal("the first message to gmail.test waits under 3 an hour")
	}
	next.Rate.Outbound = 1
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if !waits("b@gmail.test") {
		t.Error("after a reload to 1 an hour, a second message to gmail.test goes: the limit or the count before it was lost")
	}
	if waits("a@other.test") {
		t.Error("after a reload to 1 an hour, the first message to other.test waits")
	}
	next.Rate.OutboundDomains = []string{"gmail.test=0"}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if waits("c@gmail.test") {
		t.Error("after a reload lifting gmail.test's limit, its mail still waits")
	}
}

// A reload changes the connection limits of the connections accepted from then on; those open
// stay counted against them.
func TestReloadConnectionLimits(t *testing.T) {
	cfg := config.Default()
	cfg.Limits.ConnectionsPerIP = 3
	next := cfg
	s, _ := reloadServer(t, cfg, reloadTo(&next))
	ip := netip.MustParseAddr("192.0.2.1")
	acquire := func() (func(), bool) {
		release, _, ok := s.srv.Options().Limiter.Acquire(ip, policy.ConnMX)
		return release, ok
	}
	var open []func()
	for range 2 {
		release, ok := acquire()
		if !ok {
			t.Fatal("refused under the limit of 3")
		}
		open = append(open, release)
	}
	next.Limits.ConnectionsPerIP = 2
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := acquire(); ok {
		t.Fatal("a third connection is taken after a reload to 2 per client: the limit, or the two open, were lost")
	}
	open[0]()
	release, ok := acquire()
	if !ok {
		t.Fatal("refused after one of the two ended")
	}
	release()
	open[1]()
}

// A reload changes the mechanisms new sessions offer, and the failed-AUTH limits over the same
// limiter: the failures before it count against the new limit, and AUTH turned off and on
// again keeps the blocks in force.
func TestReloadAuth(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.Mechanisms = []string{"SCRAM-SHA-256", "PLAIN"}
	cfg.Auth.MaxFailures = 5
	cfg.Auth.FailureWindow.Duration = time.Hour
	next := cfg
	s, _ := reloadServer(t, cfg, reloadTo(&next))
	ip := netip.MustParseAddr("192.0.2.1")
	fail := func() bool { // whether the failure blocks the client
		_, _, blocked := s.srv.Options().Auth.Limiter.Failed(ip, "bob@example.com")
		return blocked
	}
	for i := range 2 {
		if fail() {
			t.Fatalf("failure %d of 5 blocks", i+1)
		}
	}
	next.Auth.Mechanisms = []string{"PLAIN"}
	next.Auth.MaxFailures = 3
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := s.srv.Options().Auth.Mechanisms; !slices.Equal(got, []string{"PLAIN"}) {
		t.Errorf("mechanisms after the reload: %q, want [PLAIN]", got)
	}
	if !fail() {
		t.Fatal("the third failure after a reload to 3 does not block: the limit or the failures before it were lost")
	}
	next.Auth.Mechanisms = nil
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if a := s.srv.Options().Auth; a != nil {
		t.Fatalf("no mechanisms: AUTH still offered with %q", a.Mechanisms)
	}
	next.Auth.Mechanisms = []string{"PLAIN"}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.srv.Options().Auth.Limiter.Allow(ip); ok {
		t.Error("AUTH off and on again: the client's block was lifted")
	}
}

// A reload gives new sessions the new hostname, and everything that asks which domains are
// local (RCPT, delivery's routing, logins without a domain) the new domains; remote delivery
// sends the new name and takes it, and the addresses listened on, for itself.
func TestReloadHostnameAndDomains(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.Hostname = "mx.a.test"
	cfg.Domains = []string{"a.test"}
	next := cfg
	s, _ := reloadServer(t, cfg, reloadTo(&next))
	store := mapLookup{accounts: map[string]bool{"alice@a.test": true, "bob@b.test": true}}
	s.relay, s.aliases = newServerRelay(cfg, t.TempDir(), store)
	o := s.srv.Options()
	o.Rcpts = s.relay
	s.srv.SetOptions(o)
	rd, err := newRemote(cfg, cfg.Derive(), nil, nil, nil, s.log)
	if err != nil {
		t.Fatal(err)
	}
	s.remote = rd
	rcpt := func(addr string) bool {
		t.Helper()
		a, err := smtp.ParseAddress(addr)
		if err != nil {
			t.Fatal(err)
		}
		return s.srv.Options().Rcpts.CheckRcpt(ctx, policy.Client{IP: netip.MustParseAddr("192.0.2.1")}, a).Positive()
	}
	if rcpt("bob@b.test") {
		t.Fatal("before the reload: bob@b.test accepted from an unauthenticated client")
	}
	next.Hostname = "mail.b.test"
	next.Domains = []string{"b.test", "a.test"}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if o := s.srv.Options(); o.Hostname != "mail.b.test" || o.PostmasterDomain != "b.test" {
		t.Errorf("after the reload: hostname %s, postmaster domain %s", o.Hostname, o.PostmasterDomain)
	}
	if !rcpt("bob@b.test") || !rcpt("alice@a.test") {
		t.Error("after adding b.test: bob@b.test or alice@a.test refused")
	}
	if !s.relay.IsLocal("B.test") {
		t.Error("delivery does not take b.test for local")
	}
	if acct, err := s.auth.Credentials.(*credentials).account("carol"); err != nil || acct != "carol@b.test" {
		t.Errorf("a login without a domain is %s, %v; want carol@b.test", acct, err)
	}
	if name, _ := rd.Self(); name != "mail.b.test" {
		t.Errorf("remote delivery says it is %s, want mail.b.test", name)
	}
	next.Domains = []string{"b.test"}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if rcpt("alice@a.test") {
		t.Error("after removing a.test: alice@a.test accepted from an unauthenticated client")
	}
}
