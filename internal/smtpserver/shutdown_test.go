package smtpserver

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/smtp"
)

// blockingChecker holds every recipient check until release is closed or, with obeyCtx, until
// the check's context ends; it answers 451 and reports the context's error on done.
type blockingChecker struct {
	obeyCtx     bool
	entered     chan struct{}
	release     chan struct{}
	done        chan error
	hadDeadline atomic.Bool
}

func newBlockingChecker(obeyCtx bool) *blockingChecker {
	return &blockingChecker{obeyCtx: obeyCtx, entered: make(chan struct{}, 1), release: make(chan struct{}), done: make(chan error, 1)}
}

func (b *blockingChecker) CheckRcpt(ctx context.Context, _ policy.Client, _ smtp.Address) smtp.Reply {
	_, ok := ctx.Deadline()
	b.hadDeadline.Store(ok)
	b.entered <- struct{}{}
	if b.obeyCtx {
		select {
		case <-ctx.Done():
		case <-b.release:
		}
	} else {
		<-b.release
	}
	b.done <- ctx.Err()
	return smtp.R(smtp.CodeLocalError, smtp.EnhSystemOther, "Recipient address rejected: temporary lookup failure")
}

// receive waits for a value from ch, failing the test after 10s.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		panic("unreachable")
	}
}

// shutdownAsync runs Shutdown with a context that ends after d and delivers its result.
func (ts *testServer) shutdownAsync(d time.Duration) <-chan error {
	res := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		res <- ts.srv.Shutdown(ctx)
	}()
	return res
}

func (ts *testServer) sessionCount() int {
	ts.srv.mu.Lock()
	defer ts.srv.mu.Unlock()
	return len(ts.srv.sessions)
}

// A shutdown that runs out of time while a client is stuck in the TLS handshake of the
// implicit-TLS port closes the raw connection: the session goroutine is replacing its conn at
// that moment, which Shutdown must not touch (under -race this was a data race, and a nil
// interface to close when Shutdown came first).
func TestShutdownDuringTLSHandshake(t *testing.T) {
	ts := newTestServer(t, nil)
	conn, err := net.Dial("tcp", ts.addrs[RoleSubmissions])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half a ClientHello: a handshake record header announcing more than ever comes.
	if _, err := conn.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return ts.sessionCount() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // out of time at once: no waiting for the handshake
	if err := ts.srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v, want context.Canceled", err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 100)); err == nil {
		t.Fatalf("connection still open after Shutdown (read %d octets)", n)
	}
}

// Shutdown's wait after closing the connections is bounded: a session stuck in a call that
// ignores its context (here a recipient check) does not hold the process, and is logged.
func TestShutdownWaitIsBounded(t *testing.T) {
	b := newBlockingChecker(false)
	ts := newTestServer(t, func(o *Options) { o.Rcpts, o.ShutdownWait = b, 100*time.Millisecond })
	t.Cleanup(func() { close(b.release) }) // runs before the server's own cleanup
	ts.dial(t, RoleMX).run(mailGiven + `
		C: RCPT TO:<bob@example.test>`)
	receive(t, b.entered, "recipient check")
	err := receive(t, ts.shutdownAsync(50*time.Millisecond), "return from Shutdown")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "1 sessions still running") {
		t.Fatalf("Shutdown: %v", err)
	}
	if logs := ts.logs.String(); !strings.Contains(logs, `msg="session still running at shutdown"`) || !strings.Contains(logs, "phase=command") {
		t.Errorf("the stuck session was not logged:\n%s", logs)
	}
}

// Recipient checks run with a deadline (bounded by the idle timeout) from the session's context,
// which a shutdown that runs out of time cancels.
func TestRecipientCheckContext(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		t.Parallel()
		b := newBlockingChecker(true)
		ts := newTestServer(t, func(o *Options) { o.Rcpts, o.IdleTimeout = b, time.Second })
		ts.dial(t, RoleMX).run(mailGiven + `
			C: RCPT TO:<bob@example.test>
			S: 451 4.3.0
			C: NOOP
			S: 250`)
		if err := receive(t, b.done, "end of the check"); !errors.Is(err, context.DeadlineExceeded) || !b.hadDeadline.Load() {
			t.Fatalf("check ended with %v (deadline set: %v), want its deadline", err, b.hadDeadline.Load())
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		t.Parallel()
		b := newBlockingChecker(true)
		ts := newTestServer(t, func(o *Options) { o.Rcpts = b })
		ts.dial(t, RoleMX).run(mailGiven + `
			C: RCPT TO:<bob@example.test>`)
		receive(t, b.entered, "recipient check")
		err := receive(t, ts.shutdownAsync(50*time.Millisecond), "return from Shutdown")
		if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "still running") {
			t.Fatalf("Shutdown: %v, want the deadline and every session ended", err)
		}
		if err := receive(t, b.done, "end of the check"); !errors.Is(err, context.Canceled) {
			t.Fatalf("check ended with %v, want context.Canceled", err)
		}
	})
}

