package queue

import (
	"context"
	"io"
	"testing"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/testutil"
)

// discardDeliverer reads every body to the end through one buffer and reports its length.
type discardDeliverer struct {
	buf  []byte
	done chan int64
}

func (d *discardDeliverer) Deliver(_ context.Context, _ *envelope.Envelope, _ int, body io.Reader) error {
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{body}, d.buf)
	d.done <- n
	return err
}

// TestLargeMessageBoundedMemory queues messages of 12 and 24 MiB as a session does (written
// in pieces, then committed) and delivers them: what that allocates must not grow with the
// message, since a body past InlineMax streams to its own file and is read back from it.
func TestLargeMessageBoundedMemory(t *testing.T) {
	d := &discardDeliverer{buf: make([]byte, 32<<10), done: make(chan int64, 1)}
	opts := testOpts(d)
	opts.InlineMax = 256 << 10
	q := openQueue(t, t.TempDir(), opts)
	runQueue(t, q)
	chunk := make([]byte, 64<<10)
	queue := func(size int64) uint64 {
		t.Helper()
		var got int64
		alloc := testutil.Allocated(func() {
			w, err := q.NewMessage()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.CopyBuffer(w, &testutil.LargeMessage{Size: size}, chunk); err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(context.Background(), &envelope.Envelope{From: "a@example.org",
				Rcpts: []envelope.Recipient{{Addr: "b@example.com"}}}); err != nil {
				t.Fatal(err)
			}
			got = <-d.done
		})
		if got != size {
			t.Fatalf("delivered %d octets of %d", got, size)
		}
		return alloc
	}
	queue(12 << 20) // the pooled buffers grow to InlineMax once
	small, large := queue(12<<20), queue(24<<20)
	t.Logf("allocated: %d octets for 12 MiB, %d for 24 MiB", small, large)
	// The body is held in memory until it passes InlineMax (its buffer doubling on the way,
	// and made again when the race detector's sync.Pool drops it), then streams to its file.
	bound := uint64(4*opts.InlineMax + 256<<10)
	if small > bound || large > bound {
		t.Errorf("queueing and delivering allocated %d and %d octets, want at most %d whatever the size", small, large, bound)
	}
}
