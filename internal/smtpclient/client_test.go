package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/smtp"
)

func TestParseReplyLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		code int
		more bool
		text string
		ok   bool
	}{
		{"250 ok", 250, false, "ok", true},
		{"250-mx.example.test", 250, true, "mx.example.test", true},
		{"250", 250, false, "", true},
		{"250 ", 250, false, "", true},
		{"334 ", 334, false, "", true},
		{"599 x", 599, false, "x", true},
		{"199 x", 0, false, "", false},
		{"600 x", 0, false, "", false},
		{"25 x", 0, false, "", false},
		{"2500", 0, false, "", false},
		{"25a x", 0, false, "", false},
		{"", 0, false, "", false},
		{"250\tx", 0, false, "", false},
	}
	for _, tt := range tests {
		code, more, text, ok := parseReplyLine(tt.in)
		if code != tt.code || more != tt.more || text != tt.text || ok != tt.ok {
			t.Errorf("parseReplyLine(%q) = %d, %v, %q, %v; want %d, %v, %q, %v",
				tt.in, code, more, text, ok, tt.code, tt.more, tt.text, tt.ok)
		}
	}
}

func TestMakeReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		code  int
		lines []string
		enh   string
		text  string
	}{
		{"enhanced", 550, []string{"5.1.1 No such user"}, "1.1", "No such user"},
		{"enhanced on every line", 550, []string{"5.7.1 a", "5.7.1 b"}, "7.1", "a\nb"},
		{"enhanced only", 250, []string{"2.0.0"}, "0.0", ""},
		{"class mismatch kept as text", 250, []string{"5.1.1 odd"}, "", "5.1.1 odd"},
		{"no enhanced", 220, []string{"mx.example.test ESMTP"}, "", "mx.example.test ESMTP"},
		{"looks like an IP", 250, []string{"2.0.0.1 hello"}, "", "2.0.0.1 hello"},
		{"3xx never enhanced", 334, []string{"3.0.0"}, "", "3.0.0"},
		{"long parts", 451, []string{"4.1234.1 x"}, "", "4.1234.1 x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := makeReply(tt.code, slices.Clone(tt.lines))
			if r.Enh != tt.enh || r.Text != tt.text || r.Code != tt.code {
				t.Fatalf("makeReply = %+v, want enh %q text %q", r, tt.enh, tt.text)
			}
		})
	}
}

func TestParseExtensions(t *testing.T) {
	t.Parallel()
	// The seeds' EHLO replies (Postfix on oeey.com and an Exchange server).
	e := parseExtensions("oeey.com\nPIPELINING\nSIZE 10240000\nVRFY\nETRN\n" +
		"AUTH CRAM-MD5 LOGIN DIGEST-MD5 GSSAPI NTLM PLAIN\nAUTH=CRAM-MD5 LOGIN DIGEST-MD5 GSSAPI NTLM PLAIN\n8BITMIME")
	if !e.Pipelining || e.Size != 10240000 || !e.EightBitMIME || e.StartTLS || e.Chunking {
		t.Errorf("oeey.com: %+v", e)
	}
	if want := []string{"CRAM-MD5", "LOGIN", "DIGEST-MD5", "GSSAPI", "NTLM", "PLAIN"}; !slices.Equal(e.Auth, want) {
		t.Errorf("AUTH %q, want %q", e.Auth, want)
	}
	e = parseExtensions("mail.kuku.co.il Hello [xxx.xxx.xxx.xxx]\nTURN\nSIZE 104857600\nETRN\nPIPELINING\nDSN\n" +
		"ENHANCEDSTATUSCODES\n8bitmime\nBINARYMIME\nCHUNKING\nVRFY\nTLS\nSTARTTLS\nX-EXPS GSSAPI NTLM LOGIN\n" +
		"X-EXPS=LOGIN\nAUTH GSSAPI NTLM LOGIN\nAUTH=LOGIN\nX-LINK2STATE\nXEXCH50\nOK")
	if !e.StartTLS || !e.Chunking || !e.BinaryMIME || !e.DSN || !e.EnhancedStatusCodes || !e.EightBitMIME || e.SMTPUTF8 {
		t.Errorf("kuku.co.il: %+v", e)
	}
	if want := []string{"GSSAPI", "NTLM", "LOGIN"}; !slices.Equal(e.Auth, want) {
		t.Errorf("AUTH %q, want %q", e.Auth, want)
	}
	if !e.Has("x-link2state") || e.Has("SMTPUTF8") || !e.HasAuth("login") {
		t.Errorf("Has: %+v", e.Keywords)
	}
	if e := parseExtensions("mx\nSIZE\nSIZE x"); e.Size != 0 || !e.Has("SIZE") {
		t.Errorf("SIZE without a number: %+v", e)
	}
}

