package queue

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/dsn"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/smtp"
)

// fakeBatch is a BatchDeliverer: answer decides each recipient's outcome; every batch and every
// delivered message (with its body) is recorded.
type fakeBatch struct {
	answer func(addr string) delivery.Outcome

	mu        sync.Mutex
	batches   [][]string
	delivered []delivered
}

type delivered struct {
	env  *envelope.Envelope
	rcpt string
	body string
}

func (f *fakeBatch) DeliverBatch(_ context.Context, env *envelope.Envelope, rcpts []int, body delivery.Body) []delivery.Outcome {
	rc, err := body.Open()
	if err != nil {
		panic(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	out := make([]delivery.Outcome, len(rcpts))
	var names []string
	f.mu.Lock()
	defer f.mu.Unlock()
	for n, i := range rcpts {
		addr := env.Rcpts[i].Addr
		names = append(names, addr)
		if f.answer != nil {
			out[n] = f.answer(addr)
		}
		if out[n].Err == nil {
			f.delivered = append(f.delivered, delivered{env.Clone(), addr, string(b)})
		}
	}
	f.batches = append(f.batches, names)
	return out
}

// reports returns the delivery reports delivered to addr.
func (f *fakeBatch) reports(addr string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, d := range f.delivered {
		if d.env.From == "" && d.rcpt == addr {
			out = append(out, d.body)
		}
	}
	return out
}

func batchOpts(f *fakeBatch) Options {
	return Options{Batch: f, Workers: 2, MinBackoff: time.Hour, MaxBackoff: time.Hour, Hostname: "mx.example.test"}
}

func permanent(addr string) delivery.Outcome {
	return delivery.Outcome{Err: &delivery.Error{Permanent: true, Code: 550, Enh: "1.1", Msg: "<" + addr + ">: User unknown",
		RemoteReply: true, RemoteMTA: "mx.remote.example"},
		RemoteMTA: "mx.remote.example"}
}

// Recipients are grouped by domain, one batch per domain; a permanent failure comes back to the
// sender as an RFC 3464 bounce from the null sender, which itself never bounces.
func TestBatchesAndBounce(t *testing.T) {
	f := &fakeBatch{answer: func(addr string) delivery.Outcome {
		if strings.HasPrefix(addr, "nobody@") {
			return permanent(addr)
		}
		return delivery.Outcome{RemoteMTA: "mx.remote.example"}
	}}
	q := openQueue(t, t.TempDir(), batchOpts(f))
	env := newEnv("a@remote.example", "nobody@remote.example", "c@other.example")
	env.Rcpts[1].ORcpt = "rfc822;Nobody@Remote.example"
	id := commitMsg(t, q, env, []byte("Subject: hi\r\n\r\nbody\r\n"))
	runQueue(t, q)
	waitFor(t, "the bounce", func() bool { return len(f.reports("sender@example.org")) == 1 && q.Len() == 0 })
	f.mu.Lock()
	first := []string{strings.Join(f.batches[0], ","), strings.Join(f.batches[1], ",")}
	f.mu.Unlock()
	slices.Sort(first) // the two domains go out in parallel
	if first[0] != "a@remote.example,nobody@remote.example" || first[1] != "c@other.example" {
		t.Errorf("batches %q", first)
	}
	bounce := f.reports("sender@example.org")[0]
	for _, want := range []string{
		"Subject: Undelivered Mail Returned to Sender", "X-Tern-Queue-ID: " + id, "Original-Envelope-Id: env-42",
		"Final-Recipient: rfc822; nobody@remote.example", "Original-Recipient: rfc822;Nobody@Remote.example",
		"Action: failed", "Status: 5.1.1", "Remote-MTA: dns; mx.remote.example",
		"Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.example>: User unknown",
		"Content-Type: text/rfc822-headers", // RET=HDRS
	} {
		if !strings.Contains(bounce, want) {
			t.Errorf("bounce lacks %q:\n%s", want, bounce)
		}
	}
	if strings.Contains(bounce, "a@remote.example") || strings.Contains(bounce, "\r\nbody\r\n") {
		t.Errorf("bounce names a delivered recipient or returns the body:\n%s", bounce)
	}
}

func TestNoBounce(t *testing.T) {
	for name, mod := range map[string]func(*envelope.Envelope){
		"null sender":  func(e *envelope.Envelope) { e.From = "" },
		"NOTIFY=NEVER": func(e *envelope.Envelope) { e.Rcpts[0].Notify = []string{"NEVER"} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := &fakeBatch{answer: permanent}
			q := openQueue(t, t.TempDir(), batchOpts(f))
			env := newEnv("x@remote.example")
			mod(env)
			commitMsg(t, q, env, []byte("Subject: x\r\n\r\nx\r\n"))
			runQueue(t, q)
			// A report would be queued before the message leaves the queue, and would leave it
			// only once delivered: with the queue empty, it would be in f.delivered.
			waitFor(t, "the failure", func() bool { return q.Len() == 0 })
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.delivered) != 0 || len(f.batches) != 1 {
				t.Errorf("%d deliveries, %d batches: a report went out", len(f.delivered), len(f.batches))
			}
		})
	}
}

