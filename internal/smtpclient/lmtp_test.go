package smtpclient

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// lhlo answers an LHLO with the keywords.
func (s *fakeServer) lhlo(keywords ...string) {
	s.T.Helper()
	s.Expect("LHLO localhost")
	s.Multiline("250", append([]string{"lmtp.example.test"}, keywords...)...)
}

// lmtpEnv is the envelope of the LMTP tests: four recipients.
var lmtpEnv = Envelope{
	From:       "s@example.org",
	MailParams: []string{"BODY=8BITMIME"},
	Rcpts:      []Recipient{{Addr: "a@x"}, {Addr: "b@x"}, {Addr: "c@x"}, {Addr: "d@x"}},
}

// lmtpEnvelope plays the server's side of lmtpEnv up to the 354: c@x is refused at RCPT, so
// three replies are due after the data. With pipelined, the commands must arrive in one batch.
func lmtpEnvelope(s *fakeServer, pipelined bool) {
	s.T.Helper()
	steps := [][2]string{
		{"MAIL FROM:<s@example.org> BODY=8BITMIME", "250 2.1.0 OK"},
		{"RCPT TO:<a@x>", "250 2.1.5 OK"},
		{"RCPT TO:<b@x>", "250 2.1.5 OK"},
		{"RCPT TO:<c@x>", "550 5.1.1 <c@x> User doesn't exist: c@x"},
		{"RCPT TO:<d@x>", "250 2.1.5 OK"},
		{"DATA", "354 OK"},
	}
	if pipelined {
		for _, st := range steps {
			s.Expect(st[0])
		}
		for _, st := range steps {
			s.Send(st[1])
		}
		return
	}
	for _, st := range steps {
		s.Expect(st[0])
		if s.BR.Buffered() != 0 {
			s.T.Errorf("%d octets after %q: the client did not wait", s.BR.Buffered(), st[0])
		}
		s.Send(st[1])
	}
}

// want is one recipient's expected result: code 0 and cmd "" for delivered.
type lmtpWant struct {
	cmd       string
	code      int
	permanent bool
}

func checkLMTP(t *testing.T, res *LMTPResult, want []lmtpWant) {
	t.Helper()
	if len(res.Rcpts) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(res.Rcpts), len(want), res.Rcpts)
	}
	for i, w := range want {
		rr := res.Rcpts[i]
		if rr.Addr != lmtpEnv.Rcpts[i].Addr {
			t.Errorf("result %d is for %q, want %q", i, rr.Addr, lmtpEnv.Rcpts[i].Addr)
		}
		if w.cmd == "" {
			if rr.Err != nil || rr.Reply.Code/100 != 2 {
				t.Errorf("%s: %v (reply %+v), want delivered", rr.Addr, rr.Err, rr.Reply)
			}
			continue
		}
		var e *Error
		if !errors.As(rr.Err, &e) {
			t.Errorf("%s: error %v, want an *Error", rr.Addr, rr.Err)
			continue
		}
		if e.Command != w.cmd || e.Code != w.code || e.Permanent != w.permanent || rr.Reply.Code != w.code {
			t.Errorf("%s: %+v (reply %+v), want %s %d permanent=%v", rr.Addr, e, rr.Reply, w.cmd, w.code, w.permanent)
		}
	}
}

