package delivery

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/smtp"
)

type recordingDeliverer struct{ got []string }

func (r *recordingDeliverer) Deliver(_ context.Context, env *envelope.Envelope, rcpt int, body io.Reader) error {
	b, _ := io.ReadAll(body)
	r.got = append(r.got, env.Rcpts[rcpt].Addr+":"+string(b))
	return nil
}

// recordingBatch answers every recipient of a batch with err and notes the batches.
type recordingBatch struct {
	batches [][]string
	err     error
}

func (r *recordingBatch) DeliverBatch(_ context.Context, env *envelope.Envelope, rcpts []int, _ Body) []Outcome {
	var names []string
	out := make([]Outcome, len(rcpts))
	for n, i := range rcpts {
		names = append(names, env.Rcpts[i].Addr)
		out[n] = Outcome{Err: r.err, RemoteMTA: "mx.remote.example"}
	}
	r.batches = append(r.batches, names)
	return out
}

type bytesBody []byte

func (b bytesBody) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
func (b bytesBody) Size() int64                  { return int64(len(b)) }

var errBad = errors.New("bad address")

func newRouter(mbox Deliverer, lmtp, remote BatchDeliverer) *Router {
	return &Router{
		IsLocal: func(d string) bool { return d == "example.test" },
		Exists: func(_ context.Context, addr string) (bool, error) {
			switch strings.ToLower(addr) {
			case "bob@example.test":
				return true, nil
			case "broken@example.test":
				return false, errors.New("database is locked")
			case "a/b@example.test":
				return false, errBad
			}
			return false, nil
		},
		IsBadAddress: func(err error) bool { return errors.Is(err, errBad) },
		Postmaster:   "postmaster@example.test",
		Mailbox:      mbox,
		LMTP:         lmtp,
		Remote:       remote,
	}
}

func TestRouter(t *testing.T) {
	mbox, remote := &recordingDeliverer{}, &recordingBatch{}
	r := newRouter(mbox, nil, remote)
	rcpts := []string{"Bob@EXAMPLE.test", "gone@example.test", "a/b@example.test", "broken@example.test",
		"PostMaster@example.test", "x@remote.example", "y@remote.example"}
	env := &envelope.Envelope{ID: "ABCDEF0123"}
	for _, a := range rcpts {
		env.Rcpts = append(env.Rcpts, envelope.Recipient{Addr: a})
	}
	out := r.DeliverBatch(context.Background(), env, []int{0, 1, 2, 3, 4, 5, 6}, bytesBody("body"))
	want := []struct {
		ok        bool
		permanent bool
		code      string
	}{
		{true, false, ""}, {false, true, "550 5.1.1"}, {false, true, "550 5.1.1"}, {false, false, "451 4.3.0"},
		{true, false, ""}, {true, false, ""}, {true, false, ""},
	}
	for k, w := range want {
		err := out[k].Err
		if (err == nil) != w.ok || IsPermanent(err) != w.permanent || err != nil && !strings.HasPrefix(err.Error(), w.code) {
			t.Errorf("%s: %v, want ok=%v permanent=%v %s", rcpts[k], err, w.ok, w.permanent, w.code)
		}
	}
	if len(mbox.got) != 2 || mbox.got[0] != "Bob@EXAMPLE.test:body" || mbox.got[1] != "postmaster@example.test:body" {
		t.Errorf("mailbox got %q", mbox.got)
	}
	if env.Rcpts[4].Addr != "PostMaster@example.test" {
		t.Error("the queue's envelope was changed")
	}
	if len(remote.batches) != 1 || strings.Join(remote.batches[0], ",") != "x@remote.example,y@remote.example" || out[5].RemoteMTA != "mx.remote.example" {
		t.Errorf("remote batches %q", remote.batches)
	}
}

func TestRouterLMTPAndNoRemote(t *testing.T) {
	lmtp := &recordingBatch{}
	r := newRouter(nil, lmtp, nil)
	env := &envelope.Envelope{Rcpts: []envelope.Recipient{{Addr: "bob@example.test"}, {Addr: "x@remote.example"}, {Addr: "postmaster@example.test"}}}
	out := r.DeliverBatch(context.Background(), env, []int{0, 1, 2}, bytesBody("b"))
	if out[0].Err != nil || out[2].Err != nil || len(lmtp.batches) != 1 || strings.Join(lmtp.batches[0], ",") != "bob@example.test,postmaster@example.test" {
		t.Errorf("LMTP: %v %v %q", out[0].Err, out[2].Err, lmtp.batches)
	}
	// Without remote delivery, remote mail waits: never dropped.
	if out[1].Err == nil || IsPermanent(out[1].Err) || !strings.HasPrefix(out[1].Err.Error(), "451 4.4.0") {
		t.Errorf("remote without a deliverer: %v", out[1].Err)
	}
}

// batchMailbox is a Mailbox that also delivers in batches (as Maildir does).
type batchMailbox struct {
	recordingDeliverer
	recordingBatch
}

// A Mailbox that is also a BatchDeliverer gets all the local recipients of a message in one
// call (so that Maildir makes them durable in one batch), the postmaster mapped.
func TestRouterMailboxBatch(t *testing.T) {
	mbox := &batchMailbox{}
	r := newRouter(mbox, nil, nil)
	env := &envelope.Envelope{Rcpts: []envelope.Recipient{{Addr: "bob@example.test"}, {Addr: "gone@example.test"}, {Addr: "postmaster@example.test"}}}
	out := r.DeliverBatch(context.Background(), env, []int{0, 1, 2}, bytesBody("b"))
	if out[0].Err != nil || out[2].Err != nil || !IsPermanent(out[1].Err) || len(mbox.got) != 0 ||
		len(mbox.batches) != 1 || strings.Join(mbox.batches[0], ",") != "bob@example.test,postmaster@example.test" {
		t.Errorf("outcomes %v, per-recipient calls %q, batches %q", out, mbox.got, mbox.batches)
	}
}

