package app

import (
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtpserver"
	"github.com/tern-mail/tern/internal/testutil"
)

func TestRestartChanges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*config.Config)
		want   []string // nil: applied in place
	}{
		{"nothing", func(*config.Config) {}, nil},
		{"message size", func(c *config.Config) { c.Limits.MessageSize = 1 << 20 }, nil},
		{"timeouts", func(c *config.Config) { c.Limits.IdleTimeout.Duration = time.Minute }, nil},
		{"auth flags", func(c *config.Config) { c.Auth.AllowCleartext = true; c.Auth.AddMissingHeaders = false }, nil},
		{"inbound and filters", func(c *config.Config) {
			c.Inbound.DMARC = "reject"
			c.Milters = []config.Milter{{Name: "m", Address: "inet:127.0.0.1:1"}}
			c.Rspamd.URL = "http://127.0.0.1:11333"
		}, nil},
		{"inbound rate", func(c *config.Config) { c.Rate.ClientMessages = 5; c.Rate.ExemptAccounts = []string{"a@b"} }, nil},
		{"screen", func(c *config.Config) { c.Screen.Greylist = true; c.Screen.DNSBLSites = []string{"zen.example.test"} }, nil},
		{"addresses", func(c *config.Config) { c.Addresses.SubaddressSeparator = "-"; c.Addresses.SRSMaxAge = 3 }, nil},
		{"outbound rate", func(c *config.Config) { c.Rate.Outbound = 5; c.Rate.OutboundDomains = []string{"x.test=1"} }, nil},
		{"hostname and domains", func(c *config.Config) { c.Hostname = "mx.b.test"; c.Domains = []string{"b.test"} }, nil},
		{"data", func(c *config.Config) { c.Data = "/elsewhere" }, []string{"data"}},
		{"connections", func(c *config.Config) { c.Limits.Connections = 7; c.Limits.ConnectionsPerIP = 2 }, nil},
		{"listen", func(c *config.Config) { c.Listen.SMTP = "127.0.0.1:25" }, nil}, // relisten
		{"queue and accounts", func(c *config.Config) {
			c.Queue.Workers = 99
			c.Accounts.URL = "postgres://x"
		}, []string{"queue.workers", "accounts.url"}},
		{"listeners", func(c *config.Config) { c.Listeners = []config.Listener{{Name: "x"}} }, nil},
		{"mechanisms and failures", func(c *config.Config) { c.Auth.Mechanisms = []string{"PLAIN"}; c.Auth.MaxFailures = 2 }, nil},
		{"gssapi", func(c *config.Config) { c.Auth.GSSAPIKeytab = "/etc/krb5.keytab" }, []string{"auth.gssapi_keytab"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := config.Default()
			cfg := config.Default()
			tc.change(&cfg)
			if got := restartChanges(old, cfg); !slices.Equal(got, tc.want) {
				t.Errorf("restartChanges = %q, want %q", got, tc.want)
			}
		})
	}
}

// reloadServer is a Server with only what a reload of the configuration touches.
func reloadServer(t *testing.T, cfg config.Config, load Loader) (*Server, *testutil.SyncBuffer) {
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	opts := serverOptions(cfg, cfg.Derive(), nil, nil, nil, nil, nil, log)
	auth := authState(cfg, nil, nil, log)
	opts.Auth = liveAuth(auth, cfg)
	opts.Authentication = &smtpserver.Authentication{}
	return &Server{cfg: cfg, log: log, load: load, srv: smtpserver.New(opts), auth: auth}, logs
}

func TestReloadAppliesLiveSettings(t *testing.T) {
	cfg := config.Default()
	next := cfg
	next.Limits.MessageSize = 2000
	next.Limits.Recipients = 3
	next.Auth.AllowCleartext = !cfg.Auth.AllowCleartext
	next.Queue.Workers = cfg.Queue.Workers + 1
	next.Inbound.DMARC = "reject"
	next.Rspamd.URL = "http://127.0.0.1:11333"
	s, logs := reloadServer(t, cfg, func() (config.Config, error) { return next, nil })
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	o := s.srv.Options()
	if o.MaxMessageSize != 2000 || o.MaxRcpts != 3 || o.Auth.AllowCleartext != next.Auth.AllowCleartext {
		t.Errorf("options after reload: size %d, rcpts %d, cleartext %v", o.MaxMessageSize, o.MaxRcpts, o.Auth.AllowCleartext)
	}
	if o.Authentication.Policy.(policy.Inbound).DMARCDefault != "reject" || len(o.Filters) != 1 {
		t.Errorf("after reload: inbound policy %+v, %d filters", o.Authentication.Policy, len(o.Filters))
	}
	if !strings.Contains(logs.String(), "queue.workers changed: takes effect after a restart") {
		t.Errorf("log lacks the restart notice:\n%s", logs)
	}
	if strings.Contains(logs.String(), "message_size changed") {
		t.Errorf("a setting applied in place is logged as needing a restart:\n%s", logs)
	}
}

