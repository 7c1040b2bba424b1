// Package crashfs is a file system in memory that simulates power loss, for tests: it keeps
// what the code under test made durable apart from what it only wrote, and a crash throws the
// rest away. The queue and Maildir delivery write through a safeio.FS; their power-loss tests put
// an FS of this package there, crash it at many points and check what recovery finds.
//
// Killing a process (kill -9) cannot show a missing fsync, since the kernel's page cache
// survives it; a power loss does not. This package is the power loss.
//
// # The durability model
//
// The model is what POSIX promises, read conservatively, and no more (no ext4 heuristics such
// as auto_da_alloc, no ordering between files, no journaling of directory operations):
//
//   - A file's data and size become durable when the file is fsynced (Sync) or fdatasynced
//     (Datasync), through any handle: everything written to it until then. Nothing else makes
//     them durable; a file never synced is empty after a crash, one written since its last
//     sync has the contents and size of that sync.
//   - A name in a directory (made by creating a file, Mkdir or Rename; taken away by Remove or
//     Rename) becomes durable when that directory is fsynced (SyncDir), which makes its whole
//     list of names durable as it is then. A directory that was never synced holds no names
//     after a crash; one whose own name is not durable is gone with everything in it.
//   - A file made by CreateUnnamed (O_TMPFILE) is in no directory: a crash takes it away
//     whatever was synced, until Link gives it a name, which is durable, like any other,
//     with its directory's sync.
//   - A rename touches two directories, and each side is durable only with its own
//     directory's sync: with only the target synced, a crash leaves the file under both names
//     (as a hard link); with only the source synced, under neither. Real file systems commit a
//     rename atomically (ext4 and XFS journal it as one transaction), so this model is stricter
//     than any of them: code that keeps its promises here keeps them there.
//   - The durable state is per file and per directory; nothing ties the durability of one to
//     another. Data written to a file and its name in a directory are independent.
//   - SyncFS (syncfs(2)) is the one exception: it makes everything durable at once, every
//     file's data (those without a name too) and every directory's names.
//
// A failed sync (a Rule returning an error for it) makes nothing durable. The writes it should
// have covered are then lost to later syncs too: Linux marks the pages clean after a failed
// writeback, so the next fsync succeeds without them ("fsyncgate"); code that retries a failed
// fsync and then trusts the data loses it here, as it would there. A random crash may still
// keep them (the kernel may have written them after all), until the next successful sync of
// the file. The live file keeps showing them, as the page cache does.
//
// # Crashes
//
// Crash gives the file system a power loss would leave: everything not durable is gone.
// CrashRandom keeps, in addition, a random part of what was not durable, as real hardware
// does: each write since a file's last sync is kept, dropped, cut short at a random octet (a
// torn write) or, past the durable end, left as zeros (the size reached the disk, the data did
// not); each directory keeps a random prefix of its name changes since its last sync (journals
// commit them in order). A recovery bug that the strict crash cannot show (a torn record, a
// hole of zeros before a good record) shows up there.
//
// Restart is the other way a program stops: killed, not unplugged. The file system it finds
// again holds everything, durable or not, and a later crash still loses what was not durable.
//
// Crash, CrashRandom and Restart return a new FS and stop the one they are called on: from
// then on every operation on it fails with ErrCrashed, so that code still running against it
// cannot report success. Every operation that can change the file system or its durable state
// is a numbered step (creating or opening for writing, Write, WriteAt, Truncate, Sync,
// Datasync, SyncDir, SyncFS, Mkdir, Remove, Rename, CreateUnnamed, Link); CrashAfter(n) cuts the power right after step n,
// so that a test can crash (or, followed by Restart, kill) at every step of a workload, or at
// random ones. Snapshot and AfterStep take the crash without cutting the power: one long run
// then yields many crash points (the code's failure paths after a crash are not exercised that
// way, CrashAfter's are).
//
// # Faults
//
// Inject installs a Rule that sees every operation before it happens and may make it fail
// with an error of its choice (EIO, ENOSPC; ShortWrite for a write that stops midway), or, for
// a sync, return ErrSkip to make it a silent no-op: the sync reports success and makes nothing
// durable, as if the code had no fsync there. That is the mutation knob of the "teeth" tests,
// which prove that a power-loss test notices a missing fsync.
//
// Paths are slash-separated and taken from the root (a relative path is relative to "/");
// "/" always exists. Modes are kept but not enforced; times are not kept.
package crashfs

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tern-mail/tern/internal/safeio"
)

