package safeio

import "io"

// WritebackStep is how many octets a WriteAhead lets pile up in the page cache before it asks
// the kernel to start writing them out.
const WritebackStep = 1 << 20

// WriteAhead writes to a file and, each time another WritebackStep octets have gone through
// it, asks the kernel to start writing them to the disk without waiting (sync_file_range
// SYNC_FILE_RANGE_WRITE on Linux). A large file's fsync then waits only for what came last,
// and the disk works while the rest is still being received or copied rather than after it.
// No guarantee changes: durability is still the fsync's. Where the hint is not available
// (other systems, the test file systems) it is not given. The zero value is ready for Reset,
// and may be reused (embedded in a pooled struct, it costs no allocation per file).
type WriteAhead struct {
	f          File
	s          writebackStarter
	start, end int64 // [start, end): written since the last hint
}

// writebackStarter is a File that can start the writeback of a range of itself.
type writebackStarter interface {
	startWriteback(off, n int64)
}

// StartWriteback asks the kernel to start writing octets [off, off+n) of f to the disk,
// without waiting; a hint, given only where f can take it.
func StartWriteback(f File, off, n int64) {
	if s, ok := f.(writebackStarter); ok {
		s.startWriteback(off, n)
	}
}

// Reset points w at f, whose writes start at offset off, and returns the writer to use: w, or
// f itself when f cannot take the hint.
func (w *WriteAhead) Reset(f File, off int64) io.Writer {
	s, ok := f.(writebackStarter)
	if !ok {
		*w = WriteAhead{}
		return f
	}
	*w = WriteAhead{f: f, s: s, start: off, end: off}
	return w
}

func (w *WriteAhead) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.end += int64(n)
	if w.end-w.start >= WritebackStep {
		w.s.startWriteback(w.start, w.end-w.start)
		w.start = w.end
	}
	return n, err
}
