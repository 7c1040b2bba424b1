package test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

// The seeds' account: the SMTP AUTH tutorials log in as kenneth.burgener (no domain: tern takes
// it in its first --domain) with the password ImBB1999!, and relay to kenneth@oeey.com.
const (
	seedUser     = "kenneth.burgener"
	seedAccount  = "kenneth.burgener@example.test"
	seedPassword = "ImBB1999!"
	seedRemote   = "kenneth@oeey.com"
	// The base64 strings of the seeds' transcripts, as typed there.
	seedLoginUser = "a2VubmV0aC5idXJnZW5lcg=="             // kenneth.burgener
	seedLoginPass = "SW1CQjE5OTkh"                         // ImBB1999!
	seedPlain     = "AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh" // \0kenneth.burgener\0ImBB1999!
	// A wrong password, one character off.
	seedWrong = "ImBB1999?"
)

// Replies of an AUTH exchange.
const (
	authOKRE     = `235 2\.7\.0 Authentication successful`
	authFailedRE = `535 5\.7\.8 Error: authentication failed`
	authOK       = "235 2.7.0 Authentication successful"
	authFailed   = "535 5.7.8 Error: authentication failed"
	authBlocked  = "421 4.7.0 Error: too many failed authentications, try again later"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// The seeds' base64 strings are what the seeds say they are.
func TestAuthSeedStrings(t *testing.T) {
	for enc, plain := range map[string]string{
		seedLoginUser: seedUser,
		seedLoginPass: seedPassword,
		seedPlain:     "\x00" + seedUser + "\x00" + seedPassword,
	} {
		if b64(plain) != enc {
			t.Errorf("base64(%q) = %q, the seeds say %q", plain, b64(plain), enc)
		}
	}
}

// ehloReply is tern's whole EHLO reply to a client, CRLF line ends included.
func ehloReply(keywords []string) string {
	lines := append([]string{testHostname}, keywords...)
	var b strings.Builder
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		b.WriteString("250" + sep + l + "\r\n")
	}
	return b.String()
}

// sameOctets compares a whole transcript with the expected one in which "QUEUEID" stands for
// the queue id, and returns that id ("" if the transcript has none).
func sameOctets(t testing.TB, what, got, want string) string {
	t.Helper()
	id := ""
	if strings.Contains(want, "QUEUEID") {
		m := regexp.MustCompile(`Ok: queued as ([0-9A-F]{10,})\r\n`).FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("%s: no queued-as reply in:\n%s\nwant:\n%s", what, got, want)
		}
		id = m[1]
		want = strings.Replace(want, "QUEUEID", id, 1)
	}
	if got != want {
		t.Fatalf("%s differs from the expected transcript:\n got %q\nwant %q", what, got, want)
	}
	return id
}

// queueEntry returns the block of `tern queue list` for one message ("" if it is not queued).
func queueEntry(list, id string) string {
	i := strings.Index(list, "\n"+id+" ")
	if i < 0 {
		return ""
	}
	block := list[i+1:]
	if j := strings.Index(block, "\n\n"); j >= 0 {
		block = block[:j+1]
	}
	return block
}

// waitRelayQueued waits until the message id is held in the queue for remote, after a
// temporary failure (remote delivery is not available yet: the message stays queued), and that
// no other recipient is still queued with it.
func waitRelayQueued(t testing.TB, tn *Tern, id, remote string) string {
	t.Helper()
	var entry string
	waitFor(t, 10*time.Second, "the relayed message "+id+" to be held for "+remote+" after a temporary failure", func() bool {
		entry = queueEntry(tn.QueueList(), id)
		return strings.Contains(entry, "(4")
	})
	mustMatch(t, "queue entry", entry, `^ +\(4\d\d 4\.\d\.\d [^)]*\)\n +`+regexp.QuoteMeta(remote)+`\n$`)
	return entry
}

// checkLogClean fails if the server log holds any of the secrets: the passwords, and whatever
// a client sent in base64 for them.
func checkLogClean(t testing.TB, tn *Tern, secrets ...string) {
	t.Helper()
	log := tn.Log()
	for _, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("the server log contains the secret %q", s)
		}
	}
}

// passwordForms are a password and its base64, as a log or a store must never hold them.
func passwordForms(user, pw string) []string {
	return []string{pw, b64(pw), plainIR(user, pw), b64(user + " " + pw)}
}

