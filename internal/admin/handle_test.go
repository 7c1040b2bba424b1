package admin

import (
	"context"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/queue"
)

// TestHandleMany runs the operations on several messages, named and selected, against a real
// queue whose deliveries all fail for an hour: each step is a request and what it answers.
func TestHandleMany(t *testing.T) {
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue"), queue.Options{Deliverer: stuck{}, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	add := func(from, rcpt string) string {
		w, err := q.NewMessage()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, "Subject: "+rcpt+"\r\n\r\nbody\r\n"); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx, &envelope.Envelope{From: from, Received: time.Now(), Rcpts: []envelope.Recipient{{Addr: rcpt}}}); err != nil {
			t.Fatal(err)
		}
		return w.ID()
	}
	m1 := add("alice@a.example", "x@one.example")
	m2 := add("alice@a.example", "y@two.example")
	m3 := add("bob@a.example", "z@one.example")
	m4 := add("", "w@two.example")
	q.Run(ctx)
	// waitAll waits until every message waits for its next attempt (an hour away), after at
	// least attempts attempts.
	waitAll := func(attempts int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			items := q.Select(queue.Selection{Deferred: true})
			if len(items) == 4 && !slices.ContainsFunc(items, func(it queue.Item) bool {
				return it.Envelope.Attempts < attempts && it.Envelope.ID != m3
			}) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the attempts did not all fail: %+v", items)
			}
		}
	}
	waitAll(1)
	// Flushed, they are tried again (and fail again); the steps below then find them deferred.
	if rep := Handle(ctx, q, Request{Op: OpFlush, Select: queue.Selection{Domain: "two.example"}}); rep.N != 2 || len(rep.Results) != 2 {
		t.Errorf("flush --domain two.example: %+v", rep)
	}
	if rep := Handle(ctx, q, Request{Op: OpFlush, IDs: []string{m1}, Select: queue.Selection{Deferred: true}}); rep.N != 1 {
		t.Errorf("flush of a deferred id: %+v", rep)
	}
	waitAll(2)

	type want struct {
		n       int
		ok      []string // ids done, in order
		failed  []string // ids failed, in order
		items   []string // ids of Items
		errText string   // in Reply.Error
	}
	for _, step := range []struct {
		name string
		req  Request
		want want
	}{
		{"hold two and an unknown id", Request{Op: OpHold, IDs: []string{m1, "0000NOSUCHID", m2, m1}},
			want{n: 2, ok: []string{m1, m2}, failed: []string{"0000NOSUCHID"}}},
		{"hold what --domain selects (the held one is left out)", Request{Op: OpHold, Select: queue.Selection{Domain: "one.example"}},
			want{n: 1, ok: []string{m3}}},
		{"list --held", Request{Op: OpList, Select: queue.Selection{Held: true}}, want{items: []string{m1, m2, m3}}},
		{"list --to @one.example", Request{Op: OpList, Select: queue.Selection{To: "@one.example"}}, want{items: []string{m1, m3}}},
		{"release ALL --from alice", Request{Op: OpRelease, All: true, Select: queue.Selection{From: "alice@a.example"}},
			want{n: 2, ok: []string{m1, m2}}},
		{"release an id the selection leaves out", Request{Op: OpRelease, IDs: []string{m3}, Select: queue.Selection{From: "alice@a.example"}},
			want{failed: []string{m3}}},
		{"release ALL", Request{Op: OpRelease, All: true}, want{n: 1, ok: []string{m3}}},
		{"show two", Request{Op: OpShow, IDs: []string{m2, m4}}, want{n: 2, ok: []string{m2, m4}, items: []string{m2, m4}}},
		{"delete --from <>", Request{Op: OpDelete, Select: queue.Selection{From: "<>"}}, want{n: 1, ok: []string{m4}}},
		{"delete names nothing", Request{Op: OpDelete}, want{errText: "name the messages"}},
		{"ids and ALL", Request{Op: OpDelete, IDs: []string{m1}, All: true}, want{errText: "not both"}},
		{"held and deferred", Request{Op: OpList, Select: queue.Selection{Held: true, Deferred: true}}, want{errText: "--held and --deferred exclude each other"}},
		{"bad --to", Request{Op: OpList, Select: queue.Selection{To: "one.example"}}, want{errText: "--to one.example: give an address, or @domain"}},
	} {
		rep := Handle(ctx, q, step.req)
		var got want
		got.n = rep.N
		for _, r := range rep.Results {
			if r.Error == "" {
				got.ok = append(got.ok, r.ID)
			} else {
				got.failed = append(got.failed, r.ID)
				if !strings.Contains(r.Error, r.ID) {
					t.Errorf("%s: the error %q does not name %s", step.name, r.Error, r.ID)
				}
			}
		}
		for _, it := range rep.Items {
			got.items = append(got.items, it.Envelope.ID)
		}
		if step.want.errText != "" && strings.Contains(rep.Error, step.want.errText) {
			got.errText = step.want.errText
		}
		if got.n != step.want.n || !slices.Equal(got.ok, step.want.ok) || !slices.Equal(got.failed, step.want.failed) ||
			!slices.Equal(got.items, step.want.items) || got.errText != step.want.errText {
			t.Errorf("%s: got %+v (error %q), want %+v", step.name, got, rep.Error, step.want)
		}
		if step.req.Op == OpShow && len(rep.Headers) != len(rep.Items) {
			t.Errorf("%s: %d header sections for %d messages", step.name, len(rep.Headers), len(rep.Items))
		}
	}
}
