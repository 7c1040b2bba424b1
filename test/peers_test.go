package test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// token returns a unique marker to find one test's message in a Maildir.
func token(t testing.TB) string {
	b := make([]byte, 6)
	rand.Read(b)
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
	return "tok-" + name + "-" + hex.EncodeToString(b)
}

// needPerlTLS checks the Perl modules swaks needs for --tls and --tlsc.
func needPerlTLS(t testing.TB) {
	t.Helper()
	perl := needTool(t, "perl")
	_, errOut, code := runTool(t, 30*time.Second, "", perl, "-MIO::Socket::SSL", "-MNet::SSLeay", "-e1")
	if code != 0 {
		missingTool(t, "perl IO::Socket::SSL and Net::SSLeay (for swaks TLS)", &toolError{errOut})
	}
}

type toolError struct{ s string }

func (e *toolError) Error() string { return strings.TrimSpace(e.s) }

// seedMessage is the message file of the seed session (smtp-auth-gen-auth-notes.txt): a whole
// SMTP session in one file for `nc host 25 < /tmp/message`, addressed to our test domain.
var seedMessage = strings.Join([]string{
	"HELO host.example.com",
	"MAIL FROM: <test@host.example.com>",
	"RCPT TO: <bob@example.test>",
	"DATA",
	"From: [Alice] <alice@geek.com>",
	"To: <bob@example.test>",
	"Date: Mon, 12 Apr 2010 14:21:26 -0400",
	"Subject: Test Message",
	"",
	"Hi there! This is supposed to be a real email...",
	"",
	"Have a good day!",
	"Alice",
	".",
	"QUIT",
	"",
}, "\n")

// seedBody is the body of the seed message as delivered (Maildir files have LF line ends).
const seedBody = "Hi there! This is supposed to be a real email...\n\nHave a good day!\nAlice\n"

// TestNetcat replays the seed session with netcat-openbsd, the whole file in one write: every
// reply comes back, in order, although the client never waited for one (and HELO announced no
// PIPELINING).
func TestNetcat(t *testing.T) {
	t.Parallel()
	nc := needNetcat(t)
	tn := startTern(t, ternOpts{})
	tn.AddUser("bob@example.test", "pw")
	crlf := writeFile(t, "message.crlf", strings.ReplaceAll(seedMessage, "\n", "\r\n"))
	lf := writeFile(t, "message.lf", seedMessage)
	okReplies := `^220 mx\.example\.test ESMTP tern\r\n` +
		`250 mx\.example\.test\r\n` +
		`250 2\.1\.0 Ok\r\n` +
		`250 2\.1\.5 Ok\r\n` +
		`354 End data with <CR><LF>\.<CR><LF>\r\n` +
		`250 2\.0\.0 Ok: queued as ([0-9A-F]{10,})\r\n` +
		`221 2\.0\.0 Bye\r\n$`

	checkDelivered := func(t *testing.T, id string, n int) {
		// Maildir names do not sort by arrival (the microseconds are not zero-padded): pick the
		// message by its queue id.
		var msg string
		for _, m := range tn.WaitMaildir("bob@example.test", n, 10*time.Second) {
			if strings.Contains(m, " id "+id+"\n") {
				msg = m
			}
		}
		if msg == "" {
			t.Fatalf("no delivered message has queue id %s", id)
		}
		if !strings.HasPrefix(msg, "Return-Path: <test@host.example.com>\nDelivered-To: bob@example.test\n") {
			t.Fatalf("message does not start with Return-Path and Delivered-To:\n%s", msg)
		}
		mustMatch(t, "Received", header(msg, "Received"),
			`^Received: from host\.example\.com \(\[127\.0\.0\.1\]\)\n\tby mx\.example\.test \(tern\) with SMTP id `+id+`\n\tfor <bob@example\.test>; \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$`)
		for _, h := range []string{"From: [Alice] <alice@geek.com>", "To: <bob@example.test>", "Date: Mon, 12 Apr 2010 14:21:26 -0400", "Subject: Test Message"} {
			if !strings.Contains(msg, "\n"+h+"\n") {
				t.Errorf("header %q missing:\n%s", h, msg)
			}
		}
		if got := body(msg); got != seedBody {
			t.Fatalf("body %q, want %q", got, seedBody)
		}
	}

	t.Run("CRLF file", func(t *testing.T) {
		f, err := os.Open(crlf)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		host, port := splitAddr(t, tn.SMTP)
		out, _, code := runToolIn(t, 30*time.Second, f, nc, host, port)
		if code != 0 {
			t.Fatalf("nc exit status %d", code)
		}
		m := mustMatch(t, "nc output", out, okReplies)
		checkDelivered(t, m[1], 1)
	})

	t.Run("LF file with -C", func(t *testing.T) {
		f, err := os.Open(lf)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		host, port := splitAddr(t, tn.SMTP)
		out, _, code := runToolIn(t, 30*time.Second, f, nc, "-C", host, port)
		if code != 0 {
			t.Fatalf("nc exit status %d", code)
		}
		m := mustMatch(t, "nc -C output", out, okReplies)
		checkDelivered(t, m[1], 2)
	})

	// Plain nc, as a user with a file written in an editor would: the first bare LF gets one
	// reply that names the fix, and the server closes the connection, so nc ends at once instead
	// of waiting out the idle timeout after one error per line (as Postfix does with
	// smtpd_forbid_bare_newline = yes).
	t.Run("LF file without -C", func(t *testing.T) {
		f, err := os.Open(lf)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		host, port := splitAddr(t, tn.SMTP)
		out, _, code := runToolIn(t, 30*time.Second, f, nc, host, port)
		if code != 0 {
			t.Fatalf("nc exit status %d", code)
		}
		want := "220 mx.example.test ESMTP tern\r\n" +
			"521 5.5.2 mx.example.test Error: bare <LF> received; lines must end with <CR><LF> (nc -C adds them)\r\n"
		if out != want {
			t.Fatalf("nc output:\n%q\nwant:\n%q", out, want)
		}
		tn.ExpectNoMail("bob@example.test", 2)
	})
}

