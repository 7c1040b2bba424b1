package test

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// tern send, the built binary, against a real tern (every AUTH mechanism, STARTTLS, implicit
// TLS with certificate verification, --quit-after, PIPELINING, --data) and against a
// throwaway Postfix on loopback (plain delivery, PIPELINING, STARTTLS, and with Cyrus SASL every
// mechanism Cyrus has). As with the other clients, tern send's exit status alone proves
// nothing: the transcript's replies and the message in the Maildir do.

// sendQueuedRE finds the queued-as reply in a tern send transcript ("<-", or "<~" under TLS).
const sendQueuedRE = `^<[-~]  250 2\.0\.0 Ok: queued as ([0-9A-F]{10,})$`

// ternSend runs `tern send args...` with stdin and returns its transcript (stdout and stderr)
// and exit status.
func ternSend(t testing.TB, stdin string, args ...string) (string, int) {
	t.Helper()
	out, errOut, code := runTool(t, 60*time.Second, stdin, ternBin, append([]string{"send"}, args...)...)
	return out + errOut, code
}

// wantStatus fails unless tern send exited with want.
func wantStatus(t testing.TB, code, want int, transcript string) {
	t.Helper()
	if code != want {
		t.Fatalf("tern send exit status %d, want %d:\n%s", code, want, transcript)
	}
}

// checkNoPassword fails if the transcript holds the password in any form a client sends it in.
func checkNoPassword(t testing.TB, transcript, user, pw string) {
	t.Helper()
	for _, f := range passwordForms(user, pw) {
		if strings.Contains(transcript, f) {
			t.Fatalf("the transcript holds the secret %q:\n%s", f, transcript)
		}
	}
}

// Every mechanism against tern, over implicit TLS with tern's own certificate as --ca (so the
// certificate is verified), right password and wrong: the 235 and the ESMTPSA message in the
// Maildir, or the 535, exit status 5 and the failure in the server's log.
func TestSendAuthMechanisms(t *testing.T) {
	t.Parallel()
	tn := startAuthTern(t)
	ca := filepath.Join(tn.Data, "tls", "cert.pem")
	run := func(t *testing.T, mech, password string) (tok, out string, code int) {
		tok = token(t)
		out, code = ternSend(t, password+"\n", "--server", tn.Submissions, "--tls", "--ca", ca,
			"--ehlo", "client.example.com", "--from", seedAccount, "--to", seedAccount,
			"--header", "Subject: tern send "+tok, "--auth", mech, "--user", seedUser, "--password-stdin")
		return tok, out, code
	}
	for _, mech := range []string{"PLAIN", "LOGIN", "CRAM-MD5", "CRAM-SHA1", "DIGEST-MD5", "SCRAM-SHA-1",
		"SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "NTLM"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			t.Run("right password", func(t *testing.T) {
				tok, out, code := run(t, mech, seedPassword)
				wantStatus(t, code, 0, out)
				mustMatch(t, "transcript", out, `^\*\*\* TLS certificate: CN=mx\.example\.test, issued by CN=mx\.example\.test, verified with --ca `)
				mustMatch(t, "transcript", out, `^ ~> AUTH `+regexp.QuoteMeta(mech)+`( \S+)?$`)
				mustMatch(t, "transcript", out, `^ ## `)
				mustMatch(t, "transcript", out, `^<~  `+authOKRE+`$`)
				checkNoPassword(t, out, seedUser, seedPassword)
				checkDelivered(t, tn, tok, mustMatch(t, "transcript", out, sendQueuedRE)[1])
			})
			t.Run("wrong password", func(t *testing.T) {
				_, out, code := run(t, mech, seedWrong)
				wantStatus(t, code, 5, out)
				mustMatch(t, "transcript", out, `^<~  `+authFailedRE+`$`)
				mustMatch(t, "transcript", out, `^\*\*\* AUTH failed: `+authFailedRE+`$`)
				mustNotMatch(t, "transcript", out, `MAIL FROM|queued as`)
				checkNoPassword(t, out, seedUser, seedWrong)
				waitFailureLogged(t, tn, mech)
			})
		})
	}
}