func TestReloadRefusesBrokenConfig(t *testing.T) {
	cfg := config.Default()
	cfg.Limits.MessageSize = 1000
	broken := errors.New("tern.toml:3: limits.message_size: must be positive")
	s, logs := reloadServer(t, cfg, func() (config.Config, error) { return config.Config{}, broken })
	hook := false
	s.onReload("hook", func() error { hook = true; return nil })
	if err := s.Reload(); !errors.Is(err, broken) {
		t.Fatalf("Reload = %v, want %v", err, broken)
	}
	if got := s.srv.Options().MaxMessageSize; got != 1000 {
		t.Errorf("message size after a refused reload = %d, want 1000", got)
	}
	if hook {
		t.Error("the hooks ran after a refused reload")
	}
	if !strings.Contains(logs.String(), "reload refused") || !strings.Contains(logs.String(), "tern.toml:3") {
		t.Errorf("log lacks the refusal and its line:\n%s", logs)
	}
}

// A reload changes the inbound rate limits over the same counters: what was counted before
// still counts against the new limit.
func TestReloadRateKeepsCounts(t *testing.T) {
	cfg := config.Default()
	cfg.Rate.ClientConnections = 1
	cfg.Rate.ClientWindow.Duration = time.Hour
	next := cfg
	next.Rate.ClientConnections = 2
	s, _ := reloadServer(t, cfg, func() (config.Config, error) { return next, nil })
	withRateLimits(t, s, cfg)
	client := netip.MustParseAddr("192.0.2.1")
	connectFrom := func(a netip.Addr) bool { _, ok := s.srv.Options().Rate.Connect(a); return ok }
	// allowed is how many of n connections from a are allowed.
	allowed := func(a netip.Addr, n int) int {
		k := 0
		for range n {
			if connectFrom(a) {
				k++
			}
		}
		return k
	}
	if k := allowed(client, 2); k != 1 {
		t.Fatalf("before the reload: %d of 2 connections allowed, want 1", k)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	// Two counted (the refused one too, or not): at most one more fits under 2.
	if k := allowed(client, 2); k > 1 {
		t.Errorf("after the reload to 2: %d more of 2 allowed: the counts before it were forgotten", k)
	}
	if k := allowed(netip.MustParseAddr("198.51.100.1"), 3); k != 2 {
		t.Errorf("after the reload to 2: a new client got %d of 3, want 2", k)
	}
}

// withRateLimits gives s the rate limits of cfg, as Build does.
func withRateLimits(t *testing.T, s *Server, cfg config.Config) {
	t.Helper()
	rate, err := newRateLimits(cfg, func(string) bool { return false }, nil, s.log)
	if err != nil {
		t.Fatal(err)
	}
	s.rate = rate
	o := s.srv.Options()
	o.Rate = rate.policy
	s.srv.SetOptions(o)
}

// What needs a restart is compared with the configuration of the start: a change reverted
// before a restart is no longer logged.
func TestReloadRestartNoticeAgainstStart(t *testing.T) {
	cfg := config.Default()
	next := cfg
	next.Queue.Workers++
	s, logs := reloadServer(t, cfg, func() (config.Config, error) { return next, nil })
	notice := "queue.workers changed: takes effect after a restart"
	for i, want := range []int{1, 2} { // the same file twice: logged each time
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(logs.String(), notice); n != want {
			t.Fatalf("reload %d: %d notices, want %d:\n%s", i+1, n, want, logs)
		}
	}
	next = cfg // reverted
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), notice); n != 2 {
		t.Errorf("after the revert: %d notices, want still 2:\n%s", n, logs)
	}
}
