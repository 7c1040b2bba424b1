package smtpserver

import (
	"strings"
	"testing"
)

// Transcripts of whole sessions against the MX listener with default limits. Each reads like the
// session a mail administrator would type: C: is the client, S: the start of the reply.
func TestTranscripts(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, tc := range []struct{ name, transcript string }{
		{"greeting-and-ehlo", `
			S: 220 mx.example.test ESMTP tern
			C: EHLO client.example
			S: 250-mx.example.test\n250-PIPELINING\n250-SIZE 10240000\n250-VRFY\n250-ETRN\n250-STARTTLS\n250-ENHANCEDSTATUSCODES\n250-8BITMIME\n250-DSN\n250-SMTPUTF8\n250-CHUNKING\n250-BINARYMIME\n250 LIMITS RCPTMAX=1000$
			C: QUIT
			S: 221 2.0.0 Bye
			CLOSED`},
		{"seed-session", `
			S: 220
			C: EHLO trogdor
			S: 250-
			C: RCPT TO: <bob@example.test>
			S: 503 5.5.1 Error: need MAIL command
			C: MAIL FROM: <kenneth@oeey.com>
			S: 250 2.1.0 Ok
			C: RCPT TO: <bob@example.test>
			S: 250 2.1.5 Ok
			C: DATA
			S: 354 End data with <CR><LF>.<CR><LF>
			C: Subject: This is a test
			C: From: Kenneth <kenneth@oeey.com>
			C:
			C: This is a test
			C: .
			S: 250 2.0.0 Ok: queued as ABCDEF[0-9]+
			C: quit
			S: 221 2.0.0 Bye`},
		{"helo", `
			S: 220
			C: HELO host.example.com
			S: 250 mx.example.test$
			C: MAIL FROM:<a@b.example> SIZE=10
			S: 555 5.5.4 Unsupported option: SIZE
			C: MAIL FROM:<a@b.example>
			S: 250 2.1.0
			C: RCPT TO:<bob@example.test> NOTIFY=NEVER
			S: 555 5.5.4
			C: QUIT
			S: 221`},
		{"sequence-errors", `
			S: 220
			C: MAIL FROM:<a@b.example>
			S: 503 5.5.1 Error: send HELO/EHLO first
			C: EHLO c
			S: 250
			C: DATA
			S: 503 5.5.1 Error: need RCPT command
			C: MAIL FROM:<a@b.example>
			S: 250
			C: MAIL FROM:<a@b.example>
			S: 503 5.5.1 Error: nested MAIL command
			C: DATA
			S: 503 5.5.1 Error: need RCPT command
			C: RSET
			S: 250 2.0.0 Ok
			C: RCPT TO:<bob@example.test>
			S: 503 5.5.1 Error: need MAIL command`},
		{"other-commands", `
			S: 220
			C: EHLO c
			S: 250
			C: NOOP
			S: 250 2.0.0 Ok
			C: noop with args
			S: 250 2.0.0 Ok
			C: VRFY bob@example.test
			S: 252 2.0.0 Cannot VRFY user
			C: VRFY nosuchuser
			S: 252 2.0.0
			C: VRFY
			S: 501 5.5.4 Syntax: VRFY address
			C: EXPN staff
			S: 502 5.5.1 Error: command not implemented
			C: TURN
			S: 502 5.5.1 Error: command not implemented
			C: HELP
			S: 214-2.0.0 Commands supported:\n214 2.0.0 HELO EHLO STARTTLS MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY ETRN HELP$
			C: XYZZY
			S: 500 5.5.2 Error: command not recognized
			C:
			S: 500 5.5.2 Error: bad syntax
			C: ETRN
			S: 501 5.5.4 Syntax: ETRN \[@\|#\]domain
			C: ETRN remote.example
			S: 459 4.7.1 Node remote.example not allowed: ETRN requires authentication
			C: ETRN example.test
			S: 459 4.7.1 Node example.test not allowed: mail for it is delivered here
			C: ETRN [127.0.0.1]
			S: 501 5.5.4
			C: AUTH PLAIN
			S: 503 5.5.1
			C: RSET now
			S: 501 5.5.4 Syntax: RSET
			C: EHLO
			S: 501 5.5.4 Syntax: EHLO hostname
			C: HELO
			S: 501 5.5.4 Syntax: HELO hostname
			C: QUIT now
			S: 501 5.5.4 Syntax: QUIT
			C: qUiT
			S: 221 2.0.0 Bye`},
		{"mail-from-forms", `
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM: <kenneth@oeey.com>
			S: 250 2.1.0
			C: RSET
			S: 250
			C: MAIL FROM:kenneth@oeey.com
			S: 250 2.1.0
			C: RSET
			S: 250
			C: MAIL FROM:<>
			S: 250 2.1.0
			C: RSET
			S: 250
			C: mail from:<@relay.example:kenneth@oeey.com>
			S: 250 2.1.0
			C: RSET
			S: 250
			C: MAIL FROM:<"john doe"@oeey.com> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=QQ+2B1
			S: 250 2.1.0
			C: RSET
			S: 250
			C: MAIL FROM:<kenneth@oeey.com> BODY=BINARYMIME SMTPUTF8
			S: 250 2.1.0
			C: RSET
			S: 250
			C: MAIL TO:<kenneth@oeey.com>
			S: 501 5.5.4 Syntax: MAIL FROM:<address>
			C: MAIL FROM:<kenneth@oeey.com
			S: 501 5.5.4 Syntax: MAIL FROM:<address>
			C: MAIL FROM:<kenneth@@oeey.com>
			S: 501 5.1.7 <kenneth@@oeey.com>: Sender address rejected: bad address syntax
			C: MAIL FROM:<kenneth>
			S: 501 5.1.7
			C: MAIL FROM:<kenneth@oeey.com> SIZE=99999999999
			S: 552 5.3.4 Message size exceeds fixed limit
			C: MAIL FROM:<kenneth@oeey.com> SIZE=big
			S: 501 5.5.4 Bad message size syntax
			C: MAIL FROM:<kenneth@oeey.com> BODY=9BIT
			S: 501 5.5.4 Unsupported BODY type
			C: MAIL FROM:<kenneth@oeey.com> RET=ALL
			S: 501 5.5.4 Bad RET parameter
			C: MAIL FROM:<kenneth@oeey.com> ENVID=a+zz
			S: 501 5.5.4 Bad ENVID parameter
			C: MAIL FROM:<kenneth@oeey.com> SMTPUTF8=yes
			S: 501 5.5.4
			C: MAIL FROM:<kenneth@oeey.com> FOO=bar
			S: 555 5.5.4 Unsupported option: FOO
			C: MAIL FROM:<kenneth@oeey.com> SIZE=1 SIZE=2
			S: 501 5.5.4
			C: MAIL FROM:<jørgen@oeey.com>
			S: 553 5.6.7 <jørgen@oeey.com>: Sender address rejected: non-ASCII address needs SMTPUTF8
			C: MAIL FROM:<jørgen@oeey.com> SMTPUTF8
			S: 250 2.1.0`},
		{"rcpt-policy", `
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<kenneth@oeey.com>
			S: 250
			C: RCPT TO:<other@remote.example>
			S: 554 5.7.1 <other@remote.example>: Relay access denied
			C: RCPT TO:<nobody@example.test>
			S: 550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown
			C: RCPT TO:<BOB@Example.TEST>
			S: 250 2.1.5 Ok
			C: RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+40@example.test
			S: 250 2.1.5 Ok
			C: RCPT TO:<Postmaster>
			S: 250 2.1.5 Ok
			C: RCPT TO:<bob@example.test> NOTIFY=NEVER,SUCCESS
			S: 501 5.5.4 NOTIFY=NEVER cannot be combined
			C: RCPT TO:<bob@example.test> NOTIFY=SOMETIMES
			S: 501 5.5.4 Bad NOTIFY parameter
			C: RCPT TO:<bob@example.test> ORCPT=rfc822
			S: 501 5.5.4 Bad ORCPT parameter
			C: RCPT TO:<bob@example.test> XFOO
			S: 555 5.5.4 Unsupported option: XFOO
			C: RCPT TO:<bob@exa mple.test>
			S: 501 5.1.3
			C: RCPT TO:<bob@-example.test>
			S: 501 5.1.3 <bob@-example.test>: Recipient address rejected: bad address syntax
			C: RCPT TO:<jørgen@example.test>
			S: 553 5.6.7
			C: RCPT FROM:<bob@example.test>
			S: 501 5.5.4 Syntax: RCPT TO:<address>
			C: RCPT TO:<alice@[127.0.0.1]>
			S: 554 5.7.1 <alice@\[127.0.0.1\]>: Relay access denied`},
		{"data-faults-keep-the-session", `
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA extra
			S: 501 5.5.4 Syntax: DATA
			C: DATA
			S: 354
			W: Subject: bare LF\nbody\r\n.\r\n
			S: 554 5.5.2 Error: bare <LF> received in message data
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 354
			W: Subject: bare CR\rbody\r\n.\r\n
			S: 554 5.5.2 Error: bare <CR> received in message data
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 354
			W: Subject: long\r\n` + strings.Repeat("x", 999) + `\r\n.\r\n
			S: 554 5.6.0 Error: message has a line longer than 1000 octets
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 354
			W: Subject: just fits\r\n` + strings.Repeat("x", 998) + `\r\n.\r\n
			S: 250 2.0.0 Ok: queued as`},
		{"smuggling-never-ends-data", `
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 354
			W: Subject: smuggle\r\n\r\nhi\n.\nMAIL FROM:<evil@b.example>\nRCPT TO:<alice@example.test>\nDATA\nsmuggled\n.\n\r.\r\n.\rRSET\r\n\n.\r\nQUIT\r\n.\r\n
			S: 554 5.5.2 Error: bare <LF>
			C: NOOP
			S: 250 2.0.0 Ok`},
		{"too-many-recipients", `
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@b.example>
			S: 250
		` + strings.Repeat("C: RCPT TO:<bob@example.test>\nS: 250\n", 1000) + `
			C: RCPT TO:<alice@example.test>
			S: 452 4.5.3 Too many recipients`},
		{"command-line-too-long", `
			S: 220
			C: EHLO c
			S: 250
			C: NOOP ` + strings.Repeat("x", 506) + `
			S: 500 5.5.2 Error: line too long
			C: NOOP ` + strings.Repeat("x", 505) + `
			S: 250
			C: MAIL FROM:<a@b.example> ENVID=` + strings.Repeat("x", 100) + ` SIZE=1000000000
			S: 552 5.3.4
			C: NOOP ` + strings.Repeat("x", 5000) + `
			S: 500 5.5.2 Error: line too long
			C: NOOP
			S: 250`},
		{"bare-line-ends-in-commands", `
			S: 220
			W: EHLO c\rNOOP\r\n
			S: 500 5.5.2 Error: bare <CR> received
			C: EHLO c
			S: 250
			W: EHLO c\n
			S: 521 5.5.2 mx.example.test Error: bare <LF> received; lines must end with <CR><LF> \(nc -C adds them\)
			CLOSED`},
		{"http-is-refused", `
			S: 220
			C: GET / HTTP/1.1
			S: 421 4.7.0 mx.example.test Error: HTTP is not SMTP
			CLOSED`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts.dial(t, RoleMX).run(tc.transcript)
		})
	}
}

