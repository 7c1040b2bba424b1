package queue

import (
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/safeio"
)

// errSegmentGone reports that a segment was deleted while a listing read the log.
var errSegmentGone = errors.New("queue: segment deleted while reading")

// replay reads every segment in logDir, oldest first, and returns the segments, the messages
// that still have pending recipients and the highest message id in the log. With keepOpen, each
// segment's file stays open for reading bodies (the queue); without, nothing stays open (a
// listing), and a segment that the queue deleted since the directory was read gives
// errSegmentGone.
func replay(fsys safeio.FS, logDir string, keepOpen bool, log *slog.Logger) ([]*segment, map[string]*entry, uint64, error) {
	des, err := fsys.ReadDir(logDir)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("queue: %w", err)
	}
	var seqs []uint64
	for _, de := range des {
		if seq, ok := parseSegmentName(de.Name()); ok {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	var segs []*segment
	entries := make(map[string]*entry)
	closeAll := func() {
		for _, s := range segs {
			if s.f != nil {
				s.f.Close()
			}
		}
	}
	for _, seq := range seqs {
		seg := &segment{seq: seq, path: filepath.Join(logDir, segmentName(seq))}
		f, err := safeio.Open(fsys, seg.path)
		if err != nil {
			closeAll()
			if !keepOpen && errors.Is(err, os.ErrNotExist) {
				return nil, nil, 0, errSegmentGone
			}
			return nil, nil, 0, fmt.Errorf("queue: %w", err)
		}
		data, err := io.ReadAll(f)
		if err != nil {
			f.Close()
			closeAll()
			return nil, nil, 0, fmt.Errorf("queue: %w", err)
		}
		if keepOpen {
			seg.f = f
		} else {
			f.Close()
		}
		seg.size = int64(len(data))
		segs = append(segs, seg)
		replaySegment(seg, data, entries, log)
	}
	var maxID uint64
	for id, e := range entries {
		if n, err := strconv.ParseUint(id, 16, 64); err == nil {
			maxID = max(maxID, n)
		}
		if e.env.Done() {
			delete(entries, id)
			e.seg.live--
		}
	}
	return segs, entries, maxID, nil
}

// replaySegment applies the records of one segment to entries.
func replaySegment(seg *segment, data []byte, entries map[string]*entry, log *slog.Logger) {
	sc := scanner{data: data}
	for sc.next() {
		switch sc.typ {
		case recMessage:
			dm, err := decodeMessage(sc.rec)
			if err != nil {
				log.Error("queue: unreadable message record", "segment", seg.path, "offset", sc.recOff, "err", err)
				continue
			}
			if old := entries[dm.env.ID]; old != nil {
				old.seg.live-- // a copy made by compaction supersedes the original
			}
			entries[dm.env.ID] = &entry{
				env:      dm.env,
				seg:      seg,
				bodyOff:  sc.recOff + int64(dm.bodyStart),
				bodyLen:  int64(len(sc.rec) - dm.bodyStart),
				external: dm.placement == bodyExternal,
				heapIdx:  -1,
			}
			seg.live++
		case recState:
			var st stateRecord
			if err := json.Unmarshal(sc.rec, &st); err != nil {
				log.Error("queue: unreadable state record", "segment", seg.path, "offset", sc.recOff, "err", err)
				continue
			}
			e := entries[st.ID]
			if e == nil {
				continue // the message finished and its segment is gone
			}
			applyState(e.env, st)
		}
	}
	if sc.skips > 0 {
		// Expected once after a crash (the record being written); more means damage.
		log.Warn("queue: skipped damaged or torn records", "segment", seg.path, "stretches", sc.skips)
	}
}

// applyState applies a state record to an envelope.
func applyState(env *envelope.Envelope, st stateRecord) {
	for _, u := range st.Updates {
		if u.I >= 0 && u.I < len(env.Rcpts) {
			env.Rcpts[u.I].Status = u.Status
			env.Rcpts[u.I].LastError = u.Err
		}
	}
	if st.Held != nil {
		env.Held = *st.Held
	}
	if st.DelayNotified {
		env.DelayNotified = true
	}
	if st.Attempts > 0 {
		env.Attempts = st.Attempts
		env.NextAttempt = time.UnixMilli(st.Next)
	}
	if st.Due {
		env.NextAttempt = time.Time{}
	}
}

// recover replays the log into the queue, makes every pending message due when its last attempt
// said (at once for a message never tried) and removes body files that no record refers to
// (bodies of messages that never got their 250).
func (q *Queue) recover() error {
	segs, entries, maxID, err := replay(q.fs, q.logDir(), true, q.log)
	if err != nil {
		return err
	}
	q.segs, q.entries = segs, entries
	// What recovery acts on must be durable first: a process killed before its flush left
	// records in the page cache only (a final state record, say), and removing the body file
	// they make an orphan would leave, after a power loss, a pending message without its body.
	for _, s := range segs {
		if err := s.f.Datasync(); err != nil {
			return fmt.Errorf("queue: %w", err)
		}
	}
	// New ids must differ from every id the log still mentions, finished messages included:
	// their state records are still there to be replayed.
	q.ids.observe(formatID(maxID))
	now := q.opts.Now()
	var deferred []*entry
	for id, e := range entries {
		if e.external {
			if _, err := q.fs.Stat(filepath.Join(q.bodyDir(), bodyName(id))); err != nil {
				// Cannot happen unless someone removed the file: say so loudly, the mail is gone.
				q.log.Error("queue: body file of a queued message is missing", "msgid", id, "err", err)
				delete(entries, id)
				e.seg.live--
				continue
			}
		}
		if e.env.Held {
			continue // waits for tern queue release
		}
		// A clock that jumped back, or a shorter schedule than the one that set the time,
		// does not make a message wait longer than one full backoff from now.
		if next := e.env.NextAttempt; next.After(now) {
			if limit := now.Add(q.maxBackoff()); next.After(limit) {
				next = limit
			}
			e.next = next
			deferred = append(deferred, e)
			continue
		}
		q.ready = append(q.ready, e)
	}
	for _, e := range deferred {
		heap.Push(&q.deferred, e)
	}
	slices.SortFunc(q.ready, func(a, b *entry) int { return strings.Compare(a.env.ID, b.env.ID) })
	if len(q.ready)+len(deferred) > 0 {
		q.log.Info("queue: recovered messages", "messages", len(q.ready)+len(deferred), "due", len(q.ready), "deferred", len(deferred))
	}
	des, err := q.fs.ReadDir(q.bodyDir())
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	for _, de := range des {
		id, ok := strings.CutPrefix(de.Name(), "v1.")
		if e := entries[id]; ok && e != nil && e.external {
			continue
		}
		if err := q.fs.Remove(filepath.Join(q.bodyDir(), de.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("queue: %w", err)
		}
	}
	return nil
}

// compact copies the pending messages of the oldest segment forward into the active one once
// the log has moved two segments on, so that the oldest can be deleted.
//
// Only deferred messages move, and each is out of the deferred heap while its copy is written:
// no attempt can change its recipients' state under the copy. (A copy written after a state
// record but holding the state from before it would, on replay, bring delivered recipients
// back, or a finished message whose body file is gone.) Copies share fdatasyncs, in batches of
// up to maxBatch octets.
func (q *Queue) compact() {
	q.mu.Lock()
	if len(q.segs) < 3 {
		q.mu.Unlock()
		return
	}
	old := q.segs[0]
	var moves []*move
	for _, e := range q.entries {
		if e.seg == old && e.heapIdx >= 0 {
			heap.Remove(&q.deferred, e.heapIdx)
			e.moving = true
			moves = append(moves, &move{e: e, env: e.env.Clone(),
				src: bodySource{seg: e.seg, off: e.bodyOff, n: e.bodyLen, external: e.external}})
		}
	}
	q.mu.Unlock()
	for len(moves) > 0 {
		n, size := 0, 0
		for n < len(moves) && size < maxBatch {
			size += int(moves[n].src.n) + 512
			n++
		}
		q.copyForward(moves[:n])
		moves = moves[n:]
	}
	q.mu.Lock()
	q.dropSegments()
	q.mu.Unlock()
}

// move is one message being copied forward by compaction.
type move struct {
	e      *entry
	env    *envelope.Envelope // its state when it left the deferred heap
	src    bodySource
	prefix int // length of the record's payload before an inline body
	req    *appendReq
}

// copyForward writes a copy of each message in moves, waits for them to be durable, points the
// entries at the copies and puts them back in the deferred heap.
func (q *Queue) copyForward(moves []*move) {
	for _, m := range moves {
		placement := bodyInline
		var body []byte
		if m.src.external {
			placement = bodyExternal
		} else {
			body = make([]byte, m.src.n)
			if _, err := m.src.seg.f.ReadAt(body, m.src.off); err != nil {
				q.log.Error("queue: compaction read", "msgid", m.env.ID, "err", err)
				continue
			}
		}
		prefix, err := messagePrefix(m.env, placement)
		if err != nil {
			q.log.Error("queue: compaction encode", "msgid", m.env.ID, "err", err)
			continue
		}
		m.prefix = len(prefix)
		req := &appendReq{rec: appendRecord(nil, recMessage, prefix, body), sync: true, msg: true}
		if !q.send(req) {
			break // closed: the messages stay where they are
		}
		m.req = req
	}
	results := make([]appendResult, len(moves))
	for i, m := range moves {
		if m.req != nil {
			results[i] = q.wait(m.req)
			if results[i].err != nil {
				q.log.Error("queue: compaction write", "msgid", m.env.ID, "err", results[i].err)
			}
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, m := range moves {
		if res := results[i]; m.req != nil && res.err == nil {
			// The committer counted the copy as live in its segment.
			m.e.seg.live--
			m.e.seg = res.seg
			m.e.bodyOff = res.off + recHeaderLen + int64(m.prefix)
		}
		m.e.moving = false
		q.deferLocked(m.e)
	}
}

// List returns the envelopes of the messages queued in dir, oldest first, without opening the
// queue for writing: it is safe while a server runs (`tern queue list`, like mailq).
func List(dir string, log *slog.Logger) ([]*envelope.Envelope, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		entries map[string]*entry
		err     error
	)
	// A segment deleted under us held nothing pending, or its messages were copied to a newer
	// segment that this reading may not have listed: read again. Deletions are rare (one per
	// SegmentSize of traffic), so a few tries suffice.
	for range 100 {
		_, entries, _, err = replay(safeio.OS, filepath.Join(dir, "log"), false, log)
		if !errors.Is(err, errSegmentGone) {
			break
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	envs := make([]*envelope.Envelope, 0, len(entries))
	for _, e := range entries {
		envs = append(envs, e.env)
	}
	slices.SortFunc(envs, func(a, b *envelope.Envelope) int { return strings.Compare(a.ID, b.ID) })
	return envs, nil
}
