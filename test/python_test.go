package test

import (
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtplibRun drives testdata/smtplib_client.py: connect ("plain" or "ssl") to addr, run the
// steps, and return the "STEP CODE TEXT" lines it printed and smtplib's debug output.
func smtplibRun(t *testing.T, connect, addr string, steps ...[]any) (out, debug string) {
	t.Helper()
	py := pythonExe(t)
	host, port := splitAddr(t, addr)
	cfg, err := json.Marshal(map[string]any{
		"connect": connect, "host": host, "port": port, "helo": "client.example.com", "steps": steps,
	})
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "smtplib_client.py"))
	if err != nil {
		t.Fatal(err)
	}
	out, debug, code := runTool(t, 60*time.Second, "", py, script, string(cfg))
	if code != 0 {
		t.Fatalf("smtplib client exit status %d", code)
	}
	return out, debug
}

var python struct {
	once sync.Once
	exe  string
	err  error
}

// pythonExe is the real interpreter behind "python3": a version-manager shim (pyenv) on PATH
// costs up to a second per start, so it is resolved once.
func pythonExe(t *testing.T) string {
	t.Helper()
	shim := needTool(t, "python3")
	python.once.Do(func() {
		out, err := exec.Command(shim, "-c", "import sys; print(sys.executable)").Output()
		python.exe, python.err = strings.TrimSpace(string(out)), err
		if err == nil && python.exe == "" {
			python.err = errors.New("sys.executable is empty")
		}
	})
	if python.err != nil {
		t.Logf("cannot resolve python3 (%v); using %s", python.err, shim)
		return shim
	}
	return python.exe
}

func step(name string, args ...any) []any { return append([]any{name}, args...) }

// tlsReceivedRE is the Received header of a message that came in over TLS.
const tlsReceivedRE = `^Received: from client\.example\.com \(\[127\.0\.0\.1\]\)\n\t\(using TLSv1\.[23] with cipher (TLS_[A-Z0-9_]+) \((\d+)/(\d+) bits\)\)\n\tby mx\.example\.test \(tern\) with `

