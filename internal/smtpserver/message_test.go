package smtpserver

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/envelope"
)

// lastMessage returns the one message the spool holds, failing otherwise.
func lastMessage(t *testing.T, ts *testServer, want int) *memMsg {
	t.Helper()
	msgs := ts.spool.messages()
	if len(msgs) != want {
		t.Fatalf("spool holds %d messages, want %d", len(msgs), want)
	}
	return msgs[len(msgs)-1]
}

func TestDataStoresUnstuffedBodyWithReceived(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial(t, RoleMX)
	c.run(`
		S: 220
		C: EHLO client.example
		S: 250
		C: MAIL FROM:<kenneth@oeey.com> RET=FULL ENVID=id+2B1
		S: 250
		C: RCPT TO:<bob@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob@example.test
		S: 250
		C: DATA
		S: 354
		W: Subject: dots\r\n\r\n..leading dot\r\n...two\r\n.\r\n
		S: 250 2.0.0 Ok: queued as ABCDEF`)
	m := lastMessage(t, ts, 1)
	body := m.body.String()
	re := regexp.MustCompile(`^Received: from client\.example \(\[127\.0\.0\.1\]\)\r\n\tby mx\.example\.test \(tern\) with ESMTP id ` +
		m.id + `\r\n\tfor <bob@example\.test>; \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\r\n`)
	if !re.MatchString(body) {
		t.Errorf("Received header wrong:\n%s", body)
	}
	if !strings.HasSuffix(body, "Subject: dots\r\n\r\n.leading dot\r\n..two\r\n") {
		t.Errorf("body not unstuffed:\n%q", body)
	}
	env := m.env
	if env.ID != m.id || env.From != "kenneth@oeey.com" || env.Ret != "FULL" || env.EnvID != "id+1" ||
		env.Helo != "client.example" || env.ClientIP != "127.0.0.1" || env.Size != int64(len(body)) {
		t.Errorf("envelope %+v", env)
	}
	want := envelope.Recipient{Addr: "bob@example.test", Notify: []string{"SUCCESS", "DELAY"}, ORcpt: "rfc822;bob@example.test"}
	if r := env.Rcpts; len(r) != 1 || r[0].Addr != want.Addr || strings.Join(r[0].Notify, ",") != "SUCCESS,DELAY" || r[0].ORcpt != want.ORcpt {
		t.Errorf("recipients %+v, want %+v", env.Rcpts, want)
	}
}

func TestReceivedOmitsForWithSeveralRecipients(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.dial(t, RoleMX).run(`
		S: 220
		C: HELO c
		S: 250
		C: MAIL FROM:<>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: DATA
		S: 354
		C: x
		C: .
		S: 250`)
	m := lastMessage(t, ts, 1)
	if strings.Contains(m.body.String(), "for <") || !strings.Contains(m.body.String(), " with SMTP id ") {
		t.Errorf("Received: %q", m.body.String())
	}
	if m.env.From != "" || len(m.env.Rcpts) != 2 {
		t.Errorf("envelope: from %q, %d recipients (the duplicate should be stored once)", m.env.From, len(m.env.Rcpts))
	}
}

// The seeds' way of testing: the whole session in one write, as `nc host 25 < message` sends it.
func TestPipelinedWholeSession(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial(t, RoleMX)
	c.send("HELO host.example.com\r\nMAIL FROM: <test@host.example.com>\r\nRCPT TO: <bob@example.test>\r\n" +
		"DATA\r\nFrom: [Alice] <alice@geek.com>\r\nTo: <bob@example.test>\r\nSubject: Test Message\r\n\r\n" +
		"Hi there!\r\n.\r\nQUIT\r\n")
	c.run(`
		S: 220 mx.example.test ESMTP tern
		S: 250 mx.example.test
		S: 250 2.1.0 Ok
		S: 250 2.1.5 Ok
		S: 354 End data
		S: 250 2.0.0 Ok: queued as
		S: 221 2.0.0 Bye
		CLOSED`)
	lastMessage(t, ts, 1)
}

