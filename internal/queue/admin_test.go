package queue

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/smtp"
)

func TestHoldRelease(t *testing.T) {
	f := &fakeBatch{}
	dir := t.TempDir()
	opts := batchOpts(f)
	q := openQueue(t, dir, opts)
	id := commitMsg(t, q, newEnv("a@remote.example"), []byte("x\r\n"))
	if err := q.Hold(id); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// The hold survives a restart: nothing is delivered. One worker takes the due messages in
	// order, so once a message queued after the restart is delivered, the held one would have
	// been before it.
	opts.Workers = 1
	q = openQueue(t, dir, opts)
	runQueue(t, q)
	marker := commitMsg(t, q, newEnv("b@remote.example"), []byte("y\r\n"))
	waitFor(t, "the message queued after the restart", func() bool { _, err := q.Show(marker); return err != nil })
	if it, err := q.Show(id); err != nil || !it.Envelope.Held {
		t.Fatalf("after restart: %+v, %v", it, err)
	}
	if err := q.FlushID(id); err == nil {
		t.Error("a held message was flushed")
	}
	f.mu.Lock()
	n := len(f.batches)
	f.mu.Unlock()
	if n != 1 {
		t.Fatalf("a held message was delivered (%d batches, want only the later message's)", n)
	}
	if err := q.Release(id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after release", func() bool { return q.Len() == 0 })
	if err := q.Hold(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Hold of a delivered message: %v", err)
	}
}

func TestDeleteAndBounce(t *testing.T) {
	f := &fakeBatch{answer: func(addr string) delivery.Outcome {
		if strings.HasSuffix(addr, "@stuck.example") {
			return delivery.Outcome{Err: &delivery.Error{Code: 451, Enh: "4.1", Msg: "no answer"}}
		}
		return delivery.Outcome{}
	}}
	q := openQueue(t, t.TempDir(), batchOpts(f))
	del := commitMsg(t, q, newEnv("x@stuck.example"), []byte("x\r\n"))
	bnc := commitMsg(t, q, newEnv("y@stuck.example"), []byte("Subject: y\r\n\r\ny\r\n"))
	runQueue(t, q)
	waitFor(t, "first attempts", func() bool {
		a, _ := q.Show(del)
		b, _ := q.Show(bnc)
		return a.Envelope.Attempts == 1 && b.Envelope.Attempts == 1
	})
	if items := q.Items(); len(items) != 2 || items[0].Envelope.ID != del || items[0].Next.IsZero() ||
		!strings.Contains(items[0].Envelope.Rcpts[0].LastError, "no answer") {
		t.Errorf("Items: %+v", items)
	}
	ctx := context.Background()
	if err := q.Delete(ctx, del); err != nil {
		t.Fatal(err)
	}
	if err := q.Bounce(ctx, bnc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bounce", func() bool { return len(f.reports("sender@example.org")) == 1 })
	rep := f.reports("sender@example.org")[0]
	if !strings.Contains(rep, "Final-Recipient: rfc822; y@stuck.example") || !strings.Contains(rep, "returned to sender by the administrator") ||
		strings.Contains(rep, "x@stuck.example") {
		t.Errorf("bounce:\n%s", rep)
	}
	if _, err := q.Show(del); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted message still there: %v", err)
	}
	if err := q.Delete(ctx, "0123456789ABC"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete of an unknown id: %v", err)
	}
}

func TestFlushAll(t *testing.T) {
	f := &fakeBatch{answer: func(addr string) delivery.Outcome {
		return delivery.Outcome{Err: &delivery.Error{Code: 451, Enh: "4.1", Msg: "no answer"}}
	}}
	q := openQueue(t, t.TempDir(), batchOpts(f))
	id := commitMsg(t, q, newEnv("x@stuck.example"), []byte("x\r\n"))
	runQueue(t, q)
	waitFor(t, "first attempt", func() bool { it, _ := q.Show(id); return it.Envelope.Attempts == 1 })
	if n := q.FlushAll(); n != 1 {
		t.Errorf("FlushAll = %d", n)
	}
	waitFor(t, "second attempt", func() bool { it, _ := q.Show(id); return it.Envelope.Attempts == 2 })
}

// TestBounceQuotesLastAttempt: tern queue bounce, after a restart, still tells the sender what
// the last attempt got: the remote server's 4xx with that server as Remote-MTA, or what tern
// found itself, never passed off as a server's reply.
func TestBounceQuotesLastAttempt(t *testing.T) {
	busy := delivery.Refused(smtp.R(smtp.CodeLocalError, "2.0", "Mailbox busy"), nil)
	busy.RemoteMTA = "mx.busy.example"
	f := &fakeBatch{answer: func(addr string) delivery.Outcome {
		switch {
		case strings.HasSuffix(addr, "@busy.example"):
			return delivery.Outcome{Err: busy, RemoteMTA: "mx.busy.example"}
		case strings.HasSuffix(addr, "@down.example"):
			return delivery.Outcome{Err: &delivery.Error{Code: 451, Enh: "4.1", Msg: "cannot connect to mx.down.example", RemoteMTA: "mx.down.example"}}
		}
		return delivery.Outcome{}
	}}
	dir := t.TempDir()
	q := openQueue(t, dir, batchOpts(f))
	id := commitMsg(t, q, newEnv("x@busy.example", "y@down.example"), []byte("Subject: y\r\n\r\ny\r\n"))
	cancel := runQueue(t, q)
	waitFor(t, "the first attempt", func() bool { it, _ := q.Show(id); return it.Envelope.Attempts == 1 })
	cancel()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, dir, batchOpts(f))
	if err := q.Bounce(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	runQueue(t, q)
	waitFor(t, "the bounce", func() bool { return len(f.reports("sender@example.org")) == 1 })
	rep := f.reports("sender@example.org")[0]
	for _, want := range []string{
		"<x@busy.example>: returned to sender by the administrator; last attempt: host mx.busy.example said: 451 4.2.0 Mailbox busy\r\n",
		"<y@down.example>: returned to sender by the administrator; last attempt: cannot connect to mx.down.example\r\n",
		"Action: failed\r\nStatus: 5.0.0\r\nRemote-MTA: dns; mx.busy.example\r\n" +
			"Diagnostic-Code: smtp; 451 4.2.0 Mailbox busy\r\n",
		"rfc822;y@down.example\r\nAction: failed\r\nStatus: 5.0.0\r\n" +
			"Diagnostic-Code: X-Tern; returned to sender by the administrator; last attempt: cannot connect to mx.down.example\r\n",
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("bounce lacks %q:\n%s", want, rep)
		}
	}
}
