// Package safeio holds the file-system steps that durability rests on: fsyncing a directory so
// that the names created, renamed or removed in it survive a crash (POSIX promises that for a
// file's data on fsync(file), not for its name), and creating directories so that they do too.
// The queue, Maildir delivery and the certificate store all go through it.
package safeio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SyncDir fsyncs the directory dir.
func SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("safeio: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("safeio: syncing directory %s: %w", dir, err)
	}
	return nil
}

// MkdirAll is os.MkdirAll with the given mode that fsyncs the parent of every directory it
// creates, so that files later made durable in dir cannot vanish with it. Directories that
// already exist are left alone (above a data directory they are the operator's); a path that
// exists but is not a directory is an error.
func MkdirAll(dir string, perm fs.FileMode) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("safeio: %s exists and is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("safeio: %w", err)
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // lost a race with another process, which syncs the parent
		}
		return fmt.Errorf("safeio: %w", err)
	}
	return SyncDir(parent)
}
