package lmtp

import (
	"context"
	"testing"

	"github.com/tern-mail/tern/internal/testutil"
)

// TestLargeMessageBoundedMemory sends messages of 12 and 24 MiB to an LMTP server: what a
// delivery allocates must not grow with the message (the fake server's side, in the same
// process, keeps nothing either).
func TestLargeMessageBoundedMemory(t *testing.T) {
	const maxAlloc = 1 << 20 // a few buffers; the message held whole would be 12 or 24 MiB
	for _, lines := range []int64{12 << 20 / 78, 24 << 20 / 78} {
		size := testutil.LargeSize(lines)
		got := make(chan int64, 1)
		addr := serveFake(t, false, func(s *fakeServer) {
			s.greet("8BITMIME", "ENHANCEDSTATUSCODES", "PIPELINING")
			s.Expect("MAIL FROM:<sender@example.org> BODY=8BITMIME")
			s.Expect("RCPT TO:<alice@example.test>")
			s.Expect("DATA")
			s.Send("250 2.1.0 OK", "250 2.1.5 OK", "354 OK")
			got <- s.DiscardData()
			s.Send("250 2.0.0 <alice@example.test> Saved")
			s.Expect("QUIT", "221 2.0.0 Bye")
		})
		d := newDeliverer(t, addr)
		var errs []error
		alloc := testutil.Allocated(func() {
			for _, o := range d.DeliverBatch(context.Background(), testEnv(), []int{1}, testutil.LargeBody(size)) {
				errs = append(errs, o.Err)
			}
		})
		if errs[0] != nil {
			t.Fatal(errs[0])
		}
		if n := <-got; n != size {
			t.Errorf("the server got %d octets of %d", n, size)
		}
		t.Logf("allocated: %d octets for %d", alloc, size)
		if alloc > maxAlloc {
			t.Errorf("a delivery of %d octets allocated %d, want at most %d whatever the size", size, alloc, maxAlloc)
		}
	}
}
