package testutil

import (
	"bufio"
	"io"
	"runtime"
)

// messageLine is the line a LargeMessage repeats: 78 octets with its CRLF.
const messageLine = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n"

// LargeMessage is a message of Size octets in wire form (a Subject field, an empty line, then
// lines of 78 octets with CRLF, the last one cut short), read without any allocation, so that
// a test can count what the code that reads it allocates. Its zero offset is the start; each
// reader needs its own.
type LargeMessage struct {
	Size int64
	off  int64
}

const largeHeader = "Subject: large\r\n\r\n"

// Read implements io.Reader.
func (m *LargeMessage) Read(p []byte) (int, error) {
	return readRepeated(p, largeHeader, messageLine, &m.off, m.Size)
}

// readRepeated reads into p the message of size octets that is head and then line again and
// again, from *off on.
func readRepeated(p []byte, head, line string, off *int64, size int64) (int, error) {
	if *off >= size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && *off < size {
		var src string
		if *off < int64(len(head)) {
			src = head[*off:]
		} else {
			src = line[(*off-int64(len(head)))%int64(len(line)):]
		}
		k := copy(p[n:], src[:min(int64(len(src)), size-*off)])
		n += k
		*off += int64(k)
	}
	return n, nil
}

// Allocated runs f and returns the octets the process allocated meanwhile (TotalAlloc of
// runtime.MemStats, whose reading stops the world: call it around a whole operation, not in a
// loop). With the other goroutines of the test idle, that is what f allocated, whatever the
// garbage collector freed meanwhile: a bounded buffer shows as a figure that does not grow
// with the size of the message.
func Allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// LargeBody is a message body (a delivery.Body) of that many octets: each Open reads a fresh
// LargeMessage.
type LargeBody int64

// Open implements delivery.Body.
func (b LargeBody) Open() (io.ReadCloser, error) {
	return io.NopCloser(&LargeMessage{Size: int64(b)}), nil
}

// Size implements delivery.Body.
func (b LargeBody) Size() int64 { return int64(b) }

// LargeSize is the size of a LargeMessage of n whole lines after its header.
func LargeSize(lines int64) int64 { return int64(len(largeHeader)) + lines*int64(len(messageLine)) }

// DiscardData reads the data of a DATA command up to its end line (".\r\n") without keeping
// it, and returns how many octets it read before that line: for fake servers that take large
// messages.
func (s *Script) DiscardData() int64 {
	var n int64
	for {
		l, err := s.BR.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			s.T.Errorf("fake server: reading data: %v", err)
			return n
		}
		if string(l) == ".\r\n" {
			return n
		}
		n += int64(len(l))
	}
}