// DATA reads a message with a reader of its own, larger than the session's; whatever that reader
// takes in past the final dot (here a whole second transaction, sent before any reply, longer
// than the session's reader holds) is read next as commands and data, in order, nothing lost.
func TestPipelinedAfterData(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial(t, RoleMX)
	second := strings.Repeat("0123456789 second message, a line of text\r\n", 400) // 17 KB
	c.send("EHLO host.example.com\r\nMAIL FROM:<a@host.example.com>\r\nRCPT TO:<bob@example.test>\r\n" +
		"DATA\r\nSubject: one\r\n\r\nfirst\r\n.\r\n" +
		"MAIL FROM:<a@host.example.com>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: two\r\n\r\n" +
		second + "..stuffed\r\n.\r\nQUIT\r\n")
	c.run(`
		S: 220 mx.example.test ESMTP tern
		S: 250-mx.example.test
		S: 250 2.1.0 Ok
		S: 250 2.1.5 Ok
		S: 354 End data
		S: 250 2.0.0 Ok: queued as
		S: 250 2.1.0 Ok
		S: 250 2.1.5 Ok
		S: 354 End data
		S: 250 2.0.0 Ok: queued as
		S: 221 2.0.0 Bye
		CLOSED`)
	msgs := ts.spool.messages()
	if len(msgs) != 2 {
		t.Fatalf("spool holds %d messages, want 2", len(msgs))
	}
	if b := msgs[0].body.String(); !strings.HasSuffix(b, "Subject: one\r\n\r\nfirst\r\n") {
		t.Errorf("first message ends %q", b[max(0, len(b)-40):])
	}
	if b := msgs[1].body.String(); !strings.HasSuffix(b, "Subject: two\r\n\r\n"+second+".stuffed\r\n") {
		t.Errorf("second message ends %q", b[max(0, len(b)-40):])
	}
}

// RFC 2920 pipelining: replies come back in order, including a failing command in the middle.
func TestPipeliningOrder(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial(t, RoleMX)
	c.expect("220")
	c.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\n" +
		"RCPT TO:<x@remote.example>\r\nDATA\r\n")
	c.run(`
		S: 250-mx.example.test
		S: 250 2.1.0
		S: 550 5.1.1
		S: 250 2.1.5
		S: 554 5.7.1
		S: 354
		C: hello
		C: .
		S: 250 2.0.0
		W: MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT 7 LAST\r\nhello\r\nNOOP\r\n
		S: 250 2.1.0
		S: 250 2.1.5
		S: 250 2.0.0 Ok: queued as
		S: 250 2.0.0 Ok`)
	lastMessage(t, ts, 2)
}

// Replies that are ready are not held back by input that is not a whole command: the start of
// the next line, or the part of a BDAT chunk still to come. Each reply must arrive before the
// client sends the rest.
func TestRepliesNotHeldBack(t *testing.T) {
	for _, tc := range []struct{ name, transcript string }{
		{"partial-line", `
			S: 220
			C: EHLO c
			S: 250
			W: NOOP\r\nNO
			S: 250 2.0.0 Ok
			W: OP\r\nRSET\r\nMAIL FROM:<a@b.ex
			S: 250 2.0.0 Ok
			S: 250 2.0.0 Ok
			W: ample>\r\n
			S: 250 2.1.0 Ok`},
		{"before-bdat-chunk", `
			S: 220
			C: EHLO c
			S: 250
			W: MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT 21 LAST\r\nSubject: x\r\n
			S: 250 2.1.0 Ok
			S: 250 2.1.5 Ok
			W: \r\nhello\r\n
			S: 250 2.0.0 Ok: queued as`},
		{"before-second-chunk", `
			S: 220
			C: EHLO c
			S: 250
			W: MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT 3\r\nabcBDAT 4 LAST\r\nd
			S: 250 2.1.0 Ok
			S: 250 2.1.5 Ok
			S: 250 2.0.0 Ok: 3 octets received
			W: e\r\n
			S: 250 2.0.0 Ok: queued as`},
		{"whole-group-before-data", `
			S: 220
			C: EHLO c
			S: 250
			W: MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubj
			S: 250 2.1.0 Ok
			S: 250 2.1.5 Ok
			S: 354
			W: ect: x\r\n\r\nhello\r\n.\r\n
			S: 250 2.0.0 Ok: queued as`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			newTestServer(t, nil).dial(t, RoleMX).run(tc.transcript)
		})
	}
}

