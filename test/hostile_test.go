package test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/admin"
)

// The hostile-client suite (issue 11): one tern, attacked one way after another over loopback,
// each attack bounded in count and time. After each attack a normal client must be served
// within serveBound, the server's goroutines, open files and resident memory must come back to
// their baseline (read from `tern status`'s admin operation, polled until they settle), and
// every message that got a 250 must be delivered. The figures of every attack go into a table
// (TERN_HOSTILE_REPORT=file writes it there; `make test-hostile` prints it) for SECURITY.md.

// hostileConfig keeps the timeouts short so that slow clients are cut within the suite's time
// (data_timeout still carries the 100 MB attack at 10 MB/s), and the AUTH limits low so that
// brute force hits them quickly. Everything else is the default.
const hostileConfig = `
[limits]
idle_timeout = "5s"
data_timeout = "10s"
session_timeout = "10m"

[auth]
max_failures = 3
block_time = "1h"
`

// Bounds of the suite.
const (
	// settleBound is how long the figures may take to come back after an attack.
	settleBound = 60 * time.Second
	// deliverBound is how long an accepted message may take to reach its Maildir.
	deliverBound = 30 * time.Second
	// sampleEvery is how often the figures are read during an attack, for the peak.
	sampleEvery = 100 * time.Millisecond
)

// Tolerances over the baseline for "back to baseline". Goroutines and files come back exactly
// in practice; the slack covers a timer or a queue segment that happens to be open. The Go
// runtime returns freed memory to the system gradually (and collects only when it allocates),
// so resident memory gets a wider margin; unbounded growth still shows.
const (
	tolGoroutines = 4
	tolFiles      = 4
	tolRSS        = 48 << 20
)

// serveBound is what issue 11 asks: a normal client is served within 1 s after each attack.
// TERN_HOSTILE_SERVE_BOUND (a Go duration) widens it on a machine known to be slow.
func serveBound(t testing.TB) time.Duration {
	if s := os.Getenv("TERN_HOSTILE_SERVE_BOUND"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("TERN_HOSTILE_SERVE_BOUND=%q: %v", s, err)
		}
		return d
	}
	return time.Second
}

// Addresses of the suite's accounts.
const (
	hUser     = "bob@example.test"     // a real user, logs in on submission
	hUserPW   = "pw-bob-Correct-Horse" // bob's password
	hInbox    = "erin@example.test"    // the recipient of the attacks' outer messages
	hVictim   = "victim@example.test"  // the recipient of smuggled messages: must get nothing
	hProbe    = "probe@example.test"   // the normal client's recipient
	hOutsider = "alice@host.example.com"
)

// attack is one entry of the suite.
type attack struct {
	name string
	run  func(a *attackRun)
}

// attackRun is one attack being run: its figures and what it had accepted.
type attackRun struct {
	*quietTB // the attack's test, its transcripts kept until a failure
	t        *testing.T
	h        *hostile
	tries    int
	// accepted maps the token of each message that got 250 to its recipient.
	mu       sync.Mutex
	accepted map[string]string
	notes    []string
}

// quietTB keeps the transcript lines a dialogue logs in a ring, and shows them only when the
// attack fails: the suite's dialogues send thousands of lines.
type quietTB struct {
	testing.TB
	mu   sync.Mutex
	ring []string
	next int
}

const quietLines = 60

func (q *quietTB) Logf(format string, args ...any) {
	q.mu.Lock()
	defer q.mu.Unlock()
	line := fmt.Sprintf(format, args...)
	if len(q.ring) < quietLines {
		q.ring = append(q.ring, line)
		return
	}
	q.ring[q.next] = line
	q.next = (q.next + 1) % quietLines
}

// dump logs the kept lines, oldest first.
func (q *quietTB) dump() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ring) == 0 {
		return
	}
	lines := append(append([]string{}, q.ring[q.next:]...), q.ring[:q.next]...)
	q.TB.Logf("the last %d transcript lines:\n%s", len(lines), strings.Join(lines, "\n"))
	q.ring, q.next = nil, 0
}

func (q *quietTB) Errorf(format string, args ...any) {
	q.TB.Helper()
	q.dump()
	q.TB.Errorf(format, args...)
}

func (q *quietTB) Fatalf(format string, args ...any) {
	q.TB.Helper()
	q.dump()
	q.TB.Fatalf(format, args...)
}

func (q *quietTB) Fatal(args ...any) {
	q.TB.Helper()
	q.dump()
	q.TB.Fatal(args...)
}

func newAttackRun(t *testing.T, h *hostile) *attackRun {
	return &attackRun{quietTB: &quietTB{TB: t}, t: t, h: h, accepted: map[string]string{}}
}