// --starttls on submission with --auth and no mechanism: tern send picks SCRAM-SHA-256-PLUS,
// the best tern offers after STARTTLS, and the message arrives.
func TestSendStartTLS(t *testing.T) {
	t.Parallel()
	tn := startAuthTern(t)
	tok := token(t)
	out, code := ternSend(t, seedPassword+"\n", "--server", tn.Submission, "--starttls",
		"--ca", filepath.Join(tn.Data, "tls", "cert.pem"), "--ehlo", "client.example.com",
		"--from", seedAccount, "--to", seedAccount, "--header", "Subject: "+tok, "--user", seedUser, "--auth")
	wantStatus(t, code, 0, out)
	mustMatch(t, "transcript", out, `^ -> STARTTLS\n<-  220 2\.0\.0 Ready to start TLS\n\*\*\* TLS started: TLSv1\.3 with cipher `)
	mustMatch(t, "transcript", out, `^\*\*\* AUTH SCRAM-SHA-256-PLUS: the best of what the server offers \(`+regexp.QuoteMeta(allMechs)+`\)$`)
	mustMatch(t, "transcript", out, `^ ~> AUTH SCRAM-SHA-256-PLUS \S+\n ## p=tls-exporter,,n=kenneth\.burgener,r=`)
	checkDelivered(t, tn, tok, mustMatch(t, "transcript", out, sendQueuedRE)[1])
}

// The server's certificate is verified by default: tern's self-signed one fails without --ca
// (exit 3, nothing sent after the handshake) and passes with --insecure.
func TestSendTLSVerification(t *testing.T) {
	t.Parallel()
	tn := startAuthTern(t)
	t.Run("untrusted", func(t *testing.T) {
		t.Parallel()
		out, code := ternSend(t, seedPassword+"\n", "--server", tn.Submissions, "--tls",
			"--from", seedAccount, "--to", seedAccount, "--auth", "PLAIN", "--user", seedUser, "--password-stdin")
		wantStatus(t, code, 3, out)
		mustMatch(t, "transcript", out, `^\*\*\* Connection failed: tls: failed to verify certificate: x509: certificate signed by unknown authority \(--ca FILE trusts a certificate, --insecure skips the check\)$`)
		mustNotMatch(t, "transcript", out, `AUTH|EHLO`)
	})
	t.Run("insecure", func(t *testing.T) {
		t.Parallel()
		tok := token(t)
		out, code := ternSend(t, seedPassword+"\n", "--server", tn.Submissions, "--tls", "--insecure",
			"--from", seedAccount, "--to", seedAccount, "--header", "Subject: "+tok,
			"--auth", "PLAIN", "--user", seedUser, "--password-stdin")
		wantStatus(t, code, 0, out)
		mustMatch(t, "transcript", out, `^\*\*\* TLS certificate: CN=mx\.example\.test, issued by CN=mx\.example\.test, not verified \(--insecure\)$`)
		mustMatch(t, "transcript", out, `^ ~> AUTH PLAIN \*{8}\n ## \\0kenneth\.burgener\\0\*{8}$`)
		checkNoPassword(t, out, seedUser, seedPassword)
		tn.WaitMessage(seedAccount, tok, 10*time.Second)
	})
	t.Run("show secrets", func(t *testing.T) {
		t.Parallel()
		out, code := ternSend(t, seedPassword+"\n", "--server", tn.Submissions, "--tls", "--insecure",
			"--from", seedAccount, "--to", seedAccount, "--auth", "LOGIN", "--user", seedUser, "--show-secrets",
			"--quit-after", "auth")
		wantStatus(t, code, 0, out)
		mustMatch(t, "transcript", out, `^ ~> `+regexp.QuoteMeta(seedLoginPass)+`\n ## Password: `+regexp.QuoteMeta(seedPassword)+`$`)
	})
}

// Each --quit-after stage ends the session right there with QUIT and status 0; nothing is
// delivered.
func TestSendQuitAfter(t *testing.T) {
	t.Parallel()
	tn := startAuthTern(t)
	ca := filepath.Join(tn.Data, "tls", "cert.pem")
	// The stages run in parallel once this function has returned; the cleanup runs after them
	// all (and before the server's, registered earlier, stops it).
	t.Cleanup(func() { tn.ExpectNoMail(seedAccount, 0) })
	for _, tc := range []struct {
		stage, last string // the last line sent before QUIT
	}{
		{"connect", ""},
		{"ehlo", ` -> EHLO client\.example\.com`},
		{"tls", ` ~> EHLO client\.example\.com`},
		{"auth", ` ~> \*{8}\n ## Password: \*{8}`},
		{"mail", " ~> MAIL FROM:<kenneth\\.burgener@example\\.test> SIZE=\\d+"},
		{"rcpt", " ~> RCPT TO:<kenneth\\.burgener@example\\.test>"},
	} {
		t.Run(tc.stage, func(t *testing.T) {
			t.Parallel()
			out, code := ternSend(t, seedPassword+"\n", "--server", tn.Submission, "--starttls", "--ca", ca,
				"--ehlo", "client.example.com", "--from", seedAccount, "--to", seedAccount,
				"--auth", "LOGIN", "--user", seedUser, "--quit-after", tc.stage)
			wantStatus(t, code, 0, out)
			if tc.stage == "connect" {
				mustMatch(t, "transcript", out, `\A\*\*\* Trying \S+\.\.\.\n<-  220 mx\.example\.test ESMTP tern\n -> QUIT\n<-  221 2\.0\.0 Bye\n\z`)
				return
			}
			mustMatch(t, "transcript", out, `^`+tc.last+`\n(<[-~]  .*\n)+ [-~]> QUIT\n<[-~]  221 2\.0\.0 Bye\n\z`)
		})
	}
}

