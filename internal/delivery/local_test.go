package delivery

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/envelope"
)

type recordingDeliverer struct{ got []string }

func (r *recordingDeliverer) Deliver(_ context.Context, env *envelope.Envelope, rcpt int, body io.Reader) error {
	b, _ := io.ReadAll(body)
	r.got = append(r.got, env.Rcpts[rcpt].Addr+":"+string(b))
	return nil
}

var errBad = errors.New("bad address")

func TestLocal(t *testing.T) {
	mbox := &recordingDeliverer{}
	l := &Local{
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
		Mailbox:      mbox,
		Postmaster:   "postmaster@example.test",
	}
	for _, tc := range []struct {
		rcpt      string
		ok        bool
		permanent bool
		code      string
	}{
		{"Bob@EXAMPLE.test", true, false, ""},
		{"gone@example.test", false, true, "550 5.1.1"},
		{"a/b@example.test", false, true, "550 5.1.1"},
		{"broken@example.test", false, false, "451 4.3.0"},
		{"x@remote.example", false, false, "451 4.4.0"}, // waits for remote delivery; never dropped
		{"PostMaster@example.test", true, false, ""},
	} {
		t.Run(tc.rcpt, func(t *testing.T) {
			env := &envelope.Envelope{ID: "ABCDEF0123", Rcpts: []envelope.Recipient{{Addr: tc.rcpt}}}
			err := l.Deliver(context.Background(), env, 0, strings.NewReader("body"))
			if (err == nil) != tc.ok || IsPermanent(err) != tc.permanent {
				t.Fatalf("err = %v, want ok=%v permanent=%v", err, tc.ok, tc.permanent)
			}
			if err != nil && !strings.HasPrefix(err.Error(), tc.code) {
				t.Errorf("err = %q, want %q", err, tc.code)
			}
		})
	}
	if len(mbox.got) != 2 || mbox.got[0] != "Bob@EXAMPLE.test:body" || mbox.got[1] != "postmaster@example.test:body" {
		t.Errorf("mailbox got %q", mbox.got)
	}
}
