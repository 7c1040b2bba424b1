package smtpserver

import (
	"strings"
	"testing"
)

// bareLF is the reply that ends a session after a bare LF in a command line, as a transcript
// pattern.
const bareLF = `521 5.5.2 mx.example.test Error: bare <LF> received; lines must end with <CR><LF> \(nc -C adds them\)`

// Transcript openings: a sender given (the RCPT still to come), and a recipient accepted.
const (
	mailGiven = `
		S: 220
		C: EHLO c
		S: 250
		C: MAIL FROM:<a@b.example>
		S: 250`
	rcptGiven = mailGiven + `
		C: RCPT TO:<bob@example.test>
		S: 250`
)

// Faults in command lines and message text: a bare LF in a command ends the session (the text
// after it must never run as a command), a bare CR or a NUL costs the line, a NUL in message
// text costs the message unless it is BINARYMIME.
func TestLineFaults(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, tc := range []struct{ name, transcript string }{
		{"bare-LF-closes-at-once", `
			S: 220
			W: EHLO c\nNOOP\r\n
			S: ` + bareLF + `
			CLOSED`},
		// Behind a proxy that splits on CRLF only, "MAIL...\nRCPT..." is one line: the RCPT
		// after the LF must not run here as a command of its own.
		{"bare-LF-never-desyncs", `
			S: 220
			C: EHLO c
			S: 250
			W: MAIL FROM:<a@b.example>\nRCPT TO:<bob@example.test>\r\n
			S: ` + bareLF + `
			CLOSED`},
		{"bare-LF-ending-a-long-line", `
			S: 220
			C: EHLO c
			S: 250
			W: NOOP ` + strings.Repeat("x", 600) + `\nMAIL FROM:<a@b.example>\r\n
			S: ` + bareLF + `
			CLOSED`},
		{"bare-LF-mid-pipeline", `
			S: 220
			W: EHLO c\r\nNOOP\r\nNOOP\nQUIT\r\n
			S: 250
			S: 250 2.0.0 Ok
			S: ` + bareLF + `
			CLOSED`},
		{"bare-LF-in-a-transaction", rcptGiven + `
			W: DATA\n
			S: ` + bareLF + `
			CLOSED`},
		{"NUL-in-a-command-costs-the-line", `
			S: 220
			W: EHLO c\x00evil\r\n
			S: 500 5.5.2 Error: NUL character received
			C: EHLO c
			S: 250
			W: MAIL FROM:<a@b.example>\x00 SIZE=1\r\n
			S: 500 5.5.2 Error: NUL character received
			C: MAIL FROM:<a@b.example>
			S: 250`},
		{"NUL-in-DATA", rcptGiven + `
			C: DATA
			S: 354
			W: Subject: nul\r\n\r\na\x00b\r\n.\r\n
			S: 554 5.6.0 Error: message contains a NUL character; binary content needs BDAT with BODY=BINARYMIME
			C: NOOP
			S: 250 2.0.0 Ok`},
		// A downstream server that strips NULs would see ".\r\n" and run the MAIL: here it is
		// message text, the whole message is refused, and the session stays in step.
		{"NUL-hiding-an-end-of-data", rcptGiven + `
			C: DATA
			S: 354
			W: Subject: hi\r\n\r\nhi\r\n.\x00\r\nMAIL FROM:<evil@b.example>\r\nRCPT TO:<alice@example.test>\r\n.\r\n
			S: 554 5.6.0
			C: RCPT TO:<bob@example.test>
			S: 503 5.5.1 Error: need MAIL command`},
		{"NUL-in-BDAT", `
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@b.example> BODY=8BITMIME
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			W: BDAT 5\r\na\x00b\r\n
			S: 250 2.0.0 Ok: 5 octets received
			W: BDAT 3 LAST\r\nc\r\n
			S: 554 5.6.0 Error: message contains a NUL character
			C: NOOP
			S: 250 2.0.0 Ok`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts.dial(t, RoleMX).run(tc.transcript)
		})
	}
	if strings.Contains(ts.logs.String(), "evil") {
		t.Error("text after a NUL or bare LF reached the session as a command")
	}
}

// BINARYMIME may carry any octet, NUL included (RFC 3030 §3).
func TestNULInBinaryMIME(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO c
		S: 250
		C: MAIL FROM:<a@b.example> BODY=BINARYMIME
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		W: BDAT 6 LAST\r\na\x00b\r\n\x00
		S: 250 2.0.0 Ok: queued`)
	if m := lastMessage(t, ts, 1); !strings.HasSuffix(m.body.String(), "a\x00b\r\n\x00") {
		t.Errorf("body %q", m.body.String())
	}
}

// A bare LF in an AUTH response ends the session like one in a command.
func TestBareLFInAuthResponse(t *testing.T) {
	ts := newTestServer(t, withAuth(nil))
	ts.dial(t, RoleSubmission).run(`
		S: 220
		C: EHLO c
		S: 250
		C: AUTH LOGIN
		S: 334 VXNlcm5hbWU6
		W: Ym9iQGV4YW1wbGUudGVzdA==\n
		S: ` + bareLF + `
		CLOSED`)
}

// Past the recipient limit a client gets MaxRcptOvershoot 452s that do not count as errors, so
// that it can send to the recipients it has and the rest in another transaction; after those,
// each 452 counts (Postfix's smtpd_recipient_overshoot_limit).
func TestRecipientOvershoot(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxRcpts, o.MaxRcptOvershoot, o.MaxErrors = 2, 3, 2 })
	rcpts := func(n int, reply string) string {
		return strings.Repeat("C: RCPT TO:<bob@example.test>\nS: "+reply+"\n", n)
	}
	t.Run("within the overshoot", func(t *testing.T) {
		ts.dial(t, RoleMX).run(mailGiven + "\n" + rcpts(2, "250 2.1.5") + rcpts(3, "452 4.5.3 Too many recipients") + `
			C: DATA
			S: 354
			C: .
			S: 250 2.0.0 Ok: queued
			C: MAIL FROM:<a@b.example>
			S: 250
			` + rcpts(2, "250 2.1.5") + rcpts(3, "452 4.5.3 Too many recipients") + `
			C: RSET
			S: 250`)
	})
	t.Run("past the overshoot", func(t *testing.T) {
		ts.dial(t, RoleMX).run(mailGiven + "\n" + rcpts(2, "250 2.1.5") + rcpts(3, "452 4.5.3") + rcpts(2, "452 4.5.3") + `
			S: 421 4.7.0 mx.example.test Error: too many errors
			CLOSED`)
	})
	t.Run("no overshoot", func(t *testing.T) {
		ts := newTestServer(t, func(o *Options) { o.MaxRcpts, o.MaxRcptOvershoot, o.MaxErrors = 2, -1, 2 })
		ts.dial(t, RoleMX).run(mailGiven + "\n" + rcpts(2, "250 2.1.5") + rcpts(2, "452 4.5.3") + `
			S: 421 4.7.0
			CLOSED`)
	})
}