// TestAuthSeedsNetcat replays the seeds' AUTH LOGIN and AUTH PLAIN sessions with netcat on the
// MX listener (the seeds talk to port 25), each session one file sent at once, and compares
// everything the server answered octet for octet: the 334 prompts, the 235, the seeds' "503
// need MAIL command" for RCPT before MAIL, and a message relayed to the remote recipient. With
// the wrong password the same session gets 535, and relaying is refused.
func TestAuthSeedsNetcat(t *testing.T) {
	t.Parallel()
	nc := needNetcat(t)
	tn := startTern(t, ternOpts{})
	tn.AddUser(seedAccount, seedPassword)
	host, port := splitAddr(t, tn.SMTP)
	greeting := "220 mx.example.test ESMTP tern\r\n" + ehloReply(ehloKeywordsFor(false, defaultMechs))

	session := func(t *testing.T, lines ...string) string {
		f, err := os.Open(writeFile(t, "session", strings.Join(lines, "\r\n")+"\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		out, _, code := runToolIn(t, 30*time.Second, f, nc, host, port)
		if code != 0 {
			t.Fatalf("nc exit status %d", code)
		}
		return out
	}
	message := func(tok, to, how string) []string {
		return []string{"DATA",
			"From: Kenneth Burgener <" + seedAccount + ">",
			"To: <" + to + ">",
			"Subject: " + tok,
			"",
			"Relayed after " + how + ".",
			"."}
	}

	t.Run("AUTH LOGIN", func(t *testing.T) {
		tok := token(t)
		lines := []string{"EHLO trogdor", "AUTH LOGIN", seedLoginUser, seedLoginPass,
			"RCPT TO:<" + seedRemote + ">",
			"MAIL FROM:<" + seedAccount + ">",
			"RCPT TO:<" + seedRemote + ">"}
		lines = append(lines, message(tok, seedRemote, "AUTH LOGIN")...)
		out := session(t, append(lines, "QUIT")...)
		id := sameOctets(t, "nc output", out, greeting+
			"334 VXNlcm5hbWU6\r\n"+
			"334 UGFzc3dvcmQ6\r\n"+
			authOK+"\r\n"+
			"503 5.5.1 Error: need MAIL command\r\n"+
			"250 2.1.0 Ok\r\n"+
			"250 2.1.5 Ok\r\n"+
			"354 End data with <CR><LF>.<CR><LF>\r\n"+
			"250 2.0.0 Ok: queued as QUEUEID\r\n"+
			"221 2.0.0 Bye\r\n")
		waitRelayQueued(t, tn, id, seedRemote)
	})

	t.Run("AUTH LOGIN, wrong password", func(t *testing.T) {
		out := session(t, "EHLO trogdor", "AUTH LOGIN", seedLoginUser, b64(seedWrong),
			"MAIL FROM:<"+seedAccount+">", "RCPT TO:<"+seedRemote+">", "QUIT")
		sameOctets(t, "nc output", out, greeting+
			"334 VXNlcm5hbWU6\r\n"+
			"334 UGFzc3dvcmQ6\r\n"+
			authFailed+"\r\n"+
			"250 2.1.0 Ok\r\n"+ // the MX listener takes mail without AUTH...
			"554 5.7.1 <"+seedRemote+">: Relay access denied\r\n"+ // ...but relays none
			"221 2.0.0 Bye\r\n")
	})

	t.Run("AUTH PLAIN", func(t *testing.T) {
		tok := token(t)
		lines := []string{"EHLO trogdor", "AUTH PLAIN " + seedPlain,
			"MAIL FROM:<" + seedAccount + ">",
			"RCPT TO:<" + seedRemote + ">",
			"RCPT TO:<" + seedAccount + ">"}
		lines = append(lines, message(tok, seedRemote, "AUTH PLAIN")...)
		out := session(t, append(lines, "QUIT")...)
		id := sameOctets(t, "nc output", out, greeting+
			authOK+"\r\n"+
			"250 2.1.0 Ok\r\n"+
			"250 2.1.5 Ok\r\n"+
			"250 2.1.5 Ok\r\n"+
			"354 End data with <CR><LF>.<CR><LF>\r\n"+
			"250 2.0.0 Ok: queued as QUEUEID\r\n"+
			"221 2.0.0 Bye\r\n")
		// The local copy is delivered, with the authentication in its Received header...
		msg := tn.WaitMessage(seedAccount, tok, 10*time.Second)
		mustMatch(t, "Received", header(msg, "Received"),
			`^Received: from trogdor \(\[127\.0\.0\.1\]\)\n\tby mx\.example\.test \(tern\) with ESMTPA id `+id+`;`) // two recipients: no "for" clause
		if body(msg) != "Relayed after AUTH PLAIN.\n" {
			t.Fatalf("body %q", body(msg))
		}
		// ... and the remote one waits in the queue, for the remote recipient only.
		waitRelayQueued(t, tn, id, seedRemote)
	})

	t.Run("AUTH PLAIN, wrong password", func(t *testing.T) {
		out := session(t, "EHLO trogdor", "AUTH PLAIN "+plainIR(seedUser, seedWrong),
			"MAIL FROM:<"+seedAccount+">", "RCPT TO:<"+seedRemote+">", "QUIT")
		sameOctets(t, "nc output", out, greeting+
			authFailed+"\r\n"+
			"250 2.1.0 Ok\r\n"+
			"554 5.7.1 <"+seedRemote+">: Relay access denied\r\n"+
			"221 2.0.0 Bye\r\n")
	})

	checkLogClean(t, tn, append(passwordForms(seedUser, seedPassword), passwordForms(seedUser, seedWrong)...)...)
}

// TestAuthSeedsDialogue replays the seeds' exchanges as a dialogue (each line sent after the
// previous reply, as a person at a terminal types them) on the submission listener, in clear
// text on loopback, which tern counts as secure enough by default. A wrong password leaves the
// session unauthenticated: submission then refuses MAIL with 530.
func TestAuthSeedsDialogue(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{})
	tn.AddUser(seedAccount, seedPassword)

	start := func(t *testing.T) *dialog {
		d := greeted(t, tn.Submission, false)
		sameList(t, "EHLO trogdor", d.ehlo("trogdor"), ehloKeywordsFor(false, defaultMechs))
		return d
	}
	relay := func(t *testing.T, d *dialog, tok string, rcpts ...string) string {
		d.cmd("MAIL FROM:<"+seedAccount+">", `250 2\.1\.0 Ok`)
		for _, r := range rcpts {
			d.cmd("RCPT TO:<"+r+">", `250 2\.1\.5 Ok`)
		}
		d.cmd("DATA", `354 End data with <CR><LF>\.<CR><LF>`)
		d.write("From: <" + seedAccount + ">\r\nTo: <" + seedRemote + ">\r\nSubject: " + tok + "\r\n\r\nrelayed\r\n.\r\n")
		id := queueID(t, d.expect(queuedRE))
		d.cmd("QUIT", `221 2\.0\.0 Bye`)
		return id
	}

	t.Run("AUTH LOGIN", func(t *testing.T) {
		d := start(t)
		d.cmd("AUTH LOGIN", `334 VXNlcm5hbWU6`)
		d.cmd(seedLoginUser, `334 UGFzc3dvcmQ6`)
		d.cmd(seedLoginPass, authOKRE)
		d.cmd("RCPT TO:<"+seedRemote+">", `503 5\.5\.1 Error: need MAIL command`)
		id := relay(t, d, token(t), seedRemote)
		waitRelayQueued(t, tn, id, seedRemote)
	})

	// The user name may come as LOGIN's initial response; the password prompt follows.
	t.Run("AUTH LOGIN with initial response", func(t *testing.T) {
		d := start(t)
		d.cmd("AUTH LOGIN "+seedLoginUser, `334 UGFzc3dvcmQ6`)
		d.cmd(seedLoginPass, authOKRE)
		tok := token(t)
		relay(t, d, tok, seedAccount)
		mustMatch(t, "Received", header(tn.WaitMessage(seedAccount, tok, 10*time.Second), "Received"), `\tby mx\.example\.test \(tern\) with ESMTPA id `)
	})

	t.Run("AUTH LOGIN, wrong password", func(t *testing.T) {
		d := start(t)
		d.cmd("AUTH LOGIN", `334 VXNlcm5hbWU6`)
		d.cmd(seedLoginUser, `334 UGFzc3dvcmQ6`)
		d.cmd(b64(seedWrong), authFailedRE)
		d.cmd("MAIL FROM:<"+seedAccount+">", `530 5\.7\.0 Authentication required`)
		d.cmd("QUIT", `221 2\.0\.0 Bye`)
	})

	t.Run("AUTH PLAIN", func(t *testing.T) {
		d := start(t)
		d.cmd("AUTH PLAIN "+seedPlain, authOKRE)
		tok := token(t)
		id := relay(t, d, tok, seedRemote, seedAccount)
		msg := tn.WaitMessage(seedAccount, tok, 10*time.Second)
		mustMatch(t, "Received", header(msg, "Received"),
			`^Received: from trogdor \(\[127\.0\.0\.1\]\)\n\tby mx\.example\.test \(tern\) with ESMTPA id `+id+`;`)
		waitRelayQueued(t, tn, id, seedRemote)
	})

	// PLAIN without an initial response: the client sends it after an empty 334.
	t.Run("AUTH PLAIN after 334", func(t *testing.T) {
		d := start(t)
		d.cmd("AUTH PLAIN", `334 `)
		d.cmd(seedPlain, authOKRE)
	})

	t.Run("AUTH PLAIN, wrong password", func(t *testing.T) {
		d := start(t)
		d.cmd("AUTH PLAIN "+plainIR(seedUser, seedWrong), authFailedRE)
		d.cmd("MAIL FROM:<"+seedAccount+">", `530 5\.7\.0 Authentication required`)
		d.cmd("QUIT", `221 2\.0\.0 Bye`)
	})
}

// TestAuthPolicy checks what AUTH changes, through the real binary: relaying, the sender
// address, submission's demand for AUTH, and the replies to every misuse of the command.
func TestAuthPolicy(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{})
	tn.AddUser("bob@example.test", "pw-bob")
	tn.AddUser("alice@example.test", "pw-alice")

	t.Run("unauthenticated relaying refused", func(t *testing.T) {
		d := ehlod(t, tn.SMTP, false)
		d.cmd("MAIL FROM:<someone@host.example.com>", `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<friend@remote.test>", `554 5\.7\.1 <friend@remote\.test>: Relay access denied`)
		d.cmd("RCPT TO:<bob@example.test>", `250 2\.1\.5 Ok`) // local mail is still taken
		// The same after STARTTLS: TLS alone is no permission to relay.
		d.cmd("RSET", `250 2\.0\.0 Ok`)
		d.startTLS()
		d.ehlo("client.example.com")
		d.cmd("MAIL FROM:<someone@host.example.com>", `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<friend@remote.test>", `554 5\.7\.1 <friend@remote\.test>: Relay access denied`)
	})

	t.Run("authenticated relaying accepted", func(t *testing.T) {
		for _, tc := range []struct {
			name, addr string
			tlsOn      bool
		}{
			{"MX listener", tn.SMTP, false},
			{"submission with STARTTLS", tn.Submission, true},
			{"submissions", tn.Submissions, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d := ehlod(t, tc.addr, tc.addr == tn.Submissions)
				if tc.addr == tn.Submission {
					d.startTLS()
					d.ehlo("client.example.com")
				}
				d.authPlain("bob@example.test", "pw-bob")
				id := queueID(t, d.sendMessage("bob@example.test", "friend@remote.test", "Subject: relayed\r\n\r\nhi\r\n"))
				d.cmd("QUIT", `221 2\.0\.0 Bye`)
				entry := waitRelayQueued(t, tn, id, "friend@remote.test")
				mustMatch(t, "queue entry", entry, `^`+id+` +\d+ .* bob@example\.test\n`)
			})
		}
	})

	t.Run("sender must be owned", func(t *testing.T) {
		d := ehlod(t, tn.Submission, false)
		d.authPlain("bob@example.test", "pw-bob")
		d.cmd("MAIL FROM:<alice@example.test>", `553 5\.7\.1 <alice@example\.test>: Sender address rejected: not owned by user bob@example\.test`)
		d.cmd("MAIL FROM:<bob@remote.test>", `553 5\.7\.1 <bob@remote\.test>: Sender address rejected: not owned by user bob@example\.test`)
		d.cmd("MAIL FROM:<bobby@example.test>", `553 5\.7\.1 <bobby@example\.test>: Sender address rejected: not owned by user bob@example\.test`)
		for _, own := range []string{"bob@example.test", "Bob@Example.TEST", "bob+lists@example.test", ""} {
			d.cmd("MAIL FROM:<"+own+">", `250 2\.1\.0 Ok`)
			d.cmd("RSET", `250 2\.0\.0 Ok`)
		}
		// And on the MX listener: authenticated is authenticated.
		m := ehlod(t, tn.SMTP, false)
		m.authPlain("alice@example.test", "pw-alice")
		m.cmd("MAIL FROM:<bob@example.test>", `553 5\.7\.1 <bob@example\.test>: Sender address rejected: not owned by user alice@example\.test`)
		m.cmd("MAIL FROM:<alice@example.test>", `250 2\.1\.0 Ok`)
	})

	t.Run("submission requires AUTH", func(t *testing.T) {
		d := ehlod(t, tn.Submission, false)
		d.cmd("MAIL FROM:<bob@example.test>", `530 5\.7\.0 Authentication required`)
		d.startTLS()
		d.ehlo("client.example.com")
		d.cmd("MAIL FROM:<bob@example.test>", `530 5\.7\.0 Authentication required`)
		s := ehlod(t, tn.Submissions, true)
		s.cmd("MAIL FROM:<bob@example.test>", `530 5\.7\.0 Authentication required`)
		s.cmd("MAIL FROM:<>", `530 5\.7\.0 Authentication required`)
		// The MX listener takes mail for local accounts without AUTH.
		ehlod(t, tn.SMTP, false).sendMessage("someone@host.example.com", "bob@example.test", "Subject: no auth on 25\r\n\r\nhi\r\n")
	})

	t.Run("login without domain", func(t *testing.T) {
		d := ehlod(t, tn.Submission, false)
		d.authPlain("bob", "pw-bob") // taken in the first --domain
		d.cmd("MAIL FROM:<bob@example.test>", `250 2\.1\.0 Ok`)
		d = ehlod(t, tn.Submission, false)
		d.authPlain("BOB@EXAMPLE.TEST", "pw-bob")
		d.cmd("MAIL FROM:<bob@example.test>", `250 2\.1\.0 Ok`)
	})

	t.Run("command errors", func(t *testing.T) {
		d := greeted(t, tn.Submission, false)
		d.cmd("AUTH PLAIN "+plainIR("bob@example.test", "pw-bob"), `503 5\.5\.1 Error: send HELO/EHLO first`)
		d.ehlo("client.example.com")
		d.cmd("AUTH", `501 5\.5\.4 Syntax: AUTH mechanism \[initial-response\]`)
		d.cmd("AUTH X-UNKNOWN", `504 5\.5\.4 Unrecognized authentication type`)
		d.cmd("AUTH CRAM-MD5", `504 5\.5\.4 Unrecognized authentication type`)           // not enabled by default
		d.cmd("AUTH SCRAM-SHA-256-PLUS", `504 5\.5\.4 Unrecognized authentication type`) // no TLS, no channel binding
		d.cmd("AUTH PLAIN not*base64", `501 5\.5\.2 Error: invalid base64 data`)         // bad initial response
		d.cmd("AUTH PLAIN", `334 `)
		d.cmd("*", `501 5\.7\.0 Error: authentication cancelled`)
		d.cmd("AUTH LOGIN", `334 VXNlcm5hbWU6`)
		d.cmd(b64("bob@example.test"), `334 UGFzc3dvcmQ6`)
		d.cmd("*", `501 5\.7\.0 Error: authentication cancelled`)
		d.cmd("AUTH LOGIN", `334 VXNlcm5hbWU6`)
		d.cmd("%%%", `501 5\.5\.2 Error: invalid base64 data`)
		// An authorization identity other than the login is refused (auth.allow_authzid).
		d.cmd("AUTH PLAIN "+b64("alice@example.test\x00bob@example.test\x00pw-bob"), authFailedRE)
		d.cmd("AUTH plain "+b64("bob@example.test\x00bob@example.test\x00pw-bob"), authOKRE) // case-insensitive
		d.cmd("AUTH PLAIN "+plainIR("alice@example.test", "pw-alice"), `503 5\.5\.1 Error: already authenticated`)
		d.cmd("MAIL FROM:<bob@example.test>", `250 2\.1\.0 Ok`)

		// AUTH inside a transaction (MX listener, unauthenticated sender).
		m := ehlod(t, tn.SMTP, false)
		m.cmd("MAIL FROM:<someone@host.example.com>", `250 2\.1\.0 Ok`)
		m.cmd("AUTH PLAIN "+plainIR("bob@example.test", "pw-bob"), `503 5\.5\.1 Error: MAIL transaction in progress`)
		m.cmd("RSET", `250 2\.0\.0 Ok`)
		m.authPlain("bob@example.test", "pw-bob")
	})

	// SCRAM's downgrade protection (RFC 5802 §6): a client that supports channel binding but
	// saw no -PLUS offer says so with the gs2 flag "y"; over TLS tern offers -PLUS, so "y" means
	// someone removed the offer, and the exchange fails. Without TLS nothing was offered, and "y"
	// is fine. Channel binding is tls-exporter (RFC 9266), not tls-unique (undefined in TLS 1.3).
	t.Run("SCRAM channel binding", func(t *testing.T) {
		clientFirst := func(gs2 string) string { return b64(gs2 + "n=bob,r=fyko+d2lbbFgONRv9qkxdawL") }
		d := ehlod(t, tn.Submissions, true)
		d.cmd("AUTH SCRAM-SHA-256 "+clientFirst("y,,"), authFailedRE)
		d.cmd("AUTH SCRAM-SHA-256-PLUS "+clientFirst("p=tls-unique,,"), authFailedRE)
		d.cmd("AUTH SCRAM-SHA-256 "+clientFirst("n,,"), `334 \S+`)
		d.cmd("*", `501 5\.7\.0 Error: authentication cancelled`)
		c := ehlod(t, tn.Submission, false)
		c.cmd("AUTH SCRAM-SHA-1 "+clientFirst("y,,"), `334 \S+`)
		c.cmd("*", `501 5\.7\.0 Error: authentication cancelled`)
		syncLog(t, tn)
		mustMatch(t, "log", tn.Log(), `msg="auth failed" .*mech=SCRAM-SHA-256 .*reason=".*downgrade`)
	})

	checkLogClean(t, tn, append(passwordForms("bob@example.test", "pw-bob"), passwordForms("alice@example.test", "pw-alice")...)...)
}