// After DelayWarning the sender is told once that delivery is delayed, and not again after a
// restart.
func TestDelayReportOnce(t *testing.T) {
	f := &fakeBatch{answer: func(addr string) delivery.Outcome {
		if addr == "slow@remote.example" {
			return delivery.Outcome{Err: &delivery.Error{Code: 451, Enh: "4.1", Msg: "no answer"}}
		}
		return delivery.Outcome{}
	}}
	dir := t.TempDir()
	opts := batchOpts(f)
	opts.DelayWarning = time.Minute
	opts.RetrySchedule = []time.Duration{20 * time.Millisecond}
	q := openQueue(t, dir, opts)
	env := newEnv("slow@remote.example")
	env.Received = time.Now().Add(-2 * time.Minute)
	id := commitMsg(t, q, env, []byte("Subject: x\r\n\r\nx\r\n"))
	cancel := runQueue(t, q)
	waitFor(t, "the delay report", func() bool { return len(f.reports("sender@example.org")) == 1 })
	waitFor(t, "more attempts", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.batches) >= 5
	})
	rep := f.reports("sender@example.org")
	if len(rep) != 1 || !strings.Contains(rep[0], "Action: delayed") || !strings.Contains(rep[0], "Will-Retry-Until: ") ||
		!strings.Contains(rep[0], "Subject: Delayed Mail (still being retried)") {
		t.Fatalf("%d reports: %q", len(rep), rep)
	}
	cancel()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, dir, opts)
	it, err := q.Show(id)
	if err != nil || !it.Envelope.DelayNotified {
		t.Fatalf("after reopen: %+v %v", it, err)
	}
	runQueue(t, q)
	if err := q.FlushID(id); err != nil { // the next attempt now, not at the scheduler's first tick
		t.Fatal(err)
	}
	// An attempt queues its reports before its outcome reaches the entry: once the attempt
	// count moved, a second report would be in the queue or delivered.
	waitFor(t, "an attempt after the restart", func() bool {
		now, err := q.Show(id)
		return err == nil && now.Envelope.Attempts > it.Envelope.Attempts
	})
	if items := q.Items(); len(items) != 1 {
		t.Errorf("%d messages queued after an attempt, want only the delayed one: %+v", len(items), items)
	}
	if n := len(f.reports("sender@example.org")); n != 1 {
		t.Errorf("%d delay reports after a restart, want 1", n)
	}
}

// NOTIFY=SUCCESS gets a "delivered" report for local delivery and a "relayed" one for a server
// without DSN; a DSN-capable server reports for itself.
func TestSuccessReports(t *testing.T) {
	f := &fakeBatch{answer: func(addr string) delivery.Outcome {
		switch {
		case strings.HasSuffix(addr, "@example.test"):
			return delivery.Outcome{} // local
		case strings.HasPrefix(addr, "old@"):
			return delivery.Outcome{RemoteMTA: "mx.old.example", Relayed: true}
		}
		return delivery.Outcome{RemoteMTA: "mx.new.example"}
	}}
	q := openQueue(t, t.TempDir(), batchOpts(f))
	env := newEnv("bob@example.test", "old@old.example", "new@new.example")
	for i := range env.Rcpts {
		env.Rcpts[i].Notify = []string{"SUCCESS"}
	}
	commitMsg(t, q, env, []byte("Subject: x\r\n\r\nx\r\n"))
	runQueue(t, q)
	// The reports are queued before the message leaves the queue: once it is empty, every one
	// is delivered.
	waitFor(t, "the message and its reports delivered", func() bool { return q.Len() == 0 })
	reps := strings.Join(f.reports("sender@example.org"), "\n====\n")
	if len(f.reports("sender@example.org")) != 2 ||
		!strings.Contains(reps, "Final-Recipient: rfc822; bob@example.test\r\nOriginal-Recipient: rfc822;bob@example.test\r\nAction: delivered") ||
		!strings.Contains(reps, "Final-Recipient: rfc822; old@old.example\r\nOriginal-Recipient: rfc822;old@old.example\r\nAction: relayed") ||
		strings.Contains(reps, "new@new.example") {
		t.Errorf("reports:\n%s", reps)
	}
}

