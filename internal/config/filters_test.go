package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// [[milter]] tables load in order with their defaults filled in; [rspamd] keeps its defaults.
func TestLoadFilters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tern.toml")
	if err := os.WriteFile(p, []byte(`
[[milter]]
address = "unix:/run/opendkim.sock"
[[milter]]
name = "rspamd"
address = "inet:127.0.0.1:11332"
listeners = ["smtp"]
eom_timeout = "1m"
default_action = "accept"
[rspamd]
url = "http://127.0.0.1:11333"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	m := c.Milters
	if len(m) != 2 || m[0].Name != "unix:/run/opendkim.sock" || len(m[0].Listeners) != 3 ||
		m[0].CommandTimeout.Duration != DefaultFilterCommandTimeout || m[0].DefaultAction != "tempfail" ||
		m[1].EOMTimeout.Duration != time.Minute || m[1].DefaultAction != "accept" || strings.Join(m[1].Listeners, ",") != "smtp" {
		t.Errorf("milters %+v", m)
	}
	if c.Rspamd.Timeout.Duration != 15*time.Second || c.Rspamd.DefaultAction != "tempfail" {
		t.Errorf("rspamd %+v", c.Rspamd)
	}
}

func TestValidateFilters(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"address", func(c *Config) { c.Milters = []Milter{{Address: "127.0.0.1:8891"}} }, `want "unix:/path" or "inet:host:port"`},
		{"inet-port", func(c *Config) { c.Milters = []Milter{{Address: "inet:127.0.0.1"}} }, "address"},
		{"listener", func(c *Config) { c.Milters = []Milter{{Address: "unix:/x", Listeners: []string{"lmtp"}}} }, `listener "lmtp"`},
		{"action", func(c *Config) { c.Milters = []Milter{{Address: "unix:/x", DefaultAction: "reject"}} }, `default_action "reject"`},
		{"rspamd-url", func(c *Config) { c.Rspamd.URL = "127.0.0.1:11333" }, "rspamd.url"},
		{"rspamd-action", func(c *Config) { c.Rspamd.URL = "http://x:1"; c.Rspamd.DefaultAction = "" }, "default_action"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}