// --pipeline on the MX listener: MAIL, the RCPTs and DATA in one go, the replies after them in
// order; the unknown recipient is refused (exit 5) and the others get the message.
func TestSendPipeline(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{})
	tn.AddUsers("pw", "bob@example.test", "carol@example.test")
	tok := token(t)
	out, code := ternSend(t, "", "--server", tn.SMTP, "--ehlo", "client.example.com", "--from", "alice@geek.com",
		"--to", "bob@example.test", "--to", "nobody@example.test,carol@example.test", "--header", "Subject: "+tok, "--pipeline")
	wantStatus(t, code, 5, out)
	mustMatch(t, "transcript", out, `^ -> MAIL FROM:<alice@geek\.com> SIZE=\d+\n -> RCPT TO:<bob@example\.test>\n`+
		` -> RCPT TO:<nobody@example\.test>\n -> RCPT TO:<carol@example\.test>\n -> DATA\n`+
		`<-  250 2\.1\.0 Ok\n<-  250 2\.1\.5 Ok\n<-  550 5\.1\.1 .*\n<-  250 2\.1\.5 Ok\n<-  354 `)
	mustMatch(t, "transcript", out, `^\*\*\* RCPT TO:<nobody@example\.test> refused: 550 5\.1\.1 `)
	mustMatch(t, "transcript", out, sendQueuedRE)
	tn.WaitMessage("bob@example.test", tok, 10*time.Second)
	tn.WaitMessage("carol@example.test", tok, 10*time.Second)

	// Without --pipeline, each command waits for its reply although the server offers it.
	out, code = ternSend(t, "", "--server", tn.SMTP, "--from", "alice@geek.com", "--to", "bob@example.test")
	wantStatus(t, code, 0, out)
	mustMatch(t, "transcript", out, `^ -> MAIL FROM:<alice@geek\.com> SIZE=\d+\n<-  250 2\.1\.0 Ok\n -> RCPT TO:<bob@example\.test>\n<-  250 2\.1\.5 Ok\n -> DATA\n`)
}

// --data with bare LFs, leading dots and no final line end arrives intact; --data - reads the
// message after the password's line on standard input.
func TestSendData(t *testing.T) {
	t.Parallel()
	tn := startAuthTern(t)
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		tok := token(t)
		file := writeFile(t, "message.txt", "Subject: "+tok+"\nFrom: alice@geek.com\n\n.leading dot\n..two dots\n.\nlast line")
		out, code := ternSend(t, "", "--server", tn.SMTP, "--from", "alice@geek.com", "--to", seedAccount, "--data", file)
		wantStatus(t, code, 0, out)
		mustMatch(t, "transcript", out, `^ -> \.\.leading dot\n -> \.\.\.two dots\n -> \.\.\n -> last line\n -> \.\n<-  250 2\.0\.0 Ok: queued as`)
		msg := tn.WaitMessage(seedAccount, tok, 10*time.Second)
		if got, want := body(msg), ".leading dot\n..two dots\n.\nlast line\n"; got != want {
			t.Fatalf("delivered body %q, want %q", got, want)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		t.Parallel()
		tok := token(t)
		out, code := ternSend(t, seedPassword+"\nSubject: "+tok+"\n\nfrom stdin\n", "--server", tn.Submission,
			"--starttls", "--insecure", "--from", seedAccount, "--to", seedAccount,
			"--auth", "SCRAM-SHA-256", "--user", seedUser, "--password-stdin", "--data", "-")
		wantStatus(t, code, 0, out)
		msg := tn.WaitMessage(seedAccount, tok, 10*time.Second)
		if body(msg) != "from stdin\n" {
			t.Fatalf("delivered %q", msg)
		}
	})
	t.Run("built with UTF-8", func(t *testing.T) {
		t.Parallel()
		tok := token(t)
		out, code := ternSend(t, "", "--server", tn.SMTP, "--from", "alice@geek.com", "--to", seedAccount,
			"--header", "Subject: Grüße "+tok, "--body", "Grüße aus Köln")
		wantStatus(t, code, 0, out)
		mustMatch(t, "transcript", out, `^ -> MAIL FROM:<alice@geek\.com> BODY=8BITMIME SIZE=\d+$`)
		msg := tn.WaitMessage(seedAccount, tok, 10*time.Second)
		if header(msg, "Content-Transfer-Encoding") != "Content-Transfer-Encoding: 8bit" || body(msg) != "Grüße aus Köln\n" {
			t.Fatalf("delivered %q", msg)
		}
		mustMatch(t, "message", msg, `^Subject: =\?utf-8\?q\?Gr=C3=BC=C3=9Fe_`+tok+`\?=$`)
		mustMatch(t, "message", msg, `^Message-Id: <\d{14}\.[0-9a-f]{16}@[^>]+>$`)
	})
}