// needNetcat returns the path of nc, which must be netcat-openbsd: -C and -N are its options,
// and other netcats mean something else by them.
func needNetcat(t testing.TB) string {
	t.Helper()
	nc := needTool(t, "nc")
	if _, help, _ := runTool(t, 10*time.Second, "", nc, "-h"); !strings.Contains(help, "OpenBSD netcat") {
		missingTool(t, "netcat-openbsd (nc is another netcat)", &toolError{strings.SplitN(help, "\n", 2)[0]})
	}
	return nc
}

func splitAddr(t testing.TB, addr string) (host, port string) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("bad address %q", addr)
	}
	return addr[:i], addr[i+1:]
}

// swaksQueuedRE finds the queued-as reply in a swaks transcript ("<-" in clear, "<~" under TLS).
const swaksQueuedRE = `^<([-~])  250 2\.0\.0 Ok: queued as ([0-9A-F]{10,})$`

// TestSwaks sends with swaks and checks its transcript: the "250 ... queued as" line in it, not
// swaks' exit status alone, is what proves the message was queued (PEERS.md).
func TestSwaks(t *testing.T) {
	t.Parallel()
	swaks := needTool(t, "swaks")
	tn := startTern(t, ternOpts{})
	tn.AddUser("bob@example.test", "pw")

	run := func(t *testing.T, addr string, extra ...string) (string, int) {
		host, port := splitAddr(t, addr)
		args := append([]string{"--server", host, "--port", port, "--helo", "client.example.com"}, extra...)
		if !slices.Contains(args, "--from") {
			args = append(args, "--from", "alice@host.example.com")
		}
		out, errOut, code := runTool(t, 60*time.Second, "", swaks, args...)
		return out + errOut, code
	}
	send := func(t *testing.T, addr string, extra ...string) (tok, id, transcript string) {
		tok = token(t)
		extra = append([]string{"--to", "bob@example.test", "--header", "Subject: swaks " + tok}, extra...)
		out, code := run(t, addr, extra...)
		m := mustMatch(t, "swaks transcript", out, swaksQueuedRE)
		if code != 0 {
			t.Fatalf("swaks exit status %d", code)
		}
		return tok, m[2], out
	}
	checkReceived := func(t *testing.T, tok, id, proto string) string {
		msg := tn.WaitMessage("bob@example.test", tok, 10*time.Second)
		mustMatch(t, "Received", header(msg, "Received"), `\n\tby mx\.example\.test \(tern\) with `+proto+` id `+id+`\n`)
		return msg
	}

	t.Run("plain", func(t *testing.T) {
		tok, id, out := send(t, tn.SMTP)
		mustMatch(t, "transcript", out, `^<-  220 mx\.example\.test ESMTP tern$`)
		mustNotMatch(t, "transcript", out, `^ -> STARTTLS$|^<~`)
		checkReceived(t, tok, id, "ESMTP")
	})

	t.Run("pipeline", func(t *testing.T) {
		tok, id, out := send(t, tn.SMTP, "--pipeline")
		// With PIPELINING the three commands go out before the first reply comes back.
		mustMatch(t, "pipelined transcript", out,
			`(?s)^ -> MAIL FROM:<alice@host\.example\.com>\n -> RCPT TO:<bob@example\.test>\n -> DATA\n<-  250 2\.1\.0 Ok\n<-  250 2\.1\.5 Ok\n<-  354 `)
		checkReceived(t, tok, id, "ESMTP")
	})

	// Submission requires AUTH: the sender authenticates (as bob, and sends as bob), as a real
	// user would. The AUTH mechanisms themselves are TestAuthSwaks' business.
	asBob := []string{"--from", "bob@example.test", "--auth", "PLAIN", "--auth-user", "bob@example.test", "--auth-password", "pw"}

	t.Run("STARTTLS on submission", func(t *testing.T) {
		needPerlTLS(t)
		tok, id, out := send(t, tn.Submission, append([]string{"--tls"}, asBob...)...)
		mustMatch(t, "transcript", out, `^ -> STARTTLS\n<-  220 2\.0\.0 Ready to start TLS\n=== TLS started with cipher TLSv1\.[23]`)
		mustMatch(t, "transcript", out, `^ ~> AUTH PLAIN \S+\n<~  235 2\.7\.0 Authentication successful$`)
		if m := mustMatch(t, "transcript", out, swaksQueuedRE); m[1] != "~" {
			t.Fatalf("the queued reply came in clear text: %q", m[0])
		}
		checkReceived(t, tok, id, "ESMTPSA")
	})

	t.Run("implicit TLS on submissions", func(t *testing.T) {
		needPerlTLS(t)
		tok, id, out := send(t, tn.Submissions, append([]string{"--tlsc"}, asBob...)...)
		mustMatch(t, "transcript", out, `=== TLS started with cipher TLSv1\.[23]`)
		mustMatch(t, "transcript", out, `^<~  220 mx\.example\.test ESMTP tern$`)
		mustNotMatch(t, "transcript", out, `STARTTLS`) // not offered, not sent
		mustMatch(t, "transcript", out, `^<~  235 2\.7\.0 Authentication successful$`)
		checkReceived(t, tok, id, "ESMTPSA")
	})

	// Without AUTH, submission takes no mail: swaks' own unauthenticated session gets the 530.
	t.Run("submission without AUTH", func(t *testing.T) {
		needPerlTLS(t)
		out, code := run(t, tn.Submission, "--tls", "--to", "bob@example.test")
		mustMatch(t, "transcript", out, `^<~\* 530 5\.7\.0 Authentication required$`)
		mustNotMatch(t, "transcript", out, `queued as`)
		if code == 0 {
			t.Fatal("swaks exit status 0 for a refused sender")
		}
	})

	t.Run("relay denied", func(t *testing.T) {
		out, code := run(t, tn.SMTP, "--to", "other@remote.test")
		mustMatch(t, "transcript", out, `^<\*\* 554 5\.7\.1 <other@remote\.test>: Relay access denied$`)
		mustNotMatch(t, "transcript", out, `queued as`)
		if code == 0 {
			t.Fatal("swaks exit status 0 for a refused recipient")
		}
		if q := tn.QueueList(); strings.TrimSpace(q) != "Mail queue is empty" {
			t.Fatalf("queue:\n%s", q)
		}
	})

	t.Run("unknown user", func(t *testing.T) {
		out, code := run(t, tn.SMTP, "--to", "nobody@example.test")
		mustMatch(t, "transcript", out, `^<\*\* 550 5\.1\.1 <nobody@example\.test>: Recipient address rejected: User unknown$`)
		mustNotMatch(t, "transcript", out, `queued as`)
		if code == 0 {
			t.Fatal("swaks exit status 0 for a refused recipient")
		}
	})

	// swaks 20201014 cannot add parameters to MAIL FROM (no BODY=8BITMIME option; see
	// `swaks --help`), so this sends the 8-bit body the way it does: undeclared, as many real
	// clients do. BODY=8BITMIME itself is tested with smtplib and the raw dialogues.
	t.Run("8-bit body", func(t *testing.T) {
		bodyText := "Grüße aus Köln: ½ € — 8-bit text"
		tok, id, _ := send(t, tn.SMTP,
			"--add-header", "MIME-Version: 1.0",
			"--add-header", "Content-Type: text/plain; charset=utf-8",
			"--add-header", "Content-Transfer-Encoding: 8bit",
			"--body", bodyText)
		msg := checkReceived(t, tok, id, "ESMTP")
		if !strings.Contains(body(msg), bodyText+"\n") {
			t.Fatalf("8-bit body not delivered byte for byte:\n%q", msg)
		}
	})
}

