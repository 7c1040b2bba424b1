package smtpserver

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/filter"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/spf"
)

// recorder is an Observer that writes down what it is told, one line per call.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) Connected(l string)         { r.add("connected %s", l) }
func (r *recorder) Refused(l, reason string)   { r.add("refused %s %s", l, reason) }
func (r *recorder) SessionStarted(l string)    { r.add("started %s", l) }
func (r *recorder) SessionEnded(l string)      { r.add("ended %s", l) }
func (r *recorder) Accepted(l string, n int64) { r.add("accepted %s sized=%v", l, n > 0) }
func (r *recorder) Rejected(l string, rp smtp.Reply) {
	r.add("rejected %s %d %s", l, rp.Code, rp.Enhanced())
}
func (r *recorder) CommandRefused(l, cmd string, rp smtp.Reply) {
	r.add("%s refused %s %d %s", cmd, l, rp.Code, rp.Enhanced())
}
func (r *recorder) Filtered(o string)         { r.add("filtered %s", o) }
func (r *recorder) Auth(mech string, ok bool) { r.add("auth %s %v", mech, ok) }
func (r *recorder) Authenticated(s spf.Result, d []dkim.Status, m dmarc.Result) {
	r.add("authenticated %s %v %s", s, d, m)
}

// toData is a session up to the 354 of DATA.
const toData = `
			S: 220
			C: EHLO client.example.test
			S: 250
			C: MAIL FROM:<a@remote.test>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 354
`

// TestObserver: the Observer hears of each session, message and AUTH outcome, with the
// listener's name, once the client has its reply.
func TestObserver(t *testing.T) {
	for _, c := range []struct {
		name   string
		mod    func(*Options)
		role   Role
		script string
		want   []string
	}{
		{name: "accepted", role: RoleMX, script: toData + `
			C: Subject: hi
			C:
			C: hello
			C: .
			S: 250 2.0.0 Ok: queued
			C: QUIT
			S: 221
			CLOSED`,
			want: []string{"connected smtp", "started smtp", "accepted smtp sized=true", "ended smtp"}},
		{name: "too big", role: RoleMX, mod: func(o *Options) { o.MaxMessageSize = 10 }, script: toData + `
			C: Subject: this is more than ten octets
			C: .
			S: 552 5.3.4
			C: QUIT
			S: 221
			CLOSED`,
			want: []string{"connected smtp", "started smtp", "rejected smtp 552 5.3.4", "ended smtp"}},
		{name: "refused commands", role: RoleMX, script: `
			S: 220
			C: EHLO client.example.test
			S: 250
			C: MAIL FROM:<bad address>
			S: 501 5.1.7
			C: MAIL FROM:<a@remote.test>
			S: 250
			C: RCPT TO:<nobody@example.test>
			S: 550 5.1.1
			C: RCPT TO:<bob@elsewhere.test>
			S: 554 5.7.1
			C: RCPT TO:<bob@example.test>
			S: 250
			C: QUIT
			S: 221
			CLOSED`,
			want: []string{"connected smtp", "started smtp", "mail refused smtp 501 5.1.7",
				"rcpt refused smtp 550 5.1.1", "rcpt refused smtp 554 5.7.1", "ended smtp"}},
		{name: "auth", role: RoleSubmission, mod: withAuth(nil), script: `
			S: 220
			C: EHLO client.example.test
			S: 250
			C: AUTH PLAIN AGJvYgB3cm9uZw==
			S: 535 5.7.8
			C: AUTH PLAIN AGJvYgBib2Jwdw==
			S: 235 2.7.0
			C: QUIT
			S: 221
			CLOSED`,
			want: []string{"connected submission", "started submission", "auth PLAIN false", "auth PLAIN true", "ended submission"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			ts := newTestServer(t, func(o *Options) {
				if c.mod != nil {
					c.mod(o)
				}
				o.Observer = rec
			})
			ts.dial(t, c.role).run(c.script)
			if got := rec.got(); !slices.Equal(got, c.want) {
				t.Errorf("observed %q, want %q", got, c.want)
			}
		})
	}
}

// TestObserverRefused: a connection refused by the limits is one connection, one refusal,
// and no session.
func TestObserverRefused(t *testing.T) {
	rec := &recorder{}
	ts := newTestServer(t, func(o *Options) {
		o.Limiter = policy.NewConnLimiter(policy.ConnLimits{Max: 1})
		o.Observer = rec
	})
	ts.dial(t, RoleMX).expect("220")
	ts.dial(t, RoleSubmission).run(`
		S: 421 4.7.0 Too many connections
		CLOSED`)
	want := []string{"connected smtp", "started smtp", "connected submission", "refused submission limit"}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Errorf("observed %q, want %q", got, want)
	}
}

// TestObserverTLSFailure: a failed handshake after STARTTLS ends the session, counted as a
// refusal for TLS.
func TestObserverTLSFailure(t *testing.T) {
	rec := &recorder{}
	ts := newTestServer(t, func(o *Options) { o.Observer = rec })
	ts.dial(t, RoleMX).run(`
		S: 220
		C: STARTTLS
		S: 220 2.0.0
		W: this is not a ClientHello\r\n
		CLOSED`)
	want := []string{"connected smtp", "started smtp", "refused smtp tls", "ended smtp"}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Errorf("observed %q, want %q", got, want)
	}
}

// TestObserverFilters: the verdicts of content filters that change a message's fate.
func TestObserverFilters(t *testing.T) {
	const msg = "message bob@example.test,alice@example.test"
	for _, c := range []struct {
		name    string
		verdict filter.Verdict
		reply   string
		want    []string
	}{
		{"reject", filter.Verdict{Action: filter.Reject}, "550 5.7.1", []string{"rejected smtp 550 5.7.1", "filtered reject"}},
		{"discard", filter.Verdict{Action: filter.Discard}, "250 2.0.0", []string{"filtered discard"}},
		{"quarantine", filter.Verdict{Quarantine: "spam"}, "250 2.0.0", []string{"filtered quarantine", "accepted smtp sized=true"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			f := &scriptFilter{verdicts: map[string]filter.Verdict{msg: c.verdict}}
			ts := newTestServer(t, func(o *Options) { o.Filters = []Filter{f}; o.Observer = rec })
			ts.dial(t, RoleMX).run(filterSession + "S: " + c.reply + "\nC: QUIT\nS: 221\nCLOSED")
			want := append(append([]string{"connected smtp", "started smtp"}, c.want...), "ended smtp")
			if got := rec.got(); !slices.Equal(got, want) {
				t.Errorf("observed %q, want %q", got, want)
			}
		})
	}
}
