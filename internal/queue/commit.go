package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tern-mail/tern/internal/safeio"
)

// appendReq asks the committer to append one record.
type appendReq struct {
	rec     []byte
	sync    bool // wait until the record is durable (false: state records, see package doc)
	bodyDir bool // a body file was created for it: fsync <dir>/body first
	// msg marks a message record: the committer counts it in its segment's live count in the
	// same critical section that makes the record part of the log, so that the segment cannot
	// be deleted between the write and the moment the sender indexes the message.
	msg  bool
	done chan appendResult
}

type appendResult struct {
	seg *segment
	off int64 // offset of the record in seg
	err error
	// void, with err, says that the record is certainly not in the log and never will be: it
	// was never written, was cut back out, or a tombstone voids it. Without void, a refused
	// record may still reach the disk and be replayed (its flush failed and the tombstone
	// could not be made durable): what it refers to, such as a body file, must stay.
	void bool
}

// maxBatch bounds the octets written in one go, so one batch does not delay the next for long.
const maxBatch = 8 << 20

// lazySyncInterval bounds how long a record written without a flush stays unflushed.
const lazySyncInterval = time.Second

// append hands req to the committer and waits for its result (if req.sync, until it is
// durable).
func (q *Queue) append(req *appendReq) appendResult {
	if !q.send(req) {
		return appendResult{err: ErrClosed}
	}
	return q.wait(req)
}

// send hands req to the committer without waiting; false if the committer has stopped.
func (q *Queue) send(req *appendReq) bool {
	req.done = make(chan appendResult, 1)
	select {
	case q.appendc <- req:
		return true
	case <-q.committed:
		return false
	}
}

// wait returns the result of a request given to send.
func (q *Queue) wait(req *appendReq) appendResult {
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
	)
	timer := time.NewTimer(lazySyncInterval)
	defer timer.Stop()
	for {
		batch = batch[:0]
		select {
		case req := <-q.appendc:
			batch = append(batch, req)
		case <-timer.C:
			q.flushActive()
			timer.Reset(lazySyncInterval)
			continue
		case <-q.stopc:
			// Close stops us only once the workers are gone, so what is still waiting are the
			// state records of their last attempts (and commits racing with Close): write it
			// all, or those recipients would be delivered again after the restart. Whoever
			// sends after this sees q.committed closed and gets ErrClosed.
			for {
				batch = q.gather(batch[:0])
				if len(batch) == 0 {
					break
				}
				buf = q.writeBatch(batch, buf)
			}
			q.flushActive()
			return
		}
		batch = q.gather(batch)
		buf = q.writeBatch(batch, buf)
	}
}

// gather adds the waiting requests to batch, up to maxBatch octets, without blocking.
func (q *Queue) gather(batch []*appendReq) []*appendReq {
	n := 0
	for _, r := range batch {
		n += len(r.rec)
	}
	for n < maxBatch {
		select {
		case req := <-q.appendc:
			batch = append(batch, req)
			n += len(req.rec)
		default:
			return batch
		}
	}
	return batch
}

// writeBatch writes batch with one write (and at most one fdatasync) and answers every request
// in it. It returns buf for reuse.
//
// The batch starts with a durable mark (how much of the segment was durable before it), and the
// segment's secret is stamped into each record's header here, the only place that knows which
// segment the records go to: a copy of 16 octets per record.
func (q *Queue) writeBatch(batch []*appendReq, buf []byte) []byte {
	size := durableMarkLen
	needSync, needBodyDir, msgs := false, false, 0
	for _, r := range batch {
		size += len(r.rec)
		needSync = needSync || r.sync
		needBodyDir = needBodyDir || r.bodyDir
		if r.msg {
			msgs++
		}
	}
	seg, err := q.segmentFor(size, needBodyDir)
	if err != nil {
		for _, r := range batch {
			r.done <- appendResult{err: err, void: true}
		}
		return buf
	}
	buf = appendUint64Record(buf[:0], recDurable, uint64(seg.synced))
	stampSecret(buf, &seg.secret)
	for _, r := range batch {
		start := len(buf)
		buf = append(buf, r.rec...)
		stampSecret(buf[start:], &seg.secret)
	}
	off, void, err := q.write(seg, buf, needSync, msgs)
	off += durableMarkLen
	for _, r := range batch {
		r.done <- appendResult{seg: seg, off: off, err: err, void: void}
		off += int64(len(r.rec))
	}
	if cap(buf) > 2*maxBatch {
		buf = nil // do not keep a huge buffer after one big record
	}
	return buf
}

// durableMarkLen is the length of a recDurable record.
const durableMarkLen = recHeaderLen + 8

