package safeio_test

import (
	"errors"
	"syscall"
	"testing"

	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/safeio/crashfs"
)

// TestMkdirAllInKilled kills a MkdirAllIn after each of its steps, runs it again on what the
// killed process left (the page cache survives a kill), then cuts the power: the directories
// must be there, whether the first run or the second made them.
func TestMkdirAllInKilled(t *testing.T) {
	const dir = "/a/b/c"
	dry := crashfs.New()
	if err := safeio.MkdirAllIn(dry, dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for n := range dry.Steps() + 1 {
		f := crashfs.New()
		f.CrashAfter(n)
		_ = safeio.MkdirAllIn(f, dir, 0o700) // fails at the crash: the restart below checks what is left
		g := f.Restart()
		if err := safeio.MkdirAllIn(g, dir, 0o700); err != nil {
			t.Fatalf("killed after step %d: the second run: %v", n, err)
		}
		if fi, err := g.Crash().Stat(dir); err != nil || !fi.IsDir() {
			t.Errorf("killed after step %d, then a crash: %v", n, err)
		}
	}
}

// TestMkdirAllInParentDenied checks that the parent of an existing directory is skipped when it
// may not be synced (it is the operator's), while the parent of a directory we create must be.
func TestMkdirAllInParentDenied(t *testing.T) {
	f := crashfs.New()
	if err := safeio.MkdirAllIn(f, "/srv/tern", 0o700); err != nil {
		t.Fatal(err)
	}
	f.Inject(func(op crashfs.Op) error {
		if op.Kind == crashfs.OpSyncDir && op.Path == "/srv" {
			return syscall.EACCES
		}
		return nil
	})
	if err := safeio.MkdirAllIn(f, "/srv/tern", 0o700); err != nil {
		t.Errorf("existing directory under a parent we may not sync: %v", err)
	}
	if err := safeio.MkdirAllIn(f, "/srv/other", 0o700); !errors.Is(err, syscall.EACCES) {
		t.Errorf("new directory under a parent we may not sync: %v, want EACCES", err)
	}
}
