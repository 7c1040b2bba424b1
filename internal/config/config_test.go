package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultsValidate(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Hostname == "" {
		t.Error("Validate left the host name empty")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(t *testing.T, s string) string {
		t.Helper()
		p := filepath.Join(dir, t.Name()[strings.LastIndexByte(t.Name(), '/')+1:]+".toml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("overrides", func(t *testing.T) {
		c, err := Load(write(t, `
hostname = "mx.example.test"
domains = ["example.test", "Example.ORG."]
[listen]
submissions = ""
[limits]
idle_timeout = "30s"
data_timeout = "2m"
recipient_overshoot = 0
message_size = 1000
`))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.Hostname != "mx.example.test" || c.Listen.Submissions != "" || c.Listen.SMTP != "127.0.0.1:2525" ||
			c.Limits.IdleTimeout.Duration != 30*time.Second || c.Limits.MessageSize != 1000 ||
			c.Limits.DataTimeout.Duration != 2*time.Minute || c.Limits.RecipientOvershoot != 0 ||
			strings.Join(c.Domains, ",") != "example.test,example.org" {
			t.Errorf("got %+v", c)
		}
	})
	t.Run("unknown-key", func(t *testing.T) {
		if _, err := Load(write(t, "hostnme = \"x\"\n")); err == nil || !strings.Contains(err.Error(), "hostnme") {
			t.Errorf("err = %v, want unknown key hostnme", err)
		}
	})
	t.Run("bad-duration", func(t *testing.T) {
		if _, err := Load(write(t, "[limits]\nidle_timeout = \"soon\"\n")); err == nil {
			t.Error("no error for a bad duration")
		}
	})
	t.Run("missing-file", func(t *testing.T) {
		if _, err := Load(filepath.Join(dir, "nope.toml")); err == nil {
			t.Error("no error for a missing file")
		}
	})
}

func TestValidateRejects(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"no-domain":        func(c *Config) { c.Domains = nil },
		"no-listener":      func(c *Config) { c.Listen = Listen{} },
		"bad-listen":       func(c *Config) { c.Listen.SMTP = "2525" },
		"cert-no-key":      func(c *Config) { c.TLS.Cert = "x.pem" },
		"few-rcpts":        func(c *Config) { c.Limits.Recipients = 10 },
		"zero-size":        func(c *Config) { c.Limits.MessageSize = 0 },
		"zero-data-time":   func(c *Config) { c.Limits.DataTimeout.Duration = 0 },
		"neg-overshoot":    func(c *Config) { c.Limits.RecipientOvershoot = -1 },
		"bad-level":        func(c *Config) { c.Log.Level = "loud" },
		"bad-format":       func(c *Config) { c.Log.Format = "xml" },
		"no-workers":       func(c *Config) { c.Queue.Workers = 0 },
		"negative-dest":    func(c *Config) { c.Queue.Destination = -1 },
		"bad-relay-tls":    func(c *Config) { c.Delivery.RelayTLS = "tls" },
		"bad-lmtp":         func(c *Config) { c.Delivery.LMTP = "dovecot" },
		"empty-lmtp-path":  func(c *Config) { c.Delivery.LMTP = "unix:" },
		"empty-data-dir":   func(c *Config) { c.Data = "" },
		"gssapi-no-keytab": func(c *Config) { c.Auth.Mechanisms = []string{"PLAIN", "GSSAPI"} },
		"gssapi-bad-map":   func(c *Config) { c.Auth.GSSAPIKeytab = "k"; c.Auth.GSSAPIMap = "ldap" },
		"gssapi-no-file":   func(c *Config) { c.Auth.GSSAPIKeytab = "k"; c.Auth.GSSAPIMap = "file" },
		"gssapi-realm":     func(c *Config) { c.Auth.GSSAPIKeytab = "k"; c.Auth.GSSAPIPrincipal = "smtp/mx@R" },
		"gssapi-skew":      func(c *Config) { c.Auth.GSSAPIKeytab = "k"; c.Auth.GSSAPIClockSkew.Duration = 0 },
		"bad-dmarc":        func(c *Config) { c.Inbound.DMARC = "reject" },
		"bad-dmarc-domain": func(c *Config) { c.Inbound.DMARCDomains = []string{"example.com=reject"} },
		"dmarc-no-mode":    func(c *Config) { c.Inbound.DMARCDomains = []string{"example.com"} },
		"dmarc-ip":         func(c *Config) { c.Inbound.DMARCDomains = []string{"192.0.2.1=none"} },
	} {
		t.Run(name, func(t *testing.T) {
			c := Default()
			mutate(&c)
			if err := c.Validate(); err == nil {
				t.Error("Validate accepted it")
			}
		})
	}
}