// ErrCrashed is the error of every operation on an FS after its power was lost.
var ErrCrashed = errors.New("crashfs: power lost")

// ErrSkip, returned by a Rule for a sync, makes the sync a no-op that reports success.
var ErrSkip = errors.New("crashfs: sync skipped")

// Kind is the kind of an operation.
type Kind int

// The operations a Rule sees. The ones marked "step" are numbered.
const (
	OpOpen     Kind = iota // OpenFile (a step when it may create, truncate or write)
	OpRead                 // Read or ReadAt
	OpWrite                // Write or WriteAt (step)
	OpTruncate             // step
	OpSync                 // File.Sync (step)
	OpDatasync             // File.Datasync (step)
	OpClose                // File.Close
	OpStat                 // Stat, File.Stat
	OpReadDir              // ReadDir
	OpSyncDir              // step
	OpMkdir                // step
	OpRemove               // step
	OpRename               // step
	OpLink                 // Link (step); CreateUnnamed is an OpOpen step
	OpSyncFS               // SyncFS (step)
)

var kindNames = [...]string{"open", "read", "write", "truncate", "sync", "datasync", "close",
	"stat", "readdir", "syncdir", "mkdir", "remove", "rename", "link", "syncfs"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// IsSync reports whether k is one of the syncs (Sync, Datasync, SyncDir, SyncFS).
func (k Kind) IsSync() bool { return k == OpSync || k == OpDatasync || k == OpSyncDir || k == OpSyncFS }

// Op is one operation, as a Rule sees it.
type Op struct {
	// Step is the operation's number if it is a step (from 1), 0 otherwise.
	Step int64
	Kind Kind
	// Path is the file or directory operated on: for file operations, the name it was opened
	// with; for Rename, the old path.
	Path string
	// NewPath is the new path of Rename and Link.
	NewPath string
	// Off and Len are the place and size of a write, Off the new size of a Truncate.
	Off, Len int64
}

func (o Op) String() string {
	s := fmt.Sprintf("%s %s", o.Kind, o.Path)
	if o.Kind == OpRename || o.Kind == OpLink {
		s += " -> " + o.NewPath
	}
	if o.Step > 0 {
		s = fmt.Sprintf("#%d %s", o.Step, s)
	}
	return s
}

// ShortWrite, returned by a Rule for a write, makes the write put its first n octets in the
// file and then fail with err, as a write that runs out of space midway does.
func ShortWrite(n int, err error) error { return &shortWrite{n, err} }

type shortWrite struct {
	n   int
	err error
}

func (s *shortWrite) Error() string { return fmt.Sprintf("short write (%d octets): %v", s.n, s.err) }
func (s *shortWrite) Unwrap() error { return s.err }

// A Rule decides what happens to an operation: nil lets it happen; ErrSkip makes a sync report
// success without making anything durable (for any other operation it is like nil); any other
// error makes the operation fail with that error, having done nothing (except a ShortWrite).
// It is called with the FS locked, and must not call the FS.
type Rule func(Op) error

// FS is the simulated file system. It implements safeio.FS and is safe for concurrent use.
type FS struct {
	mu      sync.Mutex
	root    *inode
	steps   int64
	crashAt int64 // cut the power after this step; -1: never
	down    bool
	rule    Rule
	after   func(op Op, snapshot func(r *rand.Rand) *FS)
	// unnamed are the files CreateUnnamed made, for SyncFS: in no directory until linked.
	// A restart forgets them, as the processes that held them open are gone.
	unnamed []*inode
}

var _ safeio.FS = (*FS)(nil)

// New returns an empty file system: just "/", durable.
func New() *FS {
	return &FS{root: newDir(0o755), crashAt: -1}
}

// inode is a file or a directory. Open handles point to it, so a removed file stays readable
// through them, as on POSIX.
type inode struct {
	mode fs.FileMode // with fs.ModeDir for a directory

	// A file: what reads see, what a crash keeps, and the changes since the last sync.
	data    []byte
	durable []byte
	pending []change

	// A directory: the names reads see, those a crash keeps, and the changes since the last
	// SyncDir.
	entries    map[string]*inode
	durEntries map[string]*inode
	dirPending []dirChange
}

// change is a write (data at off) or a truncation (to off, data nil, trunc set).
type change struct {
	off   int64
	data  []byte
	trunc bool
	// failed is set when a sync of the file failed after the change: no later sync makes it
	// durable.
	failed bool
}

// dirChange gives name the inode ino, or takes it away (ino nil).
type dirChange struct {
	name string
	ino  *inode
}

func newDir(perm fs.FileMode) *inode {
	return &inode{mode: fs.ModeDir | perm.Perm(), entries: map[string]*inode{}, durEntries: map[string]*inode{}}
}

func (n *inode) isDir() bool { return n.mode.IsDir() }

// setEntry changes a name in directory n, noting the change for a torn crash.
func (n *inode) setEntry(name string, ino *inode) {
	if ino == nil {
		delete(n.entries, name)
	} else {
		n.entries[name] = ino
	}
	n.dirPending = append(n.dirPending, dirChange{name, ino})
}

// sync makes a file's data or a directory's names durable.
func (n *inode) sync() {
	if n.isDir() {
		n.durEntries = maps.Clone(n.entries)
		n.dirPending = nil
		return
	}
	if !slices.ContainsFunc(n.pending, func(c change) bool { return c.failed }) {
		n.durable = slices.Clone(n.data)
	} else {
		for _, c := range n.pending {
			if !c.failed {
				n.durable = c.apply(n.durable)
			}
		}
	}
	n.pending = nil
}

// failSync marks the changes a failed sync should have made durable.
func (n *inode) failSync() {
	for i := range n.pending {
		n.pending[i].failed = true
	}
}

// apply applies c to data.
func (c change) apply(data []byte) []byte {
	if c.trunc {
		return resize(data, c.off)
	}
	return writeAt(data, c.data, c.off)
}

// begin checks that op may run and numbers it; skip is set when a Rule made a sync a no-op.
// Called with f.mu held; the caller defers end.
func (f *FS) begin(op *Op, step bool) (skip bool, err error) {
	if f.down {
		return false, ErrCrashed
	}
	if step {
		f.steps++
		op.Step = f.steps
	}
	if f.rule != nil {
		switch err := f.rule(*op); {
		case errors.Is(err, ErrSkip):
			return op.Kind.IsSync(), nil
		case err != nil:
			return false, err
		}
	}
	return false, nil
}

// end runs the AfterStep hook and cuts the power if op was the step to crash after.
func (f *FS) end(op *Op) {
	if op.Step == 0 {
		return
	}
	if f.after != nil {
		f.after(*op, f.snapshot)
	}
	if op.Step == f.crashAt {
		f.down = true
	}
}

// lookup resolves p; parent is its directory and name its last element ("" for the root).
func (f *FS) lookup(p string) (parent *inode, name string, n *inode, err error) {
	p = clean(p)
	if p == "/" {
		return nil, "", f.root, nil
	}
	dir := f.root
	elems := strings.Split(p[1:], "/")
	for i, e := range elems {
		if !dir.isDir() {
			return nil, "", nil, syscall.ENOTDIR
		}
		child := dir.entries[e]
		if i == len(elems)-1 {
			return dir, e, child, nil
		}
		if child == nil {
			return nil, "", nil, syscall.ENOENT
		}
		dir = child
	}
	panic("unreachable")
}

func clean(p string) string { return path.Clean("/" + p) }

func pathErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: op, Path: p, Err: err}
}