// --password gives the password on the command line, for scripts whose standard input is
// taken (here by the message, --data -), as swaks' --auth-password: the message arrives, the
// transcript masks the password; a wrong one is a 535 and status 5; with --password-stdin too,
// a usage error before connecting.
func TestSendPassword(t *testing.T) {
	t.Parallel()
	tn := startAuthTern(t)
	ca := filepath.Join(tn.Data, "tls", "cert.pem")
	send := func(stdin, password string, more ...string) (string, int) {
		t.Helper()
		return ternSend(t, stdin, append([]string{"--server", tn.Submissions, "--tls", "--ca", ca,
			"--from", seedAccount, "--to", seedAccount, "--auth", "SCRAM-SHA-256", "--user", seedUser,
			"--password", password}, more...)...)
	}
	t.Run("right, message on stdin", func(t *testing.T) {
		t.Parallel()
		tok := token(t)
		out, code := send("Subject: "+tok+"\n\nthe password was an argument\n", seedPassword, "--data", "-")
		wantStatus(t, code, 0, out)
		mustMatch(t, "transcript", out, `^<~  `+authOKRE+`$`)
		checkNoPassword(t, out, seedUser, seedPassword)
		msg := checkDelivered(t, tn, tok, mustMatch(t, "transcript", out, sendQueuedRE)[1])
		if body(msg) != "the password was an argument\n" {
			t.Fatalf("delivered %q", msg)
		}
	})
	t.Run("wrong", func(t *testing.T) {
		t.Parallel()
		out, code := send("", seedWrong)
		wantStatus(t, code, 5, out)
		mustMatch(t, "transcript", out, `^\*\*\* AUTH failed: `+authFailedRE+`$`)
		checkNoPassword(t, out, seedUser, seedWrong)
	})
	t.Run("and --password-stdin", func(t *testing.T) {
		t.Parallel()
		out, code := send(seedPassword+"\n", seedPassword, "--password-stdin")
		wantStatus(t, code, 2, out)
		mustMatch(t, "output", out, `\Atern send: --password and --password-stdin: give one or the other; see 'tern send --help'\n\z`)
		mustNotMatch(t, "output", out, `Connected|->`)
	})
	t.Run("help says who can see it", func(t *testing.T) {
		t.Parallel()
		out, code := ternSend(t, "", "-h")
		wantStatus(t, code, 0, out)
		mustMatch(t, "help", out, `--password string +the AUTH password or token, for scripts that cannot use standard input:\n\s+other local users can read it \(ps, /proc/PID/cmdline\)`)
	})
}

