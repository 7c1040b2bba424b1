//go:build !linux

package safeio

import (
	"errors"
	"io/fs"
	"os"
)

func (osFS) CreateUnnamed(dir string, perm fs.FileMode) (File, error) {
	return nil, &fs.PathError{Op: "open O_TMPFILE", Path: dir, Err: errors.ErrUnsupported}
}

func (osFS) Link(f File, newpath string) error {
	return &os.LinkError{Op: "linkat", Old: f.Name(), New: newpath, Err: errors.ErrUnsupported}
}

func (osFS) SyncFS(f File) error {
	return &fs.PathError{Op: "syncfs", Path: f.Name(), Err: errors.ErrUnsupported}
}
