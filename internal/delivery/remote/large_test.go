package remote

import (
	"context"
	"testing"

	"github.com/tern-mail/tern/internal/testutil"
)

// TestLargeMessageBoundedMemory relays messages of 12 and 24 MiB: what a delivery allocates
// (the DNS, the session, the body streamed with dot-stuffing) must not grow with the message.
func TestLargeMessageBoundedMemory(t *testing.T) {
	const maxAlloc = 1 << 20 // a few buffers; the message held whole would be 12 or 24 MiB
	h := newHarness(t)
	h.mx("dest.test", 10, "mx1.dest.test", "127.0.0.2")
	p := h.peer("127.0.0.2", &peer{name: "mx1.dest.test", discard: true})
	d := h.deliverer(nil)
	for k, lines := range []int64{1000, 12 << 20 / 78, 24 << 20 / 78} {
		size := testutil.LargeSize(lines)
		var err error
		alloc := testutil.Allocated(func() {
			err = d.DeliverBatch(context.Background(), newEnv("bob@dest.test"), []int{0}, testutil.LargeBody(size))[0].Err
		})
		if err != nil {
			t.Fatal(err)
		}
		txns := wantTxns(t, p, k+1)
		if got := txns[k].size; got != size {
			t.Errorf("the server got %d octets of %d", got, size)
		}
		t.Logf("allocated: %d octets for %d", alloc, size)
		if k > 0 && alloc > maxAlloc { // the first one warms up the connection cache and the DNS
			t.Errorf("a delivery of %d octets allocated %d, want at most %d whatever the size", size, alloc, maxAlloc)
		}
	}
}
