package remote

import (
	"context"
	"testing"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/sevenbit"
	"github.com/tern-mail/tern/internal/testutil"
)

// TestLargeMessageBoundedMemory relays messages of 12 and 24 MiB: what a delivery allocates
// (the DNS, the session, the body streamed with dot-stuffing) must not grow with the message.
// The 8-bit ones go to a server without 8BITMIME, and so are converted to quoted-printable on
// the way, streaming too.
func TestLargeMessageBoundedMemory(t *testing.T) {
	const maxAlloc = 1 << 20 // a few buffers; the message held whole would be 12 or 24 MiB
	h := newHarness(t)
	h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
	p := h.peer("127.0.0.2", &peer{name: "mx1.dest.test", discard: true}) // no 8BITMIME
	d := h.deliverer(nil)
	bodies := []struct {
		name string
		size func(octets int64) int64 // the size of whole lines nearest below octets
		body func(size int64) delivery.Body
		env  func(e *envelope.Envelope)
	}{
		{"7-bit", func(n int64) int64 { return testutil.LargeSize(n / 78) }, func(size int64) delivery.Body { return testutil.LargeBody(size) }, func(*envelope.Envelope) {}},
		{"8-bit, converted", testutil.EightBitSize, func(size int64) delivery.Body { return testutil.EightBitBody(size) },
			func(e *envelope.Envelope) { e.Body = envelope.Body8BitMIME }},
	}
	k := 0
	for _, b := range bodies {
		for i, octets := range []int64{78000, 12 << 20, 24 << 20} {
			size := b.size(octets)
			body := b.body(size)
			want := size
			if b.name != "7-bit" {
				m, err := sevenbit.New(body)
				if err != nil {
					t.Fatal(err)
				}
				want = m.Size()
			}
			env := newEnv("bob@dest.test")
			b.env(env)
			var err error
			alloc := testutil.Allocated(func() {
				err = d.DeliverBatch(context.Background(), env, []int{0}, body)[0].Err
			})
			if err != nil {
				t.Fatal(err)
			}
			k++
			txns := wantTxns(t, p, k)
			if got := txns[k-1].size; got != want {
				t.Errorf("%s: the server got %d octets, want %d", b.name, got, want)
			}
			t.Logf("%s: allocated %d octets for %d", b.name, alloc, size)
			if i > 0 && alloc > maxAlloc { // the first one warms up the connection cache and the DNS
				t.Errorf("%s: a delivery of %d octets allocated %d, want at most %d whatever the size", b.name, size, alloc, maxAlloc)
			}
		}
	}
}