// slowCreds answers nothing until the lookup's context ends.
type slowCreds struct{ fakeCreds }

func (slowCreds) CheckPassword(ctx context.Context, _, _ string) (string, error) {
	<-ctx.Done()
	return "", sasl.ErrAuthFailed // what a store might make of a cancelled query
}

// A credential lookup has a deadline too; running out of it is a temporary failure (454), not
// a wrong password.
func TestAuthLookupDeadline(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		withAuth(func(a *AuthOptions) { a.Credentials = slowCreds{} })(o)
		o.IdleTimeout = time.Second
	})
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO c
		S: 250
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
		S: 454 4.7.0 Temporary authentication failure`)
	if logs := ts.logs.String(); strings.Contains(logs, `msg="auth failed"`) {
		t.Errorf("a lookup that ran out of time was logged as a failed password:\n%s", logs)
	}
}

// gatedSpool holds every commit until release is closed, and reports the commit's context.
type gatedSpool struct {
	Spool
	entered chan struct{}
	release chan struct{}
	ctxErr  chan error
}

type gatedMsg struct {
	Message
	g *gatedSpool
}

func (g *gatedSpool) NewMessage() (Message, error) {
	m, err := g.Spool.NewMessage()
	if err != nil {
		return nil, err
	}
	return gatedMsg{Message: m, g: g}, nil
}

func (m gatedMsg) Commit(ctx context.Context, env *envelope.Envelope) error {
	m.g.entered <- struct{}{}
	<-m.g.release
	m.g.ctxErr <- ctx.Err()
	return m.Message.Commit(ctx, env)
}

// A commit in progress when the shutdown runs out of time is neither cancelled nor cut off:
// the client hears the 250 of the message that is on disk, and only then the 421, instead of a
// lost reply and a duplicate when it sends the message again.
func TestShutdownLetsACommitFinish(t *testing.T) {
	g := &gatedSpool{entered: make(chan struct{}, 1), release: make(chan struct{}), ctxErr: make(chan error, 1)}
	ts := newTestServer(t, func(o *Options) { g.Spool = o.Spool; o.Spool = g })
	c := ts.dial(t, RoleMX)
	c.run(rcptGiven + `
		C: DATA
		S: 354
		C: Subject: committing while the server stops
		C:
		C: .`)
	receive(t, g.entered, "commit")
	res := ts.shutdownAsync(50 * time.Millisecond)
	waitFor(t, ts.srv.stopped.Load) // the shutdown is out of time
	close(g.release)
	c.run(`
		S: 250 2.0.0 Ok: queued
		S: 421 4.3.2 mx.example.test Service shutting down
		CLOSED`)
	if err := receive(t, res, "return from Shutdown"); !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "still running") {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := receive(t, g.ctxErr, "commit context"); err != nil {
		t.Fatalf("the commit's context was cancelled: %v", err)
	}
	lastMessage(t, ts, 1)
}

// panicListener panics in Accept, as a bug in the accept loop would.
type panicListener struct{ net.Listener }

func (panicListener) Accept() (net.Conn, error) { panic("accept exploded") }

// A panic in the accept loop is returned by Serve, so that the caller can stop the rest in
// order, instead of taking every session down with the process.
func TestServeRecoversAcceptPanic(t *testing.T) {
	ts := newTestServer(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := ts.srv.Serve(panicListener{ln}, RoleMX); err == nil || !strings.Contains(err.Error(), "panic in the accept loop: accept exploded") {
		t.Fatalf("Serve: %v", err)
	}
	if !strings.Contains(ts.logs.String(), `msg="accept loop panic"`) {
		t.Error("the panic was not logged")
	}
}