// segmentFor returns the segment the next size octets go to, moving to a new one when the
// active one is full or sealed.
func (q *Queue) segmentFor(size int, bodyDir bool) (*segment, error) {
	if bodyDir {
		// The body files of this batch were fsynced by their sessions; their names must be
		// durable too before the records that refer to them are.
		if err := q.fs.SyncDir(q.bodyDir()); err != nil {
			return nil, fmt.Errorf("queue: sync body dir: %w", err)
		}
	}
	q.mu.Lock()
	seg := q.segs[len(q.segs)-1]
	full := seg.sealed || seg.size > segHeaderLen && seg.size+int64(size) > q.opts.SegmentSize
	q.mu.Unlock()
	if !full {
		return seg, nil
	}
	// A sealed segment gets no more records: when no new segment can be made, every commit
	// fails until one can, rather than going to a file we cannot trust.
	if err := q.rotate(); err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropSegments() // the segment we left may hold nothing pending any more
	return q.segs[len(q.segs)-1], nil
}

// write appends buf, holding msgs message records, to seg and flushes it if sync. It returns
// where buf went. On a failed write the segment is cut back, so that no part of a refused
// record stays in the log to be replayed later; when that is not possible, or when the flush
// fails, the segment is sealed and a tombstone voids what buf put in it (void reports whether
// the tombstone is durable).
func (q *Queue) write(seg *segment, buf []byte, sync bool, msgs int) (off int64, void bool, err error) {
	off = seg.size
	q.preallocate(seg, off+int64(len(buf)))
	if _, err := seg.f.WriteAt(buf, off); err != nil {
		seg.zeroedTo = 0 // cut back, or sealed: no more zeros ahead either way
		if terr := seg.f.Truncate(off); terr != nil {
			// Part of the refused batch may stay in the file: write no more to it.
			q.log.Error("queue: cannot cut back a failed write, sealing the segment", "segment", seg.path, "err", terr)
			q.seal(seg, off+int64(len(buf)))
			return 0, q.void(seg, off), fmt.Errorf("queue: write: %w", err)
		}
		return 0, true, fmt.Errorf("queue: write: %w", err)
	}
	if sync {
		if err := seg.f.Datasync(); err != nil {
			// After a failed flush the kernel may have dropped the dirty pages, or may yet write
			// them (the "fsyncgate" lesson): nothing in this segment past the last good flush
			// can be trusted, so we refuse the batch, void it and write on in a new segment.
			q.log.Error("queue: fdatasync failed, sealing the segment", "segment", seg.path, "err", err)
			q.seal(seg, off+int64(len(buf)))
			return 0, q.void(seg, off), fmt.Errorf("queue: fdatasync: %w", err)
		}
		seg.synced = off + int64(len(buf))
	}
	seg.dirty = !sync
	q.mu.Lock()
	seg.size = off + int64(len(buf))
	seg.live += msgs
	q.mu.Unlock()
	return off, false, nil
}

// preallocStep is how much of the active segment is filled with zeros at a time, ahead of its
// records (see preallocate).
const preallocStep = 4 << 20

// zeros is what preallocate writes, a piece at a time.
var zeros = make([]byte, 256<<10)

// preallocate keeps the active segment's file filled with zeros ahead of its records, from end
// (where the batch about to be written ends) up to at least half a step further, and at most to
// the segment's size. Why: the fdatasync after an append must also make the file's new size
// durable (on a journalled file system, a journal commit), where after writing over blocks that
// are already there it writes only the data: on this project's disks that halves the flush
// each batch waits for. The zeros start writing out at once, so the next flush (which makes
// the new size durable, once per step) finds little left to do. Replay takes a run of zeros at
// the end of a segment for space not written yet. A failure costs only the gain: the records'
// own write and flush report errors.
func (q *Queue) preallocate(seg *segment, end int64) {
	from := max(seg.zeroedTo, end)
	if seg.zeroedTo >= end+preallocStep/2 || from >= q.opts.SegmentSize {
		return
	}
	to := min(from+preallocStep, q.opts.SegmentSize)
	for off := from; off < to; {
		n, err := seg.f.WriteAt(zeros[:min(int64(len(zeros)), to-off)], off)
		off += int64(n)
		seg.zeroedTo = off
		if err != nil {
			return
		}
	}
	safeio.StartWriteback(seg.f, from, to-from)
}