// HELP lists the commands the session takes now: STARTTLS until TLS is up, AUTH where EHLO
// offers it (here over TLS only, and no more once authenticated).
func TestHelp(t *testing.T) {
	const (
		head = `214-2.0.0 Commands supported:\n214 2.0.0 HELO EHLO `
		tail = `MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY ETRN HELP$`
	)
	t.Run("no-tls-no-auth", func(t *testing.T) {
		ts := newTestServer(t, func(o *Options) { o.TLS = nil })
		ts.dial(t, RoleMX).run(`
			S: 220
			C: HELP
			S: ` + head + tail + `
			C: HELP MAIL
			S: ` + head + tail)
	})
	t.Run("starttls-then-auth", func(t *testing.T) {
		ts := newTestServer(t, withAuth(func(a *AuthOptions) { a.LoopbackIsSecure = false }))
		c := ts.dial(t, RoleSubmission)
		c.run(`
			S: 220
			C: EHLO c
			S: 250
			C: HELP
			S: ` + head + `STARTTLS ` + tail + `
			C: STARTTLS
			S: 220`)
		c.startTLS()
		c.run(`
			C: HELP
			S: ` + head + `AUTH ` + tail + `
			C: EHLO c
			S: 250
			C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
			S: 235
			C: HELP
			S: ` + head + tail)
	})
	t.Run("implicit-tls", func(t *testing.T) {
		ts := newTestServer(t, withAuth(nil))
		ts.dial(t, RoleSubmissions).run(`
			S: 220
			C: HELP
			S: ` + head + `AUTH ` + tail)
	})
}
