package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateNames: domains, the host name and addresses are checked before anything is
// written; a refusal names the setting, its flag and the value, and says what is wrong.
func TestValidateNames(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantErr string // a part of the message; "" means valid
		check   func(*Config) bool
	}{
		{"domain plain", func(c *Config) { c.Domains = []string{"Example.ORG."} }, "", func(c *Config) bool { return c.Domains[0] == "example.org" }},
		{"domain single label", func(c *Config) { c.Domains = []string{"localhost"} }, "", nil},
		{"domain U-label kept", func(c *Config) { c.Domains = []string{"Bücher.example"} }, "", func(c *Config) bool { return c.Domains[0] == "bücher.example" }},
		{"domain A-label", func(c *Config) { c.Domains = []string{"xn--bcher-kva.example"} }, "", nil},
		{"domain with spaces", func(c *Config) { c.Domains = []string{"not a domain"} }, `domains (--domain) "not a domain": not a domain name: ' ' may not appear`, nil},
		{"domain trailing garbage", func(c *Config) { c.Domains = []string{"example.com;rm"} }, `';' may not appear`, nil},
		{"domain with port", func(c *Config) { c.Domains = []string{"example.com:25"} }, `':' may not appear`, nil},
		{"domain underscore", func(c *Config) { c.Domains = []string{"my_host.example"} }, `'_' may not appear`, nil},
		{"domain empty label", func(c *Config) { c.Domains = []string{"a..example"} }, "empty label", nil},
		{"domain two dots", func(c *Config) { c.Domains = []string{"example.com.."} }, "more than one dot", nil},
		{"domain hyphen", func(c *Config) { c.Domains = []string{"-a.example"} }, "hyphen", nil},
		{"domain long label", func(c *Config) { c.Domains = []string{strings.Repeat("a", 64) + ".example"} }, "longer than 63", nil},
		{"domain too long", func(c *Config) { c.Domains = []string{strings.Repeat("a23456789.", 26) + "example"} }, "IDNA2008", nil},
		{"domain bad punycode", func(c *Config) { c.Domains = []string{"xn--a-ecp.example"} }, "IDNA2008", nil},
		{"domain IP", func(c *Config) { c.Domains = []string{"192.0.2.1"} }, "an IP address is not a domain name", nil},
		{"domain literal", func(c *Config) { c.Domains = []string{"[192.0.2.1]"} }, "address literal", nil},
		{"domain empty", func(c *Config) { c.Domains = []string{""} }, `domains (--domain) "": empty`, nil},
		{"second domain bad", func(c *Config) { c.Domains = []string{"ok.example", "bad!"} }, `"bad!"`, nil},
		{"hostname", func(c *Config) { c.Hostname = "MX.Example.ORG" }, "", func(c *Config) bool { return c.Hostname == "mx.example.org" }},
		{"hostname with space", func(c *Config) { c.Hostname = "mx example" }, `hostname (--hostname) "mx example"`, nil},
		{"listen any port", func(c *Config) { c.Listen.SMTP = "127.0.0.1:0" }, "", nil},
		{"listen all interfaces", func(c *Config) { c.Listen.SMTP = ":25" }, "", nil},
		{"listen IPv6", func(c *Config) { c.Listen.SMTP = "[::1]:25" }, "", nil},
		{"listen IPv6 zone", func(c *Config) { c.Listen.SMTP = "[fe80::1%eth0]:25" }, "", nil},
		{"listen name", func(c *Config) { c.Listen.Submission = "localhost:587" }, "", nil},
		{"listen port too big", func(c *Config) { c.Listen.SMTP = "127.0.0.1:99999" }, `listen.smtp (--smtp) "127.0.0.1:99999": the port 99999 is not between 0 and 65535`, nil},
		{"listen port name", func(c *Config) { c.Listen.SMTP = "127.0.0.1:smtp" }, `the port "smtp" is not a number`, nil},
		{"listen port signed", func(c *Config) { c.Listen.SMTP = "127.0.0.1:+25" }, `the port "+25" is not a number`, nil},
		{"listen port empty", func(c *Config) { c.Listen.Submissions = "127.0.0.1:" }, `listen.submissions (--submissions) "127.0.0.1:": the port "" is not a number`, nil},
		{"listen no port", func(c *Config) { c.Listen.SMTP = "127.0.0.1" }, "want HOST:PORT, like 127.0.0.1:25 or [::1]:25 (missing port in address)", nil},
		{"listen bad host", func(c *Config) { c.Listen.SMTP = "bad host!:25" }, `the host "bad host!" is neither an IP address nor a host name`, nil},
		{"listen IPv6 unbracketed", func(c *Config) { c.Listen.SMTP = "::1:25" }, "want HOST:PORT", nil},
		{"listen bad IPv6", func(c *Config) { c.Listen.SMTP = "[::g]:25" }, `"::g" is not an IP address`, nil},
		{"relayhost", func(c *Config) { c.Delivery.Relayhost = "[smtp.example.com]:587" }, "", nil},
		{"relayhost port 0", func(c *Config) { c.Delivery.Relayhost = "smtp.example.com:0" }, `delivery.relayhost (--relayhost) "smtp.example.com:0": the port 0 is not between 1 and 65535`, nil},
		{"relayhost no host", func(c *Config) { c.Delivery.Relayhost = ":25" }, "the host is missing", nil},
		{"resolver", func(c *Config) { c.Delivery.Resolver = "127.0.0.53:53" }, "", nil},
		{"resolver no port", func(c *Config) { c.Delivery.Resolver = "127.0.0.53" }, `delivery.resolver (--resolver) "127.0.0.53": want HOST:PORT`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Validate accepted it, want %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Validate: %v\nwant it to contain %q", err, tc.wantErr)
			case tc.wantErr != "" && !strings.HasPrefix(err.Error(), "invalid setting: "):
				t.Fatalf("Validate: %q does not start with \"invalid setting: \"", err)
			}
			if tc.check != nil && !tc.check(&c) {
				t.Fatalf("normalized to %+v", c)
			}
		})
	}
}

