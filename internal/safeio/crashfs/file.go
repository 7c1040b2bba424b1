package crashfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
)

// file is an open file of an FS.
type file struct {
	fs     *FS
	ino    *inode
	name   string
	flag   int
	off    int64 // for Read and Write
	closed bool
}

func (h *file) Name() string { return h.name }

func (h *file) readable() bool { return h.flag&(os.O_WRONLY|os.O_RDWR) != os.O_WRONLY }
func (h *file) writable() bool { return h.flag&(os.O_WRONLY|os.O_RDWR) != 0 }

// start begins an operation on the handle; the caller holds h.fs.mu and defers h.fs.end(op).
func (h *file) start(op *Op, step bool) (bool, error) {
	if h.closed {
		return false, fs.ErrClosed
	}
	return h.fs.begin(op, step)
}

func (h *file) Read(p []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	n, err := h.readAt(p, h.off)
	h.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (h *file) ReadAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	return h.readAt(p, off)
}

func (h *file) readAt(p []byte, off int64) (int, error) {
	op := Op{Kind: OpRead, Path: h.name, Off: off, Len: int64(len(p))}
	if _, err := h.start(&op, false); err != nil {
		return 0, pathErr("read", h.name, err)
	}
	switch {
	case off < 0:
		return 0, pathErr("read", h.name, syscall.EINVAL)
	case h.ino.isDir():
		return 0, pathErr("read", h.name, syscall.EISDIR)
	case !h.readable():
		return 0, pathErr("read", h.name, syscall.EBADF)
	case off >= int64(len(h.ino.data)):
		return 0, io.EOF
	}
	n := copy(p, h.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *file) Write(p []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	off := h.off
	if h.flag&os.O_APPEND != 0 {
		off = int64(len(h.ino.data))
	}
	n, err := h.writeAt(p, off)
	h.off = off + int64(n)
	return n, err
}

func (h *file) WriteAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	return h.writeAt(p, off)
}

func (h *file) writeAt(p []byte, off int64) (int, error) {
	op := Op{Kind: OpWrite, Path: h.name, Off: off, Len: int64(len(p))}
	_, err := h.start(&op, true)
	defer h.fs.end(&op)
	var short *shortWrite
	if errors.As(err, &short) && short.n >= 0 && short.n < len(p) {
		p, err = p[:short.n], pathErr("write", h.name, short.err)
	} else if err != nil {
		return 0, pathErr("write", h.name, err)
	}
	switch {
	case off < 0:
		return 0, pathErr("write", h.name, syscall.EINVAL)
	case !h.writable():
		return 0, pathErr("write", h.name, syscall.EBADF)
	}
	h.ino.data = writeAt(h.ino.data, p, off)
	h.ino.pending = append(h.ino.pending, change{off: off, data: append([]byte(nil), p...)})
	return len(p), err
}

func (h *file) Truncate(size int64) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	op := Op{Kind: OpTruncate, Path: h.name, Off: size}
	_, err := h.start(&op, true)
	defer h.fs.end(&op)
	if err != nil {
		return pathErr("truncate", h.name, err)
	}
	switch {
	case size < 0:
		return pathErr("truncate", h.name, syscall.EINVAL)
	case !h.writable():
		return pathErr("truncate", h.name, syscall.EINVAL) // as ftruncate on a read-only fd
	}
	h.ino.data = resize(h.ino.data, size)
	h.ino.pending = append(h.ino.pending, change{off: size, trunc: true})
	return nil
}

func (h *file) Sync() error     { return h.sync(OpSync) }
func (h *file) Datasync() error { return h.sync(OpDatasync) }

// sync makes the file's data durable. The model keeps no metadata besides the size, so fsync
// and fdatasync do the same.
func (h *file) sync(k Kind) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	op := Op{Kind: k, Path: h.name}
	skip, err := h.start(&op, true)
	defer h.fs.end(&op)
	if err != nil {
		if !errors.Is(err, ErrCrashed) && !errors.Is(err, fs.ErrClosed) {
			h.ino.failSync() // the Rule's failure
		}
		return pathErr(k.String(), h.name, err)
	}
	if !skip {
		h.ino.sync()
	}
	return nil
}

func (h *file) Stat() (fs.FileInfo, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	op := Op{Kind: OpStat, Path: h.name}
	if _, err := h.start(&op, false); err != nil {
		return nil, pathErr("stat", h.name, err)
	}
	return info(path.Base(h.name), h.ino), nil
}

// Close closes the handle. It makes nothing durable (close(2) does not flush). The handle is
// closed even when Close fails (after a crash, or by a Rule), as with close(2).
func (h *file) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	op := Op{Kind: OpClose, Path: h.name}
	_, err := h.start(&op, false)
	h.closed = true
	return pathErr("close", h.name, err)
}
