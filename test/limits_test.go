package test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLimits checks each session limit through the real binary, configured with a small value
// in a TOML file: the reply the client gets, and that the session goes on (or ends) as it should.
func TestLimits(t *testing.T) {
	t.Parallel()

	t.Run("message size", func(t *testing.T) {
		t.Parallel()
		tn := startTern(t, ternOpts{Config: "[limits]\nmessage_size = 2000\n"})
		tn.AddUser("bob@example.test", "pw")
		d := greeted(t, tn.SMTP, false)
		kw := d.ehlo("client.example.com")
		if !slices.Contains(kw, "SIZE 2000") {
			t.Fatalf("EHLO does not announce SIZE 2000: %q", kw)
		}
		// Announced too big: refused at MAIL (RFC 1870).
		d.cmd("MAIL FROM:<alice@host.example.com> SIZE=2001", `552 5\.3\.4 Message size exceeds fixed limit`)
		// Announced small, but too big in fact: refused after the end of the data, and the
		// session goes on.
		d.cmd("MAIL FROM:<alice@host.example.com> SIZE=1000", `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<bob@example.test>", `250 2\.1\.5 Ok`)
		d.cmd("DATA", `354 .*`)
		d.write("Subject: too big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 30) + ".\r\n")
		d.expect(`552 5\.3\.4 Message size exceeds fixed limit`)
		d.cmd("RCPT TO:<bob@example.test>", `503 5\.5\.1 Error: need MAIL command`) // the transaction ended
		// The same with BDAT: the chunk is read and dropped, the reply comes after it.
		d.cmd("MAIL FROM:<alice@host.example.com>", `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<bob@example.test>", `250 2\.1\.5 Ok`)
		d.write(bdat("Subject: too big\r\n\r\n"+strings.Repeat("y", 3000)+"\r\n", true))
		d.expect(`552 5\.3\.4 Message size exceeds fixed limit`)
		// A small one still goes through on the same connection.
		d.sendMessage("alice@host.example.com", "bob@example.test", "Subject: small\r\n\r\nfits\r\n")
		d.cmd("QUIT", `221 2\.0\.0 Bye`)
		msgs := tn.WaitMaildir("bob@example.test", 1, 10*time.Second)
		tn.ExpectNoMail("bob@example.test", 1)
		if !strings.Contains(msgs[0], "Subject: small\n") {
			t.Fatalf("delivered:\n%s", msgs[0])
		}
	})

	// SIZE (RFC 1870) is about the message the client sends: the same message must fit whether
	// it comes with DATA or with BDAT (RFC 3030), and tern's own Received header is not the
	// client's to pay for.
	t.Run("message size with BDAT and DATA", func(t *testing.T) {
		t.Parallel()
		tn := startTern(t, ternOpts{Config: "[limits]\nmessage_size = 2000\n"})
		tn.AddUser("bob@example.test", "pw")
		msg := "Subject: near the limit\r\n\r\n" + strings.Repeat(strings.Repeat("z", 98)+"\r\n", 19) // 1927 octets
		d := ehlod(t, tn.SMTP, false)
		size := " SIZE=" + strconv.Itoa(len(msg))
		d.cmd("MAIL FROM:<alice@host.example.com>"+size, `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<bob@example.test>", `250 2\.1\.5 Ok`)
		d.cmd("DATA", `354 .*`)
		d.write(msg + ".\r\n")
		d.expect(queuedRE)
		d.cmd("MAIL FROM:<alice@host.example.com>"+size, `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<bob@example.test>", `250 2\.1\.5 Ok`)
		d.write(bdat(msg, true))
		d.expect(queuedRE)
		tn.WaitMaildir("bob@example.test", 2, 10*time.Second)
	})

	t.Run("line lengths", func(t *testing.T) {
		t.Parallel()
		tn := startTern(t, ternOpts{})
		tn.AddUser("bob@example.test", "pw")
		d := ehlod(t, tn.SMTP, false)
		// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF.
		d.cmd("NOOP "+strings.Repeat("a", 512-len("NOOP ")-2), `250 2\.0\.0 Ok`)
		d.cmd("NOOP "+strings.Repeat("a", 513-len("NOOP ")-2), `500 5\.5\.2 Error: line too long`)
		// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with its CRLF.
		long := strings.Repeat("L", 999) // 1001 octets with CRLF
		d.cmd("MAIL FROM:<alice@host.example.com>", `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<bob@example.test>", `250 2\.1\.5 Ok`)
		d.cmd("DATA", `354 .*`)
		d.write("Subject: long line\r\n\r\n" + long + "\r\nafter\r\n.\r\n")
		d.expect(`554 5\.6\.0 Error: message has a line longer than 1000 octets`)
		tn.ExpectNoMail("bob@example.test", 0)
		// 1000 octets is still fine, and arrives whole.
		limit := strings.Repeat("M", 998)
		d.sendMessage("alice@host.example.com", "bob@example.test", "Subject: longest line\r\n\r\n"+limit+"\r\n")
		msg := tn.WaitMaildir("bob@example.test", 1, 10*time.Second)[0]
		if body(msg) != limit+"\n" {
			t.Fatalf("998-octet line not delivered whole: %q", body(msg))
		}
		// A long line in a BDAT chunk is refused the same way.
		d.cmd("MAIL FROM:<alice@host.example.com>", `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<bob@example.test>", `250 2\.1\.5 Ok`)
		d.write(bdat("Subject: long\r\n\r\n"+long[:500], false))
		d.expect(`250 2\.0\.0 Ok: 517 octets received`)
		d.write(bdat(long[500:]+"\r\n", true))
		d.expect(`554 5\.6\.0 Error: message has a line longer than 1000 octets`)
		d.cmd("QUIT", `221 2\.0\.0 Bye`)
		tn.ExpectNoMail("bob@example.test", 1)
	})

	t.Run("recipients", func(t *testing.T) {
		t.Parallel()
		tn := startTern(t, ternOpts{Config: "[limits]\nrecipients = 100\n"})
		var rcpts []string
		for i := range 100 {
			rcpts = append(rcpts, fmt.Sprintf("u%03d@example.test", i))
		}
		tn.AddUsers("pw", rcpts...)
		d := greeted(t, tn.SMTP, false)
		if kw := d.ehlo("client.example.com"); !slices.Contains(kw, "LIMITS RCPTMAX=100") {
			t.Fatalf("EHLO does not announce LIMITS RCPTMAX=100: %q", kw)
		}
		// All at once, as a PIPELINING client would.
		var b strings.Builder
		b.WriteString("MAIL FROM:<alice@host.example.com>\r\n")
		for _, r := range rcpts {
			b.WriteString("RCPT TO:<" + r + ">\r\n")
		}
		b.WriteString("RCPT TO:<bob@example.test>\r\nDATA\r\n")
		d.write(b.String())
		d.expect(`250 2\.1\.0 Ok`)
		for range rcpts {
			d.expect(`250 2\.1\.5 Ok`)
		}
		d.expect(`452 4\.5\.3 Too many recipients`)
		d.expect(`354 .*`)
		d.write("Subject: to a hundred\r\n\r\nhello all\r\n.\r\n")
		d.expect(queuedRE)
		d.cmd("QUIT", `221 2\.0\.0 Bye`)
		for _, r := range rcpts {
			tn.WaitMaildir(r, 1, 10*time.Second)
		}
	})

	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		tn := startTern(t, ternOpts{Config: "[limits]\nerrors = 3\n"})
		tn.AddUser("bob@example.test", "pw")
		d := ehlod(t, tn.SMTP, false)
		d.cmd("XYZZY", `500 5\.5\.2 Error: command not recognized`)
		d.cmd("RCPT TO:<bob@example.test>", `503 5\.5\.1 Error: need MAIL command`)
		// A queued message restarts the count.
		d.sendMessage("alice@host.example.com", "bob@example.test", "Subject: between errors\r\n\r\nhi\r\n")
		d.cmd("XYZZY", `500 5\.5\.2 Error: command not recognized`)
		d.cmd("XYZZY", `500 5\.5\.2 Error: command not recognized`)
		d.send("XYZZY")
		d.expect(`500 5\.5\.2 Error: command not recognized`)
		d.expect(`421 4\.7\.0 mx\.example\.test Error: too many errors`)
		d.expectClosed()
	})

	t.Run("idle timeout", func(t *testing.T) {
		t.Parallel()
		tn := startTern(t, ternOpts{Config: "[limits]\nidle_timeout = \"1s\"\n"})
		tn.AddUser("bob@example.test", "pw")
		t.Run("between commands", func(t *testing.T) {
			t.Parallel()
			d := greeted(t, tn.SMTP, false)
			// The clock starts before EHLO is sent, so before the server's idle timer (which
			// starts when its reply is written), however late a loaded machine lets this
			// goroutine read that reply.
			start := time.Now()
			d.ehlo("client.example.com")
			d.expect(`421 4\.4\.2 mx\.example\.test Error: timeout exceeded`)
			checkElapsed(t, start, time.Second)
			d.expectClosed()
		})
		t.Run("in DATA", func(t *testing.T) {
			t.Parallel()
			d := ehlod(t, tn.SMTP, false)
			d.cmd("MAIL FROM:<alice@host.example.com>", `250 2\.1\.0 Ok`)
			d.cmd("RCPT TO:<bob@example.test>", `250 2\.1\.5 Ok`)
			d.cmd("DATA", `354 .*`)
			start := time.Now() // before the server can read what follows
			d.write("Subject: never finished\r\n\r\nand then silence")
			d.expect(`421 4\.4\.2 mx\.example\.test Error: timeout exceeded`)
			checkElapsed(t, start, time.Second)
			d.expectClosed()
			tn.ExpectNoMail("bob@example.test", 0)
		})
	})

	t.Run("session timeout", func(t *testing.T) {
		t.Parallel()
		// The idle timeout stays well above the NOOP interval, so that only the session limit
		// can end this session, even on a loaded machine.
		tn := startTern(t, ternOpts{Config: "[limits]\nsession_timeout = \"2s\"\nidle_timeout = \"30s\"\n"})
		start := time.Now() // before the server accepts the connection
		d := dial(t, tn.SMTP)
		d.expect(`220 .*`)
		d.ehlo("client.example.com")
		for {
			time.Sleep(200 * time.Millisecond)
			d.conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(d.conn, "NOOP\r\n") // may fail once the server has closed; the reply is what counts
			lines, err := d.reply()
			if err != nil {
				t.Fatalf("after %v: %v %q", time.Since(start), err, lines)
			}
			if lines[0] == "250 2.0.0 Ok" {
				if time.Since(start) > 10*time.Second {
					t.Fatal("still NOOPing 10s into a 2s session")
				}
				continue
			}
			if lines[0] != "421 4.4.2 mx.example.test Error: session time limit exceeded" {
				t.Fatalf("reply %q after %v, want the session time limit", lines[0], time.Since(start))
			}
			break
		}
		checkElapsed(t, start, 2*time.Second)
		d.expectClosed()
	})

	t.Run("connections per IP", func(t *testing.T) {
		t.Parallel()
		tn := startTern(t, ternOpts{Config: "[limits]\nconnections_per_ip = 2\n"})
		tn.AddUser("bob@example.test", "pw")
		d1 := ehlod(t, tn.SMTP, false)
		d2 := ehlod(t, tn.Submission, false) // the limit counts all listeners
		d3 := dial(t, tn.SMTP)
		d3.expect(`421 4\.7\.0 Too many connections from 127\.0\.0\.1`)
		d3.expectClosed()
		// The first two still work.
		d1.sendMessage("alice@host.example.com", "bob@example.test", "Subject: one\r\n\r\n1\r\n")
		d2.authPlain("bob@example.test", "pw") // submission requires AUTH
		d2.sendMessage("bob@example.test", "bob@example.test", "Subject: two\r\n\r\n2\r\n")
		d1.cmd("QUIT", `221 2\.0\.0 Bye`)
		d1.expectClosed()
		// A slot is free again once a connection has ended.
		waitFor(t, 5*time.Second, "a connection slot to be released", func() bool {
			d := dial(t, tn.SMTP)
			lines, _ := d.reply()
			d.conn.Close()
			return len(lines) > 0 && strings.HasPrefix(lines[0], "220 ")
		})
		d2.cmd("QUIT", `221 2\.0\.0 Bye`)
		tn.WaitMaildir("bob@example.test", 2, 10*time.Second)
	})

	t.Run("connections total", func(t *testing.T) {
		t.Parallel()
		tn := startTern(t, ternOpts{Config: "[limits]\nconnections = 2\nconnections_per_ip = 0\n"})
		tn.AddUser("bob@example.test", "pw")
		d1 := ehlod(t, tn.SMTP, false)
		d2 := ehlod(t, tn.Submission, false)
		d3 := dial(t, tn.Submission)
		d3.expect(`421 4\.7\.0 Too many connections, try again later`)
		d3.expectClosed()
		d1.sendMessage("alice@host.example.com", "bob@example.test", "Subject: one\r\n\r\n1\r\n")
		d2.authPlain("bob@example.test", "pw") // submission requires AUTH
		d2.sendMessage("bob@example.test", "bob@example.test", "Subject: two\r\n\r\n2\r\n")
		d1.cmd("QUIT", `221 2\.0\.0 Bye`)
		d2.cmd("QUIT", `221 2\.0\.0 Bye`)
		tn.WaitMaildir("bob@example.test", 2, 10*time.Second)
	})

	// On the implicit-TLS port every octet is TLS (RFC 8314 §3.3): a refused connection must
	// not answer a ClientHello with a cleartext 421, which the client can only report as a
	// broken handshake.
	t.Run("connections limit on the implicit TLS port", func(t *testing.T) {
		t.Parallel()
		tn := startTern(t, ternOpts{Config: "[limits]\nconnections_per_ip = 1\n"})
		ehlod(t, tn.SMTP, false)
		c, err := net.DialTimeout("tcp", tn.Submissions, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		tc := tls.Client(c, insecureTLS())
		tc.SetDeadline(time.Now().Add(replyTimeout))
		herr := tc.Handshake()
		var rhe tls.RecordHeaderError
		if errors.As(herr, &rhe) {
			t.Fatalf("BUG: the refusal came as cleartext on the implicit-TLS port: TLS client got %v (record header %q)", herr, string(rhe.RecordHeader[:]))
		}
		if herr == nil {
			d := &dialog{t: t, conn: tc, r: bufio.NewReader(tc)}
			d.expect(`421 4\.7\.0 Too many connections from 127\.0\.0\.1`)
			d.expectClosed()
		}
	})
}

// checkElapsed fails if less than min has passed since start: the server gave up early. start
// must be taken before the event that starts the server's timer (the client's last write, or
// its connection), so that on one machine's clock nothing else can make the time shorter.
// There is no upper bound: the wait for the reply has its own deadline, and how late a loaded
// machine runs a timer is no property of tern.
func checkElapsed(t testing.TB, start time.Time, min time.Duration) {
	t.Helper()
	if d := time.Since(start); d < min {
		t.Fatalf("took %v, want at least %v", d.Round(time.Millisecond), min)
	}
}

// waitFor polls cond every 50ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