// OpenFile opens name, with the flags of os.OpenFile (O_RDONLY, O_WRONLY, O_RDWR, O_CREATE,
// O_EXCL, O_TRUNC, O_APPEND).
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (safeio.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	step := acc != os.O_RDONLY || flag&(os.O_CREATE|os.O_TRUNC) != 0
	op := Op{Kind: OpOpen, Path: name}
	_, err := f.begin(&op, step)
	defer f.end(&op)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	parent, base, n, err := f.lookup(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	switch {
	case n == nil && flag&os.O_CREATE == 0:
		return nil, pathErr("open", name, syscall.ENOENT)
	case n == nil:
		if !parent.isDir() {
			return nil, pathErr("open", name, syscall.ENOTDIR)
		}
		n = &inode{mode: perm.Perm()}
		parent.setEntry(base, n)
	case flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		return nil, pathErr("open", name, syscall.EEXIST)
	case n.isDir() && acc != os.O_RDONLY:
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	if flag&os.O_TRUNC != 0 && !n.isDir() && acc != os.O_RDONLY {
		n.data = n.data[:0]
		n.pending = append(n.pending, change{off: 0, trunc: true})
	}
	return &file{fs: f, ino: n, name: name, flag: flag}, nil
}

// Mkdir makes the directory name.
func (f *FS) Mkdir(name string, perm fs.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := Op{Kind: OpMkdir, Path: name}
	_, err := f.begin(&op, true)
	defer f.end(&op)
	if err != nil {
		return pathErr("mkdir", name, err)
	}
	parent, base, n, err := f.lookup(name)
	switch {
	case err != nil:
		return pathErr("mkdir", name, err)
	case n != nil:
		return pathErr("mkdir", name, syscall.EEXIST)
	case !parent.isDir():
		return pathErr("mkdir", name, syscall.ENOTDIR)
	}
	parent.setEntry(base, newDir(perm))
	return nil
}

// Remove removes a file or an empty directory.
func (f *FS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := Op{Kind: OpRemove, Path: name}
	_, err := f.begin(&op, true)
	defer f.end(&op)
	if err != nil {
		return pathErr("remove", name, err)
	}
	parent, base, n, err := f.lookup(name)
	switch {
	case err != nil:
		return pathErr("remove", name, err)
	case n == nil:
		return pathErr("remove", name, syscall.ENOENT)
	case parent == nil:
		return pathErr("remove", name, syscall.EBUSY)
	case n.isDir() && len(n.entries) > 0:
		return pathErr("remove", name, syscall.ENOTEMPTY)
	}
	parent.setEntry(base, nil)
	return nil
}

// Rename renames (moves) oldpath to newpath, replacing a file (or an empty directory, if
// oldpath is one) there.
func (f *FS) Rename(oldpath, newpath string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := Op{Kind: OpRename, Path: oldpath, NewPath: newpath}
	_, err := f.begin(&op, true)
	defer f.end(&op)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	fail := func(err error) error { return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err} }
	op1, base1, n, err := f.lookup(oldpath)
	if err != nil {
		return fail(err)
	}
	if n == nil {
		return fail(syscall.ENOENT)
	}
	if op1 == nil {
		return fail(syscall.EBUSY)
	}
	op2, base2, target, err := f.lookup(newpath)
	switch {
	case err != nil:
		return fail(err)
	case op2 == nil:
		return fail(syscall.EBUSY)
	case !op2.isDir():
		return fail(syscall.ENOTDIR)
	case target == n:
		return nil
	case target != nil && target.isDir() && !n.isDir():
		return fail(syscall.EISDIR)
	case target != nil && !target.isDir() && n.isDir():
		return fail(syscall.ENOTDIR)
	case target != nil && target.isDir() && len(target.entries) > 0:
		return fail(syscall.ENOTEMPTY)
	}
	if n.isDir() && strings.HasPrefix(clean(newpath)+"/", clean(oldpath)+"/") {
		return fail(syscall.EINVAL) // into itself
	}
	op1.setEntry(base1, nil)
	op2.setEntry(base2, n)
	return nil
}

// ReadDir lists the directory name, sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := Op{Kind: OpReadDir, Path: name}
	if _, err := f.begin(&op, false); err != nil {
		return nil, pathErr("readdir", name, err)
	}
	_, _, n, err := f.lookup(name)
	switch {
	case err != nil:
		return nil, pathErr("readdir", name, err)
	case n == nil:
		return nil, pathErr("readdir", name, syscall.ENOENT)
	case !n.isDir():
		return nil, pathErr("readdir", name, syscall.ENOTDIR)
	}
	des := make([]fs.DirEntry, 0, len(n.entries))
	for k, c := range n.entries {
		des = append(des, fs.FileInfoToDirEntry(info(k, c)))
	}
	sort.Slice(des, func(i, j int) bool { return des[i].Name() < des[j].Name() })
	return des, nil
}

