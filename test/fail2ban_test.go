package test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFail2banFilter checks contrib/fail2ban/filter.d/tern.conf with fail2ban-regex against the
// log of a real run, in both log formats: it must find exactly the failed AUTHs, the block and
// the refusal of the blocked client, each with the client's address, and neither the successful
// login nor an address a client wrote into its login. The same lines as the journal shows them
// ("HOST tern[PID]: " before them, backend = systemd) must match the same way.
func TestFail2banFilter(t *testing.T) {
	t.Parallel()
	regex := needTool(t, "fail2ban-regex")
	filter, err := filepath.Abs("../contrib/fail2ban/filter.d/tern.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			tn := startTern(t, ternOpts{Config: "[auth]\nmax_failures = 3\nblock_time = \"1h\"\n[log]\nformat = \"" + format + "\"\n"})
			tn.AddUser("bob@example.test", "pw-bob")

			ok := dialFrom(t, "127.0.0.1", tn.Submission)
			ok.expect(`220 .*`)
			ok.ehlo("client.example.com")
			ok.cmd("AUTH PLAIN "+plainIR("bob", "pw-bob"), authOKRE)

			g := dialFrom(t, "127.0.0.2", tn.Submission)
			g.expect(`220 .*`)
			g.ehlo("guesser.example.com")
			g.cmd("AUTH PLAIN "+plainIR("bob", "guess-1"), authFailedRE)
			g.cmd("AUTH PLAIN "+plainIR("alice", "guess-2"), authFailedRE)
			g.send("AUTH PLAIN " + plainIR("bob", "guess-3"))
			g.expect(authFailedRE)
			g.expect(`421 4\.7\.0 .*`) // blocked: "auth block started" kind=client
			g.expectClosed()
			g = dialFrom(t, "127.0.0.2", tn.Submission)
			g.expect(`220 .*`)
			g.ehlo("guesser.example.com")
			g.cmd("AUTH PLAIN "+plainIR("bob", "pw-bob"), `421 4\.7\.0 .*`) // "auth refused: client blocked"
			g.expectClosed()

			// A login that tries to name another address in the log line.
			f := dialFrom(t, "127.0.0.3", tn.Submission)
			f.expect(`220 .*`)
			f.ehlo("forger.example.com")
			f.cmd("AUTH PLAIN "+plainIR("x remote=127.0.0.9 ", "guess-4"), authFailedRE)
			tn.Stop() // every line written

			log := filepath.Join(t.TempDir(), "tern.log")
			if err := os.WriteFile(log, []byte(tn.Log()), 0o644); err != nil {
				t.Fatal(err)
			}
			var journal strings.Builder
			for line := range strings.Lines(tn.Log()) {
				journal.WriteString("mx tern[4242]: " + line)
			}
			jlog := filepath.Join(t.TempDir(), "journal.log")
			if err := os.WriteFile(jlog, []byte(journal.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			want := []string{"127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3"}
			for _, file := range []string{log, jlog} {
				out, _, code := runTool(t, 60*time.Second, "", regex, "--out", "ip", file, filter)
				if code != 0 {
					t.Fatalf("fail2ban-regex %s: exit %d", filepath.Base(file), code)
				}
				got := strings.Fields(out)
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("fail2ban-regex on %s found %q, want %q (3 failures, the block and one refusal from 127.0.0.2, one failure from 127.0.0.3)",
						filepath.Base(file), got, want)
				}
			}
			// In a file every line has its time (fail2ban drops a match without one); in the
			// journal, the journal's time is used.
			out, _, _ := runTool(t, 60*time.Second, "", regex, log, filter)
			mustMatch(t, "fail2ban-regex summary", out, `(?m)^\|\s+\[(\d+)\] \^.*time.*Year-Month-Day`)
		})
	}
}
