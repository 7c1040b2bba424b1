package lmtp

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
)

// testEnv has four recipients; the tests deliver to some of them, in their own order.
func testEnv() *envelope.Envelope {
	return &envelope.Envelope{
		ID:   "Q1",
		From: "sender@example.org",
		Body: envelope.Body8BitMIME,
		Rcpts: []envelope.Recipient{
			{Addr: "done@example.test", Status: envelope.Delivered},
			{Addr: "alice@example.test"},
			{Addr: "Bob@example.test"},
			{Addr: "carol@example.test"},
		},
	}
}

func newDeliverer(t *testing.T, addr string) *Deliverer {
	t.Helper()
	return New(Options{Addr: addr, LocalName: "tern.example.test", Logger: testLogger(t),
		Timeouts: Timeouts{Connect: 5 * time.Second, Command: 5 * time.Second, Data: 5 * time.Second}})
}

// want describes one expected outcome: zero for delivered.
type want struct {
	code      int
	enhanced  string
	permanent bool
	msg       string // a part of Msg
}

func checkOutcomes(t *testing.T, out []delivery.Outcome, wants []want) {
	t.Helper()
	if len(out) != len(wants) {
		t.Fatalf("%d outcomes, want %d", len(out), len(wants))
	}
	for i, w := range wants {
		o := out[i]
		if o.RemoteMTA != "" || o.Relayed {
			t.Errorf("outcome %d: RemoteMTA %q, Relayed %v; local delivery has neither", i, o.RemoteMTA, o.Relayed)
		}
		if w.code == 0 {
			if o.Err != nil {
				t.Errorf("outcome %d: %v, want delivered", i, o.Err)
			}
			continue
		}
		var de *delivery.Error
		if !errors.As(o.Err, &de) {
			t.Errorf("outcome %d: %v (%T), want a *delivery.Error", i, o.Err, o.Err)
			continue
		}
		if de.Code != w.code || de.Enhanced() != w.enhanced || de.Permanent != w.permanent || !strings.Contains(de.Msg, w.msg) {
			t.Errorf("outcome %d: %+v, want %d %s permanent=%v msg ~%q", i, de, w.code, w.enhanced, w.permanent, w.msg)
		}
		if de.RemoteMTA != "" {
			t.Errorf("outcome %d: RemoteMTA %q in the error", i, de.RemoteMTA)
		}
	}
}

// One transaction for the batch, every reply mapped back to its recipient: a refusal at RCPT,
// and after the data, one reply per accepted recipient in RCPT order (RFC 2033 §4.2).
func TestDeliverBatch(t *testing.T) {
	t.Parallel()
	for _, unix := range []bool{false, true} {
		name := "tcp"
		if unix {
			name = "unix"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			addr := serveFake(t, unix, func(s *fakeServer) {
				s.greet("8BITMIME", "ENHANCEDSTATUSCODES", "PIPELINING")
				s.Expect("MAIL FROM:<sender@example.org> BODY=8BITMIME")
				s.Expect("RCPT TO:<carol@example.test>")
				s.Expect("RCPT TO:<alice@example.test>")
				s.Expect("RCPT TO:<Bob@example.test>")
				s.Expect("DATA")
				s.Send("250 2.1.0 OK", "250 2.1.5 OK",
					"550 5.1.1 <alice@example.test> User doesn't exist: alice@example.test",
					"250 2.1.5 OK", "354 OK")
				if got := s.Data(); got != "Subject: hi\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n..\r\n" {
					t.Errorf("data %q", got)
				}
				s.Send("452 4.2.2 <carol@example.test> Mailbox is full", "250 2.0.0 <Bob@example.test> Saved")
				s.Expect("QUIT", "221 2.0.0 Bye")
			})
			body := &bytesBody{b: []byte("Subject: hi\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n.\r\n")}
			out := newDeliverer(t, addr).DeliverBatch(context.Background(), testEnv(), []int{3, 1, 2}, body)
			checkOutcomes(t, out, []want{
				{452, "4.2.2", false, "<carol@example.test> Mailbox is full"},
				{550, "5.1.1", true, "User doesn't exist"},
				{},
			})
		})
	}
}

