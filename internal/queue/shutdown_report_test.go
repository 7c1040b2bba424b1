package queue

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
)

// waitClosing waits until Close has started: NewMessage then refuses sessions.
func waitClosing(t *testing.T, q *Queue) {
	t.Helper()
	waitFor(t, "Close to start", func() bool {
		w, err := q.NewMessage()
		if err == nil {
			w.Abort()
		}
		return errors.Is(err, ErrClosed)
	})
}

// reportsTo returns the queued delivery reports (from the null sender) to addr, by Action.
func reportsTo(t *testing.T, q *Queue, addr string) map[string][]string {
	t.Helper()
	out := make(map[string][]string)
	for _, it := range q.Items() {
		env := it.Envelope
		if env.From != "" || len(env.Rcpts) != 1 || env.Rcpts[0].Addr != addr {
			continue
		}
		body := string(readBody(t, q, env.ID))
		for _, a := range []string{"failed", "delayed", "delivered", "relayed"} {
			if strings.Contains(body, "\r\nAction: "+a+"\r\n") {
				out[a] = append(out[a], env.ID)
			}
		}
	}
	return out
}

// TestReportDuringClose: an outcome that calls for a delivery report and comes back while the
// queue is closing must leave the report queued together with the recipient's final state:
// after the restart the sender has exactly one report, and the recipient is not attempted again.
func TestReportDuringClose(t *testing.T) {
	perm := &delivery.Error{Permanent: true, Code: 550, Enh: "1.1", Msg: "User unknown"}
	temp := &delivery.Error{Code: 451, Enh: "4.1", Msg: "no answer"}
	tests := []struct {
		name string
		// outcome is what the blocked delivery returns once Close has started.
		outcome error
		// notify is the recipient's NOTIFY; received how long ago the message came.
		notify   []string
		received time.Duration
		// cancelFirst cancels Run's context before Close, as the server's shutdown does.
		cancelFirst bool
		// bounce: the report comes from tern queue bounce of a held message while Close waits
		// for a delivery of another message.
		bounce bool
		action string // the report wanted
	}{
		{name: "permanent failure", outcome: perm, notify: []string{"FAILURE"}, action: "failed"},
		{name: "permanent failure after Run's context ended", outcome: perm, notify: []string{"FAILURE"}, cancelFirst: true, action: "failed"},
		{name: "delay notice", outcome: temp, notify: []string{"DELAY"}, received: 5 * time.Hour, action: "delayed"},
		{name: "success report", notify: []string{"SUCCESS"}, action: "delivered"},
		{name: "admin bounce", bounce: true, notify: []string{"FAILURE"}, action: "failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			entered := make(chan struct{}, 1)
			release := make(chan struct{})
			fake := newFake(func(ctx context.Context, addr string, n int) error {
				if addr != "rcpt@example.test" {
					return nil
				}
				entered <- struct{}{}
				<-release
				return tc.outcome
			})
			opts := testOpts(fake)
			opts.Hostname = "mx.example.test"
			q, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			env := newEnv("rcpt@example.test")
			env.Rcpts[0].Notify = tc.notify
			env.Received = time.Now().Add(-tc.received)
			id := commitMsg(t, q, env, []byte("Subject: hi\r\n\r\nhello\r\n"))
			var held string
			if tc.bounce {
				held = commitMsg(t, q, newEnv("held@example.test"), []byte("Subject: held\r\n\r\nheld\r\n"))
				if err := q.Hold(held); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			q.Run(ctx)
			<-entered
			if tc.cancelFirst {
				cancel()
			}
			closed := make(chan error, 1)
			go func() { closed <- q.Close() }()
			waitClosing(t, q)
			if tc.bounce {
				if err := q.Bounce(context.Background(), held); err != nil {
					t.Errorf("Bounce while closing: %v", err)
				}
			}
			close(release)
			if err := <-closed; err != nil {
				t.Fatal(err)
			}

			q2 := openQueue(t, dir, testOpts(newFake(nil)))
			reports := reportsTo(t, q2, "sender@example.org")
			if n := len(reports[tc.action]); n != 1 || len(reports) != 1 {
				t.Fatalf("reports queued after the restart: %v, want exactly one %q", reports, tc.action)
			}
			orig, target := id, 0
			if tc.bounce {
				orig = held
			}
			it, err := q2.Show(orig)
			switch {
			case tc.action == "delayed":
				if err != nil || !it.Envelope.DelayNotified || it.Envelope.Rcpts[target].Status != envelope.Pending {
					t.Errorf("after the delay notice and a restart: %+v, %v; want pending and DelayNotified", it, err)
				}
			case !errors.Is(err, ErrNotFound):
				t.Errorf("the reported message is still queued after the restart: %+v, %v", it, err)
			}
		})
	}
}