// TestValidateErrorList: several problems are listed one a line, and each stays reachable.
func TestValidateErrorList(t *testing.T) {
	c := Default()
	c.Domains = []string{"a b"}
	c.Listen.SMTP = "127.0.0.1:99999"
	err := c.Validate()
	var inv *InvalidError
	if !errors.As(err, &inv) || len(inv.Problems) != 2 {
		t.Fatalf("Validate: %#v", err)
	}
	want := "invalid settings:\n  domains (--domain) \"a b\": not a domain name: ' ' may not appear in one (letters, digits, hyphens and dots only)\n" +
		"  listen.smtp (--smtp) \"127.0.0.1:99999\": the port 99999 is not between 0 and 65535"
	if err.Error() != want {
		t.Fatalf("got\n%s\nwant\n%s", err, want)
	}
}

// TestLoadErrors: a file that cannot be read or parsed is named with its line, without the
// decoder's package prefix.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "broken.toml")
	if err := os.WriteFile(p, []byte("hostname = \"mx.example\"\ndomains = [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), "configuration file "+p+", line 2: ") || strings.Contains(err.Error(), "toml:") {
		t.Errorf("Load(broken) = %v", err)
	}
	_, err = Load(filepath.Join(dir, "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "cannot read the configuration file: ") {
		t.Errorf("Load(missing) = %v", err)
	}
}

// FuzzParseDomain: no panic; an accepted name is lower-case, has only letters, digits, hyphens
// and dots (or non-ASCII letters of U-labels), and is accepted again as itself; an accepted
// listen address has a port in range.
func FuzzParseDomain(f *testing.F) {
	for _, s := range []string{"example.com", "Example.ORG.", "bücher.example", "xn--bcher-kva.example", "not a domain",
		"a..b", "-a.b", "192.0.2.1", "[192.0.2.1]", "localhost", "127.0.0.1:25", "[::1]:0", ":99999", "mx.example:smtp"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := parseDomain(s); err == nil {
			if d != strings.ToLower(d) || strings.ContainsAny(d, " \t\r\n:/@[]_") {
				t.Fatalf("parseDomain(%q) = %q", s, d)
			}
			if again, err := parseDomain(d); err != nil || again != d {
				t.Fatalf("parseDomain(%q) = %q, but that gives %q, %v", s, d, again, err)
			}
		}
		if checkListen(s) == nil {
			host, port, err := splitPort(s)
			if err != nil || port < 0 || port > 65535 || strings.ContainsAny(host, " \t\r\n") {
				t.Fatalf("checkListen accepted %q", s)
			}
		}
	})
}

// splitPort is net.SplitHostPort with the port as a number.
func splitPort(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, errors.New("no port")
	}
	n := 0
	for _, c := range s[i+1:] {
		if c < '0' || c > '9' {
			return "", 0, errors.New("port not numeric")
		}
		n = n*10 + int(c-'0')
		if n > 1<<20 {
			return "", 0, errors.New("port too big")
		}
	}
	return s[:i], n, nil
}
