package smtpserver

import (
	"context"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/tern-mail/tern/internal/dnsbl"
	"github.com/tern-mail/tern/internal/filter"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
)

func (m *memMsg) Reader() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(m.body.String())), nil
}

// scriptFilter answers each stage with the verdict set for it and records what it was asked.
type scriptFilter struct {
	verdicts map[string]filter.Verdict
	mu       sync.Mutex
	calls    []string
}

func (f *scriptFilter) Open(context.Context, FilterConn) FilterSession { return f }

func (f *scriptFilter) ask(stage string) filter.Verdict {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, stage)
	return f.verdicts[stage]
}

func (f *scriptFilter) Connect(context.Context, FilterState) filter.Verdict { return f.ask("connect") }
func (f *scriptFilter) Helo(context.Context, FilterState) filter.Verdict    { return f.ask("helo") }
func (f *scriptFilter) Mail(context.Context, FilterState) filter.Verdict    { return f.ask("mail") }
func (f *scriptFilter) Rcpt(_ context.Context, _ FilterState, rcpt, _ string) filter.Verdict {
	return f.ask("rcpt " + rcpt)
}
func (f *scriptFilter) Message(_ context.Context, st FilterState, h filter.Header, body io.Reader) filter.Verdict {
	if _, err := io.Copy(io.Discard, body); err != nil {
		panic(err)
	}
	return f.ask("message " + strings.Join(st.Rcpts, ","))
}
func (f *scriptFilter) Abort(context.Context) { f.ask("abort") }
func (f *scriptFilter) Close()                { f.ask("close") }

const filterSession = `
	S: 220
	C: EHLO c
	S: 250
	C: MAIL FROM:<a@example.org>
	S: 250
	C: RCPT TO:<bob@example.test>
	S: 250
	C: RCPT TO:<alice@example.test>
	S: 250
	C: DATA
	S: 354
	C: Subject: hi
	C: X-Old: 1
	C:
	C: body
	C: .
`

// Every verdict a filter can give, at every stage, as the client sees it.
func TestFilterVerdicts(t *testing.T) {
	rej := func(code int, enh, text string) filter.Verdict {
		return filter.Verdict{Action: filter.Reject, Reply: smtp.R(code, enh, text)}
	}
	for _, tc := range []struct {
		name       string
		verdicts   map[string]filter.Verdict
		transcript string
		committed  int
	}{
		{"connect-reject", map[string]filter.Verdict{"connect": {Action: filter.Reject}}, `
			S: 554 5.7.1 Error: message content rejected
			CLOSED`, 0},
		{"connect-tempfail", map[string]filter.Verdict{"connect": {Action: filter.TempFail}}, `
			S: 421 4.7.1 Error: try again later
			CLOSED`, 0},
		{"helo-tempfail", map[string]filter.Verdict{"helo": {Action: filter.TempFail}}, `
			S: 220
			C: EHLO c
			S: 451 4.7.1 Error: try again later
			C: MAIL FROM:<a@example.org>
			S: 503`, 0},
		{"mail-reject-own-reply", map[string]filter.Verdict{"mail": rej(553, "7.1", "sender blocked")}, `
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@example.org>
			S: 553 5.7.1 sender blocked
			C: RCPT TO:<bob@example.test>
			S: 503`, 0},
		{"reject-with-a-4xx-gets-the-default", map[string]filter.Verdict{"mail": rej(451, "7.1", "wrong class")}, `
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@example.org>
			S: 550 5.7.1 Error: message content rejected`, 0},
		{"rcpt-reject-takes-the-recipient-out", map[string]filter.Verdict{"rcpt bob@example.test": {Action: filter.Reject}}, `
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@example.org>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 550 5.7.1
			C: DATA
			S: 503 5.5.1`, 0},
		{"message-reject", map[string]filter.Verdict{"message bob@example.test,alice@example.test": {Action: filter.Reject}},
			filterSession + `S: 550 5.7.1 Error: message content rejected`, 0},
		{"message-tempfail", map[string]filter.Verdict{"message bob@example.test,alice@example.test": {Action: filter.TempFail}},
			filterSession + `S: 451 4.7.1 Error: try again later`, 0},
		{"message-discard", map[string]filter.Verdict{"message bob@example.test,alice@example.test": {Action: filter.Discard}},
			filterSession + `S: 250 2.0.0 Ok: queued as`, 0},
		{"rcpt-discard-discards-the-message", map[string]filter.Verdict{"rcpt alice@example.test": {Action: filter.Discard}},
			filterSession + `S: 250 2.0.0 Ok: queued as`, 0},
		{"continue", nil, filterSession + `S: 250 2.0.0 Ok: queued as`, 1},
		{"bdat-message-tempfail", map[string]filter.Verdict{"message bob@example.test": {Action: filter.TempFail}}, `
			S: 220
			C: EHLO c
			S: 250
			C: MAIL FROM:<a@example.org>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			W: BDAT 9\r\nSubject: 
			S: 250
			W: BDAT 6 LAST\r\nhi\r\n\r\n
			S: 451 4.7.1 Error: try again later`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &scriptFilter{verdicts: tc.verdicts}
			ts := newTestServer(t, func(o *Options) { o.Filters = []Filter{f} })
			ts.dial(t, RoleMX).run(tc.transcript)
			if got := len(ts.spool.messages()); got != tc.committed {
				t.Errorf("%d messages committed, want %d", got, tc.committed)
			}
		})
	}
}

