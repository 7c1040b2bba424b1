package safeio

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestUnnamed gives a file made without a name (O_TMPFILE) a name, and checks that Link never
// replaces one.
func TestUnnamed(t *testing.T) {
	dir := t.TempDir()
	f, err := OS.CreateUnnamed(dir, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if des, _ := os.ReadDir(dir); len(des) != 0 {
		t.Fatalf("the unnamed file shows in its directory: %v", des)
	}
	a := filepath.Join(dir, "a")
	if err := OS.Link(f, a); err != nil {
		t.Fatal(err)
	}
	if err := OS.Link(f, a); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Link to the same name: %v, want EEXIST", err)
	}
	if b, err := os.ReadFile(a); err != nil || string(b) != "data" {
		t.Errorf("linked file: %q, %v", b, err)
	}
	if _, err := OS.CreateUnnamed(filepath.Join(dir, "missing"), 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CreateUnnamed in a missing directory: %v, want ENOENT", err)
	}
}

func TestKernelAtLeast(t *testing.T) {
	for _, c := range []struct {
		release string
		want    bool
	}{
		{"5.8.0", true},
		{"5.7.19-generic", false},
		{"5.10.0-28-amd64", true},
		{"6.1.0-13-amd64", true},
		{"4.19.0", false},
		{"6", true},
		{"5", false},
		{"x.y", false},
		{"", false},
	} {
		if got := kernelAtLeast(c.release, 5, 8); got != c.want {
			t.Errorf("kernelAtLeast(%q, 5, 8) = %v, want %v", c.release, got, c.want)
		}
	}
}

// TestSyncFSOS checks SyncFS on the operating system's file system: it syncs through a file's
// descriptor, and refuses a File without one.
func TestSyncFSOS(t *testing.T) {
	f, err := OS.OpenFile(filepath.Join(t.TempDir(), "a"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := OS.SyncFS(f); syncFSReportsErrors() && err != nil || !syncFSReportsErrors() && !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SyncFS (kernel 5.8 or later: %v): %v", syncFSReportsErrors(), err)
	}
	if err := OS.SyncFS(noFd{f}); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SyncFS of a File without a descriptor: %v, want ErrUnsupported", err)
	}
}

// noFd hides the descriptor of a File.
type noFd struct{ File }
