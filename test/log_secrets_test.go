package test

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestLogNoSecrets: in either log format (text and json, set by the flag on one server and by
// [log] format on the other), at debug level, no password ever reaches the log, nor its
// base64, nor an AUTH exchange that carries it: tern user add --password-stdin, AUTH PLAIN,
// LOGIN and CRAM-MD5 (right and wrong), and AUTH PLAIN to a relayhost with relay_password
// (server A relays to server B; both logs are read).
func TestLogNoSecrets(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			const (
				user, pw, wrong    = "alice@example.test", "Alice-s3cret-pw", "Wrong-gu3ss-pw"
				relayUser, relayPW = "relay@b.test", "Relay-s3cret-pw"
				carol, carolPW     = "carol@b.test", "Carol-s3cret-pw"
			)
			// B takes only PLAIN, so that A's relay AUTH carries the password itself, and any
			// sender from its relay account.
			b := startTern(t, ternOpts{Domain: "b.test", NoStart: true, Config: "[auth]\nsender_must_own = false\n", ServeArgs: []string{"--hostname", "mx.b.test",
				"--log-format", format, "--log-level", "debug", "--auth-mechanisms", "PLAIN"}})
			b.AddUser(relayUser, relayPW)
			b.AddUser(carol, carolPW)
			b.Start()
			a := startTern(t, ternOpts{NoStart: true,
				Config: "[log]\nlevel = \"debug\"\nformat = \"" + format + "\"\n" +
					"[delivery]\nrelay_user = \"" + relayUser + "\"\nrelay_password = \"" + relayPW + "\"\n",
				ServeArgs: []string{"--auth-mechanisms", "all", "--relayhost", b.Submission, "--retry-schedule", "1s"}})
			out := a.AddUserArgs(user, pw, "--auth-mechanisms", "all")
			a.Start()

			d := ehlod(t, a.Submission, false)
			d.authPlain(user, pw)
			d = ehlod(t, a.Submission, false)
			d.cmd("AUTH LOGIN", `334 VXNlcm5hbWU6`)
			d.cmd(b64(user), `334 UGFzc3dvcmQ6`)
			d.cmd(b64(pw), `235 2\.7\.0 Authentication successful`)
			d = ehlod(t, a.Submission, false)
			d.cmd("AUTH CRAM-MD5", `334 \S+`)
			d.cmd(b64(user+" "+strings.Repeat("0", 32)), `535 5\.7\.8 .*`)
			challenge := d.cmd("AUTH CRAM-MD5", `334 \S+`)[4:]
			d.cmd(cramResponse(t, user, pw, challenge), `235 2\.7\.0 Authentication successful`)
			tok := token(t)
			d.sendMessage(user, carol, "Subject: relayed "+tok+"\r\n\r\n"+tok+"\r\n")
			d = ehlod(t, a.Submission, false)
			d.cmd("AUTH PLAIN "+plainIR(user, wrong), `535 5\.7\.8 .*`)
			d = ehlod(t, a.Submission, false)
			d.cmd("AUTH LOGIN "+b64(user), `334 UGFzc3dvcmQ6`)
			d.cmd(b64(wrong), `535 5\.7\.8 .*`)

			b.WaitMessage(carol, tok, 15*time.Second)
			delivered := `msg=delivered `
			if format == "json" {
				delivered = `"msg":"delivered"`
			}
			waitFor(t, 10*time.Second, "A's delivered log line", func() bool { return strings.Contains(a.Log(), delivered) })
			waitFor(t, 10*time.Second, "A's failed AUTH log lines", func() bool { return strings.Count(a.Log(), "auth failed") >= 3 })

			secrets := append(append(passwordForms(user, pw), passwordForms(user, wrong)...), passwordForms(relayUser, relayPW)...)
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("tern user add printed the secret %q", s)
				}
			}
			if !strings.Contains(a.Log(), "AUTH PLAIN [redacted]") {
				t.Errorf("no trace of the relay AUTH in A's debug log: the test did not see the exchange it checks")
			}
			checkLogClean(t, a, secrets...)
			checkLogClean(t, b, secrets...)
			if format == "json" {
				checkJSONLog(t, a.Log())
				checkJSONLog(t, b.Log())
			}
		})
	}
}

// cramResponse answers a CRAM-MD5 challenge (RFC 2195): login, space, HMAC-MD5 in hex.
func cramResponse(t *testing.T, user, pw, challenge string) string {
	t.Helper()
	c, err := base64.StdEncoding.DecodeString(challenge)
	if err != nil {
		t.Fatalf("CRAM-MD5 challenge %q: %v", challenge, err)
	}
	h := hmac.New(md5.New, []byte(pw))
	h.Write(c)
	return b64(user + " " + hex.EncodeToString(h.Sum(nil)))
}

// checkJSONLog: every log line is one JSON object with time, level and msg (the lines the
// server prints on standard output, its listeners, are not log lines).
func checkJSONLog(t *testing.T, log string) {
	t.Helper()
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("log line is not JSON: %v: %s", err, l)
			continue
		}
		if m["time"] == nil || m["level"] == nil || m["msg"] == nil {
			t.Errorf("log line without time, level or msg: %s", l)
		}
		n++
	}
	if n == 0 {
		t.Errorf("no JSON log line in:\n%s", log)
	}
}
