package safeio

import (
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// FS is the file system the queue and Maildir delivery write through. Production uses OS; the
// power-loss tests put a simulation in its place that keeps what was made durable (file data
// after Sync or Datasync, names after the directory's SyncDir) apart from what was only
// written, so that a "crash" can throw the rest away. Paths are the operating system's.
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Mkdir(name string, perm fs.FileMode) error
	Remove(name string) error
	Rename(oldpath, newpath string) error
	ReadDir(name string) ([]fs.DirEntry, error)
	Stat(name string) (fs.FileInfo, error)
	// SyncDir makes the names created, renamed or removed in dir durable (fsync of the
	// directory: POSIX promises durability of a file's data on its fsync, not of its name).
	SyncDir(dir string) error
	// CreateUnnamed creates a file without a name on the file system of the directory dir,
	// open for writing (Linux's O_TMPFILE): until Link names it, no reader can see it, and
	// closing it or a crash takes it away with nothing left behind. Where the system or the
	// file system cannot do that, the error matches errors.ErrUnsupported.
	CreateUnnamed(dir string, perm fs.FileMode) (File, error)
	// Link gives the open file f, created by this FS, the name newpath (linkat(2)) on the
	// same file system; it fails with fs.ErrExist if newpath exists. Like a created name,
	// the new one is durable once its directory is synced.
	Link(f File, newpath string) error
	// SyncFS makes everything on the file system holding the open file f durable at once
	// (Linux's syncfs(2)): the data of every file and the names in every directory, written by
	// anyone. Its error reports a failed write of any file on that file system since f was
	// opened, so a caller that wrote files and then syncs through the first of them opened
	// learns of a failure of any. Where the system cannot promise that (not Linux, or a kernel
	// before 5.8, whose syncfs reported no write errors), the error matches
	// errors.ErrUnsupported and nothing is synced.
	SyncFS(f File) error
}

// File is an open file of an FS.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Closer
	Name() string
	Stat() (fs.FileInfo, error)
	Truncate(size int64) error
	// Sync makes the file's data and metadata durable (fsync).
	Sync() error
	// Datasync makes the file's data durable, with its size but not its other metadata
	// (fdatasync): what an append-only log needs, at the cost of one flush.
	Datasync() error
}

// OS is the operating system's file system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Mkdir(name string, perm fs.FileMode) error  { return os.Mkdir(name, perm) }
func (osFS) Remove(name string) error                   { return os.Remove(name) }
func (osFS) Rename(oldpath, newpath string) error       { return os.Rename(oldpath, newpath) }
func (osFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }
func (osFS) Stat(name string) (fs.FileInfo, error)      { return os.Stat(name) }
func (osFS) SyncDir(dir string) error                   { return syncDir(dir) }

type osFile struct{ *os.File }

func (f osFile) Datasync() error {
	// Fd on a closed file is -1, which fails with EBADF.
	return unix.Fdatasync(int(f.Fd()))
}

// Open opens name for reading in fsys.
func Open(fsys FS, name string) (File, error) { return fsys.OpenFile(name, os.O_RDONLY, 0) }

// ReadFile reads the whole of name in fsys.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := Open(fsys, name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // only read: a failed Close loses nothing
	return io.ReadAll(f)
}