// A filter that accepts at connect is not asked again; one that accepts at MAIL is not asked
// again in that transaction. RSET aborts the transaction for the filter.
func TestFilterAcceptStopsAsking(t *testing.T) {
	f1 := &scriptFilter{verdicts: map[string]filter.Verdict{"connect": {Action: filter.Accept}}}
	f2 := &scriptFilter{verdicts: map[string]filter.Verdict{"mail": {Action: filter.Accept}}}
	ts := newTestServer(t, func(o *Options) { o.Filters = []Filter{f1, f2} })
	c := ts.dial(t, RoleMX)
	c.run(filterSession + `
		S: 250 2.0.0 Ok: queued as
		C: MAIL FROM:<a@example.org>
		S: 250
		C: RSET
		S: 250
		C: QUIT
		S: 221`)
	c.expectClosed()
	f1.mu.Lock()
	if got := strings.Join(f1.calls, ";"); got != "connect;close" {
		t.Errorf("first filter asked %q", got)
	}
	f1.mu.Unlock()
	f2.mu.Lock()
	defer f2.mu.Unlock()
	// An accept at MAIL still ends the transaction with an abort, so that the filter is ready
	// for the next MAIL.
	if got := strings.Join(f2.calls, ";"); got != "connect;helo;mail;abort;mail;abort;close" {
		t.Errorf("second filter asked %q", got)
	}
}

// A hold, envelope edits and text edits reach the committed message: the edited text is a new
// queue message whose Received field names its own id, and the first is aborted.
func TestFilterEdits(t *testing.T) {
	f := &scriptFilter{verdicts: map[string]filter.Verdict{"message bob@example.test,alice@example.test": {
		Quarantine: "spam",
		Edits: []filter.Edit{
			{Kind: filter.AddHeader, Name: "X-Spam", Value: "yes\n folded"},
			{Kind: filter.InsertHeader, Index: 0, Name: "X-Top", Value: "1"},
			{Kind: filter.ChangeHeader, Name: "x-old", Index: 1, Value: ""},
			{Kind: filter.ChangeHeader, Name: "Subject", Index: 1, Value: "[SPAM] hi"},
			{Kind: filter.ChangeHeader, Name: "Bad:Name", Index: 1, Value: "x"},
			{Kind: filter.ReplaceBody, Body: []byte("new\nbody")},
			{Kind: filter.ChangeFrom, Addr: "<b@example.org>"},
			{Kind: filter.AddRcpt, Addr: "<carol@example.test>"},
			{Kind: filter.DelRcpt, Addr: "<ALICE@example.test>"},
		}}}}
	ts := newTestServer(t, func(o *Options) { o.Filters = []Filter{f} })
	ts.dial(t, RoleMX).run(filterSession + `S: 250 2.0.0 Ok: queued as ABCDEF1000002`)
	msgs := ts.spool.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages committed", len(msgs))
	}
	m := msgs[0]
	want := `^X-Top: 1\r\nReceived: from c \(\[127\.0\.0\.1\]\)\r\n\tby mx\.example\.test \(tern\) with ESMTP id ABCDEF1000002; [^\r]+\r\n` +
		`Subject: \[SPAM\] hi\r\nX-Spam: yes\r\n folded\r\n\r\nnew\r\nbody\r\n$`
	if !regexp.MustCompile(want).MatchString(m.body.String()) {
		t.Errorf("stored message:\n%q\nwant %q", m.body.String(), want)
	}
	env := m.env
	var rcpts []string
	for _, r := range env.Rcpts {
		rcpts = append(rcpts, r.Addr)
	}
	if env.From != "b@example.org" || strings.Join(rcpts, ",") != "bob@example.test,carol@example.test" || !env.Held || env.Size != int64(m.body.Len()) {
		t.Errorf("envelope from %q rcpts %v held %v size %d (body %d)", env.From, rcpts, env.Held, env.Size, m.body.Len())
	}
}

