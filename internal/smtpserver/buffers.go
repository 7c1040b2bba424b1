package smtpserver

import (
	"bufio"
	"io"
	"sync"
)

// An idle session holds no I/O buffers. Most of a server's sessions are idle at any moment (a
// client between messages, one holding its connection open), and two 4 KiB buffers each were
// most of what 10,000 of them cost; so a session waiting for its next command, with nothing
// buffered, gives its reader and writer back to the Server's pools and waits by reading a few
// octets into wake, inside the session (readIdle). The wake read is the read the buffered
// reader would have made, so a busy session makes no more system calls than before, as long
// as its command lines, or pipelined groups, fit in wake; a longer group costs one more read.

const (
	// bufSize is the size of a session's reader and writer: a pipelined group of commands is
	// answered in one write as long as it fits in the reader.
	bufSize = 4096
	// wakeSize is what an idle session reads its next command into: every command line of RFC
	// 5321 (at most 512 octets, §4.5.3.1.4) in one read.
	wakeSize = 512
)

// dataBufSize is the size of the reader a message is read with (DATA, and BDAT chunks larger
// than bufSize): a large message is read in reads of this size rather than of bufSize. Only
// sessions receiving a message hold one.
const dataBufSize = 64 << 10

// bufferPools are the Server's pools of session buffers, of bufSize each, and of the readers
// messages are read with.
type bufferPools struct {
	readers, writers, data sync.Pool
}

// dataReader returns a reader of dataBufSize from the pool that reads br: what br holds, then
// (br being empty, and the reads larger than its buffer) straight from what br reads. The
// session's unread gives it back.
func (p *bufferPools) dataReader(br *bufio.Reader) *bufio.Reader {
	if r, ok := p.data.Get().(*bufio.Reader); ok {
		r.Reset(br)
		return r
	}
	return bufio.NewReaderSize(br, dataBufSize)
}

// unread puts what the data reader r read past the message or chunk (commands, even data,
// pipelined behind it) in front of what the session reads next, and gives r back to the pool.
// r emptied the session's reader with its first read, so nothing can be in between.
func (s *session) unread(r *bufio.Reader) {
	if n := r.Buffered(); n > 0 {
		rest, _ := r.Peek(n) // buffered: never fails
		s.in.pending = append(append([]byte(nil), rest...), s.in.pending...)
	}
	r.Reset(nil)
	s.srv.bufs.data.Put(r)
}

// reader returns a reader of r from the pool.
func (p *bufferPools) reader(r io.Reader) *bufio.Reader {
	if br, ok := p.readers.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, bufSize)
}

// writer returns a writer to w from the pool.
func (p *bufferPools) writer(w io.Writer) *bufio.Writer {
	if bw, ok := p.writers.Get().(*bufio.Writer); ok {
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, bufSize)
}

// release gives the buffers of a session that ended back to the pools.
func (p *bufferPools) release(s *session) {
	if s.br != nil {
		s.br.Reset(nil) // drops the reference to the connection, and any unread input
		p.readers.Put(s.br)
	}
	if s.bw != nil {
		s.bw.Reset(nil) // drops unwritten output: the session is over
		p.writers.Put(s.bw)
	}
	s.br, s.bw = nil, nil
}

// primedReader is what a session's reader reads from: first the octets readIdle read into wake,
// then the connection.
type primedReader struct {
	pending []byte
	r       io.Reader
}

func (p *primedReader) Read(b []byte) (int, error) {
	if len(p.pending) > 0 {
		n := copy(b, p.pending)
		p.pending = p.pending[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// readIdle waits for the client's next command. With nothing buffered, the session's reader and
// writer go back to the pools for the wait (the writer is empty: replies are flushed before any
// wait for the client), and it reads into wake; the octets read are then the start of what the
// reader, taken again, reads. The writer is taken again by the next reply (replyUncounted).
// With a partial line buffered it leaves the reading to ReadLine. An error is the read's: the
// same a read through the reader would have returned.
//
// A read that fails without data (the client left, or was silent too long) leaves the session
// without a reader, as it ends: when thousands of idle clients leave at once, their sessions
// take no buffers just to be closed.
func (s *session) readIdle() error {
	if s.br != nil && s.br.Buffered() > 0 || s.bw != nil && s.bw.Buffered() > 0 || len(s.in.pending) > 0 {
		return nil // pending: what a data reader read past the message (unread)
	}
	s.srv.bufs.release(s)
	n, err := s.conn.Read(s.wake[:])
	if n == 0 && err != nil {
		return err
	}
	s.in.pending = s.wake[:n]
	s.br = s.srv.bufs.reader(&s.in)
	return nil // an error after data comes again with the next read, after the data
}

// copyBuffered copies n octets from br to w straight out of br's buffer, as io.CopyN does but
// without the buffer of its own that io.CopyN makes for every call (its LimitedReader hides
// br's WriteTo): a BDAT chunk costs no allocation. Like io.CopyN, it returns io.EOF when br
// ends early, and w's first error.
func copyBuffered(w io.Writer, br *bufio.Reader, n int64) (int64, error) {
	var done int64
	for done < n {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				return done, err
			}
		}
		b, _ := br.Peek(int(min(int64(br.Buffered()), n-done))) // buffered: never fails
		k, err := w.Write(b)
		_, _ = br.Discard(k) // k octets are buffered: never fails
		done += int64(k)
		if err != nil {
			return done, err
		}
		if k < len(b) {
			return done, io.ErrShortWrite
		}
	}
	return done, nil
}
