package test

import (
	"errors"
	"fmt"
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
			mustMatch(t, "user del", run("", "user", "del", user), `stays in mail/example\.test/`+tc.name+` in each node's data directory\)$`)
			if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the data directory %s: %v, want it not made", data, err)
			}
		})
	}
}

// TestAccountsCopySQLiteToPostgres: tern accounts copy moves a SQLite store (an account with
// the secrets of every mechanism, one with the default ones, an alias, an RSA and an Ed25519
// DKIM key) into PostgreSQL, refuses to copy into it again unless --overwrite, and a node on
// PostgreSQL then logs those accounts in with AUTH PLAIN, SCRAM-SHA-256 and CRAM-MD5 (the
// secrets were copied, not derived again), takes the alias, and signs with the copied keys
// (dkimpy verifies the signatures against the records printed when the keys were made).
func TestAccountsCopySQLiteToPostgres(t *testing.T) {
	t.Parallel()
	py, verifyPy := needDkimpy(t)
	pg := testutil.StartPostgres(t)
	src := t.TempDir()
	const dora, doraPW, erin, erinPW = "dora@a.test", "dora-secret", "erin@a.test", "erin-secret"
	storeCmd(t, doraPW+"\n", "user", "add", "--data", src, "--auth-mechanisms", "all", "--password-stdin", dora)
	storeCmd(t, erinPW+"\n", "user", "add", "--data", src, "--password-stdin", erin)
	storeCmd(t, "", "alias", "add", "--data", src, "team@a.test", dora, erin)
	var records strings.Builder
	for _, alg := range []string{"rsa", "ed25519"} {
		sel := "copy-" + alg
		out := storeCmd(t, "", "dkim", "keygen", "--data", src, "a.test", "--algorithm", alg, "--selector", sel)
		fmt.Fprintf(&records, "%s._domainkey.a.test %s\n", sel, dkimRecord(t, out, sel, "a.test"))
	}
	keyFile := writeFile(t, "keys", records.String())

	out := storeCmd(t, "", "accounts", "copy", "--data", src, "--to", pg.URL())
	mustMatch(t, "copy", out, `^copied to postgres://tern@[0-9.:]+/postgres\?sslmode=disable: 2 accounts \([1-9][0-9]* mechanism secrets\), 1 aliases \(2 targets\), 2 DKIM keys$`)
	again, errOut, code := runTool(t, 30*time.Second, "", ternBin, "accounts", "copy", "--data", src, "--to", pg.URL())
	if code != 1 || !strings.Contains(errOut, "is not empty (2 accounts") || again != "" {
		t.Fatalf("copy into a store that is not empty: exit %d\n%s%s", code, again, errOut)
	}
	storeCmd(t, "", "accounts", "copy", "--from", "sqlite:"+filepath.Join(src, "accounts.db"), "--to", pg.URL(), "--overwrite")

	w := startWorld(t, worldOpts{AConfig: "[accounts]\nurl = \"" + pg.URL() + "\"\n", AArgs: []string{"--auth-mechanisms", "all"}})
	mustMatch(t, "AUTH PLAIN as erin", authReply(t, w.A.Submission, erin, erinPW), `^235 2\.7\.0 `)
	ca := filepath.Join(w.A.Data, "tls", "cert.pem")
	for _, mech := range []string{"SCRAM-SHA-256", "CRAM-MD5"} {
		tok := token(t)
		tr, code := ternSend(t, doraPW+"\n", "--server", w.A.Submissions, "--tls", "--ca", ca, "--from", dora,
			"--to", bobB, "--header", "Subject: "+tok, "--auth", mech, "--user", dora, "--password-stdin")
		wantStatus(t, code, 0, tr)
		msg := strings.ReplaceAll(w.B.WaitMessage(bobB, tok, 30*time.Second), "\n", "\r\n")
		if out, errOut, code := runTool(t, time.Minute, msg, py, verifyPy, keyFile); out != "pass\npass\n" || code != 0 {
			t.Errorf("%s: dkimpy says %q (exit %d, %s), want two passes:\n%s", mech, out, code, errOut, msg)
		}
	}
	d := ehlod(t, w.A.SMTP, false)
	d.cmd("MAIL FROM:<x@remote.test>", `250 .*`)
	d.cmd("RCPT TO:<team@a.test>", `250 .*`)
	d.cmd("QUIT", `221 .*`)
}
