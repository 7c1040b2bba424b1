package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestBackup copies a database that is open and being written, and opens the copy: the
// accounts are there, with their passwords, and the copy has mode 0600.
func TestBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "accounts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }() // the test is over
	if err := s.Add(ctx, "bob@example.test", "pw-bob"); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "copy.db")
	if err := Backup(ctx, filepath.Join(dir, "accounts.db"), dst); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, "carol@example.test", "pw-carol"); err != nil {
		t.Fatal(err) // the original goes on after the copy
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("copy: %v, %v; want mode 0600", fi, err)
	}
	c, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // read only
	if ok, err := c.Verify(ctx, "bob@example.test", "pw-bob"); err != nil || !ok {
		t.Errorf("bob's password in the copy: %v, %v", ok, err)
	}
	if ok, err := c.Exists(ctx, "carol@example.test"); err != nil || ok {
		t.Errorf("carol, added after the copy, is in it: %v, %v", ok, err)
	}
	if err := Backup(ctx, filepath.Join(dir, "missing.db"), filepath.Join(dir, "x.db")); err == nil {
		t.Error("backup of a missing database: no error")
	}
}
