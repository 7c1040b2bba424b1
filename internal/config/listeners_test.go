package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loadString loads s as a configuration file and validates it.
func loadString(t *testing.T, s string) (Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tern.toml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		return c, err
	}
	return c, c.Validate()
}

// TestListenersImplicit: without [[listener]], [listen] makes the three listeners of before,
// with the server-wide settings.
func TestListenersImplicit(t *testing.T) {
	c, err := loadString(t, "[listen]\nsubmissions = \"\"\n")
	if err != nil {
		t.Fatal(err)
	}
	ls := c.EffectiveListeners()
	if len(ls) != 2 {
		t.Fatalf("got %d listeners, want 2: %+v", len(ls), ls)
	}
	for i, want := range []struct{ name, addr, role string }{
		{"smtp", "127.0.0.1:2525", RoleMX}, {"submission", "127.0.0.1:2587", RoleSubmission},
	} {
		l := ls[i]
		if l.Name != want.name || l.Address != want.addr || l.Role != want.role || l.TLS != TLSStartTLS ||
			*l.AuthRequired != (want.role != RoleMX) || l.MessageSize != c.Limits.MessageSize ||
			strings.Join(l.Mechanisms, " ") != strings.Join(c.Auth.Mechanisms, " ") {
			t.Errorf("listener %d = %+v", i, l)
		}
	}
}

// TestListenersList: a real host's listeners, with their own settings and the defaults of the
// rest; the default [listen] addresses are not opened beside them.
func TestListenersList(t *testing.T) {
	c, err := loadString(t, `
[[listener]]
name = "mx"
address = "192.0.2.1:25"
role = "mx"
[[listener]]
name = "mx-backup"
address = "192.0.2.2:25"
role = "mx"
message_size = 1000000
tls = "required"
proxy_protocol = true
proxy_from = ["10.0.0.0/8", "10.1.2.3"]
[[listener]]
name = "submission"
address = "192.0.2.1:587"
role = "submission"
mechanisms = ["plain", "SCRAM-SHA-256"]
[[listener]]
name = "submissions"
address = "192.0.2.1:465"
role = "submissions"
[[milter]]
address = "inet:127.0.0.1:8891"
listeners = ["mx-backup", "smtp"]
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != (Listen{}) {
		t.Errorf("[listen] kept its defaults beside [[listener]]: %+v", c.Listen)
	}
	ls := c.EffectiveListeners()
	if got := strings.Join(c.ListenerNames(), ","); got != "mx,mx-backup,submission,submissions" {
		t.Fatalf("names %s", got)
	}
	if l := ls[1]; l.MessageSize != 1000000 || l.TLS != TLSRequired || *l.AuthRequired || l.Recipients != c.Limits.Recipients {
		t.Errorf("mx-backup = %+v", l)
	}
	if ps, _ := ls[1].ProxyPrefixes(); len(ps) != 2 || ps[1].String() != "10.1.2.3/32" {
		t.Errorf("proxy_from = %v", ps)
	}
	if l := ls[2]; strings.Join(l.Mechanisms, " ") != "PLAIN SCRAM-SHA-256" || !*l.AuthRequired {
		t.Errorf("submission = %+v", l)
	}
	if l := ls[3]; l.TLS != TLSImplicit || !*l.AuthRequired {
		t.Errorf("submissions = %+v", l)
	}
}

// TestListenersRejects: each mistake is refused with a message that names the listener and
// says what is wanted.
func TestListenersRejects(t *testing.T) {
	const mx = "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:25\"\nrole = \"mx\"\n"
	for _, tc := range []struct{ name, file, want string }{
		{"both forms", "[listen]\nsmtp = \"127.0.0.1:25\"\n" + mx, "cannot be mixed"},
		{"no name", "[[listener]]\naddress = \"127.0.0.1:25\"\nrole = \"mx\"\n", "listener 1: name is missing"},
		{"twice", mx + mx, `listener "mx": a second listener with that name`},
		{"no address", "[[listener]]\nname = \"a\"\nrole = \"mx\"\n", `listener "a": address is missing`},
		{"bad address", "[[listener]]\nname = \"a\"\naddress = \"25\"\nrole = \"mx\"\n", `listener "a": address "25"`},
		{"bad role", "[[listener]]\nname = \"a\"\naddress = \":25\"\nrole = \"relay\"\n", `role "relay": want mx, submission or submissions`},
		{"bad tls", mx + "tls = \"always\"\n", `tls "always": want starttls, required, implicit or none`},
		{"implicit mx", mx + "tls = \"implicit\"\n", "implicit TLS is the submissions role"},
		{"submissions starttls", "[[listener]]\nname = \"s\"\naddress = \":465\"\nrole = \"submissions\"\ntls = \"starttls\"\n", "implicit TLS is the submissions role"},
		{"unknown mechanism", mx + "mechanisms = [\"PLAN\"]\n", `listener "mx": mechanisms: unknown SASL mechanism "PLAN"`},
		{"mechanism not stored", mx + "mechanisms = [\"CRAM-MD5\"]\n", "mechanism CRAM-MD5 is not in auth.mechanisms"},
		{"auth without mechanism", mx + "auth_required = true\nmechanisms = []\n", "auth_required with no mechanism"},
		{"few recipients", mx + "recipients = 10\n", "recipients must be at least 100"},
		{"proxy without from", mx + "proxy_protocol = true\n", "proxy_protocol needs proxy_from"},
		{"from without proxy", mx + "proxy_from = [\"10.0.0.0/8\"]\n", "proxy_from without proxy_protocol"},
		{"bad proxy_from", mx + "proxy_protocol = true\nproxy_from = [\"10.0.0.0/33\"]\n", `proxy_from "10.0.0.0/33": want an address or a CIDR prefix`},
		{"milter on unknown listener", mx + "[[milter]]\naddress = \"inet:127.0.0.1:1\"\nlisteners = [\"mx2\"]\n", `listener "mx2": want one of smtp, submission, submissions, mx`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadString(t, tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