// The heart of LMTP (RFC 2033 §4.2): after the data, one reply per accepted recipient, in the
// order of the RCPTs, each mapped back to its recipient; a refused RCPT gets none.
func TestSendLMTP(t *testing.T) {
	t.Parallel()
	delivered := lmtpWant{}
	refusedAtRcpt := lmtpWant{CmdRCPT, 550, true}
	for _, tt := range []struct {
		name      string
		keywords  []string
		opts      Options
		after     []string // the server's replies after the data (then it closes)
		want      []lmtpWant
		wantErr   bool
		errCode   int
		delivered []string
	}{
		{
			name:     "pipelined mix",
			keywords: []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"},
			after: []string{"250 2.0.0 <a@x> Saved", "452 4.2.2 <b@x> Mailbox is full",
				"550 5.2.1 <d@x> Mailbox disabled"},
			want:      []lmtpWant{delivered, {CmdDATA, 452, false}, refusedAtRcpt, {CmdDATA, 550, true}},
			delivered: []string{"a@x"},
		},
		{
			name:      "sequential",
			keywords:  []string{"8BITMIME"},
			after:     []string{"250 2.0.0 a", "250 2.0.0 b", "250 2.0.0 d"},
			want:      []lmtpWant{delivered, delivered, refusedAtRcpt, delivered},
			delivered: []string{"a@x", "b@x", "d@x"},
		},
		{
			name:      "NoPipelining",
			keywords:  []string{"PIPELINING"},
			opts:      Options{NoPipelining: true},
			after:     []string{"250 2.0.0 a", "451 4.3.0 b", "250 2.0.0 d"},
			want:      []lmtpWant{delivered, {CmdDATA, 451, false}, refusedAtRcpt, delivered},
			delivered: []string{"a@x", "d@x"},
		},
		{
			// The server closes after the first reply: it may or may not have delivered to
			// the others, so they are temporary failures without a reply.
			name:      "closed after one reply",
			keywords:  []string{"PIPELINING"},
			after:     []string{"250 2.0.0 a"},
			want:      []lmtpWant{delivered, {CmdDATA, 0, false}, refusedAtRcpt, {CmdDATA, 0, false}},
			delivered: []string{"a@x"},
		},
		{
			name:     "closed before any reply",
			keywords: []string{"PIPELINING"},
			want:     []lmtpWant{{CmdDATA, 0, false}, {CmdDATA, 0, false}, refusedAtRcpt, {CmdDATA, 0, false}},
			wantErr:  true,
		},
		{
			// 421 for one recipient: the server is going away, the rest get its 421.
			name:      "421",
			keywords:  []string{"PIPELINING"},
			after:     []string{"250 2.0.0 a", "421 4.3.2 shutting down"},
			want:      []lmtpWant{delivered, {CmdDATA, 421, false}, refusedAtRcpt, {CmdDATA, 421, false}},
			delivered: []string{"a@x"},
		},
		{
			name:     "all refused after data",
			keywords: []string{"PIPELINING"},
			after:    []string{"552 5.2.2 a full", "552 5.2.2 b full", "452 4.2.2 d full"},
			want:     []lmtpWant{{CmdDATA, 552, true}, {CmdDATA, 552, true}, refusedAtRcpt, {CmdDATA, 452, false}},
			wantErr:  true,
			errCode:  552,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pipelined := slices.Contains(tt.keywords, "PIPELINING") && !tt.opts.NoPipelining
			conn := runFake(t, func(s *fakeServer) {
				s.Send("220 lmtp ready")
				s.lhlo(tt.keywords...)
				lmtpEnvelope(s, pipelined)
				if got := s.Data(); got != "Subject: x\r\n\r\n..dot\r\n" {
					t.Errorf("data %q", got)
				}
				s.Send(tt.after...)
			})
			tt.opts.LMTP = true
			c := newClient(t, conn, tt.opts)
			res, err := c.SendLMTP(context.Background(), lmtpEnv, strings.NewReader("Subject: x\r\n\r\n.dot\r\n"))
			checkLMTP(t, res, tt.want)
			if got := res.Delivered(); !slices.Equal(got, tt.delivered) {
				t.Errorf("delivered %q, want %q", got, tt.delivered)
			}
			switch {
			case !tt.wantErr && err != nil:
				t.Errorf("error %v, want nil: some recipient got the message", err)
			case tt.wantErr && err == nil:
				t.Errorf("no error, want one")
			case tt.wantErr:
				var e *Error
				if !errors.As(err, &e) || e.Code != tt.errCode {
					t.Errorf("error %v, want an *Error with code %d", err, tt.errCode)
				}
			}
			if res.Mail.Code != 250 || res.Data.Code != 354 {
				t.Errorf("MAIL reply %+v, DATA reply %+v", res.Mail, res.Data)
			}
		})
	}
}