// The server's replies after the data, 2xx, 4xx and 5xx, in every order, and replies without
// an enhanced code.
func TestDeliverBatchReplies(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		replies []string
		wants   []want
	}{
		{"all delivered", []string{"250 2.0.0 ok", "250 2.0.0 ok", "250 2.0.0 ok"}, []want{{}, {}, {}}},
		{"mix", []string{"550 5.2.1 disabled", "250 2.0.0 ok", "452 4.2.2 full"},
			[]want{{550, "5.2.1", true, "disabled"}, {}, {452, "4.2.2", false, "full"}}},
		{"no enhanced codes", []string{"451 try later", "554 no", "250 ok"},
			[]want{{451, "4.0.0", false, "try later"}, {554, "5.0.0", true, "no"}, {}}},
		{"multiline", []string{"552-5.2.2 over quota", "552 5.2.2 see your admin", "250 ok", "250 ok"},
			[]want{{552, "5.2.2", true, "over quota see your admin"}, {}, {}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := serveFake(t, false, func(s *fakeServer) {
				s.greet("PIPELINING")
				for _, l := range []string{"MAIL FROM:<sender@example.org>", "RCPT TO:<alice@example.test>",
					"RCPT TO:<Bob@example.test>", "RCPT TO:<carol@example.test>", "DATA"} {
					s.Expect(l)
				}
				s.Send("250 ok", "250 ok", "250 ok", "250 ok", "354 go")
				s.Data()
				s.Send(tt.replies...)
				s.Expect("QUIT", "221 bye")
			})
			env := testEnv()
			env.Body = "" // and the server offers no 8BITMIME anyway
			out := newDeliverer(t, addr).DeliverBatch(context.Background(), env, []int{1, 2, 3}, &bytesBody{b: []byte("x\r\n")})
			checkOutcomes(t, out, tt.wants)
		})
	}
}

// BODY=8BITMIME and SMTPUTF8 go to MAIL when the envelope has them and the server offers them.
func TestMailParams(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		body     envelope.Body
		utf8     bool
		keywords []string
		mail     string
	}{
		{"both offered", envelope.Body8BitMIME, true, []string{"8BITMIME", "SMTPUTF8"},
			"MAIL FROM:<sender@example.org> BODY=8BITMIME SMTPUTF8"},
		{"none offered", envelope.Body8BitMIME, true, nil, "MAIL FROM:<sender@example.org>"},
		{"Dovecot 2.3", envelope.Body8BitMIME, true, []string{"8BITMIME", "CHUNKING", "ENHANCEDSTATUSCODES", "PIPELINING"},
			"MAIL FROM:<sender@example.org> BODY=8BITMIME"},
		{"7bit", envelope.Body7Bit, false, []string{"8BITMIME", "SMTPUTF8"}, "MAIL FROM:<sender@example.org>"},
		{"binary as 8bit", envelope.BodyBinaryMIME, false, []string{"8BITMIME", "CHUNKING"},
			"MAIL FROM:<sender@example.org> BODY=8BITMIME"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := serveFake(t, false, func(s *fakeServer) {
				s.greet(tt.keywords...)
				s.Expect(tt.mail, "250 ok")
				s.Expect("RCPT TO:<alice@example.test>", "250 ok")
				s.Expect("DATA", "354 go")
				s.Data()
				s.Send("250 ok")
				s.Expect("QUIT", "221 bye")
			})
			env := testEnv()
			env.Body, env.SMTPUTF8 = tt.body, tt.utf8
			out := newDeliverer(t, addr).DeliverBatch(context.Background(), env, []int{1}, &bytesBody{b: []byte("x\r\n")})
			checkOutcomes(t, out, []want{{}})
		})
	}
}

// Bare line ends in a text message are repaired, not refused again at every retry.
func TestBareLF(t *testing.T) {
	t.Parallel()
	addr := serveFake(t, false, func(s *fakeServer) {
		s.greet("PIPELINING")
		for _, l := range []string{"MAIL FROM:<sender@example.org>", "RCPT TO:<alice@example.test>", "DATA"} {
			s.Expect(l)
		}
		s.Send("250 ok", "250 ok", "354 go")
		if got := s.Data(); got != "a\r\nb\r\n" {
			t.Errorf("data %q", got)
		}
		s.Send("250 ok")
		s.Expect("QUIT", "221 bye")
	})
	env := testEnv()
	env.Body = ""
	out := newDeliverer(t, addr).DeliverBatch(context.Background(), env, []int{1}, &bytesBody{b: []byte("a\nb\n")})
	checkOutcomes(t, out, []want{{}})
}