func TestBdat(t *testing.T) {
	t.Run("chunks", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.dial(t, RoleMX).run(`
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@b.example> BODY=BINARYMIME
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 503 5.5.1 Error: BODY=BINARYMIME requires BDAT
			W: BDAT 12\r\nSubject: x\r\n
			S: 250 2.0.0 Ok: 12 octets received
			W: BDAT 9\r\n\r\n\x00\r\x01\n.\r\n
			S: 250 2.0.0 Ok: 9 octets received
			C: RCPT TO:<alice@example.test>
			S: 503 5.5.1 Error: RCPT after BDAT
			C: DATA
			S: 503 5.5.1 Error: DATA after BDAT
			C: BDAT 0 LAST
			S: 250 2.0.0 Ok: queued as`)
		m := lastMessage(t, ts, 1)
		if !strings.HasSuffix(m.body.String(), "Subject: x\r\n\r\n\x00\r\x01\n.\r\n") || m.env.Body != envelope.BodyBinaryMIME {
			t.Errorf("body %q, BODY %q", m.body.String(), m.env.Body)
		}
	})
	// A chunk larger than the session's reader is read with a reader of its own, as DATA is;
	// what that reads past the chunk (the commands and the chunk pipelined behind it) is read
	// next, as sent.
	t.Run("large-chunk-then-pipelined", func(t *testing.T) {
		ts := newTestServer(t, nil)
		c := ts.dial(t, RoleMX)
		c.run(`
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250`)
		big := "Subject: big\r\n\r\n" + strings.Repeat("0123456789 a line of a large chunk\r\n", 3000) // 108 KB
		c.send(fmt.Sprintf("BDAT %d\r\n%sBDAT 6 LAST\r\nlast\r\nNOOP\r\n", len(big), big))
		c.run(fmt.Sprintf(`
			S: 250 2.0.0 Ok: %d octets received
			S: 250 2.0.0 Ok: queued as
			S: 250`, len(big)))
		if m := lastMessage(t, ts, 1); !strings.HasSuffix(m.body.String(), big+"last\r\n") {
			t.Errorf("body ends %q", m.body.String()[max(0, m.body.Len()-40):])
		}
	})
	t.Run("text-checks-and-final-crlf", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.dial(t, RoleMX).run(`
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			W: BDAT 13\r\nbare\nLF\r\nOK\r\n
			S: 250 2.0.0 Ok: 13
			C: BDAT 0 LAST
			S: 554 5.5.2 Error: bare <LF>
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			W: BDAT 3 LAST\r\nno\r
			S: 554 5.5.2 Error: bare <CR>
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			W: BDAT 2 LAST\r\nno
			S: 250 2.0.0 Ok: queued`)
		m := lastMessage(t, ts, 1)
		if !strings.HasSuffix(m.body.String(), "\r\nno\r\n") {
			t.Errorf("final CRLF not added: %q", m.body.String())
		}
	})
	t.Run("refused-chunks-are-still-read", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.dial(t, RoleMX).run(`
			S: 220
			C: EHLO c
			S: 250
			W: BDAT 6\r\nQUIT\r\n
			S: 503 5.5.1 Error: need RCPT command
			C: MAIL FROM:<a@b.example>
			S: 250
			W: BDAT 6 LAST\r\nQUIT\r\n
			S: 503 5.5.1 Error: need RCPT command
			C: NOOP
			S: 250`)
	})
	t.Run("too-big", func(t *testing.T) {
		ts := newTestServer(t, func(o *Options) { o.MaxMessageSize = 500 })
		ts.dial(t, RoleMX).run(`
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			W: BDAT 400\r\n` + strings.Repeat("x", 398) + `\r\n
			S: 250 2.0.0 Ok: 400 octets received
			W: BDAT 110\r\n` + strings.Repeat("x", 108) + `\r\n
			S: 552 5.3.4 Message size exceeds fixed limit
			W: BDAT 10\r\n0123456789
			S: 552 5.3.4
			W: BDAT 10 LAST\r\n0123456789
			S: 552 5.3.4
			C: MAIL FROM:<a@b.example>
			S: 250 2.1.0`)
		if n := len(ts.spool.messages()); n != 0 {
			t.Errorf("%d messages stored", n)
		}
	})
	t.Run("bad-syntax-closes", func(t *testing.T) {
		ts := newTestServer(t, nil)
		for _, arg := range []string{"", "x", "-1", "+5", "5 NOTLAST", "5 LAST extra", "9999999999999999999"} {
			ts.dial(t, RoleMX).run(`
				S: 220
				C: EHLO c
				S: 250
				C: BDAT ` + arg + `
				S: 501 5.5.4 Syntax: BDAT size \[LAST\]
				CLOSED`)
		}
	})
}

