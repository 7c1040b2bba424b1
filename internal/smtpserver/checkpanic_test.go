package smtpserver

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/spf"
)

// The checkers below panic on a sender, or a From, at panic.test: a bug met by a hostile
// record or message.
type panickySPF struct{ fakeSPF }

func (p panickySPF) Check(ctx context.Context, ip net.IP, helo, from string) spf.Outcome {
	if strings.HasSuffix(from, "@panic.test") {
		panic("spf checker bug")
	}
	return p.fakeSPF.Check(ctx, ip, helo, from)
}

// panickyDKIM reads a little of the message first, so that the session must stream the rest
// past a verifier that is gone.
type panickyDKIM struct{ fakeDKIM }

func (p *panickyDKIM) Verify(ctx context.Context, r io.Reader) (dkim.Verification, error) {
	head := make([]byte, 64)
	n, _ := io.ReadFull(r, head)
	if strings.Contains(string(head[:n]), "panic.test") {
		panic("dkim checker bug")
	}
	return p.fakeDKIM.Verify(ctx, io.MultiReader(strings.NewReader(string(head[:n])), r))
}

type panickyDMARC struct{ dmarc.Checker }

func (p *panickyDMARC) Discover(ctx context.Context, from []string) dmarc.Discovery {
	if strings.Contains(strings.Join(from, ","), "panic.test") {
		panic("dmarc checker bug")
	}
	return p.Checker.Discover(ctx, from)
}

// A panic in a check that runs beside the session is that check's temperror: the message gets
// its verdict (queued with temperror, or 451 where policy defers temperrors), the session and the
// next one go on, and the panic is logged with its stack.
func TestCheckPanic(t *testing.T) {
	big := strings.Repeat(strings.Repeat("x", 998)+"\r\n", 3*handoffMax/1000)
	for _, tc := range []struct {
		name, from, header string
		deferTemp          bool
		want               string // the reply to the message
		result             string // in its Authentication-Results field, when queued
	}{
		{"spf", "a@panic.test", "From: <a@none.test>", false, "250 2.0.0 Ok: queued", "spf=temperror smtp.mailfrom=a@panic.test;"},
		{"dkim", "a@none.test", `X-Signed: d=panic.test\r\nFrom: <a@none.test>`, false, "250 2.0.0 Ok: queued", "dkim=temperror;"},
		{"dmarc", "a@none.test", "From: <a@panic.test>", false, "250 2.0.0 Ok: queued", "dmarc=temperror"},
		{"spf-deferred", "a@panic.test", "From: <a@none.test>", true, "451 4.4.3 Temporary DNS failure", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, func(o *Options) {
				o.Authentication = &Authentication{SPF: panickySPF{}, DKIM: &panickyDKIM{},
					DMARC: &panickyDMARC{dmarc.Checker{Resolver: dmarcZone{}}}, Policy: policy.Inbound{Check: true, Defer: tc.deferTemp}}
			})
			c := ts.dial(t, RoleMX)
			c.run(`
				S: 220
				C: EHLO mail.example.org
				S: 250
				C: MAIL FROM:<` + tc.from + `>
				S: 250
				C: RCPT TO:<bob@example.test>
				S: 250
				C: DATA
				S: 354
				W: ` + tc.header + `\r\n`)
			c.send(big + ".\r\n")
			c.run(`
				S: ` + tc.want + `
				C: MAIL FROM:<a@example.org>
				S: 250
				C: RCPT TO:<bob@example.test>
				S: 250
				C: DATA
				S: 354
				C: From: <a@example.org>
				C: X-Signed: d=example.org
				C: .
				S: 250 2.0.0 Ok: queued
				C: QUIT
				S: 221`)
			msgs, want := ts.spool.messages(), 1 // the next message; the first too when queued
			if tc.result != "" {
				want = 2
			}
			if len(msgs) != want {
				t.Fatalf("%d messages queued, want %d", len(msgs), want)
			}
			if tc.result != "" && !strings.Contains(msgs[0].env.Prepend, tc.result) {
				t.Errorf("first message's Authentication-Results:\n%q\nwant it to hold %q", msgs[0].env.Prepend, tc.result)
			}
			if last := msgs[len(msgs)-1].env.Prepend; !strings.Contains(last, "dkim=pass") {
				t.Errorf("next message's Authentication-Results %q, want dkim=pass", last)
			}
			logs := ts.logs.String()
			if !strings.Contains(logs, "check panic") || !strings.Contains(logs, "checker bug") || !strings.Contains(logs, "goroutine") {
				t.Errorf("no panic with its stack in the log:\n%s", logs)
			}
		})
	}
}