// void makes durable, as the first record of a new segment, that the records of the sealed
// segment seg from offset from on were refused: replay skips them even if they reach the disk
// (a session answered 451 for them; a worker did not record their outcome). It reports false
// when the tombstone could not be made durable: the refused records' fate is then unknown.
func (q *Queue) void(seg *segment, from int64) bool {
	if err := q.rotate(); err != nil {
		q.log.Error("queue: cannot record a refusal: a refused message may be delivered after a restart", "segment", seg.path, "err", err)
		return false
	}
	q.mu.Lock()
	ns := q.segs[len(q.segs)-1]
	q.mu.Unlock()
	rec := appendUint64Record(nil, recVoid, seg.seq, uint64(from))
	stampSecret(rec, &ns.secret)
	off := ns.size
	_, err := ns.f.WriteAt(rec, off)
	if err == nil {
		err = ns.f.Datasync()
	}
	if err != nil {
		q.log.Error("queue: cannot record a refusal: a refused message may be delivered after a restart", "segment", ns.path, "err", err)
		q.seal(ns, off+int64(len(rec)))
		return false
	}
	ns.synced = off + int64(len(rec))
	q.mu.Lock()
	ns.size = ns.synced
	q.mu.Unlock()
	return true
}

// seal stops writes to seg (whose file may hold octets up to size); the next write goes to a
// new segment. What was written since its last flush is not flushed again: a flush after a
// failed one may report success for pages the kernel dropped.
func (q *Queue) seal(seg *segment, size int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	seg.sealed = true
	seg.dirty = false
	seg.size = max(seg.size, size)
}

// flushActive makes lazily written records durable.
func (q *Queue) flushActive() {
	q.mu.Lock()
	seg := q.segs[len(q.segs)-1]
	q.mu.Unlock()
	q.flushSegment(seg)
}

// flushSegment flushes the records written to seg without a flush, if any. Called only by the
// committer (or by Open before it starts).
func (q *Queue) flushSegment(seg *segment) {
	if !seg.dirty {
		return
	}
	seg.dirty = false
	if err := seg.f.Datasync(); err != nil {
		// Only state records were waiting: at worst some recipients are delivered again. But
		// the segment can no longer be trusted with new records.
		q.log.Error("queue: fdatasync failed, sealing the segment", "segment", seg.path, "err", err)
		q.seal(seg, 0)
		return
	}
	seg.synced = seg.size
}

// rotate starts a new active segment. Lazily written records in the one it leaves are flushed
// first: the timer and Close only flush the active segment. The new file gets its header (with
// a fresh secret), and the header and the file's directory entry are made durable before any
// record goes into it, or a crash could lose the file with records we called durable.
func (q *Queue) rotate() error {
	q.mu.Lock()
	var (
		seq  uint64 = 1
		prev *segment
	)
	if n := len(q.segs); n > 0 {
		prev = q.segs[n-1]
		seq = prev.seq + 1
	}
	q.mu.Unlock()
	if prev != nil {
		q.flushSegment(prev)
	}
	secret, err := newSecret()
	if err != nil {
		return fmt.Errorf("queue: new segment: %w", err)
	}
	path := filepath.Join(q.logDir(), segmentName(seq))
	f, err := q.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("queue: new segment: %w", err)
	}
	_, err = f.WriteAt(segmentHeader(secret), 0)
	if err == nil {
		err = f.Datasync()
	}
	if err == nil {
		err = q.fs.SyncDir(q.logDir())
	}
	if err != nil {
		// Best effort, before any record is in it: the failed write is the error to report.
		_ = f.Close()
		_ = q.fs.Remove(path)
		return fmt.Errorf("queue: new segment: %w", err)
	}
	q.mu.Lock()
	q.segs = append(q.segs, &segment{seq: seq, version: 2, path: path, f: f, secret: secret,
		size: segHeaderLen, synced: segHeaderLen})
	q.mu.Unlock()
	return nil
}

// dropSegments deletes segments from the oldest end while they hold no pending message.
// Only the oldest may go first: a newer segment can hold state records about messages in an
// older one. Each removal is made durable before the next, so that a power loss can never bring
// back an old segment without the newer one that holds its messages' final states (which would
// replay delivered messages, and report the removed body files of some as lost). A segment goes
// once per SegmentSize of mail, so the directory fsync under the lock is rare. Called with
// q.mu held.
func (q *Queue) dropSegments() {
	for len(q.segs) > 1 && q.segs[0].live == 0 {
		s := q.segs[0]
		_ = s.f.Close() // removed next: nothing in it is needed any more
		if err := q.fs.Remove(s.path); err != nil {
			q.log.Error("queue: cannot remove segment", "segment", s.path, "err", err)
		} else if err := q.fs.SyncDir(q.logDir()); err != nil {
			q.log.Error("queue: cannot sync the log directory after removing a segment", "segment", s.path, "err", err)
		}
		q.segs[0] = nil
		q.segs = q.segs[1:]
	}
}