// Failures before the data decide for every recipient: a refused MAIL or DATA, a connection
// lost in the middle of the envelope.
func TestSendLMTPEnvelopeFailures(t *testing.T) {
	t.Parallel()
	env := Envelope{From: "s@x", Rcpts: []Recipient{{Addr: "a@x"}, {Addr: "b@x"}}}
	for _, tt := range []struct {
		name    string
		script  func(s *fakeServer)
		want    [2]lmtpWant
		errCmd  string
		errCode int
	}{
		{
			name: "MAIL refused",
			script: func(s *fakeServer) {
				s.Expect("MAIL FROM:<s@x>")
				s.Expect("RCPT TO:<a@x>")
				s.Expect("RCPT TO:<b@x>")
				s.Expect("DATA")
				s.Send("555 5.5.4 Unsupported parameters", "503 5.5.0 MAIL needed first",
					"503 5.5.0 MAIL needed first", "503 5.5.0 MAIL needed first")
				s.WaitClosed()
			},
			want:   [2]lmtpWant{{CmdMAIL, 555, true}, {CmdMAIL, 555, true}},
			errCmd: CmdMAIL, errCode: 555,
		},
		{
			// A broken server takes DATA without a sender: the data is ended empty, and
			// nothing is read after it (how many replies would come?).
			name: "MAIL refused, DATA taken",
			script: func(s *fakeServer) {
				for _, l := range []string{"MAIL FROM:<s@x>", "RCPT TO:<a@x>", "RCPT TO:<b@x>", "DATA"} {
					s.Expect(l)
				}
				s.Send("451 4.3.0 not now", "503 5.5.0 MAIL needed first", "503 5.5.0 MAIL needed first", "354 go")
				if rest := s.WaitClosed(); rest != ".\r\n" {
					t.Errorf("client sent %q, want the end of the data alone", rest)
				}
			},
			want:   [2]lmtpWant{{CmdMAIL, 451, false}, {CmdMAIL, 451, false}},
			errCmd: CmdMAIL, errCode: 451,
		},
		{
			name: "DATA refused",
			script: func(s *fakeServer) {
				for _, l := range []string{"MAIL FROM:<s@x>", "RCPT TO:<a@x>", "RCPT TO:<b@x>", "DATA"} {
					s.Expect(l)
				}
				s.Send("250 ok", "550 5.1.1 no a", "250 ok", "451 4.3.0 try later")
				s.WaitClosed()
			},
			want:   [2]lmtpWant{{CmdRCPT, 550, true}, {CmdDATA, 451, false}},
			errCmd: CmdDATA, errCode: 451,
		},
		{
			// RFC 2033 §4.2: no valid recipient, no DATA.
			name: "all refused",
			script: func(s *fakeServer) {
				for _, l := range []string{"MAIL FROM:<s@x>", "RCPT TO:<a@x>", "RCPT TO:<b@x>", "DATA"} {
					s.Expect(l)
				}
				s.Send("250 ok", "550 5.1.1 no a", "450 4.2.1 not now", "503 5.5.0 No valid recipients")
				if rest := s.WaitClosed(); rest != "" {
					t.Errorf("client sent %q", rest)
				}
			},
			want:   [2]lmtpWant{{CmdRCPT, 550, true}, {CmdRCPT, 450, false}},
			errCmd: CmdRCPT, errCode: 550,
		},
		{
			// A server that takes DATA with no recipient: the data is ended empty and the
			// connection dropped, since nobody knows how many replies would follow.
			name: "all refused, DATA taken",
			script: func(s *fakeServer) {
				for _, l := range []string{"MAIL FROM:<s@x>", "RCPT TO:<a@x>", "RCPT TO:<b@x>", "DATA"} {
					s.Expect(l)
				}
				s.Send("250 ok", "550 5.1.1 no a", "550 5.1.1 no b", "354 go")
				if rest := s.WaitClosed(); rest != ".\r\n" {
					t.Errorf("client sent %q, want the end of the data alone", rest)
				}
			},
			want:   [2]lmtpWant{{CmdRCPT, 550, true}, {CmdRCPT, 550, true}},
			errCmd: CmdRCPT, errCode: 550,
		},
		{
			name: "closed during the envelope",
			script: func(s *fakeServer) {
				for _, l := range []string{"MAIL FROM:<s@x>", "RCPT TO:<a@x>", "RCPT TO:<b@x>", "DATA"} {
					s.Expect(l)
				}
				s.Send("250 ok", "550 5.1.1 no a")
			},
			want:   [2]lmtpWant{{CmdRCPT, 550, true}, {CmdRCPT, 0, false}},
			errCmd: CmdRCPT, errCode: 0,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn := runFake(t, func(s *fakeServer) {
				s.Send("220 lmtp ready")
				s.lhlo("PIPELINING")
				tt.script(s)
			})
			c := newClient(t, conn, Options{LMTP: true})
			res, err := c.SendLMTP(context.Background(), env, strings.NewReader("x\r\n"))
			for i, w := range tt.want {
				rr := res.Rcpts[i]
				var e *Error
				if !errors.As(rr.Err, &e) || e.Command != w.cmd || e.Code != w.code || e.Permanent != w.permanent {
					t.Errorf("%s: %v, want %s %d permanent=%v", rr.Addr, rr.Err, w.cmd, w.code, w.permanent)
				}
			}
			wantError(t, err, tt.errCmd, tt.errCode, tt.errCode >= 500)
			c.Close()
		})
	}
}