// TestAuthCleartext turns auth.loopback_is_secure off: then AUTH is neither offered nor taken
// without TLS (538 5.7.11), and works as usual after STARTTLS and on the implicit-TLS port.
func TestAuthCleartext(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{Config: "[auth]\nloopback_is_secure = false\n"})
	tn.AddUser("bob@example.test", "pw-bob")
	for _, tc := range []struct{ name, addr string }{{"smtp", tn.SMTP}, {"submission", tn.Submission}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := greeted(t, tc.addr, false)
			sameList(t, "EHLO in clear text", d.ehlo("client.example.com"), ehloKeywordsFor(false, ""))
			d.cmd("AUTH PLAIN "+plainIR("bob@example.test", "pw-bob"), `538 5\.7\.11 Encryption required for requested authentication mechanism`)
			d.cmd("AUTH LOGIN", `538 5\.7\.11 Encryption required for requested authentication mechanism`)
			if tc.addr == tn.Submission {
				d.cmd("MAIL FROM:<bob@example.test>", `530 5\.7\.0 Authentication required`)
			}
			d.startTLS()
			sameList(t, "EHLO after STARTTLS", d.ehlo("client.example.com"), ehloKeywordsFor(true, defaultMechs))
			d.authPlain("bob@example.test", "pw-bob")
			tok := token(t)
			id := queueID(t, d.sendMessage("bob@example.test", "bob@example.test", "Subject: "+tok+"\r\n\r\nafter STARTTLS\r\n"))
			msg := tn.WaitMessage("bob@example.test", tok, 10*time.Second)
			mustMatch(t, "Received", header(msg, "Received"), `\tby mx\.example\.test \(tern\) with ESMTPSA id `+id+`\n`)
		})
	}
	t.Run("submissions", func(t *testing.T) {
		t.Parallel()
		d := greeted(t, tn.Submissions, true)
		sameList(t, "EHLO on implicit TLS", d.ehlo("client.example.com"), ehloKeywordsFor(true, defaultMechs))
		d.authPlain("bob@example.test", "pw-bob")
	})
}

