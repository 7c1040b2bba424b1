package smtpserver

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
)

type txKey struct{}

// txRecorder records which transaction's context each recipient check and commit got.
type txRecorder struct {
	mu   sync.Mutex
	next int
	seen []string
}

func (r *txRecorder) txContext(ctx context.Context) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	return context.WithValue(ctx, txKey{}, r.next)
}

func (r *txRecorder) note(ctx context.Context, what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, fmt.Sprint(what, ctx.Value(txKey{})))
}

type txChecker struct {
	RcptChecker
	r *txRecorder
}

func (c txChecker) CheckRcpt(ctx context.Context, cl policy.Client, rcpt smtp.Address) smtp.Reply {
	c.r.note(ctx, "rcpt")
	return c.RcptChecker.CheckRcpt(ctx, cl, rcpt)
}

type txSpool struct {
	Spool
	r *txRecorder
}

func (s txSpool) NewMessage() (Message, error) {
	m, err := s.Spool.NewMessage()
	return txMsg{m, s.r}, err
}

type txMsg struct {
	Message
	r *txRecorder
}

func (m txMsg) Commit(ctx context.Context, env *envelope.Envelope) error {
	m.r.note(ctx, "commit")
	return m.Message.Commit(ctx, env)
}

// Options.TxContext makes one context per transaction, which its recipient checks and its
// commit get (the wiring keeps the alias expansions of RCPT in it for the commit).
func TestTxContext(t *testing.T) {
	rec := &txRecorder{}
	ts := newTestServer(t, func(o *Options) {
		o.TxContext = rec.txContext
		o.Rcpts = txChecker{o.Rcpts, rec}
		o.Spool = txSpool{o.Spool, rec}
	})
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO c
		S: 250
		C: MAIL FROM:<a@x.test>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
		C: Subject: one
		C:
		C: .
		S: 250
		C: MAIL FROM:<a@x.test>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: RSET
		S: 250
		C: MAIL FROM:<a@x.test>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
		C: Subject: three
		C:
		C: .
		S: 250
		C: QUIT
		S: 221`)
	got := fmt.Sprint(rec.seen)
	if want := "[rcpt1 rcpt1 commit1 rcpt2 rcpt3 commit3]"; got != want {
		t.Errorf("contexts seen: %s, want %s", got, want)
	}
}