// Usage errors exit 2 before connecting; a closed port is a connection failure, 3.
func TestSendUsageAndConnection(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--server", "127.0.0.1:25", "--from", "a@example.org"},
		{"--server", "127.0.0.1:25", "--from", "a@example.org", "--to", "b@example.test", "--starttls", "--tls"},
		{"--server", "127.0.0.1:25", "--from", "a@example.org", "--to", "b@example.test", "--auth", "KERBEROS_V4"},
		{"--server", "127.0.0.1:25", "--from", "a@example.org", "--to", "b@example.test", "--auth", "PLAIN"},
		{"--server", "127.0.0.1:25", "--from", "a@example.org", "--to", "b@example.test", "--quit-after", "data"},
		{"--server", "127.0.0.1:25", "--from", "a@example.org", "--to", "b@example.test", "--data", "/nonexistent"},
		{"--bogus"},
	} {
		out, code := ternSend(t, "pw\n", args...)
		wantStatus(t, code, 2, out)
		mustMatch(t, "output", out, `\Atern send: [^\n]+; see 'tern send --help'\n\z`) // one line
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	out, code := ternSend(t, "", "--server", addr, "--from", "a@example.org", "--to", "b@example.test", "--timeout", "5s")
	wantStatus(t, code, 3, out)
	mustMatch(t, "transcript", out, `^\*\*\* Connection failed: dial tcp `+regexp.QuoteMeta(addr)+`: connect: connection refused \(nothing listens there: is the server running, and on that port\?\)$`)
	out, code = ternSend(t, "", "-h")
	wantStatus(t, code, 0, out)
	mustMatch(t, "help", out, `^  5  permanent failure: the server answered 5xx`)
}

// ---- Postfix ------------------------------------------------------------------------------

// postfix is a private Postfix instance on a loopback port, in a temp directory (its own
// config, queue, data and Maildir; no chroot), started and stopped by the test, as
// /work/shared/bench/postfix-baseline.sh does it. It delivers every address of example.test
// (or of postfixOpts.domain) to one Maildir and relays nothing. With SASL, smtpd
// authenticates with Cyrus SASL against a private sasldb holding the seeds' account.
type postfix struct {
	t       *testing.T
	dir     string // the work directory
	conf    string
	addr    string // 127.0.0.1:port, or postfixOpts.addr
	ca      string // the certificate smtpd offers for STARTTLS
	maildir string // the new/ directory of the Maildir everything goes to
	log     string
}

// saslpasswd2 writes the sasldb (package sasl2-bin); /usr/sbin may not be in a test's PATH.
const saslpasswd2 = "/usr/sbin/saslpasswd2"

// cyrusMechs are the mechanisms the private smtpd offers: all Cyrus has that tern send speaks.
const cyrusMechs = "PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256"

// needPostfix checks what a private Postfix needs (root, postfix; for SASL, saslpasswd2 and
// the Cyrus plugins): missing, the test fails under CI and is skipped otherwise.
func needPostfix(t *testing.T, sasl bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		missingTool(t, "root (a private Postfix must be started as root)", fmt.Errorf("euid %d", os.Geteuid()))
	}
	for _, p := range []string{"/usr/sbin/postfix", "/usr/sbin/postconf"} {
		if _, err := os.Stat(p); err != nil {
			missingTool(t, "postfix", err)
		}
	}
	if !sasl {
		return
	}
	if _, err := os.Stat(saslpasswd2); err != nil {
		missingTool(t, "saslpasswd2 (package sasl2-bin)", err)
	}
	for plugin, pkg := range map[string]string{"libsasldb.so*": "libsasl2-modules-db", "libplain.so*": "libsasl2-modules",
		"libcrammd5.so*": "libsasl2-modules", "libdigestmd5.so*": "libsasl2-modules", "libscram.so*": "libsasl2-modules"} {
		if m, _ := filepath.Glob("/usr/lib/*/sasl2/" + plugin); len(m) == 0 {
			missingTool(t, "the Cyrus SASL plugin "+plugin+" (package "+pkg+")", os.ErrNotExist)
		}
	}
	out, _, _ := runTool(t, 10*time.Second, "", "/usr/sbin/postconf", "-a")
	if !strings.Contains(out, "cyrus") {
		missingTool(t, "Postfix built with Cyrus SASL", fmt.Errorf("postconf -a: %q", out))
	}
}

// startPostfix starts a private Postfix; it is stopped (by its master's PID if `postfix stop`
// does not do it) when the test ends, and its log shown if the test failed.
func startPostfix(t *testing.T, sasl bool) *postfix {
	t.Helper()
	return startPostfixOpts(t, postfixOpts{sasl: sasl})
}

// postfixOpts configure startPostfixOpts; zero values take startPostfix's defaults.
type postfixOpts struct {
	sasl bool
	// addr is the loopback address smtpd listens on (default: a free port on 127.0.0.1).
	addr string
	// domain is the one domain Postfix takes mail for (default example.test).
	domain string
	// users, when set, are the only addresses of domain that exist: smtpd refuses the others
	// at RCPT (550 5.1.1 User unknown in virtual mailbox table). Default: every address.
	users []string
	// mainCf is appended to main.cf.
	mainCf string
}

