package smtpserver

import (
	"context"
	"crypto/tls"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/policy"
)

func TestErrorLimit(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxErrors = 3 })
	ts.dial(t, RoleMX).run(`
		S: 220
		C: FOO
		S: 500
		C: EHLO c
		S: 250
		C: BAR
		S: 500
		C: MAIL FROM:<a@b.example>
		S: 250
		C: RCPT TO:<x@remote.example>
		S: 554 5.7.1
		S: 421 4.7.0 mx.example.test Error: too many errors
		CLOSED`)
}

// A queued message starts the error count afresh, as Postfix's smtpd_hard_error_limit does.
func TestErrorCountRestartsAfterMessage(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxErrors = 2 })
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO c
		S: 250
		C: FOO
		S: 500
		C: MAIL FROM:<a@b.example>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: DATA
		S: 354
		C: .
		S: 250 2.0.0 Ok: queued
		C: FOO
		S: 500
		C: NOOP
		S: 250`)
}

func TestTimeouts(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(o *Options) { o.IdleTimeout = 200 * time.Millisecond })
		c := ts.dial(t, RoleMX)
		c.run(`
			S: 220
			C: EHLO c
			S: 250`)
		time.Sleep(300 * time.Millisecond)
		c.run(`
			S: 421 4.4.2 mx.example.test Error: timeout exceeded
			CLOSED`)
	})
	t.Run("idle-in-data", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(o *Options) { o.IdleTimeout = 200 * time.Millisecond })
		ts.dial(t, RoleMX).run(`
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 354
			C: Subject: half a message
			S: 421 4.4.2 mx.example.test Error: timeout exceeded
			CLOSED`)
		if n := len(ts.spool.messages()); n != 0 {
			t.Errorf("%d messages committed", n)
		}
	})
	t.Run("session", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(o *Options) { o.SessionTimeout = 400 * time.Millisecond })
		c := ts.dial(t, RoleMX)
		c.run(`
			S: 220
			C: EHLO c
			S: 250`)
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			c.send("NOOP\r\n")
			got, err := c.reply()
			if err != nil {
				t.Fatalf("connection ended without 421: %v", err)
			}
			if strings.HasPrefix(got, "421 4.4.2 mx.example.test Error: session time limit exceeded") {
				c.expectClosed()
				return
			}
			if !strings.HasPrefix(got, "250") {
				t.Fatalf("got %q", got)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("session outlived its time limit")
	})
}

func TestConnectionLimits(t *testing.T) {
	t.Run("per-ip", func(t *testing.T) {
		ts := newTestServer(t, func(o *Options) { o.Limiter = policy.NewConnLimiter(policy.ConnLimits{PerIP: 2}) })
		a, b := ts.dial(t, RoleMX), ts.dial(t, RoleMX)
		a.expect("220")
		b.expect("220")
		ts.dial(t, RoleMX).run(`
			S: 421 4.7.0 Too many connections from 127.0.0.1
			CLOSED`)
		a.run(`
			C: QUIT
			S: 221
			CLOSED`)
		b.run(`
			C: NOOP
			S: 250`)
		// The slot is given back when a session ends.
		waitFor(t, func() bool {
			c := ts.dial(t, RoleMX)
			got, _ := c.reply()
			return strings.HasPrefix(got, "220")
		})
	})
	t.Run("total", func(t *testing.T) {
		ts := newTestServer(t, func(o *Options) { o.Limiter = policy.NewConnLimiter(policy.ConnLimits{Max: 1}) })
		ts.dial(t, RoleMX).expect("220")
		ts.dial(t, RoleSubmission).run(`
			S: 421 4.7.0 Too many connections, try again later
			CLOSED`)
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 5s")
}

// A panic in one session is answered with 421 and logged; the server and other sessions go on.
func TestPanicIsContained(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Rcpts = panicChecker{RcptChecker: o.Rcpts, on: "boom"} })
	other := ts.dial(t, RoleMX)
	other.run(`
		S: 220
		C: EHLO other
		S: 250
		C: MAIL FROM:<a@b.example>
		S: 250`)
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO c
		S: 250
		C: MAIL FROM:<a@b.example>
		S: 250
		C: RCPT TO:<boom@example.test>
		S: 421 4.3.0 mx.example.test Error: internal server error
		CLOSED`)
	other.run(`
		C: RCPT TO:<bob@example.test>
		S: 250
		C: DATA
		S: 354
		C: .
		S: 250 2.0.0 Ok: queued`)
	if !strings.Contains(ts.logs.String(), "session panic") {
		t.Error("the panic was not logged")
	}
}

