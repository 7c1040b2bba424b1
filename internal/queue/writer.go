package queue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/safeio"
)

// Writer receives one message body. Small bodies stay in memory until Commit puts them in the
// log; one that grows past InlineMax moves to a file of its own.
type Writer struct {
	q     *Queue
	id    string
	buf   *bytes.Buffer
	file  safeio.File // the body file while it is written, once the body outgrew the buffer
	bw    *bufio.Writer
	ahead safeio.WriteAhead // under bw: starts the disk on a large body as it comes in
	// external is set once the body went to its own file
	external bool
	n        int64
	done     bool
	// keepFile is set when a refused record that refers to the body file may still reach the
	// disk: Abort then leaves the file for replay (or for recovery to remove as an orphan).
	keepFile bool
	// err is the first write error. It sticks: the octets of a failed Write are not in the
	// body, so the message must never be committed.
	err error
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// recPool holds the buffers of message records (*[]byte): the committer copies a record into
// its batch before it answers, so once append returns the buffer can serve the next message.
// Records up to maxPooledRecord go back, which covers every inline body at the default
// InlineMax: a 100 KB message would otherwise allocate (and clear) a record of its size, a
// few per cent of the CPU of a 100 KB load. What the pool holds is a few such buffers per P.
var recPool = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledRecord = DefaultInlineMax + 64<<10

// NewMessage starts a message with a fresh queue id. Once Close has started it returns
// ErrClosed.
func (q *Queue) NewMessage() (*Writer, error) {
	q.mu.Lock()
	closed := q.closed
	q.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	return q.newWriter(), nil
}

// newWriter starts a message whatever the state of the queue: the delivery reports of the last
// attempts are queued while Close waits for them (until the committer stops).
func (q *Queue) newWriter() *Writer {
	return &Writer{q: q, id: q.ids.next(), buf: bufPool.Get().(*bytes.Buffer)}
}

// ID is the message's queue id.
func (w *Writer) ID() string { return w.id }

// Write appends body octets.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("queue: write after commit or abort")
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.external && w.buf.Len()+len(p) > w.q.opts.InlineMax {
		if err := w.spill(); err != nil {
			w.err = err
			return 0, err
		}
	}
	var (
		n   int
		err error
	)
	if w.file != nil {
		n, err = w.bw.Write(p)
		if err != nil {
			err = fmt.Errorf("queue: body file: %w", err)
		}
	} else {
		n, err = w.buf.Write(p)
	}
	w.n += int64(n)
	w.err = err
	return n, err
}

func (w *Writer) bodyPath() string { return filepath.Join(w.q.bodyDir(), bodyName(w.id)) }

// spill moves the body to its own file.
func (w *Writer) spill() error {
	f, err := w.q.fs.OpenFile(w.bodyPath(), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("queue: body file: %w", err)
	}
	w.file = f
	w.external = true
	w.bw = bufio.NewWriterSize(w.ahead.Reset(f, 0), 64<<10)
	if _, err := w.bw.Write(w.buf.Bytes()); err != nil {
		return fmt.Errorf("queue: body file: %w", err)
	}
	w.releaseBuf()
	return nil
}

func (w *Writer) releaseBuf() {
	if w.buf != nil {
		if w.buf.Cap() <= 2*w.q.opts.InlineMax {
			w.buf.Reset()
			bufPool.Put(w.buf)
		}
		w.buf = nil
	}
}

// Commit makes the message durable and queues it for delivery. When it returns nil the message
// survives any crash; when it returns an error the client must be told to try again, and the
// message is not stored: its record was never written, was cut back out, or is voided by a
// durable tombstone. Only when a failed flush could not even be recorded may the message still
// be replayed, whole (a duplicate of the one the client sends again); a crash can never
// half-store it.
func (w *Writer) Commit(ctx context.Context, env *envelope.Envelope) error {
	if w.done {
		return errors.New("queue: commit after commit or abort")
	}
	if err := ctx.Err(); err != nil {
		w.Abort()
		return err
	}
	return w.commit(env, nil)
}

// commit is Commit without a context; effects, if not nil, is a state record about another
// message that becomes durable with this one, in the same record (see reports.go).
func (w *Writer) commit(env *envelope.Envelope, effects *stateRecord) error {
	if w.done {
		return errors.New("queue: commit after commit or abort")
	}
	if w.err != nil {
		w.Abort()
		return w.err
	}
	env.ID = w.id
	if env.Received.IsZero() {
		// MaxAge counts from Received: a zero time would fail every recipient at its first
		// temporary error.
		env.Received = time.Now()
	}
	placement := bodyInline
	if w.external {
		placement = bodyExternal
		if err := w.finishFile(); err != nil {
			w.Abort()
			return err
		}
	}
	prefix, err := messagePrefix(env, effects, placement)
	if err != nil {
		w.Abort()
		return err
	}
	var body []byte
	if w.buf != nil {
		body = w.buf.Bytes()
	}
	if len(prefix)+len(body) > maxRecord {
		// Only an absurd envelope gets here (InlineMax is at most maxRecord/2), but a record
		// that replay would skip must not get a nil Commit.
		w.Abort()
		return errors.New("queue: envelope too large")
	}
	pooled := recPool.Get().(*[]byte)
	rec := appendRecord(slices.Grow((*pooled)[:0], recHeaderLen+len(prefix)+len(body)), recMessage, prefix, body)
	res := w.q.append(&appendReq{rec: rec, sync: true, bodyDir: w.external, msg: true})
	if cap(rec) <= maxPooledRecord {
		*pooled = rec[:0]
		recPool.Put(pooled)
	}
	if res.err != nil {
		// Unless the refusal is durable, the record may yet be replayed, and then it needs its
		// body file: a message the client was told to send again is then delivered twice,
		// rather than one whose body is gone.
		w.keepFile = !res.void
		w.Abort()
		return res.err
	}
	w.done = true
	w.releaseBuf()
	e := &entry{
		env:      env.Clone(),
		seg:      res.seg,
		bodyOff:  res.off + recHeaderLen + int64(len(prefix)),
		bodyLen:  int64(len(body)),
		external: w.external,
		heapIdx:  -1,
	}
	w.q.add(e)
	return nil
}

// finishFile makes a spilled body durable (its directory is synced by the committer).
func (w *Writer) finishFile() error {
	err := w.bw.Flush()
	if err == nil {
		err = w.file.Sync()
	}
	if cerr := w.file.Close(); err == nil {
		err = cerr
	}
	w.file = nil
	if err != nil {
		return fmt.Errorf("queue: body file: %w", err)
	}
	return nil
}

// Abort discards the message. It does nothing after a successful Commit.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.releaseBuf()
	// Best effort: the message is discarded, and a body file left behind is named by no
	// record, so recovery removes it.
	if w.file != nil {
		_ = w.file.Close()
		w.file = nil
	}
	if w.external && !w.keepFile {
		_ = w.q.fs.Remove(w.bodyPath())
	}
}

// Reader reads back the body written so far, before the commit: the content filters of a
// session (milters, rspamd) read the message as it is stored, rather than the session keeping
// a copy of its own. Nothing may be written to the message while the reader is in use.
func (w *Writer) Reader() (io.ReadCloser, error) {
	if w.done {
		return nil, errors.New("queue: read after commit or abort")
	}
	if w.err != nil {
		return nil, w.err
	}
	if w.file == nil {
		return io.NopCloser(bytes.NewReader(w.buf.Bytes())), nil
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("queue: body file: %w", err)
		return nil, w.err
	}
	f, err := w.q.fs.OpenFile(w.bodyPath(), os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("queue: body file: %w", err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, w.n), f}, nil
}