// TestPythonSmtplib sends with Python's smtplib, every choice smtplib would make by itself
// (EHLO name, TLS context, ESMTP options) pinned by the script.
func TestPythonSmtplib(t *testing.T) {
	t.Parallel()
	pythonExe(t)
	tn := startTern(t, ternOpts{})
	tn.AddUser("bob@example.test", "pw")

	t.Run("send_message", func(t *testing.T) {
		tok := token(t)
		out, debug := smtplibRun(t, "plain", tn.SMTP,
			step("ehlo"),
			step("send_message", map[string]string{"from": "alice@host.example.com", "to": "bob@example.test", "subject": tok, "body": "sent by smtplib.send_message\n"}),
			step("quit"))
		mustMatch(t, "smtplib", out, `^SEND_MESSAGE 0 refused=\{\}$`)
		mustMatch(t, "smtplib", out, `^QUIT 221 2\.0\.0 Bye$`)
		m := mustMatch(t, "smtplib debug", debug, `reply: retcode \(250\); Msg: b'2\.0\.0 Ok: queued as ([0-9A-F]{10,})'`)
		mustMatch(t, "smtplib debug", debug, `send: 'ehlo client\.example\.com\\r\\n'`)
		msg := tn.WaitMessage("bob@example.test", tok, 10*time.Second)
		mustMatch(t, "Received", header(msg, "Received"),
			`^Received: from client\.example\.com \(\[127\.0\.0\.1\]\)\n\tby mx\.example\.test \(tern\) with ESMTP id `+m[1]+`\n\tfor <bob@example\.test>; `)
		if !strings.HasSuffix(msg, "\n\nsent by smtplib.send_message\n") {
			t.Fatalf("body:\n%s", msg)
		}
	})

	// Submission requires AUTH: smtplib logs in as bob and sends as bob, as a real user would
	// (the mechanisms themselves are TestAuthSmtplib's business).
	tlsSend := func(t *testing.T, connect, addr string, pre ...[]any) string {
		tok := token(t)
		steps := append(pre,
			step("login", "PLAIN", "bob@example.test", "pw"),
			step("mail", "bob@example.test", []string{}),
			step("rcpt", "bob@example.test", []string{}),
			step("data", "Subject: "+tok+"\n\nover TLS\n"),
			step("quit"))
		out, _ := smtplibRun(t, connect, addr, steps...)
		mustMatch(t, "smtplib", out, `^LOGIN 235 2\.7\.0 Authentication successful$`)
		m := mustMatch(t, "smtplib", out, `^DATA 250 2\.0\.0 Ok: queued as ([0-9A-F]{10,})$`)
		msg := tn.WaitMessage("bob@example.test", tok, 10*time.Second)
		mustMatch(t, "Received", header(msg, "Received"), tlsReceivedRE+`ESMTPSA id `+m[1]+`\n`)
		return out
	}

	t.Run("SMTP_SSL on submissions", func(t *testing.T) {
		out := tlsSend(t, "ssl", tn.Submissions, step("ehlo"))
		mustNotMatch(t, "EHLO features", out, `^FEATURES .*\bstarttls\b`)
	})

	t.Run("starttls on submission", func(t *testing.T) {
		out := tlsSend(t, "plain", tn.Submission, step("ehlo"), step("starttls"), step("ehlo"))
		mustMatch(t, "smtplib", out, `^FEATURES .*\bstarttls\b(?s:.*)^STARTTLS 220 2\.0\.0 Ready to start TLS$\nCIPHER \S+ TLSv1\.[23] \d+\n.*\nFEATURES (?:[a-z0-9-]+ )*[a-z0-9-]+$`)
		after := out[strings.Index(out, "STARTTLS 220"):]
		mustNotMatch(t, "EHLO features after STARTTLS", after, `^FEATURES .*\bstarttls\b`)
	})

	t.Run("SMTPUTF8", func(t *testing.T) {
		const rcpt = "jørgen@example.test"
		tn.AddUser(rcpt, "pw")
		tok := token(t)
		out, debug := smtplibRun(t, "plain", tn.SMTP,
			step("ehlo"),
			step("mail", "ålice@host.example.com", []string{"SMTPUTF8", "BODY=8BITMIME"}),
			step("rcpt", rcpt, []string{}),
			step("data", "From: ålice@host.example.com\nTo: "+rcpt+"\nSubject: Grüße "+tok+"\n\nHej Jørgen!\n"),
			step("quit"))
		mustMatch(t, "smtplib", out, `^MAIL 250 2\.1\.0 Ok$`)
		mustMatch(t, "smtplib", out, `^RCPT 250 2\.1\.5 Ok$`)
		m := mustMatch(t, "smtplib", out, `^DATA 250 2\.0\.0 Ok: queued as ([0-9A-F]{10,})$`)
		mustMatch(t, "smtplib debug", debug, `send: 'mail FROM:<ålice@host\.example\.com> SMTPUTF8 BODY=8BITMIME\\r\\n'`)
		msg := tn.WaitMessage(rcpt, tok, 10*time.Second)
		if !strings.HasPrefix(msg, "Return-Path: <ålice@host.example.com>\nDelivered-To: "+rcpt+"\n") {
			t.Fatalf("message head:\n%s", msg)
		}
		mustMatch(t, "Received", header(msg, "Received"), `\tby mx\.example\.test \(tern\) with UTF8SMTP id `+m[1]+`\n\tfor <`+rcpt+`>; `)
		if !strings.HasSuffix(msg, "Subject: Grüße "+tok+"\n\nHej Jørgen!\n") {
			t.Fatalf("UTF-8 content not delivered as sent:\n%s", msg)
		}

		// Without SMTPUTF8 the same recipient is refused (RFC 6531 §3.4).
		d := ehlod(t, tn.SMTP, false)
		d.cmd("MAIL FROM:<alice@host.example.com>", `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<"+rcpt+">", `553 5\.6\.7 <`+rcpt+`>: Recipient address rejected: non-ASCII address needs SMTPUTF8`)
	})

	t.Run("DSN parameters", func(t *testing.T) {
		tok := token(t)
		out, debug := smtplibRun(t, "plain", tn.SMTP,
			step("ehlo"),
			step("mail", "alice@host.example.com", []string{"RET=HDRS", "ENVID=abc+2Bdef"}),
			step("rcpt", "bob@example.test", []string{"NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@example.test"}),
			step("data", "Subject: "+tok+"\n\nwith DSN parameters\n"),
			step("quit"))
		mustMatch(t, "smtplib debug", debug, `send: 'mail FROM:<alice@host\.example\.com> RET=HDRS ENVID=abc\+2Bdef\\r\\n'`)
		mustMatch(t, "smtplib debug", debug, `send: 'rcpt TO:<bob@example\.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example\.test\\r\\n'`)
		mustMatch(t, "smtplib", out, `^MAIL 250 2\.1\.0 Ok\nRCPT 250 2\.1\.5 Ok\nDATA 250 2\.0\.0 Ok: queued as [0-9A-F]{10,}$`)
		tn.WaitMessage("bob@example.test", tok, 10*time.Second)

		// Bad DSN values are refused with 501 5.5.4, and the transaction goes on.
		out, _ = smtplibRun(t, "plain", tn.SMTP,
			step("ehlo"),
			step("mail", "alice@host.example.com", []string{"RET=BODY"}),
			step("mail", "alice@host.example.com", []string{"RET=FULL"}),
			step("rcpt", "bob@example.test", []string{"NOTIFY=NEVER,SUCCESS"}),
			step("rcpt", "bob@example.test", []string{"ORCPT=rfc822"}),
			step("rcpt", "bob@example.test", []string{"NOTIFY=DELAY"}),
			step("quit"))
		mustMatch(t, "smtplib", out, `^MAIL 501 5\.5\.4 Bad RET parameter\nMAIL 250 2\.1\.0 Ok\nRCPT 501 5\.5\.4 NOTIFY=NEVER cannot be combined\nRCPT 501 5\.5\.4 Bad ORCPT parameter\nRCPT 250 2\.1\.5 Ok\nQUIT 221 2\.0\.0 Bye$`)
	})

	t.Run("BODY=8BITMIME", func(t *testing.T) {
		tok := token(t)
		out, _ := smtplibRun(t, "plain", tn.SMTP,
			step("ehlo"),
			step("mail", "alice@host.example.com", []string{"BODY=8BITMIME"}),
			step("rcpt", "bob@example.test", []string{}),
			step("data", "Subject: "+tok+"\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nnaïve café ©\n"),
			step("quit"))
		mustMatch(t, "smtplib", out, `^DATA 250 2\.0\.0 Ok: queued as [0-9A-F]{10,}$`)
		msg := tn.WaitMessage("bob@example.test", tok, 10*time.Second)
		if !strings.HasSuffix(msg, "\n\nnaïve café ©\n") {
			t.Fatalf("8-bit body:\n%q", msg)
		}
	})
}
