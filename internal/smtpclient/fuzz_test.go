package smtpclient

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// closedConn is a net.Conn that only takes Close, for reading replies from a string.
type closedConn struct{ net.Conn }

func (closedConn) Close() error { return nil }

// FuzzReadReply reads whatever a server may send as replies: it never panics, every reply it
// returns has a valid code and is within the bounds, and the first error breaks the client.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"220 mx.example.test ESMTP\r\n",
		"250-oeey.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-AUTH CRAM-MD5 LOGIN\r\n250-AUTH=CRAM-MD5 LOGIN\r\n250 8BITMIME\r\n",
		"550 5.1.1 Bad destination mailbox address (you@externaldomain.com).\r\n",
		"250 2.6.0 <SMTP0146bXmdMJOtd3r00028154@mail.kuku.co.il> Queued mail for\r\n",
		"334 VXNlcm5hbWU6\r\n334 \r\n235 2.7.0 ok\r\n",
		"250-a\r\n251 b\r\n",
		"250 ok\n",
		"250\r\n2500\r\n",
		"421 4.7.0 bye\r\n250 after\r\n",
		strings.Repeat("250-x\r\n", 200),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		opts := Options{MaxReplyLine: 128, MaxReplyLines: 8, MaxReplyBytes: 512}.withDefaults()
		c := &Client{opts: opts, conn: closedConn{}, br: bufio.NewReaderSize(strings.NewReader(in), 16)}
		for range 100 {
			r, err := c.readReply(CmdEHLO)
			if err != nil {
				if c.broken == nil {
					t.Fatalf("error %v did not break the client", err)
				}
				var e *Error
				if !errors.As(err, &e) || e.Code != 0 || e.Permanent {
					t.Fatalf("error %#v", err)
				}
				return
			}
			if r.Code < 200 || r.Code > 599 {
				t.Fatalf("code %d", r.Code)
			}
			if n := strings.Count(r.Text, "\n") + 1; n > opts.MaxReplyLines || len(r.Text) > opts.MaxReplyBytes {
				t.Fatalf("reply of %d lines, %d octets", n, len(r.Text))
			}
			if r.Enh != "" && !strings.HasPrefix(r.Enhanced(), string(rune('0'+r.Code/100))) {
				t.Fatalf("enhanced %q with code %d", r.Enhanced(), r.Code)
			}
			parseExtensions(r.Text)
		}
	})
}

// scriptConn is a net.Conn whose peer says what a fuzz input says and ignores what it is told.
type scriptConn struct {
	net.Conn
	r io.Reader
}

func (c scriptConn) Read(p []byte) (int, error)     { return c.r.Read(p) }
func (scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (scriptConn) Close() error                     { return nil }
func (scriptConn) SetDeadline(time.Time) error      { return nil }
func (scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (scriptConn) SetWriteDeadline(time.Time) error { return nil }
func (scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }
func (scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }

// FuzzSession runs a whole delivery (greeting, EHLO or LHLO, MAIL, two RCPTs, the message, QUIT)
// against a server whose every byte is the fuzzer's: what remote delivery meets on the Internet.
// It never panics or hangs, and the results keep their shape: one per recipient, in order (Send:
// fewer only with an error), and an accepted recipient only with a 2xx reply.
func FuzzSession(f *testing.F) {
	ok := "220 mx ESMTP\r\n250-mx\r\n250-PIPELINING\r\n250-SIZE 100\r\n250-8BITMIME\r\n250-DSN\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n"
	for _, s := range []string{
		ok + "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n354 go\r\n250 queued\r\n221 bye\r\n",
		ok + "250 ok\r\n250 ok\r\n250 ok\r\n250 2.0.0 ok\r\n250 2.0.0 ok\r\n221 bye\r\n",
		"220 mx ESMTP\r\n250 mx\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n",
		"220 mx ESMTP\r\n500 what\r\n250 mx\r\n250 ok\r\n",
		ok + "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 2.1.5 a\r\n452 4.2.2 full\r\n",
		"554 no service\r\n",
		"220-mx\r\n220 more\r\n250-mx\r\n250 SIZE 10\r\n",
		ok + "421 4.3.2 bye\r\n",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, in string, lmtp bool) {
		ctx := context.Background()
		opts := Options{LocalName: "client.example.test", LMTP: lmtp, MaxReplyLines: 16, MaxReplyBytes: 2048}
		c, err := New(ctx, scriptConn{r: strings.NewReader(in)}, opts)
		if err != nil {
			return
		}
		defer c.Close()
		if err := c.Hello(ctx); err != nil {
			return
		}
		env := Envelope{
			From:       "alice@example.test",
			MailParams: []string{"BODY=8BITMIME", "RET=HDRS"},
			Size:       42,
			Rcpts: []Recipient{
				{Addr: "bob@example.test", Params: []string{"NOTIFY=FAILURE"}},
				{Addr: "carol@example.test"},
			},
		}
		const msg = "Subject: fuzz\r\n\r\n.a dot\r\nend\r\n"
		var rcpts []RcptResult
		if lmtp {
			res, err := c.SendLMTP(ctx, env, strings.NewReader(msg))
			if res == nil {
				if err == nil {
					t.Fatal("SendLMTP: no result and no error")
				}
				return
			}
			rcpts = res.Rcpts
			if len(rcpts) != len(env.Rcpts) {
				t.Fatalf("SendLMTP: %d results for %d recipients", len(rcpts), len(env.Rcpts))
			}
		} else {
			res, err := c.Send(ctx, env, strings.NewReader(msg))
			if res == nil {
				if err == nil {
					t.Fatal("Send: no result and no error")
				}
				return
			}
			rcpts = res.Rcpts
			// Fewer only when the connection broke before the other replies.
			if len(rcpts) > len(env.Rcpts) || err == nil && len(rcpts) != len(env.Rcpts) {
				t.Fatalf("Send: %d results for %d recipients (error %v)", len(rcpts), len(env.Rcpts), err)
			}
			if err == nil && (res.Data.Code < 200 || res.Data.Code > 299) {
				t.Fatalf("Send succeeded with data reply %d", res.Data.Code)
			}
		}
		for i, r := range rcpts {
			if r.Addr != env.Rcpts[i].Addr {
				t.Fatalf("result %d is for %q, want %q", i, r.Addr, env.Rcpts[i].Addr)
			}
			if r.Err == nil && r.Reply.Code/100 != 2 {
				t.Fatalf("%s accepted with reply %d", r.Addr, r.Reply.Code)
			}
		}
		c.Quit(ctx)
	})
}