// curlDataLines are the "[N bytes data]" notes curl -v puts between the dialogue lines under TLS.
var curlDataLines = regexp.MustCompile(`(?m)^[{}] \[\d+ bytes data\]\r?\n`)

// curlDialogue is curl's -v output without the data notes, so that a command and its reply
// are adjacent lines.
func curlDialogue(verbose string) string { return curlDataLines.ReplaceAllString(verbose, "") }

// TestCurl sends with curl. curl reports success even when it silently skipped something, so
// every assertion is on the -v dialogue.
func TestCurl(t *testing.T) {
	t.Parallel()
	curl := needTool(t, "curl")
	tn := startTern(t, ternOpts{})
	tn.AddUser("bob@example.test", "pw")

	msgFile := func(t *testing.T, tok, eol string) string {
		text := "From: alice@host.example.com\nTo: bob@example.test\nSubject: curl " + tok +
			"\n\nline one\n.a line that starts with a dot\nlast line\n"
		return writeFile(t, "msg", strings.ReplaceAll(text, "\n", eol))
	}
	run := func(t *testing.T, url, file string, extra ...string) (string, int) {
		from := "alice@host.example.com"
		if slices.Contains(extra, "-u") { // authenticated: send as bob
			from = "bob@example.test"
		}
		args := append([]string{"-v", "-sS", url, "--mail-from", from,
			"--mail-rcpt", "bob@example.test", "--upload-file", file}, extra...)
		_, errOut, code := runTool(t, 60*time.Second, "", curl, args...)
		return curlDialogue(errOut), code
	}
	// Submission requires AUTH: curl logs in as bob, as a real user would. curl leaves AUTH
	// out silently when it is not offered, so the 235 in the dialogue is checked too.
	asBob := []string{"-u", "bob@example.test:pw", "--login-options", "AUTH=PLAIN"}
	const curlAuthOK = `^> AUTH PLAIN\r?\n< 334 ?\r?\n> \S+\r?\n< 235 2\.7\.0 Authentication successful\r?$`
	const curlQueued = `^< 250 2\.0\.0 Ok: queued as ([0-9A-F]{10,})\r?$`
	check := func(t *testing.T, tok, id, proto string) {
		msg := tn.WaitMessage("bob@example.test", tok, 10*time.Second)
		mustMatch(t, "Received", header(msg, "Received"), `^Received: from client\.example\.com .*\n(?:.*\n)?\tby mx\.example\.test \(tern\) with `+proto+` id `+id+`\n`)
		if got := body(msg); got != "line one\n.a line that starts with a dot\nlast line\n" {
			t.Fatalf("body (dot-stuffing and CRLF undone?) %q", got)
		}
	}

	t.Run("plain", func(t *testing.T) {
		tok := token(t)
		out, code := run(t, "smtp://"+tn.SMTP+"/client.example.com", msgFile(t, tok, "\r\n"))
		m := mustMatch(t, "curl -v", out, curlQueued)
		if code != 0 {
			t.Fatalf("curl exit status %d", code)
		}
		mustNotMatch(t, "curl -v", out, `^> STARTTLS|SSL connection`)
		check(t, tok, m[1], "ESMTP")
	})

	// curl sends an upload as it is: a file with LF line ends goes out with bare LFs, which
	// tern refuses (the smuggling defence) instead of guessing. --crlf is the fix.
	t.Run("LF file refused, --crlf accepted", func(t *testing.T) {
		tok := token(t)
		file := msgFile(t, tok, "\n")
		out, code := run(t, "smtp://"+tn.SMTP+"/client.example.com", file)
		mustMatch(t, "curl -v", out, `^< 554 5\.5\.2 Error: bare <LF> received in message data; lines must end with <CR><LF>\r?$`)
		if code == 0 {
			t.Fatal("curl exit status 0 for a refused message")
		}
		out, code = run(t, "smtp://"+tn.SMTP+"/client.example.com", file, "--crlf")
		m := mustMatch(t, "curl -v --crlf", out, curlQueued)
		if code != 0 {
			t.Fatalf("curl exit status %d", code)
		}
		check(t, tok, m[1], "ESMTP")
		if n := len(tn.Maildir("bob@example.test")); n != 2 { // "plain" and this one
			t.Fatalf("%d messages for bob, want 2", n)
		}
	})

	t.Run("STARTTLS on submission", func(t *testing.T) {
		tok := token(t)
		out, code := run(t, "smtp://"+tn.Submission+"/client.example.com", msgFile(t, tok, "\r\n"), append([]string{"--ssl-reqd", "-k"}, asBob...)...)
		mustMatch(t, "curl -v", out, `^> STARTTLS\r?\n< 220 2\.0\.0 Ready to start TLS\r?$`)
		mustMatch(t, "curl -v", out, `^\* SSL connection using TLSv1\.[23] / \S+`)
		m := mustMatch(t, "curl -v", out, curlQueued)
		if code != 0 {
			t.Fatalf("curl exit status %d", code)
		}
		// The EHLO after the handshake no longer offers STARTTLS, and AUTH comes after it.
		after := out[strings.Index(out, "SSL connection using"):]
		mustNotMatch(t, "curl -v after TLS", after, `^< 250[- ]STARTTLS`)
		mustMatch(t, "curl -v after TLS", after, curlAuthOK)
		check(t, tok, m[1], "ESMTPSA")
	})

	t.Run("implicit TLS on submissions", func(t *testing.T) {
		tok := token(t)
		out, code := run(t, "smtps://"+tn.Submissions+"/client.example.com", msgFile(t, tok, "\r\n"), append([]string{"-k"}, asBob...)...)
		mustMatch(t, "curl -v", out, `(?s)^\* SSL connection using TLSv1\.[23] / \S+.*^< 220 mx\.example\.test ESMTP tern\r?$`)
		mustNotMatch(t, "curl -v", out, `STARTTLS`)
		mustMatch(t, "curl -v", out, curlAuthOK)
		m := mustMatch(t, "curl -v", out, curlQueued)
		if code != 0 {
			t.Fatalf("curl exit status %d", code)
		}
		check(t, tok, m[1], "ESMTPSA")
	})
}

