package crashfs

import (
	"io/fs"
	"os"
	"path"
	"syscall"

	"github.com/tern-mail/tern/internal/safeio"
)

// CreateUnnamed creates a file in no directory, open for writing, as open(2) with O_TMPFILE
// does; dir must be a directory. Link gives it a name.
func (f *FS) CreateUnnamed(dir string, perm fs.FileMode) (safeio.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := path.Join(dir, "(unnamed)")
	op := Op{Kind: OpOpen, Path: name}
	_, err := f.begin(&op, true)
	defer f.end(&op)
	if err != nil {
		return nil, pathErr("open", dir, err)
	}
	_, _, d, err := f.lookup(dir)
	switch {
	case err != nil:
		return nil, pathErr("open", dir, err)
	case d == nil:
		return nil, pathErr("open", dir, syscall.ENOENT)
	case !d.isDir():
		return nil, pathErr("open", dir, syscall.ENOTDIR)
	}
	n := &inode{mode: perm.Perm()}
	f.unnamed = append(f.unnamed, n)
	return &file{fs: f, ino: n, name: name, flag: os.O_WRONLY}, nil
}

// Link gives the file open as h (from this FS, open, not a directory) the name newpath, which
// must not exist.
func (f *FS) Link(h safeio.File, newpath string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fail := func(err error) error { return &os.LinkError{Op: "linkat", Old: h.Name(), New: newpath, Err: err} }
	op := Op{Kind: OpLink, Path: h.Name(), NewPath: newpath}
	fh, ok := h.(*file)
	if !ok || fh.fs != f {
		return fail(syscall.EXDEV)
	}
	_, err := fh.start(&op, true)
	defer f.end(&op)
	if err != nil {
		return fail(err)
	}
	parent, base, n, err := f.lookup(newpath)
	switch {
	case err != nil:
		return fail(err)
	case parent == nil || n != nil:
		return fail(syscall.EEXIST)
	case !parent.isDir():
		return fail(syscall.ENOTDIR)
	case fh.ino.isDir():
		return fail(syscall.EPERM)
	}
	parent.setEntry(base, fh.ino)
	return nil
}