// A BINARYMIME message that DATA cannot carry unchanged fails for good before any connection.
func TestBinary(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		body string
	}{
		{"NUL", "a\x00b\r\n"},
		{"bare LF", "a\nb\r\n"},
		{"bare CR", "a\rb\r\n"},
		{"CR at the end", "a\r\nb\r"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := serveFake(t, false, func(s *fakeServer) {
				t.Errorf("the deliverer connected")
			})
			env := testEnv()
			env.Body = envelope.BodyBinaryMIME
			out := newDeliverer(t, addr).DeliverBatch(context.Background(), env, []int{1, 2}, &bytesBody{b: []byte(tt.body)})
			w := want{554, "5.6.3", true, "without conversion"}
			checkOutcomes(t, out, []want{w, w})
		})
	}
}

// Failures that are about the server, not the message, are temporary for every recipient:
// they must hold the mail, not bounce it.
func TestSessionFailures(t *testing.T) {
	t.Parallel()
	closedPort := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	for _, tt := range []struct {
		name   string
		addr   func(t *testing.T) string
		want   want
		closes bool
	}{
		{"nothing listens", closedPort, want{451, "4.4.1", false, "cannot connect"}, false},
		{"bad address", func(*testing.T) string { return "localhost" }, want{451, "4.3.0", false, "misconfigured"}, false},
		{"no socket", func(t *testing.T) string { return "unix:" + t.TempDir() + "/none" },
			want{451, "4.4.1", false, "cannot connect"}, false},
		{"greeting 554", func(t *testing.T) string {
			return serveFake(t, false, func(s *fakeServer) { s.Send("554 5.3.2 no service"); s.WaitClosed() })
		}, want{451, "4.3.0", false, "refused the session"}, false},
		{"greeting 421", func(t *testing.T) string {
			return serveFake(t, false, func(s *fakeServer) { s.Send("421 4.3.2 shutting down"); s.WaitClosed() })
		}, want{421, "4.3.2", false, "shutting down"}, false},
		{"LHLO refused: an SMTP server", func(t *testing.T) string {
			return serveFake(t, false, func(s *fakeServer) {
				s.Send("220 mx ESMTP")
				s.Expect("LHLO tern.example.test", "502 5.5.1 unrecognized command")
				if rest := s.WaitClosed(); rest != "" {
					t.Errorf("client sent %q after the refused LHLO", rest)
				}
			})
		}, want{451, "4.3.0", false, "refused the session"}, false},
		{"closed after LHLO", func(t *testing.T) string {
			return serveFake(t, false, func(s *fakeServer) { s.greet("PIPELINING") })
		}, want{451, "4.4.2", false, "lost connection"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := newDeliverer(t, tt.addr(t)).DeliverBatch(context.Background(), testEnv(), []int{1, 2}, &bytesBody{b: []byte("x\r\n")})
			checkOutcomes(t, out, []want{tt.want, tt.want})
		})
	}
}

// Refusals of MAIL and DATA decide for every recipient still open, with the server's words.
func TestTransactionRefused(t *testing.T) {
	t.Parallel()
	t.Run("MAIL", func(t *testing.T) {
		t.Parallel()
		addr := serveFake(t, false, func(s *fakeServer) {
			s.greet()
			s.Expect("MAIL FROM:<sender@example.org>", "501 5.1.7 Invalid sender address")
			s.Expect("QUIT", "221 bye")
		})
		env := testEnv()
		env.Body = ""
		out := newDeliverer(t, addr).DeliverBatch(context.Background(), env, []int{1, 2}, &bytesBody{b: []byte("x\r\n")})
		w := want{501, "5.1.7", true, "Invalid sender address"}
		checkOutcomes(t, out, []want{w, w})
	})
	t.Run("DATA", func(t *testing.T) {
		t.Parallel()
		addr := serveFake(t, false, func(s *fakeServer) {
			s.greet()
			s.Expect("MAIL FROM:<sender@example.org>", "250 ok")
			s.Expect("RCPT TO:<alice@example.test>", "550 5.1.1 unknown")
			s.Expect("RCPT TO:<Bob@example.test>", "250 ok")
			s.Expect("DATA", "451 4.3.0 try later")
			s.Expect("QUIT", "221 bye")
		})
		env := testEnv()
		env.Body = ""
		out := newDeliverer(t, addr).DeliverBatch(context.Background(), env, []int{1, 2}, &bytesBody{b: []byte("x\r\n")})
		checkOutcomes(t, out, []want{{550, "5.1.1", true, "unknown"}, {451, "4.3.0", false, "try later"}})
	})
	t.Run("DATA out of step", func(t *testing.T) {
		t.Parallel()
		addr := serveFake(t, false, func(s *fakeServer) {
			s.greet()
			s.Expect("MAIL FROM:<sender@example.org>", "250 ok")
			s.Expect("RCPT TO:<alice@example.test>", "250 ok")
			s.Expect("DATA", "250 2.0.0 what data?")
			s.Expect("QUIT", "221 bye")
		})
		env := testEnv()
		env.Body = ""
		out := newDeliverer(t, addr).DeliverBatch(context.Background(), env, []int{1}, &bytesBody{b: []byte("x\r\n")})
		checkOutcomes(t, out, []want{{451, "4.5.0", false, "unexpected reply"}})
	})
}