// TestMsmtp sends with msmtp, a real submission client, with its dialogue on (-v).
func TestMsmtp(t *testing.T) {
	t.Parallel()
	msmtp := needTool(t, "msmtp")
	tn := startTern(t, ternOpts{})
	tn.AddUser("bob@example.test", "pw")

	send := func(t *testing.T, addr string, extra ...string) (tok, id, out string) {
		tok = token(t)
		host, port := splitAddr(t, addr)
		// -C /dev/null: no configuration file but the command line (no ~/.msmtprc surprises).
		// Submission requires AUTH: msmtp logs in as bob (--auth=on: msmtp picks the mechanism)
		// and sends as bob, as a real user's configuration would.
		args := append([]string{"-C", "/dev/null", "-v", "--host=" + host, "--port=" + port,
			"--domain=client.example.com", "--from=bob@example.test", "--tls=on", "--tls-certcheck=off",
			"--auth=on", "--user=bob@example.test", "--passwordeval=echo pw"}, extra...)
		args = append(args, "--", "bob@example.test")
		msg := "From: bob@example.test\nTo: bob@example.test\nSubject: msmtp " + tok + "\n\nhello from msmtp\n.dot\n"
		stdout, stderr, code := runTool(t, 60*time.Second, msg, msmtp, args...)
		out = strings.ReplaceAll(stdout+stderr, "\r\n", "\n") // the dialogue lines keep their CRLF
		if code != 0 {
			t.Fatalf("msmtp exit status %d", code)
		}
		m := mustMatch(t, "msmtp -v", out, `^<-- 250 2\.0\.0 Ok: queued as ([0-9A-F]{10,})$`)
		mustMatch(t, "msmtp -v", out, `^--> AUTH [A-Z0-9-]+.*\n(?:.*\n)*?<-- 235 2\.7\.0 Authentication successful$`)
		return tok, m[1], out
	}
	check := func(t *testing.T, tok, id string) string {
		// The message itself, not a delivery report on it that quotes its headers (NOTIFY=SUCCESS
		// with RET=HDRS), which may be in the Maildir first.
		msg := tn.WaitMessageFunc("bob@example.test", "the message "+tok, func(m string) bool {
			return strings.Contains(m, tok) && strings.Contains(m, "\n\nhello from msmtp\n")
		}, 10*time.Second)
		mustMatch(t, "Received", header(msg, "Received"), `\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)\n\tby mx\.example\.test \(tern\) with ESMTPSA id `+id+`\n`)
		if !strings.HasSuffix(msg, "\n\nhello from msmtp\n.dot\n") {
			t.Fatalf("body not delivered as sent:\n%s", msg)
		}
		return msg
	}

	t.Run("STARTTLS on submission", func(t *testing.T) {
		tok, id, out := send(t, tn.Submission, "--tls-starttls=on")
		mustMatch(t, "msmtp -v", out, `^--> STARTTLS\n<-- 220 2\.0\.0 Ready to start TLS\nTLS session parameters:\n\s+\(TLS1\.[23]\)`)
		check(t, tok, id)
	})

	t.Run("implicit TLS on submissions", func(t *testing.T) {
		tok, id, out := send(t, tn.Submissions, "--tls-starttls=off")
		mustMatch(t, "msmtp -v", out, `(?s)TLS session parameters:\n\s+\(TLS1\.[23]\).*^<-- 220 mx\.example\.test ESMTP tern$`)
		mustNotMatch(t, "msmtp -v", out, `^--> STARTTLS|^tls_starttls = on`)
		check(t, tok, id)
	})

	t.Run("DSN parameters", func(t *testing.T) {
		tok, id, out := send(t, tn.Submission, "--tls-starttls=on", "--dsn-notify=success,failure", "--dsn-return=headers")
		mustMatch(t, "msmtp -v", out, `^--> MAIL FROM:<bob@example\.test> RET=HDRS$`)
		mustMatch(t, "msmtp -v", out, `^--> RCPT TO:<bob@example\.test> NOTIFY=SUCCESS,FAILURE$`)
		mustMatch(t, "msmtp -v", out, `^<-- 250 2\.1\.0 Ok\n<-- 250 2\.1\.5 Ok\n<-- 354 `)
		check(t, tok, id)
	})
}
