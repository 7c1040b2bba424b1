package maildir

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tern-mail/tern/internal/testutil"
)

// TestLargeMessageBoundedMemory delivers messages of 12 and 24 MiB: what a delivery allocates
// must not grow with the message (it streams through two pooled 32 KiB buffers), and the file
// must hold the whole message.
func TestLargeMessageBoundedMemory(t *testing.T) {
	d := New(Options{Root: t.TempDir(), Hostname: "h"})
	env := newEnv("alice@example.org", "bob@example.com")
	deliver := func(size int64) uint64 {
		t.Helper()
		var err error
		alloc := testutil.Allocated(func() {
			err = d.Deliver(context.Background(), env, 0, &testutil.LargeMessage{Size: size})
		})
		if err != nil {
			t.Fatal(err)
		}
		return alloc
	}
	deliver(1 << 10) // the mailbox and the pooled buffers
	small, large := deliver(12<<20), deliver(24<<20)
	t.Logf("allocated: %d octets for 12 MiB, %d for 24 MiB", small, large)
	const bound = 256 << 10
	if small > bound || large > bound {
		t.Errorf("a delivery allocated %d and %d octets, want at most %d whatever the size", small, large, bound)
	}
	md, _ := d.Path("bob@example.com")
	names := listDir(t, filepath.Join(md, "new"))
	var sizes []int64
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(md, "new", n))
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, fi.Size())
	}
	// CRLF becomes LF: a 24 MiB message of 78-octet lines loses 1/78 of its octets.
	if len(sizes) != 3 || slices.Max(sizes) < 23<<20 {
		t.Errorf("files in new/: %v", sizes)
	}
}
