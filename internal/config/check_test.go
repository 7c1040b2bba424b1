package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLocate: each kind of problem in a file is reported with the file, the line and the key
// of the setting at fault, and an unknown key with the nearest known one of its table.
func TestLocate(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, file string
		line       int
		key, msg   string
	}{
		{name: "syntax", file: "hostname = \"mx.example\"\ndomains = [\n", line: 2, key: "domains", msg: "expected value"},
		{name: "type", file: "[queue]\nworkers = \"many\"\n", line: 2, key: "queue.workers", msg: "incompatible types"},
		{name: "duration", file: "[limits]\n\nidle_timeout = \"5q\"\n", line: 3, key: "limits.idle_timeout", msg: `unknown unit "q"`},
		{name: "unknown key", file: "[queue]\nworkers = 2\nmax_agee = \"1h\"\n", line: 3, key: "queue.max_agee", msg: "unknown key; did you mean max_age?"},
		{name: "unknown top key", file: "hostnme = \"mx.example\"\n", line: 1, key: "hostnme", msg: "did you mean hostname?"},
		{name: "unknown table", file: "\n[limitz]\nerrors = 3\n", line: 2, key: "limitz", msg: "did you mean limits?"},
		{name: "unknown key far from any", file: "[auth]\nfrobnicate = true\n", line: 2, key: "auth.frobnicate", msg: "unknown key"},
		{name: "unknown milter key", file: "[[milter]]\nname = \"a\"\naddress = \"inet:127.0.0.1:1\"\nadress = \"x\"\n", line: 4, key: "milter.adress", msg: "did you mean address?"},
		{name: "range", file: "[limits]\nrecipients = 10\n", line: 2, key: "limits.recipients", msg: "at least 100"},
		{name: "address", file: "[listen]\nsmtp = \"127.0.0.1:99999\"\n", line: 2, key: "listen.smtp", msg: "not between 0 and 65535"},
		{name: "domain", file: "domains = [\"a b\"]\n", line: 1, key: "domains", msg: "not a domain name"},
		{name: "hostname", file: "# mx\nhostname = \"mx_1.example\"\n", line: 2, key: "hostname", msg: "not a domain name"},
		{name: "rate", file: "[rate]\nexempt = [\n  \"192.0.2.1\",\n  \"nonsense\",\n]\n", line: 2, key: "rate.exempt", msg: `"nonsense"`},
		{name: "screen", file: "[screen]\ndnsbl_threshold = 0\n", line: 2, key: "screen.dnsbl_threshold", msg: "positive"},
		{name: "addresses", file: "[addresses]\nalias_depth = 0\n", line: 2, key: "addresses.alias_depth", msg: "want 1 to 100"},
		{name: "rspamd", file: "[rspamd]\nurl = \"ftp://x\"\n", line: 2, key: "rspamd.url", msg: "want http://host:port"},
		{name: "second milter", file: "[[milter]]\nname = \"a\"\naddress = \"inet:127.0.0.1:1\"\n\n[[milter]]\nname = \"b\"\naddress = \"bogus\"\n", line: 5, key: "milter", msg: `milter "b": address "bogus"`},
		{name: "log", file: "[log]\nformat = \"xml\"\n", line: 2, key: "log.format", msg: "want text or json"},
		{name: "multi-line string skipped", file: "[rspamd]\npassword = \"\"\"\nx = 1\n\"\"\"\n[log]\nlevel = \"loud\"\n", line: 6, key: "log.level", msg: "want debug"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".toml")
			if err := os.WriteFile(p, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if err == nil {
				err = c.Validate()
			}
			probs := Locate(p, err)
			if len(probs) != 1 {
				t.Fatalf("problems %q, want one (err %v)", probs, err)
			}
			got := probs[0]
			if got.File != p || got.Line != tc.line || got.Key != tc.key || !strings.Contains(got.Msg, tc.msg) {
				t.Errorf("got %+v, want line %d key %q message containing %q", got, tc.line, tc.key, tc.msg)
			}
			if s := got.String(); !strings.HasPrefix(s, p+":") {
				t.Errorf("String() = %q, want FILE:LINE: first", s)
			}
		})
	}
}

// TestLocateEvery: one run reports every problem, unknown keys all at once and the settings'
// problems all at once; one without a key (no listener) has no line.
func TestLocateEvery(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(p, []byte("[queue]\nwokers = 1\n[auth]\nmax_failure = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	probs := Locate(p, err)
	if len(probs) != 2 || probs[0].Line != 2 || probs[1].Line != 4 || !strings.Contains(probs[1].Msg, "did you mean max_failures?") {
		t.Errorf("unknown keys: %q", probs)
	}
	if err := os.WriteFile(p, []byte("[listen]\nsmtp = \"\"\nsubmission = \"\"\nsubmissions = \"\"\n[queue]\nworkers = 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	probs = Locate(p, c.Validate())
	if len(probs) != 2 || probs[0].Msg != "no listener" || probs[0].Line != 0 || probs[1].Key != "queue.workers" || probs[1].Line != 6 {
		t.Errorf("settings: %+v", probs)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"workers", "wokers", 1}, {"max_age", "max_agee", 1}, {"abc", "", 3}, {"kitten", "sitting", 3}} {
		if d := editDistance(tc.a, tc.b); d != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}

// FuzzKeyLines: any text is placed without a panic, at lines that exist.
func FuzzKeyLines(f *testing.F) {
	f.Add("[a]\nb = 1\n[[c]]\nd = \"\"\"\n\"\"\"\ne = [\n1]\n")
	f.Fuzz(func(t *testing.T, s string) {
		n := strings.Count(s, "\n") + 1
		for k, l := range keyLines(s) {
			if l < 1 || l > n {
				t.Fatalf("%q at line %d of %d", k, l, n)
			}
		}
	})
}

// TestReference: docs/config.md is Reference(), and every key it lists has a doc: the
// meaning, units and default an administrator reads there.
func TestReference(t *testing.T) {
	for _, tb := range tables() {
		for _, k := range tb.keys {
			if k.doc == "" {
				t.Errorf("%s.%s has no doc tag", tb.name, k.name)
			}
		}
	}
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil || string(doc) != Reference() {
		t.Errorf("docs/config.md is not Reference(); run: make docs (or go run ./cmd/tern config reference > docs/config.md)")
	}
}