// TestGSSAPIMechanism: a keytab turns GSSAPI on, after the listed mechanisms unless they place
// it; "all" alone does not.
func TestGSSAPIMechanism(t *testing.T) {
	for _, tc := range []struct {
		mechs  []string
		keytab string
		want   string
	}{
		{[]string{"all"}, "", "PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-1 SCRAM-SHA-1-PLUS CRAM-MD5 CRAM-SHA1 DIGEST-MD5 NTLM"},
		{[]string{"plain"}, "/etc/krb5.keytab", "PLAIN GSSAPI"},
		{[]string{"gssapi,plain"}, "/etc/krb5.keytab", "GSSAPI PLAIN"},
	} {
		c := Default()
		c.Auth.Mechanisms, c.Auth.GSSAPIKeytab = tc.mechs, tc.keytab
		if err := c.Validate(); err != nil || strings.Join(c.Auth.Mechanisms, " ") != tc.want {
			t.Errorf("%q with keytab %q: %q, %v; want %q", tc.mechs, tc.keytab, c.Auth.Mechanisms, err, tc.want)
		}
	}
}

// The example file parses back to the defaults, and docs/config.toml is up to date.
func TestExample(t *testing.T) {
	ex := Example()
	p := filepath.Join(t.TempDir(), "ex.toml")
	if err := os.WriteFile(p, []byte(ex), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatalf("Example does not load: %v\n%s", err, ex)
	}
	d := Default()
	// An empty list or table in the file loads as an empty one where the default is nil.
	if len(c.Queue.RetrySchedule) == 0 {
		c.Queue.RetrySchedule = nil
	}
	if len(c.Delivery.TLSPolicy) == 0 {
		c.Delivery.TLSPolicy = nil
	}
	if !reflect.DeepEqual(c, d) {
		t.Errorf("Example loads as %+v, want %+v", c, d)
	}
	doc, err := os.ReadFile("../../docs/config.toml")
	if err != nil || string(doc) != ex {
		t.Errorf("docs/config.toml is not Example(); run: go run ./cmd/tern config example > docs/config.toml")
	}
}

func TestParseMechanisms(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
		bad  bool
	}{
		{[]string{"plain,login"}, "PLAIN LOGIN", false},
		{[]string{"PLAIN", "cram-md5 ntlm"}, "PLAIN CRAM-MD5 NTLM", false},
		{[]string{"all"}, "PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-1 SCRAM-SHA-1-PLUS CRAM-MD5 CRAM-SHA1 DIGEST-MD5 NTLM", false},
		{[]string{"NTLM,all"}, "NTLM PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-1 SCRAM-SHA-1-PLUS CRAM-MD5 CRAM-SHA1 DIGEST-MD5", false},
		{[]string{"gssapi,plain"}, "GSSAPI PLAIN", false}, // Validate wants a keytab for it
		{[]string{"PLAIN,X-FOO"}, "", true},
	} {
		got, err := ParseMechanisms(tc.in)
		if (err != nil) != tc.bad || strings.Join(got, " ") != tc.want {
			t.Errorf("ParseMechanisms(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestDMARCOverrides(t *testing.T) {
	in := Inbound{DMARCDomains: []string{"Lists.Example.COM.=none", " soft.example = quarantine "}}
	m, err := in.DMARCOverrides()
	if err != nil || len(m) != 2 || m["lists.example.com"] != "none" || m["soft.example"] != "quarantine" {
		t.Errorf("DMARCOverrides() = %v, %v", m, err)
	}
}