func TestStartTLS(t *testing.T) {
	ts := newTestServer(t, nil)
	t.Run("upgrade-and-reset", func(t *testing.T) {
		c := ts.dial(t, RoleSubmission)
		c.run(`
			S: 220
			C: EHLO c
			S: 250-mx.example.test\n.*250-STARTTLS\n
			C: STARTTLS now
			S: 501 5.5.4 Syntax: STARTTLS
			C: MAIL FROM:<a@b.example>
			S: 250
			C: STARTTLS
			S: 503 5.5.1 Error: MAIL transaction in progress
			C: RSET
			S: 250
			W: STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n
			S: 220 2.0.0 Ready to start TLS`)
		c.startTLS()
		// The injected MAIL was thrown away with the cleartext buffer, and the state was reset.
		got := c.run2(`
			C: MAIL FROM:<a@b.example>
			S: 503 5.5.1 Error: send HELO/EHLO first
			C: EHLO c
			S: 250-mx.example.test`)
		if strings.Contains(got, "STARTTLS") {
			t.Errorf("STARTTLS offered again under TLS: %q", got)
		}
		c.run(`
			C: STARTTLS
			S: 503 5.5.1 Error: TLS already active
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 354
			C: .
			S: 250 2.0.0 Ok: queued`)
		m := lastMessage(t, ts, 1)
		if !strings.Contains(m.body.String(), "(using TLSv1.3 with cipher TLS_") || !strings.Contains(m.body.String(), " with ESMTPS id ") {
			t.Errorf("Received header lacks TLS details: %q", m.body.String())
		}
		if strings.Contains(ts.logs.String(), "injected") {
			t.Error("the injected command reached the session")
		}
	})
	// What DATA's own reader read past a message is cleartext too: pipelined after the final
	// dot, STARTTLS and more than the session's reader holds of injected commands are thrown
	// away with it.
	t.Run("injected-after-data", func(t *testing.T) {
		c := ts.dial(t, RoleSubmission)
		injected := strings.Repeat("MAIL FROM:<injected@evil.example>\r\n", 200) // 7 KB
		c.run(`
			S: 220
			C: EHLO c
			S: 250-mx.example.test
			C: MAIL FROM:<a@b.example>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 354`)
		c.send("Subject: x\r\n\r\nx\r\n.\r\nSTARTTLS\r\n" + injected)
		c.run(`
			S: 250 2.0.0 Ok: queued
			S: 220 2.0.0 Ready to start TLS`)
		c.startTLS()
		c.run(`
			C: MAIL FROM:<a@b.example>
			S: 503 5.5.1 Error: send HELO/EHLO first`)
		if strings.Contains(ts.logs.String(), "injected") {
			t.Error("an injected command reached the session")
		}
		if !strings.Contains(ts.logs.String(), "discarding input pipelined after STARTTLS") {
			t.Error("no warning about the discarded input")
		}
	})
	t.Run("implicit", func(t *testing.T) {
		c := ts.dial(t, RoleSubmissions)
		got := c.run2(`
			S: 220 mx.example.test ESMTP tern
			C: EHLO c
			S: 250-mx.example.test`)
		if strings.Contains(got, "STARTTLS") {
			t.Errorf("STARTTLS offered on implicit TLS: %q", got)
		}
		if _, ok := c.conn.(*tls.Conn); !ok {
			t.Fatal("not TLS")
		}
	})
	t.Run("no-tls-configured", func(t *testing.T) {
		ts := newTestServer(t, func(o *Options) { o.TLS = nil })
		got := ts.dial(t, RoleMX).run2(`
			S: 220
			C: EHLO c
			S: 250
			C: STARTTLS
			S: 502 5.5.1`)
		if strings.Contains(got, "STARTTLS\n") {
			t.Errorf("STARTTLS advertised without TLS: %q", got)
		}
	})
	t.Run("handshake-garbage", func(t *testing.T) {
		c := ts.dial(t, RoleMX)
		c.run(`
			S: 220
			C: STARTTLS
			S: 220 2.0.0
			C: this is not a TLS client hello
			CLOSED`)
	})
}

// run2 is run that also returns every reply it read, joined, for checks beyond the prefixes.
func (c *client) run2(transcript string) string {
	c.t.Helper()
	var all []string
	for _, line := range strings.Split(strings.Trim(transcript, "\n"), "\n") {
		line = strings.TrimLeft(line, "\t ")
		if strings.HasPrefix(line, "S: ") {
			all = append(all, c.expect(line[3:]))
			continue
		}
		c.run(line)
	}
	return strings.Join(all, "\n")
}

func TestShutdown(t *testing.T) {
	ts := newTestServer(t, nil)
	idle := ts.dial(t, RoleMX)
	idle.run(`
		S: 220
		C: EHLO c
		S: 250`)
	busy := ts.dial(t, RoleMX)
	busy.run(`
		S: 220
		C: EHLO c
		S: 250
		C: MAIL FROM:<a@b.example>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: DATA
		S: 354
		C: Subject: in flight`)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()
	idle.run(`
		S: 421 4.3.2 mx.example.test Service shutting down
		CLOSED`)
	// A message being received is finished before its session is told to go.
	busy.run(`
		C: .
		S: 250 2.0.0 Ok: queued
		S: 421 4.3.2
		CLOSED`)
	wg.Wait()
	lastMessage(t, ts, 1)
	// The idle session was ended by the shutdown, not by a timeout of its own: the log says so.
	logs := ts.logs.String()
	if strings.Contains(logs, "msg=timeout") || !strings.Contains(logs, `msg="shutting down" conn=1 remote=127.0.0.1 listener=smtp phase=idle`) {
		t.Errorf("the idle session's end is not logged as a shutdown:\n%s", logs)
	}
}

// A connection refused on the implicit TLS port hears its 421 inside TLS.
func TestConnectionLimitImplicitTLS(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Limiter = policy.NewConnLimiter(policy.ConnLimits{PerIP: 1}) })
	ts.dial(t, RoleSubmissions).expect("220")
	ts.dial(t, RoleSubmissions).run(`
		S: 421 4.7.0 Too many connections
		CLOSED`)
}

// BDAT counts only the client's octets against the size limit, as DATA does.
func TestBdatSizeExcludesReceived(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxMessageSize = 100 })
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO c
		S: 250
		C: MAIL FROM:<a@b.example> SIZE=100
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		W: BDAT 100 LAST\r\n` + strings.Repeat(strings.Repeat("z", 8)+`\r\n`, 10) + `
		S: 250 2.0.0 Ok: queued`)
	m := lastMessage(t, ts, 1)
	if m.env.Size != int64(m.body.Len()) || m.body.Len() <= 100 {
		t.Errorf("size %d, body %d octets", m.env.Size, m.body.Len())
	}
}
