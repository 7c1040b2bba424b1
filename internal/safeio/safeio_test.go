package safeio

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestMkdirAll(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "c")
	if err := MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(root, "a"), filepath.Join(root, "a", "b"), dir} {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v", d, fi, err)
		}
	}
	if err := MkdirAll(dir, 0o700); err != nil {
		t.Errorf("existing directory: %v", err)
	}
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(file, 0o700); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file in the way: %v", err)
	}
	if err := MkdirAll(filepath.Join(file, "x"), 0o700); err == nil {
		t.Error("a directory under a file was made")
	}
}

func TestMkdirAllConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "x", "y")
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := MkdirAll(dir, 0o700); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Error(err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("no error for a missing directory")
	}
}

func TestDirSyncer(t *testing.T) {
	var s DirSyncer
	dirs := []string{t.TempDir(), t.TempDir()}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := dirs[i%2]
			if err := os.WriteFile(filepath.Join(dir, string(rune('a'+i%26))+"x"), nil, 0o600); err != nil {
				t.Error(err)
			}
			if err := s.Sync(dir); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(s.dirs) != 0 {
		t.Errorf("%d directory entries left behind", len(s.dirs))
	}
	if err := s.Sync(filepath.Join(dirs[0], "missing")); err == nil {
		t.Error("no error for a missing directory")
	}
}

func BenchmarkDirSyncerParallel(b *testing.B) {
	var s DirSyncer
	dir := b.TempDir()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Sync(dir); err != nil {
				b.Fatal(err)
			}
		}
	})
}