// When a filter refuses the message, the filters after it never get it: they get an abort, and
// the next transaction starts afresh for them.
func TestFilterRefusalAbortsTheOthers(t *testing.T) {
	f1 := &scriptFilter{verdicts: map[string]filter.Verdict{"message bob@example.test,alice@example.test": {Action: filter.Reject}}}
	f2 := &scriptFilter{}
	ts := newTestServer(t, func(o *Options) { o.Filters = []Filter{f1, f2} })
	c := ts.dial(t, RoleMX)
	c.run(filterSession + `
		S: 550 5.7.1
		C: MAIL FROM:<a@example.org>
		S: 250
		C: QUIT
		S: 221`)
	c.expectClosed()
	f2.mu.Lock()
	defer f2.mu.Unlock()
	want := "connect;helo;mail;rcpt bob@example.test;rcpt alice@example.test;abort;mail;abort;close"
	if got := strings.Join(f2.calls, ";"); got != want {
		t.Errorf("second filter asked\n%q\nwant\n%q", got, want)
	}
}

// nameFilter is a scriptFilter that notes the client's names at connect.
type nameFilter struct{ scriptFilter }

func (f *nameFilter) Open(context.Context, FilterConn) FilterSession { return f }
func (f *nameFilter) Connect(_ context.Context, st FilterState) filter.Verdict {
	return f.ask("connect name=" + st.ClientName + " ptr=" + st.ClientPTR)
}

// TestFilterClientName: the filters learn at connect the client's names the screening lookups
// found (milter's {client_name} and {client_ptr}), once they are done; none without screening.
func TestFilterClientName(t *testing.T) {
	for _, tc := range []struct {
		name   string
		report *policy.ClientReport
		role   Role
		want   string
	}{
		{"confirmed", &policy.ClientReport{Looked: true, Name: dnsbl.Name{Name: "mail.remote.test", PTR: "mail.remote.test"}}, RoleMX,
			"connect name=mail.remote.test ptr=mail.remote.test"},
		{"not confirmed", &policy.ClientReport{Looked: true, Name: dnsbl.Name{PTR: "liar.remote.test"}}, RoleMX, "connect name=unknown ptr=liar.remote.test"},
		{"no PTR", &policy.ClientReport{Looked: true}, RoleMX, "connect name=unknown ptr="},
		{"not looked up", &policy.ClientReport{}, RoleMX, "connect name= ptr="},
		{"no screening", nil, RoleMX, "connect name= ptr="},
		{"submission", &policy.ClientReport{Looked: true, Name: dnsbl.Name{Name: "mail.remote.test"}}, RoleSubmission, "connect name= ptr="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &nameFilter{}
			ts := newTestServer(t, func(o *Options) {
				o.Filters = []Filter{f}
				if tc.report != nil {
					o.Screen.Screener = fakeScreener{report: *tc.report, screen: &policy.Screen{}}
				}
			})
			ts.dial(t, tc.role).run(`
				S: 220
				C: QUIT
				S: 221`)
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.calls) == 0 || f.calls[0] != tc.want {
				t.Errorf("filter calls %q, want %q first", f.calls, tc.want)
			}
		})
	}
}
