package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// listenOnly is a [listen] table with one listener on a free loopback port, so that a serve
// given the file binds nothing fixed.
const listenOnly = "[listen]\nsmtp = \"127.0.0.1:0\"\nsubmission = \"\"\nsubmissions = \"\"\n"

// TestConfigCheck: tern config check exits 1 and names file, line and key of every problem
// (with the nearest key for a misspelt one), and tern serve refuses each of those files too,
// before binding or writing anything; a file that passes starts serve.
func TestConfigCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, file string
		want       string // regexp over config check's output; FILE stands for the file's path
		serve      string // regexp over serve's standard error
	}{
		{name: "unknown key", file: listenOnly + "[queue]\nwokers = 4\n",
			want: `^FILE:6: queue\.wokers: unknown key; did you mean workers\?$`, serve: `line 6: queue\.wokers: unknown key; did you mean workers\?`},
		{name: "wrong type", file: listenOnly + "[limits]\nmessage_size = \"10M\"\n",
			want: `^FILE:6: limits\.message_size: incompatible types`, serve: `line 6: limits\.message_size: incompatible types`},
		{name: "range and domain", file: "domains = [\"a b\"]\n" + listenOnly + "[limits]\nrecipients = 5\n",
			want:  `^FILE:1: domains \(--domain\) "a b": not a domain name.*\nFILE:7: limits\.recipients must be at least 100`,
			serve: `invalid settings:\n  FILE:1: domains .*\n  FILE:7: limits\.recipients must be at least 100`},
		{name: "certificate missing", file: listenOnly + "[tls]\ncert = \"DIR/nope.pem\"\nkey = \"DIR/nope.key\"\n",
			want: `^FILE:6: tls\.cert and tls\.key: loading .*no such file or directory`, serve: `FILE:6: tls\.cert and tls\.key: loading .*no such file or directory`},
		{name: "keytab missing", file: listenOnly + "[auth]\n\ngssapi_keytab = \"DIR/nope.keytab\"\n",
			want: `^FILE:7: auth\.gssapi_keytab: open .*no such file or directory`, serve: `FILE:7: auth\.gssapi_keytab: open `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".toml")
			if err := os.WriteFile(p, []byte(strings.ReplaceAll(tc.file, "DIR", dir)), 0o600); err != nil {
				t.Fatal(err)
			}
			data := filepath.Join(dir, "data-"+strings.ReplaceAll(tc.name, " ", "-"))
			out, errOut, code := runTool(t, 30*time.Second, "", ternBin, "config", "check", "--config", p, "--data", data)
			if code != 1 {
				t.Fatalf("config check: exit status %d, want 1\n%s%s", code, out, errOut)
			}
			mustMatch(t, "config check", out, strings.ReplaceAll(tc.want, "FILE", regexp.QuoteMeta(p)))
			out1 := out
			out, errOut, code = runTool(t, 30*time.Second, "", ternBin, "serve", "--config", p, "--data", data)
			if code != 1 {
				t.Fatalf("serve: exit status %d, want 1\n%s%s", code, out, errOut)
			}
			mustMatch(t, "serve", errOut, strings.ReplaceAll(tc.serve, "FILE", regexp.QuoteMeta(p)))
			// Every problem check named, serve names in the same words: the file's own
			// problems as "configuration file FILE, line N: ...", the settings' as check does.
			for _, l := range strings.Split(strings.TrimSpace(out1), "\n") {
				pfx := p + ":"
				line, rest, _ := strings.Cut(strings.TrimPrefix(l, pfx), ": ")
				if !strings.Contains(errOut, l) && !strings.Contains(errOut, "configuration file "+p+", line "+line+": "+rest) {
					t.Errorf("serve did not report %q:\n%s", l, errOut)
				}
			}
			if _, err := os.Lstat(data); !os.IsNotExist(err) {
				t.Errorf("%s was made (%v): neither may write before the settings are checked", data, err)
			}
		})
	}
	t.Run("good", func(t *testing.T) {
		tn := startTern(t, ternOpts{NoStart: true, Config: "hostname = \"mx.example.test\"\n[queue]\nworkers = 4\n"})
		out, errOut, code := runTool(t, 30*time.Second, "", ternBin, "config", "check", "--config", tn.configPath, "--data", tn.Data)
		if code != 0 || out != tn.configPath+": ok\n" {
			t.Fatalf("config check: exit status %d\n%s%s", code, out, errOut)
		}
		tn.Start() // fails the test unless every listener comes up
	})
	t.Run("usage", func(t *testing.T) {
		_, errOut, code := runTool(t, 30*time.Second, "", ternBin, "config", "check", "extra")
		if code != 2 {
			t.Fatalf("exit status %d, want 2\n%s", code, errOut)
		}
	})
}
