package smtpserver

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/dnsbl"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
)

// fakeScreener reports what it is given and decides with a real policy.Screen.
type fakeScreener struct {
	report policy.ClientReport
	screen *policy.Screen
}

func (f fakeScreener) Look(_ context.Context, ip netip.Addr) policy.ClientReport {
	r := f.report
	r.IP = ip
	return r
}

func (f fakeScreener) CheckRcpt(c policy.Client, r policy.ClientReport, from, rcpt smtp.Address) smtp.Reply {
	return f.screen.CheckRcpt(c, r, from, rcpt)
}

func listedScreener(t *testing.T) fakeScreener {
	t.Helper()
	zen, err := dnsbl.ParseSite("zen.example.test*2")
	if err != nil {
		t.Fatal(err)
	}
	return fakeScreener{
		report: policy.ClientReport{Lists: dnsbl.Result{Score: 2, Hits: []dnsbl.Hit{{Site: zen}}}, Looked: true},
		screen: &policy.Screen{Lists: &dnsbl.Lists{Sites: []dnsbl.Site{zen}}, Threshold: 2},
	}
}

// TestScreenListed: a listed client is refused at each RCPT of the smtp listener, after the
// greeting, with the list named; the same client on the submission listener is not screened.
func TestScreenListed(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Screen.Screener = listedScreener(t) })
	ts.dial(t, RoleMX).run(`
		S: 220 mx.example.test ESMTP tern
		C: EHLO client.example
		S: 250-
		C: MAIL FROM:<a@remote.test>
		S: 250 2.1.0 Ok
		C: RCPT TO:<bob@example.test>
		S: 554 5.7.1 Service unavailable; client \[127.0.0.1\] blocked using zen.example.test$
		C: RCPT TO:<nobody@example.test>
		S: 550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown
		C: QUIT
		S: 221`)
	ts.dial(t, RoleSubmission).run(`
		S: 220
		C: EHLO client.example
		S: 250-
		C: MAIL FROM:<a@remote.test>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250 2.1.5 Ok`)
}

// TestScreenReceivedName: the Received header names the client as Postfix does, with its
// forward-confirmed name or "unknown"; without reverse lookups it keeps the address alone.
func TestScreenReceivedName(t *testing.T) {
	for _, tc := range []struct {
		name   string
		report policy.ClientReport
		want   string
	}{
		{"confirmed", policy.ClientReport{Looked: true, Name: dnsbl.Name{Name: "mail.remote.test"}}, "Received: from client.example (mail.remote.test [127.0.0.1])"},
		{"unknown", policy.ClientReport{Looked: true, Name: dnsbl.Name{PTR: "liar.remote.test"}}, "Received: from client.example (unknown [127.0.0.1])"},
		{"not looked up", policy.ClientReport{}, "Received: from client.example ([127.0.0.1])"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, func(o *Options) {
				o.Screen.Screener = fakeScreener{report: tc.report, screen: &policy.Screen{}}
			})
			ts.dial(t, RoleMX).run(`
				S: 220
				C: EHLO client.example
				S: 250-
				C: MAIL FROM:<a@remote.test>
				S: 250
				C: RCPT TO:<bob@example.test>
				S: 250
				C: DATA
				S: 354
				C: Subject: hi
				C:
				C: hi
				C: .
				S: 250 2.0.0 Ok: queued`)
			msgs := ts.spool.messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages, want 1", len(msgs))
			}
			if got := msgs[0].body.String(); !strings.HasPrefix(got, tc.want+"\r\n") {
				t.Fatalf("message: %q, want it to start with %q", got, tc.want)
			}
		})
	}
}

// TestPregreet: with a greeting wait, a client that talks first gets 554 5.5.1 and is
// disconnected; one that waits for the greeting (as every real client does) is served; the
// submission listener greets at once.
func TestPregreet(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Screen.PregreetWait = time.Minute })
	ts.dial(t, RoleMX).run(`
		C: EHLO early.example
		S: 554 5.5.1 Protocol error: client talked before the greeting, closing
		CLOSED`)
	ts.dial(t, RoleSubmission).run(`
		S: 220 mx.example.test ESMTP tern
		C: QUIT
		S: 221`)
	if !strings.Contains(ts.logs.String(), "pregreet") {
		t.Errorf("no pregreet log line:\n%s", ts.logs)
	}

	short := newTestServer(t, func(o *Options) { o.Screen.PregreetWait = 10 * time.Millisecond })
	short.dial(t, RoleMX).run(`
		S: 220 mx.example.test ESMTP tern
		C: EHLO patient.example
		S: 250-
		C: QUIT
		S: 221`)
}

// TestPregreetShutdown: a shutdown does not wait for a session's greeting wait to run out: the
// client gets its greeting and the 421 of the shutdown, and Shutdown returns in time.
func TestPregreetShutdown(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Screen.PregreetWait = time.Hour })
	c := ts.dial(t, RoleMX)
	for !strings.Contains(ts.logs.String(), "msg=connect") {
		time.Sleep(5 * time.Millisecond) // waiting for the session to start its wait
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- ts.srv.Shutdown(ctx)
	}()
	c.run(`
		S: 220 mx.example.test ESMTP tern
		S: 421 4.3.2 mx.example.test Service shutting down, closing connection
		CLOSED`)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