// dialFrom connects to addr from the local address ip (another loopback address stands for
// another client).
func dialFrom(t testing.TB, ip, addr string) *dialog {
	t.Helper()
	dl := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := dl.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return &dialog{t: t, conn: c, r: bufio.NewReader(c)}
}

// TestAuthLimits checks the failed-AUTH limiter through the binary, with auth.max_failures = 3.
// A guesser at 127.0.0.2 tries bob's password under three spellings of his login: its third
// failure gets 535 and then 421 4.7.0, and from then on it is refused at AUTH whatever it tries,
// the right password included. Meanwhile bob logs in from 127.0.0.1 with Python's smtplib and
// sends a message: the guessing locks out the guesser, not bob. Guessing carol's password from
// two clients puts her account under attack: those two are refused even with the right password
// (535, as if it were wrong), while swaks logs in as carol from 127.0.0.1. The log names client
// and login for each failure and has one line per block start, with the keys fail2ban matches,
// and never a password or the base64 that carried it.
func TestAuthLimits(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{Config: "[auth]\nmax_failures = 3\nblock_time = \"1h\"\n"})
	tn.AddUser("bob@example.test", "pw-bob")
	tn.AddUser("carol@example.test", "pw-carol")
	wrong := []string{"guess-1-Sesame", "guess-2-Letmein", "guess-3-Hunter2"}

	g := dialFrom(t, "127.0.0.2", tn.Submission)
	g.expect(`220 mx\.example\.test ESMTP tern`)
	g.ehlo("guesser.example.com")
	g.cmd("AUTH PLAIN "+plainIR("bob", wrong[0]), authFailedRE)
	g.cmd("AUTH LOGIN", `334 VXNlcm5hbWU6`)
	g.cmd(b64("BOB"), `334 UGFzc3dvcmQ6`)
	g.cmd(b64(wrong[1]), authFailedRE)
	g.send("AUTH PLAIN " + plainIR("bob@example.test", wrong[2]))
	g.expect(authFailedRE)
	g.expect(`421 4\.7\.0 Error: too many failed authentications, try again later`)
	g.expectClosed()

	t.Run("meanwhile", func(t *testing.T) {
		t.Run("the guesser keeps trying", func(t *testing.T) {
			t.Parallel()
			for i := range 20 {
				pw := "pw-bob" // the right one, even
				if i%2 == 1 {
					pw = "guess-" + strconv.Itoa(i)
				}
				g := dialFrom(t, "127.0.0.2", tn.Submission)
				g.expect(`220 .*`)
				g.ehlo("guesser.example.com")
				g.cmd("AUTH PLAIN "+plainIR("bob@example.test", pw), `421 4\.7\.0 Error: too many failed authentications, try again later`)
				g.expectClosed()
			}
		})
		t.Run("bob logs in with smtplib from his own address", func(t *testing.T) {
			t.Parallel()
			tok := token(t)
			tok = "tok-" + tok[strings.LastIndexByte(tok, '-')+1:] // short: a long line would go quoted-printable
			out, _ := smtplibRun(t, "plain", tn.Submission,
				step("ehlo"),
				step("login", "PLAIN", "bob", "pw-bob"),
				step("send_message", map[string]string{"from": "bob@example.test", "to": "bob@example.test", "subject": "sent while someone guesses", "body": tok + "\n"}),
				step("quit"))
			mustMatch(t, "smtplib", out, `^LOGIN 235 2\.7\.0 Authentication successful$`)
			mustMatch(t, "smtplib", out, `^SEND_MESSAGE 0 refused=\{\}$`)
			tn.WaitMessage("bob@example.test", tok, 10*time.Second)
		})
	})

	// carol guessed at from 127.0.0.3 (twice) and 127.0.0.4 (once): her account is under
	// attack, and neither client gets in with her right password; swaks from 127.0.0.1 does.
	c3 := dialFrom(t, "127.0.0.3", tn.Submission)
	c3.expect(`220 .*`)
	c3.ehlo("guesser3.example.com")
	c3.cmd("AUTH PLAIN "+plainIR("carol", wrong[0]), authFailedRE)
	c3.cmd("AUTH PLAIN "+plainIR("Carol@Example.Test", wrong[1]), authFailedRE)
	c4 := dialFrom(t, "127.0.0.4", tn.Submission)
	c4.expect(`220 .*`)
	c4.ehlo("guesser4.example.com")
	c4.cmd("AUTH PLAIN "+plainIR("carol", wrong[2]), authFailedRE)
	c4.cmd("AUTH PLAIN "+plainIR("carol", "pw-carol"), authFailedRE)
	c3.send("AUTH PLAIN " + plainIR("carol", "pw-carol"))
	c3.expect(authFailedRE)
	c3.expect(`421 4\.7\.0 .*`) // its third failure
	c3.expectClosed()
	swaks := needTool(t, "swaks")
	host, port := splitAddr(t, tn.Submission)
	tok := token(t)
	out, errOut, code := runTool(t, 60*time.Second, "", swaks, "--server", host, "--port", port,
		"--helo", "client.example.com", "--from", "carol@example.test", "--to", "carol@example.test",
		"--header", "Subject: swaks "+tok, "--auth", "PLAIN", "--auth-user", "carol", "--auth-password", "pw-carol")
	if code != 0 {
		t.Fatalf("swaks as carol from 127.0.0.1: exit status %d", code)
	}
	mustMatch(t, "swaks transcript", out+errOut, `^<[-~]  `+authOKRE+`$`)
	tn.WaitMessage("carol@example.test", tok, 10*time.Second)

	log := tn.Log()
	fails := regexp.MustCompile(`(?m)^.*level=WARN msg="auth failed" .*remote=127\.0\.0\.2 .*mech=(PLAIN|LOGIN) user=(bob|BOB|bob@example\.test) .*$`).FindAllString(log, -1)
	if len(fails) != 3 {
		t.Errorf("%d \"auth failed\" log lines naming bob and 127.0.0.2, want 3:\n%s", len(fails), strings.Join(fails, "\n"))
	}
	for _, re := range []string{
		`level=WARN msg="auth block started" kind=account user=bob@example\.test remote=127\.0\.0\.2 failures=3 until=\S+$`,
		`level=WARN msg="auth block started" kind=client remote=127\.0\.0\.2 client=127\.0\.0\.2 failures=3 until=\S+$`,
		`level=WARN msg="auth refused: client blocked" .*remote=127\.0\.0\.2 `,
		`level=INFO msg=auth .*remote=127\.0\.0\.1 .*user=bob@example\.test$`,
		`level=WARN msg="auth block started" kind=account user=carol@example\.test remote=127\.0\.0\.4 failures=3 `,
		`level=WARN msg="auth failed" .*remote=127\.0\.0\.4 .*user=carol@example\.test reason=".*right credentials refused: the account is under attack and this client failed for it"`,
		`level=WARN msg="auth block started" kind=client remote=127\.0\.0\.3 client=127\.0\.0\.3 failures=3 `,
		`level=INFO msg=auth .*remote=127\.0\.0\.1 .*user=carol@example\.test$`,
	} {
		mustMatch(t, "log", log, re)
	}
	var secrets []string
	for _, w := range append(wrong, "pw-bob") {
		secrets = append(secrets, passwordForms("bob@example.test", w)...)
	}
	checkLogClean(t, tn, append(secrets, passwordForms("carol", "pw-carol")...)...)
}