// A server that goes away after the data: the recipients it answered for keep their replies,
// the others are temporary (the server may have delivered to them: a duplicate on retry is
// better than a loss).
func TestClosedAfterData(t *testing.T) {
	t.Parallel()
	addr := serveFake(t, false, func(s *fakeServer) {
		s.greet("PIPELINING")
		for _, l := range []string{"MAIL FROM:<sender@example.org>", "RCPT TO:<alice@example.test>",
			"RCPT TO:<Bob@example.test>", "RCPT TO:<carol@example.test>", "DATA"} {
			s.Expect(l)
		}
		s.Send("250 ok", "250 ok", "250 ok", "250 ok", "354 go")
		s.Data()
		s.Send("250 2.0.0 saved")
	})
	env := testEnv()
	env.Body = ""
	out := newDeliverer(t, addr).DeliverBatch(context.Background(), env, []int{1, 2, 3}, &bytesBody{b: []byte("x\r\n")})
	lost := want{451, "4.4.2", false, "lost connection"}
	checkOutcomes(t, out, []want{{}, lost, lost})
}

// A cancelled context fails the batch, temporarily.
func TestCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	addr := serveFake(t, false, func(s *fakeServer) {
		s.greet("PIPELINING")
		s.Line()
		cancel() // while the client waits for the replies
		s.WaitClosed()
	})
	out := newDeliverer(t, addr).DeliverBatch(ctx, testEnv(), []int{1}, &bytesBody{b: []byte("x\r\n")})
	checkOutcomes(t, out, []want{{451, "4.4.2", false, "lost connection"}})
	if !errors.Is(out[0].Err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled in the chain", out[0].Err)
	}
}

func TestEmptyBatch(t *testing.T) {
	t.Parallel()
	body := &bytesBody{}
	if out := New(Options{Addr: "127.0.0.1:1"}).DeliverBatch(context.Background(), testEnv(), nil, body); len(out) != 0 || body.opens != 0 {
		t.Fatalf("outcomes %v, %d opens", out, body.opens)
	}
}

// A quarantined message reaches the LMTP server with X-Spam-Flag: YES on top, for its Sieve
// rules to file it into Junk.
func TestQuarantine(t *testing.T) {
	t.Parallel()
	addr := serveFake(t, false, func(s *fakeServer) {
		s.greet("PIPELINING")
		for _, l := range []string{"MAIL FROM:<sender@example.org>", "RCPT TO:<alice@example.test>", "DATA"} {
			s.Expect(l)
		}
		s.Send("250 ok", "250 ok", "354 go")
		if got := s.Data(); got != "X-Spam-Flag: YES\r\nAuthentication-Results: mx; dmarc=fail\r\nSubject: x\r\n\r\nb\r\n" {
			t.Errorf("data %q", got)
		}
		s.Send("250 ok")
		s.Expect("QUIT", "221 bye")
	})
	env := testEnv()
	env.Body, env.Quarantine = "", true
	body := &bytesBody{b: []byte("Authentication-Results: mx; dmarc=fail\r\nSubject: x\r\n\r\nb\r\n")}
	out := newDeliverer(t, addr).DeliverBatch(context.Background(), env, []int{1}, body)
	checkOutcomes(t, out, []want{{}})
}