// Stat describes name.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := Op{Kind: OpStat, Path: name}
	if _, err := f.begin(&op, false); err != nil {
		return nil, pathErr("stat", name, err)
	}
	_, base, n, err := f.lookup(name)
	if err == nil && n == nil {
		err = syscall.ENOENT
	}
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return info(base, n), nil
}

// SyncDir makes the names in dir durable, as they are now.
func (f *FS) SyncDir(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := Op{Kind: OpSyncDir, Path: dir}
	skip, err := f.begin(&op, true)
	defer f.end(&op)
	if err != nil {
		return pathErr("fsync", dir, err)
	}
	_, _, n, err := f.lookup(dir)
	switch {
	case err != nil:
		return pathErr("fsync", dir, err)
	case n == nil:
		return pathErr("fsync", dir, syscall.ENOENT)
	case !n.isDir():
		return pathErr("fsync", dir, syscall.ENOTDIR)
	}
	if !skip {
		n.sync()
	}
	return nil
}

// SyncFS makes everything durable (syncfs(2)): every file's data and every directory's names,
// the files without a name included. h must be a file of this FS. A failed one makes nothing
// durable, and marks every write since each file's last sync as lost to later syncs, as a
// failed Sync does for its file.
func (f *FS) SyncFS(h safeio.File) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := Op{Kind: OpSyncFS, Path: h.Name()}
	fh, ok := h.(*file)
	if !ok || fh.fs != f {
		return pathErr("syncfs", h.Name(), syscall.EXDEV)
	}
	skip, err := fh.start(&op, true)
	defer f.end(&op)
	switch {
	case errors.Is(err, ErrCrashed) || errors.Is(err, fs.ErrClosed):
		return pathErr("syncfs", h.Name(), err)
	case err != nil:
		f.eachInode(func(n *inode) {
			if !n.isDir() {
				n.failSync() // the Rule's failure
			}
		})
		return pathErr("syncfs", h.Name(), err)
	case !skip:
		f.eachInode((*inode).sync)
	}
	return nil
}

// eachInode calls fn once for every inode reachable from the root and every file without a
// name.
func (f *FS) eachInode(fn func(*inode)) {
	seen := map[*inode]bool{}
	var walk func(n *inode)
	walk = func(n *inode) {
		if seen[n] {
			return
		}
		seen[n] = true
		fn(n)
		for _, c := range n.entries {
			walk(c)
		}
	}
	walk(f.root)
	for _, n := range f.unnamed {
		walk(n)
	}
}

// fileInfo describes a file or a directory.
type fileInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func info(name string, n *inode) fileInfo {
	if name == "" {
		name = "/"
	}
	return fileInfo{name: name, size: int64(len(n.data)), mode: n.mode}
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return i.mode }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i fileInfo) Sys() any           { return nil }