// A whole session, one command at a time: multiline greeting and EHLO, MAIL, RCPT, DATA with
// dot-stuffing, QUIT, and the trace of it.
func TestSession(t *testing.T) {
	t.Parallel()
	msg := "Subject: x\r\n\r\n.hidden\r\n..two\r\n.\r\nend\r\n"
	conn := runFake(t, func(s *fakeServer) {
		s.Send("220-mx.example.test ESMTP", "220 second line")
		s.ehlo("PIPELINING", "SIZE 1000", "8BITMIME", "ENHANCEDSTATUSCODES")
		s.Expect("MAIL FROM:<a@example.org> BODY=8BITMIME", "250 2.1.0 Ok")
		s.Expect("RCPT TO:<b@example.test>", "250 2.1.5 Ok")
		s.Expect("DATA", "354 End data with <CR><LF>.<CR><LF>")
		var got strings.Builder
		if _, err := smtp.ReadData(s.BR, &got, 1<<20); err != nil {
			t.Errorf("ReadData: %v", err)
		}
		if got.String() != msg {
			t.Errorf("message %q, want %q", got.String(), msg)
		}
		s.Send("250 2.0.0 Ok: queued as 1234")
		s.Expect("QUIT", "221 2.0.0 Bye")
	})
	var tr traceLog
	c := newClient(t, conn, Options{Trace: tr.trace})
	ctx := context.Background()
	if g := c.Greeting(); g.Code != 220 || g.Text != "mx.example.test ESMTP\nsecond line" {
		t.Fatalf("greeting %+v", g)
	}
	if err := c.Hello(ctx); err != nil {
		t.Fatal(err)
	}
	if e := c.Extensions(); !e.Pipelining || e.Size != 1000 || !c.ESMTP() {
		t.Fatalf("extensions %+v", e)
	}
	if err := c.Mail(ctx, "a@example.org", "BODY=8BITMIME"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(ctx, "b@example.test"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Data(ctx, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != 250 || r.Enhanced() != "2.0.0" || r.Text != "Ok: queued as 1234" {
		t.Fatalf("DATA reply %+v", r)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"S: 220-mx.example.test ESMTP", "S: 220 second line",
		"C: EHLO localhost", "S: 250-mx.example.test", "S: 250-PIPELINING", "S: 250-SIZE 1000",
		"S: 250-8BITMIME", "S: 250 ENHANCEDSTATUSCODES",
		"C: MAIL FROM:<a@example.org> BODY=8BITMIME", "S: 250 2.1.0 Ok",
		"C: RCPT TO:<b@example.test>", "S: 250 2.1.5 Ok",
		"C: DATA", "S: 354 End data with <CR><LF>.<CR><LF>",
		"S: 250 2.0.0 Ok: queued as 1234",
		"C: QUIT", "S: 221 2.0.0 Bye",
	}, "\n")
	if got := tr.String(); got != want {
		t.Fatalf("trace:\n%s\nwant:\n%s", got, want)
	}
}

func TestHeloFallback(t *testing.T) {
	t.Parallel()
	conn := runFake(t, func(s *fakeServer) {
		s.Send("220 old.example.test SMTP")
		s.Expect("EHLO localhost", "502 5.5.1 What?")
		s.Expect("HELO localhost", "250 old.example.test")
		s.Expect("MAIL FROM:<>", "250 ok")
	})
	c := newClient(t, conn, Options{})
	if err := c.Mail(context.Background(), ""); err != nil { // Mail sends the greeting itself
		t.Fatal(err)
	}
	if c.ESMTP() || c.Extensions().Pipelining {
		t.Fatalf("ESMTP after HELO: %v %+v", c.ESMTP(), c.Extensions())
	}
}

func TestGreetingRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		reply     string
		code      int
		permanent bool
	}{
		{"554 5.3.2 No service", 554, true},
		{"421 4.3.2 Try later", 421, false},
	} {
		conn := runFake(t, func(s *fakeServer) {
			s.Send(tt.reply)
			s.WaitClosed()
		})
		_, err := New(context.Background(), conn, Options{})
		wantError(t, err, CmdConnect, tt.code, tt.permanent)
	}
}