func TestRouterDestination(t *testing.T) {
	env := func(rcpts ...string) *envelope.Envelope {
		e := &envelope.Envelope{}
		for _, r := range rcpts {
			e.Rcpts = append(e.Rcpts, envelope.Recipient{Addr: r})
		}
		return e
	}
	isLocal := func(d string) bool { return d == "local.test" }
	maildirOnly := &Router{IsLocal: isLocal}
	withLMTP := &Router{IsLocal: isLocal, LMTP: nopBatch{}}
	done := env("a@other.test", "b@Remote.TEST")
	done.Rcpts[0].Status = envelope.Delivered
	for _, tc := range []struct {
		r    *Router
		env  *envelope.Envelope
		want string
	}{
		{maildirOnly, env("a@local.test"), ""},
		{maildirOnly, env("a@remote.test", "b@REMOTE.test"), "domain:remote.test"},
		{maildirOnly, env("a@local.test", "b@remote.test"), "domain:remote.test"},
		{maildirOnly, env("a@one.test", "b@two.test"), ""},
		{maildirOnly, done, "domain:remote.test"},
		{withLMTP, env("a@local.test"), "lmtp"},
		{withLMTP, env("a@local.test", "b@remote.test"), ""},
	} {
		var addrs []string
		for _, r := range tc.env.Rcpts {
			addrs = append(addrs, r.Addr+":"+string(r.Status))
		}
		if got := tc.r.Destination(tc.env); got != tc.want {
			t.Errorf("LMTP %v, %v: %q, want %q", tc.r.LMTP != nil, addrs, got, tc.want)
		}
	}
}

type nopBatch struct{}

func (nopBatch) DeliverBatch(context.Context, *envelope.Envelope, []int, Body) []Outcome { return nil }

func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		code      int
		enh, text string
		perm      bool
		wantEnh   string
		wantMsg   string
	}{
		{550, "1.1", "no such user", true, "5.1.1", "no such user"},
		{452, "", "try later", false, "4.0.0", "try later"},
		{554, "", "line one\nline two", true, "5.0.0", "line one line two"},
	} {
		e := Refused(smtp.R(tc.code, tc.enh, tc.text), nil)
		if e.Code != tc.code || e.Permanent != tc.perm || e.Enhanced() != tc.wantEnh || e.Msg != tc.wantMsg {
			t.Errorf("Refused(%d, %q, %q) = %+v", tc.code, tc.enh, tc.text, e)
		}
	}
}

// TestErrorReply: an Error and the smtp.Reply it stands for share one form of enhanced code.
func TestErrorReply(t *testing.T) {
	e := &Error{Code: smtp.CodeLocalError, Enh: smtp.EnhRequireTLS, Msg: "no TLS"}
	if got, want := e.Enhanced(), "4.7.30"; got != want || got != EnhRequireTLSTemp {
		t.Errorf("Enhanced() = %q, want %q", got, want)
	}
	if got, want := e.Reply().String(), "451 4.7.30 no TLS\r\n"; got != want {
		t.Errorf("Reply() = %q, want %q", got, want)
	}
	if got, want := e.Error(), "451 4.7.30 no TLS"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestRouterLooksUpOncePerAttempt checks that expansion and delivery share one account lookup
// per recipient within an attempt, and that the next attempt looks up again: an account
// deleted between two attempts is unknown to the second (5.1.1), as between RCPT and delivery.
func TestRouterLooksUpOncePerAttempt(t *testing.T) {
	mbox := &recordingDeliverer{}
	r := newRouter(mbox, nil, nil)
	r.Expand = func(context.Context, string) ([]string, error) { return nil, nil }
	accounts := map[string]bool{"bob@example.test": true, "carol@example.test": true}
	lookups := map[string]int{}
	r.Exists = func(_ context.Context, addr string) (bool, error) {
		lookups[addr]++
		return accounts[addr], nil
	}
	env := &envelope.Envelope{ID: "ABCDEF0123", Rcpts: []envelope.Recipient{{Addr: "bob@example.test"}, {Addr: "carol@example.test"}}}
	for _, o := range r.DeliverBatch(context.Background(), env, []int{0, 1}, bytesBody("body")) {
		if o.Err != nil {
			t.Fatalf("first attempt: %v", o.Err)
		}
	}
	if lookups["bob@example.test"] != 1 || lookups["carol@example.test"] != 1 {
		t.Errorf("lookups in one attempt: %v, want one per recipient", lookups)
	}
	delete(accounts, "carol@example.test")
	out := r.DeliverBatch(context.Background(), env, []int{1}, bytesBody("body"))
	var de *Error
	if !errors.As(out[0].Err, &de) || !de.Permanent || de.Enhanced() != "5.1.1" {
		t.Errorf("second attempt, account deleted: %v, want permanent 5.1.1", out[0].Err)
	}
	if lookups["carol@example.test"] != 2 {
		t.Errorf("carol looked up %d times in two attempts, want 2", lookups["carol@example.test"])
	}
}