func TestRetrySchedule(t *testing.T) {
	q := &Queue{opts: Options{RetrySchedule: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}}}
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		if got := q.backoff(n + 1); got != want {
			t.Errorf("attempt %d: %v, want %v", n+1, got, want)
		}
	}
}

// A bounce that cannot be delivered is given up sooner than other mail.
func TestBounceLifetime(t *testing.T) {
	f := &fakeBatch{answer: func(addr string) delivery.Outcome {
		return delivery.Outcome{Err: &delivery.Error{Code: 451, Enh: "4.1", Msg: "no answer"}}
	}}
	opts := batchOpts(f)
	opts.MaxAge, opts.BounceMaxAge = 10*time.Hour, time.Hour
	q := openQueue(t, t.TempDir(), opts)
	bounce := newEnv("sender@remote.example")
	bounce.From = ""
	bounce.Received = time.Now().Add(-2 * time.Hour)
	normal := newEnv("sender@remote.example")
	normal.Received = bounce.Received
	normal.Rcpts[0].Notify = []string{"NEVER"}
	bid := commitMsg(t, q, bounce, []byte("x\r\n"))
	nid := commitMsg(t, q, normal, []byte("x\r\n"))
	runQueue(t, q)
	waitFor(t, "the bounce to expire", func() bool { _, err := q.Show(bid); return err != nil })
	if _, err := q.Show(nid); err != nil {
		t.Errorf("the normal message expired too: %v", err)
	}
}

// TestReportRecipient checks who said what in a recipient's report: a server's reply with its
// host, or tern's own finding; at expiry 5.4.7 (5.7.30 for a REQUIRETLS failure).
func TestReportRecipient(t *testing.T) {
	// enh is the full code ("5.1.1"), as the report shows it.
	reply := func(code int, enh, text string) *delivery.Error {
		_, enh, _ = strings.Cut(enh, ".")
		e := delivery.Refused(smtp.R(code, enh, text), nil)
		e.RemoteMTA = "mx.b.test"
		return e
	}
	local := func(code int, enh, text string) *delivery.Error {
		_, enh, _ = strings.Cut(enh, ".")
		return &delivery.Error{Permanent: code >= 500, Code: code, Enh: enh, Msg: text, RemoteMTA: "mx.b.test"}
	}
	for _, tc := range []struct {
		name   string
		a      dsn.Action
		err    error
		status string
		rmta   string
		reply  string
		note   string
	}{
		{"remote 5xx", dsn.Failed, reply(550, "5.1.1", "no such user"), "5.1.1", "mx.b.test", "550 5.1.1 no such user", ""},
		{"remote 5xx without enhanced code", dsn.Failed, reply(554, "", "go away"), "5.0.0", "mx.b.test", "554 5.0.0 go away", ""},
		{"local 5xx without enhanced code", dsn.Failed, local(550, "", "refused"), "5.0.0", "", "", "refused"},
		{"no such domain", dsn.Failed, local(550, "5.1.2", "recipient domain nx.test does not exist"), "5.1.2", "", "",
			"recipient domain nx.test does not exist"},
		{"delayed, local", dsn.Delayed, local(451, "4.4.1", "cannot connect to mx.b.test"), "4.4.1", "", "", "cannot connect to mx.b.test"},
		{"expired after a remote 4xx", dsn.Failed, reply(451, "4.2.0", "busy"), "5.4.7", "mx.b.test", "451 4.2.0 busy",
			"gave up: not delivered before the message expired"},
		{"expired after a local finding", dsn.Failed, local(454, "4.7.5", "TLS negotiation with mx.b.test failed"), "5.4.7", "", "",
			"gave up: not delivered before the message expired; last attempt: TLS negotiation with mx.b.test failed"},
		{"expired REQUIRETLS", dsn.Failed, local(451, "4.7.30", "REQUIRETLS support required: no host took it"), "5.7.30", "", "",
			"gave up: not delivered before the message expired; last attempt: REQUIRETLS support required: no host took it"},
		{"unclassified", dsn.Delayed, errors.New("boom /var/secret"), "4.0.0", "", "", "delivery failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := reportRecipient(envelope.Recipient{Addr: "bob@b.test"}, tc.a, delivery.Outcome{Err: tc.err, RemoteMTA: "mx.b.test"}, time.Time{}, time.Time{})
			if rc.Status != tc.status || rc.RemoteMTA != tc.rmta || rc.Reply != tc.reply || rc.Note != tc.note {
				t.Errorf("got status %q, Remote-MTA %q, reply %q, note %q\nwant %q, %q, %q, %q",
					rc.Status, rc.RemoteMTA, rc.Reply, rc.Note, tc.status, tc.rmta, tc.reply, tc.note)
			}
		})
	}
}
