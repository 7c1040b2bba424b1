package safeio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

func (osFS) CreateUnnamed(dir string, perm fs.FileMode) (File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.EINVAL) {
			// EISDIR and EINVAL: a kernel, or a file system, that predates O_TMPFILE.
			err = fmt.Errorf("%w (%w)", errors.ErrUnsupported, err)
		}
		return nil, &fs.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	return osFile{os.NewFile(uintptr(fd), dir+"/(unnamed)")}, nil
}

func (osFS) Link(f File, newpath string) error {
	// Any File with a descriptor: wrappers (tests, benchmarks) may pass theirs on.
	of, ok := f.(interface{ Fd() uintptr })
	if !ok {
		return &os.LinkError{Op: "linkat", Old: f.Name(), New: newpath, Err: errors.ErrUnsupported}
	}
	// /proc/self/fd/N rather than AT_EMPTY_PATH, which needs CAP_DAC_READ_SEARCH.
	proc := "/proc/self/fd/" + strconv.Itoa(int(of.Fd()))
	err := unix.Linkat(unix.AT_FDCWD, proc, unix.AT_FDCWD, newpath, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, syscall.ENOENT) {
		if _, serr := os.Stat("/proc/self/fd"); serr != nil {
			err = fmt.Errorf("%w: no /proc/self/fd", errors.ErrUnsupported)
		}
	}
	if err != nil {
		return &os.LinkError{Op: "linkat", Old: f.Name(), New: newpath, Err: err}
	}
	return nil
}
