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
