package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// appendReq asks the committer to append one record.
type appendReq struct {
	rec     []byte
	sync    bool // wait until the record is durable (false: state records, see package doc)
	bodyDir bool // a body file was created for it: fsync <dir>/body first
	done    chan appendResult
}

type appendResult struct {
	seg *segment
	off int64 // offset of the record in seg
	err error
}

// maxBatch bounds the octets written in one go, so one batch does not delay the next for long.
const maxBatch = 8 << 20

// lazySyncInterval bounds how long a record written without a flush stays unflushed.
const lazySyncInterval = time.Second

// append hands rec to the committer and, if sync, waits until it is durable.
func (q *Queue) append(req *appendReq) appendResult {
	req.done = make(chan appendResult, 1)
	select {
	case q.appendc <- req:
	case <-q.committed:
		return appendResult{err: ErrClosed}
	}
	select {
	case res := <-req.done:
		return res
	case <-q.committed:
		// The committer stopped; it may have answered just before.
		select {
		case res := <-req.done:
			return res
		default:
			return appendResult{err: ErrClosed}
		}
	}
}

// committer is the only writer of the log. It takes every waiting record, writes them with one
// write and, if any of them needs it, makes them durable with one fdatasync: group commit.
func (q *Queue) committer() {
	defer close(q.committed)
	var (
		batch []*appendReq
		buf   []byte
		dirty bool // written but not yet flushed
	)
	timer := time.NewTimer(lazySyncInterval)
	defer timer.Stop()
	for {
		batch = batch[:0]
		select {
		case req := <-q.appendc:
			batch = append(batch, req)
		case <-timer.C:
			if dirty {
				q.flushActive()
				dirty = false
			}
			timer.Reset(lazySyncInterval)
			continue
		case <-q.stopc:
			// Drain what is left so that no session waits forever, then flush.
			for {
				select {
				case req := <-q.appendc:
					req.done <- appendResult{err: ErrClosed}
					continue
				default:
				}
				break
			}
			q.flushActive()
			return
		}
		n := len(batch[0].rec)
	drain:
		for n < maxBatch {
			select {
			case req := <-q.appendc:
				batch = append(batch, req)
				n += len(req.rec)
			default:
				break drain
			}
		}
		buf = buf[:0]
		needSync, needBodyDir := false, false
		for _, r := range batch {
			buf = append(buf, r.rec...)
			needSync = needSync || r.sync
			needBodyDir = needBodyDir || r.bodyDir
		}
		seg, off, err := q.write(buf, needSync, needBodyDir)
		if err == nil && !needSync {
			dirty = true
		} else if err == nil {
			dirty = false
		}
		for _, r := range batch {
			r.done <- appendResult{seg: seg, off: off, err: err}
			off += int64(len(r.rec))
		}
		if cap(buf) > 2*maxBatch {
			buf = nil // do not keep a huge buffer after one big record
		}
	}
}

// write appends buf to the active segment (moving to a new one when it is full) and flushes it
// if sync. On a failed write the segment is cut back, so that no part of a refused record stays
// in the log to be replayed later.
func (q *Queue) write(buf []byte, sync, bodyDir bool) (*segment, int64, error) {
	if bodyDir {
		// The body files of this batch were fsynced by their sessions; their names must be
		// durable too before the records that refer to them are.
		if err := syncDir(q.bodyDir()); err != nil {
			return nil, 0, fmt.Errorf("queue: sync body dir: %w", err)
		}
	}
	q.mu.Lock()
	seg := q.segs[len(q.segs)-1]
	full := seg.size > 0 && seg.size+int64(len(buf)) > q.opts.SegmentSize
	q.mu.Unlock()
	if full {
		if err := q.rotate(); err != nil {
			return nil, 0, err
		}
		q.mu.Lock()
		seg = q.segs[len(q.segs)-1]
		q.mu.Unlock()
	}
	off := seg.size
	if _, err := seg.f.WriteAt(buf, off); err != nil {
		if terr := seg.f.Truncate(off); terr != nil {
			q.log.Error("queue: cannot cut back a failed write, moving to a new segment", "err", terr)
			q.rotate()
		}
		return nil, 0, fmt.Errorf("queue: write: %w", err)
	}
	if sync {
		if err := unix.Fdatasync(int(seg.f.Fd())); err != nil {
			// After a failed flush the kernel may have dropped the dirty pages (the "fsyncgate"
			// lesson): nothing in this segment past the last good flush can be trusted, so we
			// refuse the batch and write on in a new segment.
			q.log.Error("queue: fdatasync failed, moving to a new segment", "err", err)
			q.mu.Lock()
			seg.size = off + int64(len(buf))
			q.mu.Unlock()
			q.rotate()
			return nil, 0, fmt.Errorf("queue: fdatasync: %w", err)
		}
	}
	q.mu.Lock()
	seg.size = off + int64(len(buf))
	q.mu.Unlock()
	return seg, off, nil
}

// flushActive makes lazily written records durable.
func (q *Queue) flushActive() {
	q.mu.Lock()
	seg := q.segs[len(q.segs)-1]
	q.mu.Unlock()
	if err := unix.Fdatasync(int(seg.f.Fd())); err != nil {
		q.log.Error("queue: fdatasync failed", "err", err)
	}
}

// rotate starts a new active segment. Its directory entry is made durable before any record
// goes into it, or a crash could lose the file with records we called durable.
func (q *Queue) rotate() error {
	q.mu.Lock()
	var seq uint64 = 1
	if n := len(q.segs); n > 0 {
		seq = q.segs[n-1].seq + 1
	}
	q.mu.Unlock()
	path := filepath.Join(q.logDir(), segmentName(seq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("queue: new segment: %w", err)
	}
	if err := syncDir(q.logDir()); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("queue: new segment: %w", err)
	}
	q.mu.Lock()
	q.segs = append(q.segs, &segment{seq: seq, path: path, f: f})
	q.mu.Unlock()
	return nil
}

// dropSegments deletes segments from the oldest end while they hold no pending message.
// Only the oldest may go first: a newer segment can hold state records about messages in an
// older one. Called with q.mu held.
func (q *Queue) dropSegments() {
	for len(q.segs) > 1 && q.segs[0].live == 0 {
		s := q.segs[0]
		s.f.Close()
		if err := os.Remove(s.path); err != nil {
			q.log.Error("queue: cannot remove segment", "segment", s.path, "err", err)
		}
		q.segs[0] = nil
		q.segs = q.segs[1:]
	}
}