// startPostfixOpts is startPostfix with a listener address, a domain and a list of users.
func startPostfixOpts(t *testing.T, o postfixOpts) *postfix {
	t.Helper()
	sasl := o.sasl
	if o.domain == "" {
		o.domain = testDomain
	}
	needPostfix(t, sasl)
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		missingTool(t, "the postfix user", err)
	}
	uid, _ := strconv.Atoi(pfUser.Uid)
	gid, _ := strconv.Atoi(pfUser.Gid)
	dir, err := os.MkdirTemp("", "tern-itest-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	pf := &postfix{t: t, dir: dir, conf: filepath.Join(dir, "conf"), log: filepath.Join(dir, "maillog"),
		maildir: filepath.Join(dir, "mail", "bench", "new")}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// The postfix and nobody users must reach everything below dir.
	must(os.Chmod(dir, 0o755))
	for _, d := range []string{"conf/sasl", "queue", "data", "mail", "sasl"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	must(os.Chown(filepath.Join(dir, "mail"), 65534, 65534)) // virtual(8) delivers as nobody
	must(os.Chown(filepath.Join(dir, "data"), uid, gid))
	pf.ca = pf.writeCert()
	pf.addr = o.addr
	if pf.addr == "" {
		pf.addr = freeLoopbackPort(t)
	}
	mailboxes := "static:bench/"
	if len(o.users) > 0 {
		// texthash: read as it is, no postmap needed.
		var b strings.Builder
		for _, u := range o.users {
			b.WriteString(u + " bench/\n")
		}
		mailboxes = "texthash:" + filepath.Join(pf.conf, "vmailbox")
		must(os.WriteFile(filepath.Join(pf.conf, "vmailbox"), []byte(b.String()), 0o644))
	}

	saslConf := ""
	if sasl {
		db := filepath.Join(dir, "sasl", "sasldb2")
		// -u: the realm Postfix passes (smtpd_sasl_local_domain), so the login needs no domain.
		if _, errOut, code := runTool(t, 30*time.Second, seedPassword, saslpasswd2, "-p", "-f", db, "-c", "-u", testDomain, seedUser); code != 0 {
			t.Fatalf("saslpasswd2: %s", errOut)
		}
		must(os.Chown(filepath.Join(dir, "sasl"), uid, gid))
		must(os.Chown(db, uid, gid))
		must(os.Chmod(db, 0o640))
		// Debian's Postfix looks for smtpd.conf in $config_directory/sasl; upstream's in
		// cyrus_sasl_config_path: point both at the same file.
		must(os.WriteFile(filepath.Join(pf.conf, "sasl", "smtpd.conf"), []byte(
			"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: "+db+"\nmech_list: "+cyrusMechs+"\n"), 0o644))
		saslConf = "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = cyrus\nsmtpd_sasl_path = smtpd\n" +
			"cyrus_sasl_config_path = " + filepath.Join(pf.conf, "sasl") + "\nsmtpd_sasl_local_domain = " + testDomain + "\n"
	}
	main := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
myhostname = pf.example.test
mydomain = %[2]s
myorigin = $myhostname
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
mydestination =
relay_domains =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtpd_banner = $myhostname ESMTP Postfix (tern test)
virtual_mailbox_domains = %[2]s
virtual_mailbox_base = %[1]s/mail
virtual_mailbox_maps = %[6]s
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_transport = virtual
default_transport = error:5.7.1 remote delivery disabled in the test instance
relay_transport = error:5.7.1 remote delivery disabled in the test instance
local_transport = error:5.7.1 local delivery disabled in the test instance
smtpd_tls_cert_file = %[3]s
smtpd_tls_key_file = %[4]s
smtpd_tls_security_level = may
%[5]s%[7]s`, dir, o.domain, pf.ca, filepath.Join(pf.conf, "key.pem"), saslConf, mailboxes, o.mainCf)
	must(os.WriteFile(filepath.Join(pf.conf, "main.cf"), []byte(main), 0o644))
	master := pf.addr + " inet n - n - - smtpd\n" + `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`
	must(os.WriteFile(filepath.Join(pf.conf, "master.cf"), []byte(master), 0o644))

	t.Cleanup(pf.stop)
	if out, errOut, code := runTool(t, 30*time.Second, "", "/usr/sbin/postfix", "-c", pf.conf, "check"); code != 0 {
		t.Fatalf("postfix check: %s%s", out, errOut)
	}
	if out, errOut, code := runTool(t, 30*time.Second, "", "/usr/sbin/postfix", "-c", pf.conf, "start"); code != 0 {
		t.Fatalf("postfix start: %s%s", out, errOut)
	}
	waitFor(t, 15*time.Second, "Postfix's greeting on "+pf.addr, func() bool {
		c, err := net.DialTimeout("tcp", pf.addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 3)
		_, err = c.Read(b)
		return err == nil && string(b) == "220"
	})
	return pf
}

// writeCert makes smtpd's self-signed certificate (for 127.0.0.1) and returns its path.
func (pf *postfix) writeCert() string {
	t := pf.t
	c := testutil.SelfSigned(t, "pf.example.test", "127.0.0.1")
	kder, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	cert := filepath.Join(pf.conf, "cert.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Leaf.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	// smtpd reads its key as root, before it drops privileges.
	if err := os.WriteFile(filepath.Join(pf.conf, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert
}

// freeLoopbackPort returns 127.0.0.1:port for a port that was free a moment ago.
func freeLoopbackPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// stop stops the instance: `postfix stop`, then its master by PID if it lingers.
func (pf *postfix) stop() {
	t := pf.t
	pidFile := filepath.Join(pf.dir, "queue", "pid", "master.pid")
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if out, err := exec.Command("/usr/sbin/postfix", "-c", pf.conf, "stop").CombinedOutput(); err != nil {
		t.Logf("postfix stop: %v: %s", err, out) // the master is killed by PID below
	}
	if pid > 0 {
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			t.Logf("Postfix master %d did not stop: killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if t.Failed() {
		log, _ := os.ReadFile(pf.log)
		t.Logf("Postfix log:\n%s", log)
		t.Logf("keeping %s", pf.dir)
		return
	}
	os.RemoveAll(pf.dir)
}

// waitMessage waits for a message with tok in the instance's Maildir.
func (pf *postfix) waitMessage(tok string) string {
	pf.t.Helper()
	var found string
	waitFor(pf.t, 15*time.Second, "a message with "+tok+" in Postfix's Maildir", func() bool {
		ents, _ := os.ReadDir(pf.maildir)
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(pf.maildir, e.Name())); err == nil && strings.Contains(string(b), tok) {
				found = string(b)
				return true
			}
		}
		return false
	})
	return found
}

// pfQueuedRE is Postfix's reply to a queued message.
const pfQueuedRE = `^<[-~]  250 2\.0\.0 Ok: queued as ([0-9A-F]+)$`

// tern send against Postfix: plain delivery, PIPELINING with a refused recipient, STARTTLS with
// the certificate verified, and a message from --data.
func TestSendPostfix(t *testing.T) {
	t.Parallel()
	pf := startPostfix(t, false)
	t.Run("plain", func(t *testing.T) {
		t.Parallel()
		tok := token(t)
		out, code := ternSend(t, "", "--server", pf.addr, "--ehlo", "client.example.com", "--from", "alice@geek.com",
			"--to", "bob@example.test", "--header", "Subject: "+tok)
		wantStatus(t, code, 0, out)
		mustMatch(t, "transcript", out, `^<-  220 pf\.example\.test ESMTP Postfix \(tern test\)$`)
		mustMatch(t, "transcript", out, `^ -> MAIL FROM:<alice@geek\.com> SIZE=\d+\n<-  250 2\.1\.0 Ok$`)
		mustMatch(t, "transcript", out, pfQueuedRE)
		msg := pf.waitMessage(tok)
		mustMatch(t, "message", msg, `^X-Mailer: tern send$`)
	})
	t.Run("pipeline", func(t *testing.T) {
		t.Parallel()
		tok := token(t)
		out, code := ternSend(t, "", "--server", pf.addr, "--from", "alice@geek.com", "--to", "bob@example.test",
			"--to", "someone@elsewhere.example", "--to", "carol@example.test", "--header", "Subject: "+tok, "--pipeline")
		wantStatus(t, code, 5, out)
		mustMatch(t, "transcript", out, `^<-  250-PIPELINING$`)
		mustMatch(t, "transcript", out, `^ -> MAIL FROM:<alice@geek\.com> SIZE=\d+\n -> RCPT TO:<bob@example\.test>\n`+
			` -> RCPT TO:<someone@elsewhere\.example>\n -> RCPT TO:<carol@example\.test>\n -> DATA\n`+
			`<-  250 2\.1\.0 Ok\n<-  250 2\.1\.5 Ok\n<-  554 5\.7\.1 <someone@elsewhere\.example>: Relay access denied\n<-  250 2\.1\.5 Ok\n<-  354 `)
		mustMatch(t, "transcript", out, `^\*\*\* RCPT TO:<someone@elsewhere\.example> refused: 554 5\.7\.1 `)
		mustMatch(t, "transcript", out, pfQueuedRE)
		pf.waitMessage(tok)
	})
	t.Run("starttls", func(t *testing.T) {
		t.Parallel()
		tok := token(t)
		out, code := ternSend(t, "", "--server", pf.addr, "--starttls", "--ca", pf.ca, "--from", "alice@geek.com",
			"--to", "bob@example.test", "--header", "Subject: "+tok, "--pipeline")
		wantStatus(t, code, 0, out)
		mustMatch(t, "transcript", out, `^\*\*\* TLS certificate: CN=pf\.example\.test, issued by CN=pf\.example\.test, verified with --ca `)
		mustMatch(t, "transcript", out, `^ ~> DATA\n<~  250 2\.1\.0 Ok\n<~  250 2\.1\.5 Ok\n<~  354 `)
		mustMatch(t, "transcript", out, pfQueuedRE)
		pf.waitMessage(tok)
	})
	t.Run("data", func(t *testing.T) {
		t.Parallel()
		tok := token(t)
		file := writeFile(t, "m.txt", "Subject: "+tok+"\n\n.dot\nend")
		out, code := ternSend(t, "", "--server", pf.addr, "--from", "alice@geek.com", "--to", "bob@example.test", "--data", file)
		wantStatus(t, code, 0, out)
		msg := pf.waitMessage(tok)
		if !strings.HasSuffix(msg, "\n\n.dot\nend\n") {
			t.Fatalf("delivered %q", msg)
		}
	})
}

// tern send against Postfix with Cyrus SASL (sasldb): every mechanism Cyrus offers, right
// password and wrong, over STARTTLS with the certificate verified. Postfix's log line for the
// queued message names the mechanism and the user, which proves the AUTH was real.
func TestSendPostfixAuth(t *testing.T) {
	t.Parallel()
	pf := startPostfix(t, true)
	for _, mech := range append(strings.Fields(cyrusMechs), "auto") {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			run := func(password string) (tok, out string, code int) {
				tok = token(t)
				args := []string{"--server", pf.addr, "--starttls", "--ca", pf.ca, "--ehlo", "client.example.com",
					"--from", seedAccount, "--to", "bob@example.test", "--header", "Subject: " + tok,
					"--user", seedUser, "--password-stdin", "--pipeline", "--auth"}
				if mech != "auto" {
					args = append(args, mech)
				}
				out, code = ternSend(t, password+"\n", args...)
				return tok, out, code
			}
			want := mech
			if mech == "auto" {
				want = "SCRAM-SHA-256" // Cyrus offers no -PLUS through Postfix
			}
			tok, out, code := run(seedPassword)
			wantStatus(t, code, 0, out)
			mustMatch(t, "transcript", out, `^<~  250-AUTH `+regexp.QuoteMeta(cyrusMechs)+`$`)
			mustMatch(t, "transcript", out, `^ ~> AUTH `+regexp.QuoteMeta(want)+`( \S+)?$`)
			mustMatch(t, "transcript", out, `^<~  235 2\.7\.0 Authentication successful$`)
			checkNoPassword(t, out, seedUser, seedPassword)
			id := mustMatch(t, "transcript", out, pfQueuedRE)[1]
			pf.waitMessage(tok)
			waitFor(t, 10*time.Second, "Postfix's log line for "+id, func() bool {
				log, _ := os.ReadFile(pf.log)
				return regexp.MustCompile(id + `: client=localhost\[127\.0\.0\.1\], sasl_method=` + regexp.QuoteMeta(want) +
					`, sasl_username=kenneth\.burgener@example\.test`).Match(log)
			})

			_, out, code = run(seedWrong)
			wantStatus(t, code, 5, out)
			mustMatch(t, "transcript", out, `^<~  535 5\.7\.8 Error: authentication failed: `)
			mustMatch(t, "transcript", out, `^\*\*\* AUTH failed: 535 5\.7\.8 `)
			mustNotMatch(t, "transcript", out, `MAIL FROM`)
			checkNoPassword(t, out, seedUser, seedWrong)
		})
	}
}
