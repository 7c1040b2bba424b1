package app

import (
	"errors"
	"log/slog"
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
	const sockets = "the listeners' names, addresses, roles or PROXY protocol (listen, [[listener]])"
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
		{"data", func(c *config.Config) { c.Data = "/elsewhere" }, []string{"data"}},
		{"connections", func(c *config.Config) { c.Limits.Connections = 7 }, []string{"limits.connections"}},
		{"listen", func(c *config.Config) { c.Listen.SMTP = "127.0.0.1:25" }, []string{sockets}},
		{"queue and accounts", func(c *config.Config) {
			c.Queue.Workers = 99
			c.Accounts.URL = "postgres://x"
		}, []string{"queue.workers", "accounts.url"}},
		{"listeners", func(c *config.Config) { c.Listeners = []config.Listener{{Name: "x"}} }, []string{sockets}},
		{"mechanisms", func(c *config.Config) { c.Auth.Mechanisms = []string{"PLAIN"} }, []string{"auth.mechanisms"}},
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
	opts.Auth = &smtpserver.AuthOptions{Mechanisms: []string{"PLAIN"}}
	opts.Authentication = &smtpserver.Authentication{}
	return &Server{cfg: cfg, applied: cfg, log: log, load: load, srv: smtpserver.New(opts)}, logs
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