// cramAuth runs CRAM-MD5 or CRAM-SHA1 (RFC 2195) in a dialogue, computing the response here,
// and expects want.
func cramAuth(t testing.TB, d *dialog, mech, user, password, want string) {
	t.Helper()
	h := md5.New
	if mech == "CRAM-SHA1" {
		h = sha1.New
	}
	line := d.cmd("AUTH "+mech, `334 \S+`)
	challenge, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, "334 "))
	if err != nil {
		t.Fatalf("%s challenge %q: %v", mech, line, err)
	}
	mustMatch(t, mech+" challenge", string(challenge), `^<\d+\.\d+@mx\.example\.test>$`)
	d.cmd(b64(user+" "+hmacHex(h, password, challenge)), want)
}

func hmacHex(h func() hash.Hash, key string, msg []byte) string {
	m := hmac.New(h, []byte(key))
	m.Write(msg)
	return hex.EncodeToString(m.Sum(nil))
}

// utf16le is s in UTF-16LE, the form NTLM hashes.
func utf16le(s string, bigEndian bool) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		if bigEndian {
			b = append(b, byte(u>>8), byte(u))
		} else {
			b = append(b, byte(u), byte(u>>8))
		}
	}
	return b
}

// TestAuthSecretsAtRest checks what `tern user add --auth-mechanisms all` leaves in the account
// store: no password in any form a client sends it in (plain, base64, UTF-16), in the database
// or its WAL and shared-memory files; and that a mechanism whose secret was not stored at
// `user add` time fails for that user (535) until `tern user passwd` stores it.
func TestAuthSecretsAtRest(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{ServeArgs: []string{"--auth-mechanisms", "all"}})
	const (
		pwVault = "Vault-Passphrase-7731-Zebra"
		pwLater = "Later-Passphrase-2209-Okapi"
		pwNew   = "Renewed-Passphrase-5150-Ibex"
	)
	out := tn.AddUserArgs("vault@example.test", pwVault, "--auth-mechanisms", "all")
	mustMatch(t, "user add", out, `^added vault@example\.test \(secrets for `+regexp.QuoteMeta(allMechs)+`\)$`)
	out = tn.AddUserArgs("later@example.test", pwLater)
	mustMatch(t, "user add", out, `^added later@example\.test \(secrets for `+regexp.QuoteMeta(defaultMechs)+`\)$`)

	scan := func(when string) {
		files, err := filepath.Glob(filepath.Join(tn.Data, "accounts.db*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no accounts.db in %s: %v", tn.Data, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, pw := range []string{pwVault, pwLater, pwNew} {
				forms := map[string][]byte{
					"plaintext":           []byte(pw),
					"base64":              []byte(b64(pw)),
					"base64 without pad":  []byte(base64.RawStdEncoding.EncodeToString([]byte(pw))),
					"UTF-16LE":            utf16le(pw, false),
					"UTF-16BE":            utf16le(pw, true),
					"hex":                 []byte(hex.EncodeToString([]byte(pw))),
					"base64 of UTF-16LE":  []byte(base64.StdEncoding.EncodeToString(utf16le(pw, false))),
					"PLAIN message":       []byte("\x00vault@example.test\x00" + pw),
					"PLAIN message (b64)": []byte(plainIR("vault@example.test", pw)),
				}
				for name, form := range forms {
					if bytes.Contains(b, form) {
						t.Errorf("%s: %s holds the password %q as %s", when, filepath.Base(f), pw, name)
					}
				}
			}
		}
	}

	// vault has a secret for every mechanism; later only for the default ones.
	d := ehlod(t, tn.Submission, false)
	cramAuth(t, d, "CRAM-MD5", "vault@example.test", pwVault, authOKRE)
	d = ehlod(t, tn.Submission, false)
	cramAuth(t, d, "CRAM-SHA1", "vault", pwVault, authOKRE)
	d = ehlod(t, tn.Submission, false)
	cramAuth(t, d, "CRAM-MD5", "later@example.test", pwLater, authFailedRE)
	cramAuth(t, d, "CRAM-SHA1", "later@example.test", pwLater, authFailedRE)
	d.authPlain("later@example.test", pwLater) // what was stored works
	// The client is told only 535; the log says why, and what to run.
	waitFor(t, 10*time.Second, "the log to say what stores the missing secret", func() bool {
		return strings.Contains(tn.Log(), "no cram-md5 secret for later@example.test (its password was set before the mechanism was configured: tern user passwd later@example.test stores one)")
	})

	// passwd with every mechanism stores the missing secrets (for the new password).
	o, e, c := tn.ternCmd(pwNew+"\n", []string{"user", "passwd"}, "--auth-mechanisms", "all", "--password-stdin", "later@example.test")
	if c != 0 {
		t.Fatalf("tern user passwd: status %d\nstdout: %s\nstderr: %s", c, o, e)
	}
	mustMatch(t, "user passwd", o, `^password changed for later@example\.test \(secrets for `+regexp.QuoteMeta(allMechs)+`\)$`)
	d = ehlod(t, tn.Submission, false)
	cramAuth(t, d, "CRAM-MD5", "later@example.test", pwLater, authFailedRE) // the old password is gone
	cramAuth(t, d, "CRAM-MD5", "later@example.test", pwNew, authOKRE)
	d = ehlod(t, tn.Submission, false)
	cramAuth(t, d, "CRAM-SHA1", "later", pwNew, authOKRE)

	scan("while serving")
	tn.Stop()
	scan("after stopping")
	checkLogClean(t, tn, append(append(passwordForms("vault@example.test", pwVault), passwordForms("later@example.test", pwLater)...), passwordForms("later@example.test", pwNew)...)...)
}