// accept records a message that got 250.
func (a *attackRun) accept(rcpt, token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.accepted[token] = rcpt
}

// note adds a remark to the attack's row in the table.
func (a *attackRun) note(format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.notes = append(a.notes, fmt.Sprintf(format, args...))
}

// row is one line of the summary table.
type row struct {
	name                string
	tries               int
	accepted, delivered int
	served              time.Duration
	before, peak, after admin.Status
	result              string
	notes               []string
}

// hostile is the suite's server and its record.
type hostile struct {
	t    *testing.T
	tn   *Tern
	base admin.Status
	rows []row
}

func TestHostile(t *testing.T) {
	// Not parallel: the figures, and the 1 s bound, mean most when nothing else runs.
	start := time.Now()
	h := &hostile{t: t, tn: startTern(t, ternOpts{Config: hostileConfig})}
	h.tn.AddUser(hUser, hUserPW)
	h.tn.AddUsers("pw", hInbox, hVictim, hProbe, hRcpts)
	h.warmUp()

	for _, at := range hostileAttacks() {
		t.Run(at.name, func(t *testing.T) { h.run(t, at) })
	}
	table := h.table(time.Since(start))
	t.Logf("hostile-client suite:\n%s", table)
	if p := os.Getenv("TERN_HOSTILE_REPORT"); p != "" {
		if err := os.WriteFile(p, []byte(table), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// hostileAttacks is the suite, in the order it runs.
func hostileAttacks() []attack {
	return []attack{
		{name: "smtpsmug endings", run: attackSmuggling},
		{name: "bare CR LF NUL", run: attackBare},
		{name: "STARTTLS injection", run: attackStartTLSInjection},
		{name: "1 MB lines", run: attackLongLines},
		{name: "100 MB DATA", run: attackHugeData},
		{name: "10000 RCPT", run: attackManyRcpts},
		{name: "binary garbage", run: attackGarbage},
		{name: "TLS ClientHello on plain ports", run: attackClientHello},
		{name: "slowloris", run: attackSlowloris},
		{name: "connection flood", run: attackFlood},
		{name: "AUTH brute force", run: attackBruteForce},
	}
}

// warmUp serves one client on each listener (so that everything started lazily is running),
// waits for the queue to empty, and takes the baseline.
func (h *hostile) warmUp() {
	t := h.t
	a := newAttackRun(t, h)
	h.probe(a)
	d := ehlod(a, h.tn.Submissions, true)
	d.authPlain(hUser, hUserPW)
	tok := token(t)
	d.sendMessage(hUser, hProbe, "Subject: "+tok+"\r\n\r\nwarm-up\r\n")
	a.accept(hProbe, tok)
	d.cmd("QUIT", `221 2\.0\.0 Bye`)
	d.conn.Close()
	if lost := h.waitDelivered(a); lost > 0 {
		t.Fatalf("warm-up: %d message(s) not delivered", lost)
	}
	h.base = h.settle(t, admin.Status{Goroutines: 1 << 30, OpenFiles: 1 << 30, RSS: 1 << 62})
	t.Logf("baseline: %+v", h.base)
}

// run runs one attack between two readings of the figures, then checks the aftermath.
func (h *hostile) run(t *testing.T, at attack) {
	a := newAttackRun(t, h)
	r := row{name: at.name, before: h.status(t)}
	stopSampling := h.sample(t)
	defer func() {
		stopSampling() // if the attack failed fatally
		r.tries, r.notes = a.tries, a.notes
		r.result = "ok"
		if t.Failed() {
			r.result = "FAILED"
		}
		h.rows = append(h.rows, r)
	}()

	at.run(a)
	r.peak = stopSampling()
	r.served = h.probe(a)
	r.accepted = len(a.accepted)
	r.delivered = r.accepted - h.waitDelivered(a)
	if lost := r.accepted - r.delivered; lost > 0 {
		t.Errorf("%d of %d accepted message(s) were not delivered within %v", lost, r.accepted, deliverBound)
	}
	r.after = h.settle(t, h.base)
}

// status reads the server's figures through its admin socket.
func (h *hostile) status(t testing.TB) admin.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := admin.Call(ctx, filepath.Join(h.tn.Data, "admin.sock"), admin.Request{Op: admin.OpStatus})
	if err != nil || rep.Status == nil {
		t.Fatalf("tern status: %+v %v", rep, err)
	}
	return *rep.Status
}

// sample reads the figures every sampleEvery until stop is called, which returns the peak of
// each (and may be called again).
func (h *hostile) sample(t testing.TB) (stop func() admin.Status) {
	var mu sync.Mutex
	peak := &admin.Status{}
	take := func(s admin.Status) {
		mu.Lock()
		defer mu.Unlock()
		peak.Goroutines = max(peak.Goroutines, s.Goroutines)
		peak.OpenFiles = max(peak.OpenFiles, s.OpenFiles)
		peak.RSS = max(peak.RSS, s.RSS)
		peak.Sessions = max(peak.Sessions, s.Sessions)
		peak.Queue = max(peak.Queue, s.Queue)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	sock := filepath.Join(h.tn.Data, "admin.sock")
	go func() {
		defer close(finished)
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			rep, err := admin.Call(ctx, sock, admin.Request{Op: admin.OpStatus})
			cancel()
			if err == nil && rep.Status != nil {
				take(*rep.Status)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() admin.Status {
		once.Do(func() {
			close(done)
			<-finished
			take(h.status(t))
		})
		mu.Lock()
		defer mu.Unlock()
		return *peak
	}
}

// settle polls the figures until no session is open, the queue is empty and goroutines, files
// and resident memory are back within the tolerances over base; it fails the test if they are
// not within settleBound, and returns the last reading.
func (h *hostile) settle(t testing.TB, base admin.Status) admin.Status {
	t.Helper()
	deadline := time.Now().Add(settleBound)
	for {
		s := h.status(t)
		if s.Sessions == 0 && s.Queue == 0 && s.Goroutines <= base.Goroutines+tolGoroutines &&
			s.OpenFiles <= base.OpenFiles+tolFiles && s.RSS <= base.RSS+tolRSS {
			return s
		}
		if time.Now().After(deadline) {
			t.Errorf("figures not back to the baseline %+v within %v: %+v", base, settleBound, s)
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// probe is the normal client: a whole transaction on the MX port from 127.0.0.1, which must be
// over (250 and 221) within serveBound. It returns how long it took.
func (h *hostile) probe(a *attackRun) time.Duration {
	a.Helper()
	took, err := h.tryProbe(a)
	if err != nil {
		a.Errorf("%v", err)
	}
	return took
}

// tryProbe is probe, returning the failure.
func (h *hostile) tryProbe(a *attackRun) (time.Duration, error) {
	bound := serveBound(a)
	tok := token(a.t)
	start := time.Now()
	err := func() error {
		p, err := dialPeer("", h.tn.SMTP, bound)
		if err != nil {
			return err
		}
		defer p.c.Close()
		p.c.SetDeadline(start.Add(bound))
		return p.script(
			"", `220 .*`,
			"EHLO probe.example.com\r\n", `250[ -](.|\n)*`,
			"MAIL FROM:<"+hOutsider+">\r\n", `250 2\.1\.0 Ok`,
			"RCPT TO:<"+hProbe+">\r\n", `250 2\.1\.5 Ok`,
			"DATA\r\n", `354 .*`,
			"Subject: "+tok+"\r\n\r\nan ordinary message\r\n.\r\n", queuedRE,
			"QUIT\r\n", `221 .*`,
		)
	}()
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("a normal client was not served within %v: %w", bound, err)
	}
	a.accept(hProbe, tok)
	return took, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// waitDelivered waits until every message a accepted is in its recipient's Maildir, and returns
// how many are not (after deliverBound).
func (h *hostile) waitDelivered(a *attackRun) int {
	a.mu.Lock()
	want := make(map[string]string, len(a.accepted))
	for tok, rcpt := range a.accepted {
		want[tok] = rcpt
	}
	a.mu.Unlock()
	deadline := time.Now().Add(deliverBound)
	for {
		byRcpt := map[string][]string{}
		for tok, rcpt := range want {
			if byRcpt[rcpt] == nil {
				byRcpt[rcpt] = h.tn.Maildir(rcpt)
			}
			for _, m := range byRcpt[rcpt] {
				if strings.Contains(m, tok) {
					delete(want, tok)
					break
				}
			}
		}
		if len(want) == 0 || time.Now().After(deadline) {
			for tok, rcpt := range want {
				a.Logf("lost: %s for %s", tok, rcpt)
			}
			return len(want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// table is the summary, in Markdown, for SECURITY.md.
func (h *hostile) table(wall time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| attack | tries | 250s | delivered | lost | normal client served in | goroutines before / peak / after | open files | RSS MiB | sessions peak | result |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	mib := func(n int64) string { return fmt.Sprintf("%.0f", float64(n)/(1<<20)) }
	for _, r := range h.rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d ms | %d / %d / %d | %d / %d / %d | %s / %s / %s | %d | %s |\n",
			r.name, r.tries, r.accepted, r.delivered, r.accepted-r.delivered, r.served.Milliseconds(),
			r.before.Goroutines, r.peak.Goroutines, r.after.Goroutines,
			r.before.OpenFiles, r.peak.OpenFiles, r.after.OpenFiles,
			mib(r.before.RSS), mib(r.peak.RSS), mib(r.after.RSS), r.peak.Sessions, r.result)
	}
	fmt.Fprintf(&b, "\nBaseline: %d goroutines, %d open files, %s MiB resident. Suite wall time %v.\n",
		h.base.Goroutines, h.base.OpenFiles, mib(h.base.RSS), wall.Round(time.Second))
	for _, r := range h.rows {
		for _, n := range r.notes {
			fmt.Fprintf(&b, "- %s: %s\n", r.name, n)
		}
	}
	return b.String()
}

// peer is the suite's raw SMTP client: it logs nothing (the attacks send megabytes) and
// returns errors instead of failing, so that an attack can count what happened.
type peer struct {
	c net.Conn
	r *bufio.Reader
}

// dialPeer connects to addr from the loopback address from ("" for any).
func dialPeer(from, addr string, timeout time.Duration) (*peer, error) {
	dl := net.Dialer{Timeout: timeout}
	if from != "" {
		dl.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := dl.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &peer{c: c, r: bufio.NewReader(c)}, nil
}

// reply reads one whole reply (lines joined by "\n"); the caller sets the deadline.
func (p *peer) reply() (string, error) {
	var lines []string
	for {
		l, err := p.r.ReadString('\n')
		if err != nil {
			return strings.Join(append(lines, l), "\n"), err
		}
		if !strings.HasSuffix(l, "\r\n") {
			return strings.Join(append(lines, l), "\n"), errors.New("reply line without CRLF")
		}
		l = strings.TrimSuffix(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return strings.Join(lines, "\n"), nil
		}
	}
}

// script sends and expects in turn: pairs of (octets to send, "" for none; regexp the reply
// must match entirely).
func (p *peer) script(steps ...string) error {
	for i := 0; i+1 < len(steps); i += 2 {
		if steps[i] != "" {
			if _, err := p.c.Write([]byte(steps[i])); err != nil {
				return fmt.Errorf("sending %.60q: %w", steps[i], err)
			}
		}
		got, err := p.reply()
		if err != nil {
			return fmt.Errorf("after %.60q: %w (got %q)", steps[i], err, got)
		}
		if !regexp.MustCompile(`^(?:` + steps[i+1] + `)$`).MatchString(got) {
			return fmt.Errorf("after %.60q: reply %q does not match %q", steps[i], got, steps[i+1])
		}
	}
	return nil
}

// closed reports whether the server has closed the connection: it reads until EOF (or a reset),
// within timeout, discarding whatever comes, and returns the last reply line seen.
func (p *peer) closed(timeout time.Duration) (last string, ok bool) {
	p.c.SetReadDeadline(time.Now().Add(timeout))
	for {
		l, err := p.r.ReadString('\n')
		if strings.TrimSpace(l) != "" {
			last = strings.TrimSpace(l)
		}
		if err != nil {
			return last, !isTimeout(err)
		}
	}
}

// replyRE matches any reply line after the greeting: a code and an enhanced code (RFC 3463).
var replyRE = regexp.MustCompile(`^[2-5]\d\d[ -][245]\.\d{1,3}\.\d{1,3}( |$)`)

// TestStatusCLI runs `tern status` against a running server (an open session is counted) and a
// stopped one (a clear error, exit status 1).
func TestStatusCLI(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{})
	d := ehlod(t, tn.SMTP, false)
	out, errOut, code := tn.ternCmd("", []string{"status"})
	if code != 0 {
		t.Fatalf("tern status: exit %d: %s", code, errOut)
	}
	mustMatch(t, "tern status", out, `^sessions:    1\nqueue:       0 messages\ngoroutines:  \d+\nopen files:  \d+\nrss:         \d+\.\d MiB\n$`)
	out, _, code = tn.ternCmd("", []string{"status", "--json"})
	mustMatch(t, "tern status --json", out, `^\{"goroutines":\d+,"open_files":\d+,"rss_bytes":\d+,"sessions":1,"queue":0\}\n$`)
	if code != 0 {
		t.Fatalf("tern status --json: exit %d", code)
	}
	d.cmd("QUIT", `221 2\.0\.0 Bye`)
	tn.Stop()
	_, errOut, code = tn.ternCmd("", []string{"status"})
	if code != 1 {
		t.Fatalf("tern status with the server stopped: exit %d, want 1", code)
	}
	mustMatch(t, "tern status with the server stopped", errOut, `^tern: no server is running on \S+ \(its admin socket does not answer\)\n$`)
}