func TestMessageSizeWhileStreaming(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxMessageSize = 1000 })
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO c
		S: 250-mx.example.test\n250-PIPELINING\n250-SIZE 1000\n
		C: MAIL FROM:<a@b.example> SIZE=1001
		S: 552 5.3.4 Message size exceeds fixed limit
		C: MAIL FROM:<a@b.example> SIZE=1000
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: DATA
		S: 354
		W: ` + strings.Repeat(strings.Repeat("y", 98)+`\r\n`, 11) + `.\r\n
		S: 552 5.3.4 Message size exceeds fixed limit
		C: MAIL FROM:<a@b.example>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: DATA
		S: 354
		W: ` + strings.Repeat(strings.Repeat("y", 98)+`\r\n`, 10) + `.\r\n
		S: 250 2.0.0 Ok: queued`)
	lastMessage(t, ts, 1)
}

func TestSpoolFailures(t *testing.T) {
	dataSession := `
		S: 220
		C: EHLO c
		S: 250
		C: MAIL FROM:<a@b.example>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: DATA
		S: 354
		W: Subject: x\r\n\r\n` + strings.Repeat(`body line\r\n`, 100) + `.\r\n
		S: 451 4.3.0 Error: queue file write error
		C: NOOP
		S: 250`
	for name, mod := range map[string]func(*memSpool){
		"commit":   func(s *memSpool) { s.commitErr = errors.New("disk full") },
		"mid-data": func(s *memSpool) { s.writeErr, s.writeAt = errors.New("disk full"), 300 },
	} {
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, nil)
			mod(ts.spool)
			ts.dial(t, RoleMX).run(dataSession)
			if n := len(ts.spool.messages()); n != 0 {
				t.Errorf("%d messages committed", n)
			}
		})
	}
	t.Run("create", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.spool.newErr = errors.New("no space")
		ts.dial(t, RoleMX).run(`
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 451 4.3.0 Error: queue file write error
			W: BDAT 5\r\nhello
			S: 451 4.3.0
			C: BDAT 0 LAST
			S: 451 4.3.0
			C: NOOP
			S: 250`)
	})
}

func TestUTF8Session(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO c
		S: 250
		C: MAIL FROM:<kenneth@oeey.com> SMTPUTF8 BODY=8BITMIME
		S: 250
		C: RCPT TO:<jørgen@example.test>
		S: 250 2.1.5
		C: DATA
		S: 354
		C: Subject: blåbærsyltetøy
		C:
		C: ok
		C: .
		S: 250`)
	m := lastMessage(t, ts, 1)
	if !strings.Contains(m.body.String(), " with UTF8SMTP id ") || !m.env.SMTPUTF8 || m.env.Rcpts[0].Addr != "jørgen@example.test" {
		t.Errorf("body %q env %+v", m.body.String(), m.env)
	}
}

// Every MAIL and RCPT decision, accepted or not, leaves one log line with its reply code.
func TestDecisionsAreLogged(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO c
		S: 250
		C: MAIL FROM:<a@b.example> SIZE=999999999
		S: 552
		C: MAIL FROM:<a@b.example>
		S: 250
		C: RCPT TO:<x@remote.example>
		S: 554
		C: RCPT TO:<bob@example.test> NOTIFY=BOGUS
		S: 501
		C: RCPT TO:<bob@example.test>
		S: 250
		C: QUIT
		S: 221`)
	// The disconnect line is written after the connection closes: wait for it.
	waitFor(t, func() bool { return strings.Contains(ts.logs.String(), "msg=disconnect") })
	logs := ts.logs.String()
	for _, want := range []string{
		`msg="mail rejected" conn=1 remote=127.0.0.1 listener=smtp from=a@b.example code=552`,
		`msg=mail conn=1 remote=127.0.0.1 listener=smtp from=a@b.example code=250`,
		`msg=rcpt conn=1 remote=127.0.0.1 listener=smtp from=a@b.example rcpt=x@remote.example code=554`,
		`msg=rcpt conn=1 remote=127.0.0.1 listener=smtp from=a@b.example rcpt=bob@example.test code=501`,
		`msg=rcpt conn=1 remote=127.0.0.1 listener=smtp from=a@b.example rcpt=bob@example.test code=250`,
		`msg=disconnect conn=1`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}