// LHLO replaces EHLO, and a refused LHLO is final: no HELO, which an LMTP server would not
// take either (RFC 2033 §4.1).
func TestLHLO(t *testing.T) {
	t.Parallel()
	t.Run("ok", func(t *testing.T) {
		t.Parallel()
		conn := runFake(t, func(s *fakeServer) {
			s.Send("220 lmtp ready")
			s.lhlo("8BITMIME", "CHUNKING", "ENHANCEDSTATUSCODES", "PIPELINING")
			s.WaitClosed()
		})
		c := newClient(t, conn, Options{LMTP: true})
		if err := c.Hello(context.Background()); err != nil {
			t.Fatal(err)
		}
		if ext := c.Extensions(); !ext.Pipelining || !ext.EightBitMIME || ext.SMTPUTF8 || !c.ESMTP() {
			t.Fatalf("extensions %+v", ext)
		}
		c.Close()
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		conn := runFake(t, func(s *fakeServer) {
			s.Send("220 mx ESMTP, not LMTP")
			s.Expect("LHLO localhost", "500 5.5.1 command unrecognized")
			if rest := s.WaitClosed(); rest != "" {
				t.Errorf("client sent %q after the refused LHLO", rest)
			}
		})
		c := newClient(t, conn, Options{LMTP: true})
		wantError(t, c.Hello(context.Background()), CmdLHLO, 500, true)
		c.Close()
	})
}

// The SMTP ways to send a message would read one reply where LMTP sends several; they refuse,
// and SendLMTP refuses an SMTP client.
func TestLMTPMisuse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := runFake(t, func(s *fakeServer) {
		s.Send("220 lmtp ready")
		if rest := s.WaitClosed(); rest != "" {
			t.Errorf("client sent %q", rest)
		}
	})
	c := newClient(t, conn, Options{LMTP: true})
	env := Envelope{From: "a@x", Rcpts: []Recipient{{Addr: "b@x"}}}
	if _, err := c.Send(ctx, env, strings.NewReader("x\r\n")); !errors.Is(err, ErrLMTPData) {
		t.Errorf("Send: %v, want ErrLMTPData", err)
	}
	if _, err := c.Data(ctx, strings.NewReader("x\r\n")); !errors.Is(err, ErrLMTPData) {
		t.Errorf("Data: %v, want ErrLMTPData", err)
	}
	if _, err := c.Bdat(ctx, strings.NewReader("x\r\n")); !errors.Is(err, ErrLMTPData) {
		t.Errorf("Bdat: %v, want ErrLMTPData", err)
	}
	c.Close()

	conn = runFake(t, func(s *fakeServer) {
		s.Send("220 mx")
		if rest := s.WaitClosed(); rest != "" {
			t.Errorf("client sent %q", rest)
		}
	})
	c = newClient(t, conn, Options{})
	res, err := c.SendLMTP(ctx, env, strings.NewReader("x\r\n"))
	if !errors.Is(err, ErrNotLMTP) || len(res.Rcpts) != 1 || !errors.Is(res.Rcpts[0].Err, ErrNotLMTP) {
		t.Errorf("SendLMTP on SMTP: %v, %+v", err, res)
	}
	c.Close()
}
