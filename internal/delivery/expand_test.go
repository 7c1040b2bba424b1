package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/smtp"
)

// envRecorder is a remote deliverer that notes the envelope sender it was given too.
type envRecorder struct {
	recordingBatch
	from []string
}

func (r *envRecorder) DeliverBatch(ctx context.Context, env *envelope.Envelope, rcpts []int, b Body) []Outcome {
	r.from = append(r.from, env.From)
	return r.recordingBatch.DeliverBatch(ctx, env, rcpts, b)
}

// A recipient the queue addresses to an alias (a report to a sender that was one) goes to
// what the alias expands to; its outcome is that of all its targets. Accounts are never
// expanded again (the server expanded before queueing). Forward rewrites the envelope of what
// leaves, and only that.
func TestRouterExpand(t *testing.T) {
	mbox, remote := &recordingDeliverer{}, &envRecorder{}
	r := newRouter(mbox, nil, remote)
	r.Expand = func(_ context.Context, addr string) ([]string, error) {
		switch addr {
		case "alias@example.test":
			return []string{"bob@example.test", "x@remote.example"}, nil
		case "bob@example.test":
			t.Error("an account was expanded")
		case "failing@example.test":
			return nil, errors.New("store down")
		}
		return nil, nil
	}
	r.Forward = func(env *envelope.Envelope) (*envelope.Envelope, error) {
		c := *env
		c.From = "SRS0=hash=TT=" + env.From
		return &c, nil
	}
	env := &envelope.Envelope{ID: "ABCDEF0123", From: "a@sender.example"}
	for _, a := range []string{"alias@example.test", "bob@example.test", "failing@example.test", "gone@example.test"} {
		env.Rcpts = append(env.Rcpts, envelope.Recipient{Addr: a})
	}
	out := r.DeliverBatch(context.Background(), env, []int{0, 1, 2, 3}, bytesBody("body"))
	var got []string
	for _, o := range out {
		got = append(got, fmt.Sprint(o.Err == nil))
	}
	if strings.Join(got, " ") != "true true false false" || isPermanent(out[2].Err) || !isPermanent(out[3].Err) {
		t.Errorf("outcomes %v", out)
	}
	if fmt.Sprint(mbox.got) != "[bob@example.test:body bob@example.test:body]" {
		t.Errorf("mailbox got %v", mbox.got)
	}
	if fmt.Sprint(remote.batches) != "[[x@remote.example]]" || fmt.Sprint(remote.from) != "[SRS0=hash=TT=a@sender.example]" {
		t.Errorf("remote got %v from %v", remote.batches, remote.from)
	}
	if env.From != "a@sender.example" || env.Rcpts[0].Addr != "alias@example.test" {
		t.Errorf("the queue's envelope changed: %+v", env)
	}

	// A target that fails temporarily makes the alias's outcome temporary, so it is retried.
	remote.err = &Error{Code: smtp.CodeLocalError, Enh: smtp.EnhSystemOther, Msg: "later"}
	out = r.DeliverBatch(context.Background(), env, []int{0}, bytesBody("body"))
	if out[0].Err == nil || isPermanent(out[0].Err) {
		t.Errorf("alias with a deferred target: %v", out[0].Err)
	}
}
