package queue

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/testutil"
)

// waitTimeout bounds every polling wait; generous because the race detector and -count=N on a
// small machine slow everything down.
const waitTimeout = 20 * time.Second

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rcptKey names one recipient of one message.
type rcptKey struct {
	id   string
	rcpt int
}

// call is one Deliver call seen by a fakeDeliverer.
type call struct {
	env  *envelope.Envelope
	rcpt int
	body []byte
	err  error // what the fake answered
	at   time.Time
}

// fakeDeliverer records every call. answer decides the outcome of the n-th attempt (from 1) at
// env.Rcpts[rcpt]; nil answer: every delivery succeeds.
type fakeDeliverer struct {
	answer func(ctx context.Context, addr string, n int) error

	mu    sync.Mutex
	n     map[rcptKey]int
	calls []call
}

func newFake(answer func(ctx context.Context, addr string, n int) error) *fakeDeliverer {
	return &fakeDeliverer{answer: answer, n: make(map[rcptKey]int)}
}

func (d *fakeDeliverer) Deliver(ctx context.Context, env *envelope.Envelope, rcpt int, body io.Reader) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return delivery.Temporary("fake: read body", err)
	}
	k := rcptKey{env.ID, rcpt}
	d.mu.Lock()
	d.n[k]++
	n := d.n[k]
	d.mu.Unlock()
	var res error
	if d.answer != nil {
		res = d.answer(ctx, env.Rcpts[rcpt].Addr, n)
	}
	d.mu.Lock()
	d.calls = append(d.calls, call{env: env.Clone(), rcpt: rcpt, body: b, err: res, at: time.Now()})
	d.mu.Unlock()
	return res
}

// attempts returns how many calls were made for a recipient.
func (d *fakeDeliverer) attempts(id string, rcpt int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[rcptKey{id, rcpt}]
}

// numCalls returns the number of calls that have returned.
func (d *fakeDeliverer) numCalls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.calls)
}

// successes returns the successful calls per recipient.
func (d *fakeDeliverer) successes() map[rcptKey][]call {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := make(map[rcptKey][]call)
	for _, c := range d.calls {
		if c.err == nil {
			k := rcptKey{c.env.ID, c.rcpt}
			m[k] = append(m[k], c)
		}
	}
	return m
}

func (d *fakeDeliverer) allCalls() []call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

// tempFail answers a temporary failure for every address in domains, success otherwise.
func tempFail(domains ...string) func(context.Context, string, int) error {
	return func(_ context.Context, addr string, _ int) error {
		for _, d := range domains {
			if strings.HasSuffix(addr, "@"+d) {
				return delivery.Temporary("try later", fmt.Errorf("%s is down", d))
			}
		}
		return nil
	}
}

// debugLogger logs everything to logs, for checking what the queue logged.
func debugLogger(logs *testutil.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testOpts are Options suitable for tests: fast retries unless a test says otherwise.
func testOpts(d delivery.Deliverer) Options {
	return Options{Deliverer: d, Workers: 4, MinBackoff: time.Hour, MaxBackoff: time.Hour}
}

// openQueue opens dir and closes it at the end of the test.
func openQueue(t testing.TB, dir string, opts Options) *Queue {
	t.Helper()
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { // a second Close (the test closed it itself) returns nil
		if err := q.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return q
}

// runQueue starts delivery; it stops at the end of the test.
func runQueue(t testing.TB, q *Queue) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	q.Run(ctx)
	return cancel
}

// newEnv returns an envelope with every field set, for round-trip checks.
func newEnv(rcpts ...string) *envelope.Envelope {
	env := &envelope.Envelope{
		From:     "sender@example.org",
		Body:     envelope.Body8BitMIME,
		SMTPUTF8: true,
		Ret:      "HDRS",
		EnvID:    "env-42",
		Received: time.Now().Round(0),
		ClientIP: "192.0.2.7",
		Helo:     "client.example.org",
		AuthUser: "sender",
	}
	for _, r := range rcpts {
		env.Rcpts = append(env.Rcpts, envelope.Recipient{Addr: r, Notify: []string{"FAILURE", "DELAY"}, ORcpt: "rfc822;" + r})
	}
	return env
}

// commitMsg queues body for env and returns the id.
func commitMsg(t testing.TB, q *Queue, env *envelope.Envelope, body []byte) string {
	t.Helper()
	w, err := q.NewMessage()
	if err != nil {
		t.Fatalf("NewMessage: %v", err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatalf("Write: %v", err)
	}
	env.Size = int64(len(body))
	if err := w.Commit(context.Background(), env); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return w.ID()
}

// bodyFor returns a deterministic body of n octets for a message number.
func bodyFor(i, n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Subject: message %d\r\n\r\n", i)
	for b.Len() < n {
		fmt.Fprintf(&b, "line %d of message %d\r\n", b.Len(), i)
	}
	return b.Bytes()[:n]
}

// sameEnvelope reports the first difference between two envelopes, ignoring delivery state.
func sameEnvelope(want, got *envelope.Envelope) error {
	switch {
	case want.ID != got.ID:
		return fmt.Errorf("id %q, want %q", got.ID, want.ID)
	case want.From != got.From || want.Body != got.Body || want.SMTPUTF8 != got.SMTPUTF8 ||
		want.Ret != got.Ret || want.EnvID != got.EnvID || want.ClientIP != got.ClientIP ||
		want.Helo != got.Helo || want.AuthUser != got.AuthUser || want.Size != got.Size:
		return fmt.Errorf("envelope %+v, want %+v", got, want)
	case !want.Received.Equal(got.Received):
		return fmt.Errorf("received %v, want %v", got.Received, want.Received)
	case len(want.Rcpts) != len(got.Rcpts):
		return fmt.Errorf("%d recipients, want %d", len(got.Rcpts), len(want.Rcpts))
	}
	for i, w := range want.Rcpts {
		g := got.Rcpts[i]
		if w.Addr != g.Addr || w.ORcpt != g.ORcpt || !slices.Equal(w.Notify, g.Notify) {
			return fmt.Errorf("recipient %d is %+v, want %+v", i, g, w)
		}
	}
	return nil
}

// segmentFiles lists the segment files of a queue directory, oldest first.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		if _, _, ok := parseSegmentName(de.Name()); ok {
			names = append(names, de.Name())
		}
	}
	return names
}

// bodyFiles lists <dir>/body.
func bodyFiles(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, "body"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// readBody reads the stored body of a queued message, the way a worker does.
func readBody(t testing.TB, q *Queue, id string) []byte {
	t.Helper()
	q.mu.Lock()
	e := q.entries[id]
	if e == nil {
		q.mu.Unlock()
		t.Fatalf("message %s is not queued", id)
	}
	src := bodySource{seg: e.seg, off: e.bodyOff, n: e.bodyLen, external: e.external}
	q.mu.Unlock()
	var r io.Reader
	if src.external {
		f, err := os.Open(filepath.Join(q.bodyDir(), bodyName(id)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r = f
	} else {
		r = io.NewSectionReader(src.seg.f, src.off, src.n)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// listByID returns List's answer as a map.
func listByID(t testing.TB, dir string) map[string]*envelope.Envelope {
	t.Helper()
	envs, err := List(dir, nil)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	m := make(map[string]*envelope.Envelope)
	for _, e := range envs {
		if m[e.ID] != nil {
			t.Fatalf("List returned %s twice", e.ID)
		}
		m[e.ID] = e
	}
	return m
}
