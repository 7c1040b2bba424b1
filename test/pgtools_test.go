package test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// storeCmd runs "tern ARGS..." and fails the test unless it exits 0; it returns stdout.
func storeCmd(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := runTool(t, 30*time.Second, stdin, ternBin, args...)
	if code != 0 {
		t.Fatalf("tern %s: status %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// TestStoreCommandsPostgresNoData: every account-store command (tern user, alias, dkim, dns
// records, reports list) works on a PostgreSQL store named by --accounts or by the config
// file's accounts.url, or on a SQLite file named by --accounts sqlite:PATH, with no data
// directory, and makes none.
func TestStoreCommandsPostgresNoData(t *testing.T) {
	t.Parallel()
	pg := testutil.StartPostgres(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "no-data")
	cfgFile := writeFile(t, "tern.toml", "domains = [\"example.test\"]\n[accounts]\nurl = \""+pg.URL()+"\"\n")
	for _, tc := range []struct {
		name  string
		where []string // how the commands are told where the store is
	}{
		{"flag", []string{"--data", data, "--accounts", pg.URL()}},
		{"config", []string{"--data", data, "--config", cfgFile}},
		{"sqlite", []string{"--data", data, "--accounts", "sqlite:" + filepath.Join(dir, "accounts.db")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := tc.name + "@example.test"
			run := func(stdin string, args ...string) string {
				t.Helper()
				return storeCmd(t, stdin, append(args, tc.where...)...)
			}
			mustMatch(t, "user add", run("pw1\n", "user", "add", "--password-stdin", user, "--domain", "example.test"), `added `+user)
			mustMatch(t, "user passwd", run("pw2\n", "user", "passwd", "--password-stdin", user), `password changed for `+user)
			mustMatch(t, "user list", run("", "user", "list"), user)
			mustMatch(t, "user show", run("", "user", "show", user), user)
			run("", "alias", "add", "team-"+user, user)
			mustMatch(t, "alias list", run("", "alias", "list"), `team-`+user+`.*`+user)
			run("", "alias", "del", "team-"+user)
			domain := tc.name + ".example.test"
			mustMatch(t, "dkim keygen", run("", "dkim", "keygen", domain), `_domainkey\.`+domain)
			run("", "dkim", "rotate", domain)
			mustMatch(t, "dkim list", run("", "dkim", "list"), domain)
			mustMatch(t, "dns records", run("", "dns", "records", domain, "--domain", domain, "--hostname", "mx.example.test"), `_domainkey\.`+domain)
			run("", "reports", "list")
			run("", "user", "del", user)
			if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the data directory %s: %v, want it not made", data, err)
			}
		})
	}
}