// With PIPELINING, MAIL, the RCPTs and DATA arrive in one write, and the replies are matched
// to them in order; the refused recipient is reported, the message goes to the others.
func TestSendPipelined(t *testing.T) {
	t.Parallel()
	conn := runFake(t, func(s *fakeServer) {
		s.Send("220 mx")
		s.ehlo("PIPELINING", "SIZE 100000")
		first := s.Line()
		if first != "MAIL FROM:<a@example.org> SIZE=12" {
			t.Errorf("first line %q", first)
		}
		// The whole batch came in the same write as MAIL.
		if want := len("RCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nRCPT TO:<d@x> NOTIFY=NEVER\r\nDATA\r\n"); s.BR.Buffered() != want {
			t.Errorf("%d octets buffered after MAIL, want %d: not pipelined", s.BR.Buffered(), want)
		}
		s.Expect("RCPT TO:<b@x>")
		s.Expect("RCPT TO:<c@x>")
		s.Expect("RCPT TO:<d@x> NOTIFY=NEVER")
		s.Expect("DATA")
		s.Send("250 2.1.0 sender ok", "250 2.1.5 b ok", "550 5.1.1 c unknown", "451 4.3.0 d later", "354 go")
		if got := s.Data(); got != "Subject: x\r\n" {
			t.Errorf("data %q", got)
		}
		s.Send("250 2.0.0 queued")
	})
	c := newClient(t, conn, Options{})
	res, err := c.Send(context.Background(), Envelope{
		From: "a@example.org", Size: 12,
		Rcpts: []Recipient{{Addr: "b@x"}, {Addr: "c@x"}, {Addr: "d@x", Params: []string{"NOTIFY=NEVER"}}},
	}, strings.NewReader("Subject: x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Mail.Text != "sender ok" || res.Data.Text != "queued" || len(res.Rcpts) != 3 {
		t.Fatalf("result %+v", res)
	}
	if got := res.Accepted(); !slices.Equal(got, []string{"b@x"}) {
		t.Fatalf("accepted %q", got)
	}
	wantError(t, res.Rcpts[1].Err, CmdRCPT, 550, true)
	if e := gotError(t, res.Rcpts[2].Err, CmdRCPT, 451, false); e.Enhanced != "4.3.0" || e.Text != "d later" {
		t.Fatalf("d: %+v", e)
	}
}

// Without PIPELINING (or with NoPipelining), each command waits for its reply.
func TestSendSequential(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		keywords []string
		opts     Options
	}{
		{"not offered", nil, Options{}},
		{"NoPipelining", []string{"PIPELINING"}, Options{NoPipelining: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn := runFake(t, func(s *fakeServer) {
				s.Send("220 mx")
				s.ehlo(tt.keywords...)
				for _, step := range [][2]string{
					{"MAIL FROM:<a@x>", "250 ok"}, {"RCPT TO:<b@x>", "250 ok"}, {"DATA", "354 go"},
				} {
					s.Expect(step[0])
					if s.BR.Buffered() != 0 {
						t.Errorf("%d octets after %q: the client did not wait", s.BR.Buffered(), step[0])
					}
					s.Send(step[1])
				}
				s.Data()
				s.Send("250 done")
			})
			c := newClient(t, conn, tt.opts)
			if _, err := c.Send(context.Background(), Envelope{From: "a@x", Rcpts: []Recipient{{Addr: "b@x"}}},
				strings.NewReader("hi\r\n")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// RFC 2920 §3.1: every recipient refused, but DATA accepted: the data is ended at once, empty.
func TestSendAllRefused(t *testing.T) {
	t.Parallel()
	for _, dataReply := range []string{"354 go ahead anyway", "554 5.5.1 no valid recipients"} {
		t.Run(dataReply[:3], func(t *testing.T) {
			t.Parallel()
			conn := runFake(t, func(s *fakeServer) {
				s.Send("220 mx")
				s.ehlo("PIPELINING")
				s.Expect("MAIL FROM:<a@x>")
				s.Expect("RCPT TO:<b@x>")
				s.Expect("DATA")
				s.Send("250 ok", "550 5.1.1 no", dataReply)
				if strings.HasPrefix(dataReply, "354") {
					if got := s.Data(); got != "" {
						t.Errorf("data %q, want none", got)
					}
					s.Send("554 5.5.1 no valid recipients")
				} else {
					s.Expect("RSET", "250 ok") // the next transaction starts clean
				}
				s.Expect("MAIL FROM:<a@x>", "250 ok")
			})
			c := newClient(t, conn, Options{})
			ctx := context.Background()
			_, err := c.Send(ctx, Envelope{From: "a@x", Rcpts: []Recipient{{Addr: "b@x"}}}, strings.NewReader("secret\r\n"))
			wantError(t, err, CmdRCPT, 550, true)
			if err := c.Mail(ctx, "a@x"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A refused MAIL, pipelined: its error is the one returned, not the RCPTs' 503s.
func TestSendMailRefused(t *testing.T) {
	t.Parallel()
	conn := runFake(t, func(s *fakeServer) {
		s.Send("220 mx")
		s.ehlo("PIPELINING")
		s.Expect("MAIL FROM:<a@x>")
		s.Expect("RCPT TO:<b@x>")
		s.Expect("DATA")
		s.Send("452 4.3.1 insufficient storage", "503 5.5.1 need MAIL", "503 5.5.1 need MAIL")
	})
	c := newClient(t, conn, Options{})
	_, err := c.Send(context.Background(), Envelope{From: "a@x", Rcpts: []Recipient{{Addr: "b@x"}}}, strings.NewReader("x\r\n"))
	e := gotError(t, err, CmdMAIL, 452, false)
	if e.Enhanced != "4.3.1" || e.Text != "insufficient storage" {
		t.Fatalf("%+v", e)
	}
}

// A message larger than the server's SIZE fails before anything is sent.
func TestSendTooBig(t *testing.T) {
	t.Parallel()
	conn := runFake(t, func(s *fakeServer) {
		s.Send("220 mx")
		s.ehlo("SIZE 10")
		if rest := s.WaitClosed(); rest != "" {
			t.Errorf("client sent %q", rest)
		}
	})
	c := newClient(t, conn, Options{})
	_, err := c.Send(context.Background(), Envelope{From: "a@x", Size: 11, Rcpts: []Recipient{{Addr: "b@x"}}}, strings.NewReader("x"))
	if e := gotError(t, err, CmdMAIL, 0, true); !errors.Is(e, ErrMessageTooBig) {
		t.Fatalf("error %v, want ErrMessageTooBig", e)
	}
	c.Close()
}

// Every bound on a reply holds, and breaks the client.
func TestReplyLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply string
		opts  Options
		err   error
	}{
		{"line too long", "250 " + strings.Repeat("x", 100) + "\r\n", Options{MaxReplyLine: 64}, ErrReplyLineTooLong},
		{"too many lines", strings.Repeat("250-x\r\n", 10) + "250 x\r\n", Options{MaxReplyLines: 10}, ErrReplyTooManyLines},
		{"too big", strings.Repeat("250-"+strings.Repeat("x", 60)+"\r\n", 20) + "250 x\r\n", Options{MaxReplyBytes: 1000}, ErrReplyTooBig},
		{"endless default", strings.Repeat("250-"+strings.Repeat("y", 1000)+"\r\n", 100), Options{}, ErrReplyTooBig},
		{"codes differ", "250-a\r\n251 b\r\n", Options{}, ErrMalformedReply},
		{"no code", "hello\r\n", Options{}, ErrMalformedReply},
		{"bare LF", "250 ok\n", Options{}, ErrMalformedReply},
		{"connection closed", "250-a\r\n", Options{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn := runFake(t, func(s *fakeServer) {
				s.Send("220 mx")
				s.Line()
				s.SendRaw(tt.reply)
			})
			c := newClient(t, conn, tt.opts)
			err := c.Hello(context.Background())
			e := gotError(t, err, CmdEHLO, 0, false)
			if tt.err != nil && !errors.Is(e, tt.err) {
				t.Fatalf("error %v, want %v", e, tt.err)
			}
			// The client is broken now: no more commands.
			err = c.Mail(context.Background(), "a@x")
			if e := gotError(t, err, CmdMAIL, 0, false); !errors.Is(e, ErrBroken) {
				t.Fatalf("after the bad reply: %v, want ErrBroken", e)
			}
		})
	}
}

// A 421 ends the session: the reply is reported, and nothing more is sent.
func TestReply421(t *testing.T) {
	t.Parallel()
	conn := runFake(t, func(s *fakeServer) {
		s.Send("220 mx")
		s.ehlo()
		s.Expect("MAIL FROM:<a@x>", "421 4.7.0 too many errors, closing")
		if rest := s.WaitClosed(); rest != "" {
			t.Errorf("client sent %q after the 421", rest)
		}
	})
	c := newClient(t, conn, Options{})
	err := c.Mail(context.Background(), "a@x")
	wantError(t, err, CmdMAIL, 421, false)
	if err := c.Quit(context.Background()); err != nil {
		t.Fatalf("Quit after 421: %v", err)
	}
}

// Timeouts, a cancelled context and a dropped connection are temporary errors.
func TestNetworkErrors(t *testing.T) {
	t.Parallel()
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		conn := runFake(t, func(s *fakeServer) {
			s.Send("220 mx")
			s.Line() // and no answer
			s.WaitClosed()
		})
		c := newClient(t, conn, Options{CommandTimeout: 50 * time.Millisecond})
		err := c.Hello(context.Background())
		if e := gotError(t, err, CmdEHLO, 0, false); !errors.Is(e, os.ErrDeadlineExceeded) {
			t.Fatalf("error %v, want a deadline", e)
		}
	})
	t.Run("context deadline", func(t *testing.T) {
		t.Parallel()
		conn := runFake(t, func(s *fakeServer) {
			s.Send("220 mx")
			s.Line()
			s.WaitClosed()
		})
		c := newClient(t, conn, Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := c.Hello(ctx)
		if e := gotError(t, err, CmdEHLO, 0, false); !errors.Is(e, context.DeadlineExceeded) {
			t.Fatalf("error %v, want the context's deadline", e)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		conn := runFake(t, func(s *fakeServer) {
			s.Send("220 mx")
			s.Line()
			s.WaitClosed()
		})
		c := newClient(t, conn, Options{})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		err := c.Hello(ctx)
		if e := gotError(t, err, CmdEHLO, 0, false); !errors.Is(e, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", e)
		}
	})
	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		conn := runFake(t, func(s *fakeServer) {
			s.Send("220 mx")
			s.Line()
		})
		c := newClient(t, conn, Options{})
		err := c.Hello(context.Background())
		wantError(t, err, CmdEHLO, 0, false)
	})
	t.Run("dial", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = Dial(context.Background(), addr, Options{})
		wantError(t, err, CmdConnect, 0, false)
	})
}

// A message with a bare LF is refused without normalizing; the data is not ended, the
// connection is dropped, and the server never sees the end of the data.
func TestDataBareLF(t *testing.T) {
	t.Parallel()
	conn := runFake(t, func(s *fakeServer) {
		s.Send("220 mx")
		s.ehlo()
		s.Expect("MAIL FROM:<a@x>", "250 ok")
		s.Expect("RCPT TO:<b@x>", "250 ok")
		s.Expect("DATA", "354 go")
		if rest := s.WaitClosed(); strings.Contains(rest, ".\r\n") || strings.Contains(rest, "\n.\n") {
			t.Errorf("the data was ended: %q", rest)
		}
	})
	c := newClient(t, conn, Options{})
	_, err := c.Send(context.Background(), Envelope{From: "a@x", Rcpts: []Recipient{{Addr: "b@x"}}},
		strings.NewReader("hello\n.\nMAIL FROM:<admin@bank.example>\r\n"))
	if e := gotError(t, err, CmdDATA, 0, false); !errors.Is(e, smtp.ErrBareLF) {
		t.Fatalf("error %v, want ErrBareLF", e)
	}
}

// NormalizeLineEndings turns the bare LFs into CRLF and the traced data shows the lines.
func TestDataNormalized(t *testing.T) {
	t.Parallel()
	conn := runFake(t, func(s *fakeServer) {
		s.Send("220 mx")
		s.ehlo()
		s.Expect("MAIL FROM:<a@x>", "250 ok")
		s.Expect("RCPT TO:<b@x>", "250 ok")
		s.Expect("DATA", "354 go")
		if got, want := s.Data(), "hello\r\n..\r\nMAIL FROM:<admin@bank.example>\r\n"; got != want {
			t.Errorf("data %q, want %q", got, want)
		}
		s.Send("250 ok")
	})
	var tr traceLog
	c := newClient(t, conn, Options{NormalizeLineEndings: true, Trace: tr.trace, TraceData: true})
	_, err := c.Send(context.Background(), Envelope{From: "a@x", Rcpts: []Recipient{{Addr: "b@x"}}},
		strings.NewReader("hello\n.\nMAIL FROM:<admin@bank.example>"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tr.String(), "C: hello\nC: ..\nC: MAIL FROM:<admin@bank.example>\nC: .\nS: 250 ok") {
		t.Fatalf("trace:\n%s", tr.String())
	}
}

// Command arguments cannot smuggle a second command.
func TestBadArguments(t *testing.T) {
	t.Parallel()
	conn := runFake(t, func(s *fakeServer) {
		s.Send("220 mx")
		if rest := s.WaitClosed(); rest != "" {
			t.Errorf("client sent %q", rest)
		}
	})
	c := newClient(t, conn, Options{})
	ctx := context.Background()
	for _, err := range []error{
		c.Mail(ctx, "a@x>\r\nRCPT TO:<victim@y"),
		c.Mail(ctx, "a@x", "X=1\nRSET"),
		c.Rcpt(ctx, "b@x\r\nDATA"),
	} {
		if !errors.Is(err, ErrBadArgument) {
			t.Errorf("error %v, want ErrBadArgument", err)
		}
	}
	c.Close()
}

func TestStartTLS(t *testing.T) {
	t.Parallel()
	cert, pool := testCert(t)
	conn := runFake(t, func(s *fakeServer) {
		s.Send("220 mx")
		s.ehlo("STARTTLS", "PIPELINING")
		s.Expect("STARTTLS", "220 2.0.0 Ready to start TLS")
		s.StartTLS(&tls.Config{Certificates: []tls.Certificate{cert}})
		s.ehlo("AUTH PLAIN")
		s.Expect("MAIL FROM:<a@x>", "250 ok")
	})
	var tr traceLog
	c := newClient(t, conn, Options{Trace: tr.trace, TLSConfig: &tls.Config{ServerName: "mx.example.test", RootCAs: pool}})
	ctx := context.Background()
	if err := c.StartTLS(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.TLS(); !ok {
		t.Fatal("no TLS state after StartTLS")
	}
	if c.Extensions().Pipelining {
		t.Fatal("extensions from before STARTTLS kept")
	}
	if err := c.Mail(ctx, "a@x"); err != nil { // EHLO first, by itself
		t.Fatal(err)
	}
	if e := c.Extensions(); e.Pipelining || !e.HasAuth("PLAIN") {
		t.Fatalf("extensions after STARTTLS: %+v", e)
	}
	if !strings.Contains(tr.String(), "C: STARTTLS\nS: 220 2.0.0 Ready to start TLS\nC~: EHLO localhost\nS~: 250-mx.example.test") {
		t.Fatalf("trace:\n%s", tr.String())
	}
}

func TestStartTLSFailures(t *testing.T) {
	t.Parallel()
	cert, _ := testCert(t)
	t.Run("not offered", func(t *testing.T) {
		t.Parallel()
		conn := runFake(t, func(s *fakeServer) {
			s.Send("220 mx")
			s.ehlo()
		})
		c := newClient(t, conn, Options{TLSConfig: &tls.Config{ServerName: "mx"}})
		err := c.StartTLS(context.Background())
		if e := gotError(t, err, CmdSTARTTLS, 0, false); !errors.Is(e, ErrNotOffered) {
			t.Fatalf("error %v, want ErrNotOffered", e)
		}
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		conn := runFake(t, func(s *fakeServer) {
			s.Send("220 mx")
			s.ehlo("STARTTLS")
			s.Expect("STARTTLS", "454 4.7.0 TLS not available")
		})
		c := newClient(t, conn, Options{TLSConfig: &tls.Config{ServerName: "mx"}})
		wantError(t, c.StartTLS(context.Background()), CmdSTARTTLS, 454, false)
	})
	t.Run("injected data", func(t *testing.T) {
		t.Parallel()
		conn := runFake(t, func(s *fakeServer) {
			s.Send("220 mx")
			s.ehlo("STARTTLS")
			s.Expect("STARTTLS")
			s.SendRaw("220 go ahead\r\n250-injected\r\n")
			s.WaitClosed()
		})
		c := newClient(t, conn, Options{TLSConfig: &tls.Config{ServerName: "mx"}})
		err := c.StartTLS(context.Background())
		if e := gotError(t, err, CmdSTARTTLS, 0, false); !errors.Is(e, ErrDataAfterStartTLS) {
			t.Fatalf("error %v, want ErrDataAfterStartTLS", e)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		conn := runFakeTCP(t, func(s *fakeServer) {
			s.Send("220 mx")
			s.ehlo("STARTTLS")
			s.Expect("STARTTLS", "220 go ahead")
			tc := tls.Server(s.Conn, &tls.Config{Certificates: []tls.Certificate{cert}})
			_ = tc.Handshake() // fails: the client does not trust it
		})
		c := newClient(t, conn, Options{TLSConfig: &tls.Config{ServerName: "mx.example.test"}})
		err := c.StartTLS(context.Background())
		var verr *tls.CertificateVerificationError
		if e := gotError(t, err, CmdSTARTTLS, 0, false); !errors.As(e, &verr) {
			t.Fatalf("error %v, want a certificate verification error", e)
		}
	})
}

func TestImplicitTLS(t *testing.T) {
	t.Parallel()
	cert, pool := testCert(t)
	conn := runFake(t, func(s *fakeServer) {
		s.StartTLS(&tls.Config{Certificates: []tls.Certificate{cert}})
		s.Send("220 mx")
		s.ehlo()
		s.Expect("QUIT", "221 bye")
	})
	var tr traceLog
	c := newClient(t, conn, Options{ImplicitTLS: true, Trace: tr.trace,
		TLSConfig: &tls.Config{ServerName: "mx.example.test", RootCAs: pool}})
	ctx := context.Background()
	if err := c.Hello(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tr.String(), "S~: 220 mx\nC~: EHLO localhost") {
		t.Fatalf("trace:\n%s", tr.String())
	}
}

// BDAT: the message in chunks, the last one marked, normalized when asked.
func TestBdat(t *testing.T) {
	t.Parallel()
	conn := runFake(t, func(s *fakeServer) {
		s.Send("220 mx")
		s.ehlo("CHUNKING", "PIPELINING")
		s.Expect("MAIL FROM:<a@x>")
		s.Expect("RCPT TO:<b@x>")
		if s.BR.Buffered() != 0 {
			t.Errorf("DATA or BDAT pipelined with the envelope")
		}
		s.Send("250 ok", "250 ok")
		var got strings.Builder
		for {
			l := s.Line()
			var n int
			var last bool
			if rest, ok := strings.CutSuffix(l, " LAST"); ok {
				l, last = rest, true
			}
			if _, err := fmtSscan(strings.TrimPrefix(l, "BDAT "), &n); err != nil {
				t.Errorf("bad BDAT line %q", l)
				return
			}
			buf := make([]byte, n)
			if _, err := ioReadFull(s.BR, buf); err != nil {
				t.Errorf("reading chunk: %v", err)
				return
			}
			got.Write(buf)
			if last {
				break
			}
			s.Send("250 chunk ok")
		}
		if want := "line 1\r\n.line 2\r\nline 3\r\n"; got.String() != want {
			t.Errorf("message %q, want %q", got.String(), want)
		}
		s.Send("250 2.0.0 queued")
	})
	c := newClient(t, conn, Options{Chunking: true, ChunkSize: 5, NormalizeLineEndings: true})
	res, err := c.Send(context.Background(), Envelope{From: "a@x", Rcpts: []Recipient{{Addr: "b@x"}}},
		strings.NewReader("line 1\n.line 2\r\nline 3"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Data.Text != "queued" {
		t.Fatalf("result %+v", res)
	}
}

func TestNormalizer(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"a", "a\r\n"},
		{"a\r\n", "a\r\n"},
		{"a\nb\rc\r\n", "a\r\nb\r\nc\r\n"},
		{"a\r\r\n", "a\r\n\r\n"},
	} {
		for size := 1; size <= len(tt.in)+1; size++ {
			var n normalizer
			var out []byte
			r := bufio.NewReader(strings.NewReader(tt.in))
			for {
				buf := make([]byte, size)
				k, err := ioReadFull(r, buf)
				last := err != nil
				if !last {
					if _, perr := r.Peek(1); perr != nil {
						last = true
					}
				}
				out = n.normalize(out, buf[:k], last)
				if last {
					break
				}
			}
			if string(out) != tt.want {
				t.Errorf("normalize(%q) in %d-octet chunks = %q, want %q", tt.in, size, out, tt.want)
			}
		}
	}
}