// TestAuthMechanismsSetting checks the one setting that says which mechanisms are offered and
// whose secrets `tern user add` stores: auth.mechanisms in the config file (read by serve and by
// user add alike) and --auth-mechanisms with a list, kept in the order given.
func TestAuthMechanismsSetting(t *testing.T) {
	t.Parallel()

	t.Run("all, from the config file", func(t *testing.T) {
		t.Parallel()
		tn := startTern(t, ternOpts{Config: "[auth]\nmechanisms = [\"all\"]\n"})
		// No flag: the file says all. (user add prints the list as the file spells it, here
		// "all", where --auth-mechanisms all prints it expanded; what counts is what it stored,
		// checked below with a legacy mechanism.)
		out := tn.AddUserArgs("bob@example.test", "pw-bob")
		mustMatch(t, "user add", out, `^added bob@example\.test \(secrets for `)
		d := ehlod(t, tn.Submission, false)
		sameList(t, "EHLO in clear text", d.ehlo("client.example.com"), ehloKeywordsFor(false, allMechs))
		d.startTLS()
		sameList(t, "EHLO under TLS", d.ehlo("client.example.com"), ehloKeywordsFor(true, allMechs))
		cramAuth(t, d, "CRAM-MD5", "bob", "pw-bob", authOKRE)
		d = ehlod(t, tn.Submission, false)
		cramAuth(t, d, "CRAM-SHA1", "bob", "pw-bob", authOKRE)
	})

	t.Run("a list on the command line", func(t *testing.T) {
		t.Parallel()
		tn := startTern(t, ternOpts{ServeArgs: []string{"--auth-mechanisms", "CRAM-SHA1,plain"}})
		out := tn.AddUserArgs("bob@example.test", "pw-bob", "--auth-mechanisms", "CRAM-SHA1,plain")
		mustMatch(t, "user add", out, `^added bob@example\.test \(secrets for CRAM-SHA1 PLAIN\)$`)
		d := ehlod(t, tn.Submissions, true)
		sameList(t, "EHLO", d.ehlo("client.example.com"), ehloKeywordsFor(true, "CRAM-SHA1 PLAIN"))
		for _, off := range []string{"LOGIN", "CRAM-MD5", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "DIGEST-MD5", "NTLM"} {
			d.cmd("AUTH "+off, `504 5\.5\.4 Unrecognized authentication type`)
		}
		cramAuth(t, d, "CRAM-SHA1", "bob@example.test", "pw-bob", authOKRE)

		_, errOut, code := runTool(t, 30*time.Second, "", ternBin, "serve", "--data", t.TempDir(), "--auth-mechanisms", "PLAIN,X-FOO")
		if code != 2 {
			t.Fatalf("serve with an unknown mechanism: exit status %d, want 2 (usage)", code)
		}
		mustMatch(t, "stderr", errOut, `unknown SASL mechanism "X-FOO"`)
	})
}
