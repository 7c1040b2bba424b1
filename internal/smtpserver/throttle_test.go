package smtpserver

import (
	"strings"
	"sync"
	"testing"

	"github.com/tern-mail/tern/internal/policy"
)

// recordingFlusher records the ETRN requests that reached the queue.
type recordingFlusher struct {
	mu    sync.Mutex
	nodes []string
}

func (f *recordingFlusher) Flush(domain string, subdomains bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if subdomains {
		domain = "@" + domain
	}
	f.nodes = append(f.nodes, domain)
	return len(f.nodes) % 2 // 1, 0, 1...: both replies show
}

// TestETRNPolicy: ETRN is for authenticated clients (tern is nobody's backup MX), never for a
// local domain, and a few times a minute; what is refused never reaches the queue.
func TestETRNPolicy(t *testing.T) {
	flusher := &recordingFlusher{}
	ts := newTestServer(t, func(o *Options) {
		withAuth(func(a *AuthOptions) { a.Limiter = nil })(o)
		o.Flusher = flusher
	})
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO c
		S: 250
		C: ETRN remote.example
		S: 459 4.7.1 Node remote.example not allowed: ETRN requires authentication
		C: ETRN @remote.example
		S: 459 4.7.1 Node @remote.example not allowed: ETRN requires authentication
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
		S: 235
		C: ETRN example.test
		S: 459 4.7.1 Node example.test not allowed: mail for it is delivered here
		C: ETRN remote.example
		S: 252 2.0.0 OK, pending messages for node remote.example started
		C: ETRN @remote.example
		S: 251 2.0.0 OK, no messages waiting for node @remote.example
		C: ETRN #Other.Example
		S: 252 2.0.0 OK, pending messages for node #Other.Example started
		C: ETRN remote.example
		S: 458 4.7.0 Unable to queue messages for node remote.example: too many ETRN requests, try again later
		C: QUIT
		S: 221`)
	// The budget is the client's, not the session's.
	ts.dial(t, RoleSubmission).run(`
		S: 220
		C: EHLO c
		S: 250
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
		S: 235
		C: ETRN remote.example
		S: 458 4.7.0`)
	flusher.mu.Lock()
	got := strings.Join(flusher.nodes, " ")
	flusher.mu.Unlock()
	if want := "remote.example @remote.example Other.Example"; got != want {
		t.Errorf("flushed %q, want %q", got, want)
	}
	logs := ts.logs.String()
	for _, want := range []string{
		`level=INFO msg="etrn refused" conn=1 remote=127.0.0.1 listener=smtp node=remote.example code=459 reason="Node remote.example not allowed: ETRN requires authentication"`,
		`level=INFO msg=etrn conn=1 remote=127.0.0.1 listener=smtp node=remote.example messages=1`,
		`level=INFO msg="etrn refused" conn=2 remote=127.0.0.1 listener=submission node=remote.example code=458 `,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q in the log:\n%s", want, logs)
		}
	}
}

// TestConnectionReserve: once the server is busy, a client holding connections gets no more,
// a new client does, and the last slots are the submission listeners' (the implicit TLS one
// too).
func TestConnectionReserve(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Limiter = policy.NewConnLimiter(policy.ConnLimits{Max: 5, Reserved: 4, BusyPerIP: 1, Logger: o.Logger})
	})
	hog := ts.dialFrom(t, RoleMX, "127.0.0.1")
	hog.expect("220")
	// One slot taken, four free: busy. The hog gets no second one, on any listener.
	ts.dialFrom(t, RoleMX, "127.0.0.1").run(`
		S: 421 4.7.0 Server busy: too many connections from 127.0.0.1, try again later
		CLOSED`)
	ts.dialFrom(t, RoleSubmission, "127.0.0.1").run(`
		S: 421 4.7.0 Server busy: too many connections from 127.0.0.1
		CLOSED`)
	// A newcomer on the MX port gets the first half of the reserve...
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		ts.dialFrom(t, RoleMX, ip).expect("220")
	}
	ts.dialFrom(t, RoleMX, "127.0.0.4").run(`
		S: 421 4.7.0 Server busy, try again later
		CLOSED`)
	// ...and the submission listeners the rest.
	ts.dialFrom(t, RoleSubmission, "127.0.0.4").expect("220")
	sub := ts.dialFrom(t, RoleSubmissions, "127.0.0.5")
	sub.startTLS()
	sub.expect("220")
	ts.dialFrom(t, RoleSubmission, "127.0.0.6").run(`
		S: 421 4.7.0 Too many connections, try again later
		CLOSED`)
	// The busy line was written before the first 421 went out.
	if want := `level=WARN msg="connections: busy, keeping the reserve for clients holding few" connections=1 reserved=4 busy_per_ip=1`; !strings.Contains(ts.logs.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, ts.logs.String())
	}
	hog.run(`
		C: QUIT
		S: 221`)
}
