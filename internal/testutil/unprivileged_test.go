package testutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestUnprivileged runs as root too (in CI): then it runs again as nobody, where a read-only
// directory refuses a new file, as it does for the tests that need it.
func TestUnprivileged(t *testing.T) {
	if !Unprivileged(t) {
		return
	}
	if os.Geteuid() == 0 {
		t.Fatal("Unprivileged let the test go on as root")
	}
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Error(err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("writing into a read-only directory: %v, want a permission error", err)
	}
}

func TestRunPattern(t *testing.T) {
	for name, want := range map[string]string{
		"TestFaults":                         `^TestFaults$`,
		"TestFaults/log_directory_read-only": `^TestFaults$/^log_directory_read-only$`,
		"TestX/a.b(c)/d+":                    `^TestX$/^a\.b\(c\)$/^d\+$`,
	} {
		if got := runPattern(name); got != want {
			t.Errorf("runPattern(%q) = %q, want %q", name, got, want)
		}
	}
}
