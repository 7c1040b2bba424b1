package smtpserver

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/policy"
)

// heldKeys is a DKIM key resolver that holds its answers until the test releases them; asked
// is closed at the first query.
type heldKeys struct {
	txt     map[string]string
	asked   chan struct{}
	askOnce sync.Once
	release chan struct{}
	relOnce sync.Once
}

func (r *heldKeys) LookupTXT(ctx context.Context, name string) ([]string, error) {
	r.askOnce.Do(func() { close(r.asked) })
	select {
	case <-r.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if v, ok := r.txt[name]; ok {
		return []string{v}, nil
	}
	return nil, dkim.ErrNoRecord
}

func (r *heldKeys) releaseAll() { r.relOnce.Do(func() { close(r.release) }) }

// dkimKey makes a key and the TXT value that publishes it.
func dkimKey(tb testing.TB, alg dkim.Algorithm) (crypto.Signer, string) {
	tb.Helper()
	k, _, err := dkim.GenerateKey(alg)
	if err != nil {
		tb.Fatal(err)
	}
	txt, err := dkim.TXTValue(k)
	if err != nil {
		tb.Fatal(err)
	}
	return k, txt
}

// signedMessage is a message of about size octets signed by example.org (selector s1), with
// the resolver that knows its key.
func signedMessage(t *testing.T, size int) (string, *heldKeys) {
	t.Helper()
	k, txt := dkimKey(t, dkim.Ed25519)
	var b strings.Builder
	b.WriteString("From: alice@example.org\r\nTo: bob@example.test\r\nSubject: big\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "line %07d of a message bigger than the socket buffers, as attachments are\r\n", i)
	}
	b.WriteString("the end\r\n")
	sig, err := dkim.Sign(strings.NewReader(b.String()), []dkim.SigningKey{{Domain: "example.org", Selector: "s1", Signer: k}})
	if err != nil {
		t.Fatal(err)
	}
	res := &heldKeys{txt: map[string]string{dkim.RecordName("s1", "example.org"): txt}, asked: make(chan struct{}), release: make(chan struct{})}
	return sig + b.String(), res
}

// The DKIM verifier looks the signer's key up after the header section and before the body.
// While that lookup is held, the session still reads the whole message from the client (600
// KB, more than the socket buffers hold) into the queue file: it does not wait for DNS. Once
// the key arrives the message passes, and the buffers are back in the server's pool. A message
// past the handoff's bound (3 MiB) waits at the bound for the lookup, and passes too.
func TestDKIMLookupDoesNotStallTheSession(t *testing.T) {
	for _, tc := range []struct {
		name       string
		size       int
		readsAhead bool // the whole message is stored before the key is released
	}{
		{"600KB", 600 << 10, true},
		{"past-the-bound", 3 * handoffMax, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			msg, res := signedMessage(t, tc.size)
			defer res.releaseAll()
			ts := newTestServer(t, func(o *Options) {
				o.Authentication = &Authentication{SPF: fakeSPF{}, DKIM: dkim.Verifier{Resolver: res}, Policy: policy.Inbound{Check: true}}
			})
			stored := make(chan struct{})
			var storedOnce sync.Once
			ts.spool.mu.Lock()
			ts.spool.wrote = func(body []byte) {
				if bytes.HasSuffix(body, []byte("\r\nthe end\r\n")) {
					storedOnce.Do(func() { close(stored) })
				}
			}
			ts.spool.mu.Unlock()
			c := ts.dial(t, RoleMX)
			c.run(`
				S: 220
				C: EHLO client.example.org
				S: 250
				C: MAIL FROM:<alice@example.org>
				S: 250
				C: RCPT TO:<bob@example.test>
				S: 250
				C: DATA
				S: 354`)
			sent := make(chan error, 1)
			go func() { _, err := io.WriteString(c.conn, msg+".\r\n"); sent <- err }()
			<-res.asked
			if tc.readsAhead {
				// Only a watchdog: without it, a stalled session would hang the test until the
				// test binary's timeout.
				select {
				case <-stored:
				case <-time.After(30 * time.Second):
					res.releaseAll()
					t.Fatal("the session stopped reading the message while the DKIM key lookup was held")
				}
			}
			res.releaseAll()
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			c.expect(`250 2\.0\.0 Ok: queued`)
			m := lastMessage(t, ts, 1)
			if want := "dkim=pass header.d=example.org header.s=s1"; !strings.Contains(m.env.Prepend, want) {
				t.Errorf("Authentication-Results %q lacks %q", m.env.Prepend, want)
			}
			if !strings.HasSuffix(m.body.String(), msg) {
				t.Errorf("stored message (%d octets) does not end with the %d sent", m.body.Len(), len(msg))
			}
			if free := ts.srv.chunks.free.Load(); free != handoffBudget {
				t.Errorf("the pool's budget is %d after the message, want %d", free, handoffBudget)
			}
		})
	}
}
