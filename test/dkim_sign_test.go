package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDKIMSignsOutgoing: keys made with tern dkim keygen on A's running server sign what alice
// submits to b.test, with both algorithms, and dkimpy (an independent verifier) passes both
// signatures of the message as B received it, and fails them once its body is changed. A
// delivery report A sends to b.test (From MAILER-DAEMON@mx.example.test) is signed by
// example.test, the parent domain with keys.
func TestDKIMSignsOutgoing(t *testing.T) {
	t.Parallel()
	py, verifyPy := needDkimpy(t)
	// alice may send as bob@b.test, so that A has a report to send to another domain.
	w := startWorld(t, worldOpts{AConfig: "[auth]\nsender_must_own = false\n"})

	// The keys go into the store of the running server: it reads them when it signs.
	var records strings.Builder
	today := time.Now().UTC().Format("20060102")
	for _, domain := range []string{"a.test", "example.test"} {
		for _, alg := range []string{"rsa", "ed25519"} {
			out, errOut, code := runTool(t, time.Minute, "", ternBin, "dkim", "keygen", domain, "--algorithm", alg, "--data", w.A.Data)
			if code != 0 {
				t.Fatalf("keygen %s %s: exit %d: %s", domain, alg, code, errOut)
			}
			sel := today + "-" + alg
			fmt.Fprintf(&records, "%s._domainkey.%s %s\n", sel, domain, dkimRecord(t, out, sel, domain))
		}
	}
	keyFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keyFile, []byte(records.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	verify := func(t *testing.T, msg, domain, changeFrom, changeTo string) {
		t.Helper()
		sigs := headers(msg, "DKIM-Signature")
		if len(sigs) != 2 {
			t.Fatalf("%d DKIM-Signature fields, want 2 (rsa, ed25519):\n%s", len(sigs), msg)
		}
		all := strings.Join(strings.Fields(strings.Join(sigs, ";")), "")
		for _, alg := range []string{"rsa", "ed25519"} {
			for _, tag := range []string{"a=" + alg + "-sha256;", "s=" + today + "-" + alg + ";"} {
				if strings.Count(all, tag) != 1 {
					t.Errorf("no signature with %s:\n%s", tag, strings.Join(sigs, "\n"))
				}
			}
		}
		if strings.Count(all, "d="+domain+";") != 2 || strings.Count(all, "c=relaxed/relaxed;") != 2 {
			t.Errorf("signatures not d=%s, relaxed/relaxed:\n%s", domain, strings.Join(sigs, "\n"))
		}
		crlf := strings.ReplaceAll(msg, "\n", "\r\n") // the Maildir keeps LF line ends
		changed := strings.Replace(crlf, changeFrom, changeTo, 1)
		if changed == crlf {
			t.Fatalf("%q not in the message", changeFrom)
		}
		for _, c := range []struct {
			name, msg, want string
			code            int
		}{
			{"as received", crlf, "pass\npass\n", 0},
			{"body changed", changed, "fail\nfail\n", 1},
		} {
			out, errOut, code := runTool(t, time.Minute, c.msg, py, verifyPy, keyFile)
			if out != c.want || code != c.code {
				t.Errorf("%s: dkimpy says %q (exit %d, %s), want %q", c.name, out, code, errOut, c.want)
			}
		}
	}

	t.Run("submitted", func(t *testing.T) {
		t.Parallel()
		tok := token(t)
		w.submit(t, outMsg{Rcpts: []string{bobB}, Tok: tok})
		verify(t, w.B.WaitMessage(bobB, tok, 15*time.Second), "a.test", "Hello from A", "Hello from Mallory")
	})
	t.Run("delivery report", func(t *testing.T) {
		t.Parallel()
		tok := token(t)
		w.submit(t, outMsg{From: carolB, Rcpts: []string{"nobody@b.test"}, Tok: tok})
		dsn := w.B.WaitMessage(carolB, tok, 15*time.Second)
		mustMatch(t, "report", dsn, `(?m)^From: Mail Delivery System <MAILER-DAEMON@mx\.example\.test>$`)
		verify(t, dsn, "example.test", "nobody@b.test", "somebody@b.test")
	})
}
