package queue

import (
	"cmp"
	"container/heap"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
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

// segFile is a segment file found in the log directory.
type segFile struct {
	seq     uint64
	version int
	path    string
}

// loaded is a segment read into memory.
type loaded struct {
	seg  *segment
	data []byte
}

// replay reads every segment in logDir, oldest first, and returns the segments, the messages
// that still have pending recipients and the highest message id in the log. With keepOpen, each
// segment's file stays open for reading bodies (the queue); without, nothing stays open (a
// listing), and a segment that the queue deleted since the directory was read gives
// errSegmentGone.
//
// The segment after the one being replayed is read first, since a tombstone at its start may
// void the end of this one (see Queue.void); so two segments at most are in memory at once.
func replay(fsys safeio.FS, logDir string, keepOpen bool, log *slog.Logger) ([]*segment, map[string]*entry, uint64, error) {
	des, err := fsys.ReadDir(logDir)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("queue: %w", err)
	}
	var files []segFile
	for _, de := range des {
		if seq, v, ok := parseSegmentName(de.Name()); ok {
			files = append(files, segFile{seq, v, filepath.Join(logDir, de.Name())})
		}
	}
	slices.SortFunc(files, func(a, b segFile) int { return cmp.Compare(a.seq, b.seq) })
	var segs []*segment
	entries := make(map[string]*entry)
	var ahead *loaded
	fail := func(err error) ([]*segment, map[string]*entry, uint64, error) {
		if ahead != nil {
			segs = append(segs, ahead.seg)
		}
		for _, s := range segs {
			if s.f != nil {
				_ = s.f.Close() // only read so far: the failure is the error to report
			}
		}
		if !keepOpen && errors.Is(err, os.ErrNotExist) {
			return nil, nil, 0, errSegmentGone
		}
		return nil, nil, 0, fmt.Errorf("queue: %w", err)
	}
	for i, sf := range files {
		cur := ahead
		ahead = nil
		if cur == nil {
			if cur, err = loadSegment(fsys, sf, keepOpen); err != nil {
				return fail(err)
			}
		}
		segs = append(segs, cur.seg)
		data := cur.data
		if i+1 < len(files) && sf.version == 2 && files[i+1].version == 2 && files[i+1].seq == sf.seq+1 {
			if ahead, err = loadSegment(fsys, files[i+1], keepOpen); err != nil {
				return fail(err)
			}
			if from, ok := voidedFrom(ahead.data, sf.seq); ok && from < len(data) {
				log.Warn("queue: skipping records refused after a failed flush", "segment", sf.path, "offset", from, "octets", len(data)-from)
				data = data[:from]
			}
		}
		replaySegment(cur.seg, data, entries, log)
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

// loadSegment reads a segment file.
func loadSegment(fsys safeio.FS, sf segFile, keepOpen bool) (*loaded, error) {
	f, err := safeio.Open(fsys, sf.path)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		_ = f.Close() // only read: the failed read is the error to report
		return nil, err
	}
	seg := &segment{seq: sf.seq, version: sf.version, path: sf.path, size: int64(len(data))}
	if keepOpen {
		seg.f = f
	} else {
		_ = f.Close() // only read, and read whole
	}
	return &loaded{seg, data}, nil
}

// voidedFrom returns the offset from which a tombstone at the start of data (the segment after
// segment seq) voids segment seq.
func voidedFrom(data []byte, seq uint64) (int, bool) {
	sc := newScanner(data)
	for sc.next() && sc.typ == recVoid {
		if len(sc.rec) == 16 && binary.BigEndian.Uint64(sc.rec) == seq {
			return int(min(binary.BigEndian.Uint64(sc.rec[8:]), math.MaxInt)), true
		}
	}
	return 0, false
}

// replaySegment applies the records of one segment to entries.
func replaySegment(seg *segment, data []byte, entries map[string]*entry, log *slog.Logger) {
	var (
		rr     recordReader
		decode = decodeMessage
	)
	if seg.version == 1 {
		rr, decode = &scannerV1{data: data}, decodeMessageV1
	} else {
		rr = newScanner(data)
	}
	for rr.next() {
		typ, rec, off := rr.record()
		switch typ {
		case recMessage:
			dm, err := decode(rec)
			if err != nil {
				log.Error("queue: unreadable message record", "segment", seg.path, "offset", off, "err", err)
				continue
			}
			if old := entries[dm.env.ID]; old != nil {
				old.seg.live-- // a copy made by compaction supersedes the original
			}
			entries[dm.env.ID] = &entry{
				env:      dm.env,
				seg:      seg,
				bodyOff:  off + int64(dm.bodyStart),
				bodyLen:  int64(len(rec) - dm.bodyStart),
				external: dm.placement == bodyExternal,
				heapIdx:  -1,
			}
			seg.live++
			// A report carries the outcome it reports: the two are one record.
			if eff := dm.effects; eff != nil && eff.ID != dm.env.ID {
				if e := entries[eff.ID]; e != nil {
					applyState(e.env, *eff)
				}
			}
		case recState:
			var st stateRecord
			if err := json.Unmarshal(rec, &st); err != nil {
				log.Error("queue: unreadable state record", "segment", seg.path, "offset", off, "err", err)
				continue
			}
			if e := entries[st.ID]; e != nil {
				applyState(e.env, st)
			} // else the message finished and its segment is gone
		}
	}
	logDamage(seg.path, rr.damage(), log)
}

// logDamage logs what replaying a segment skipped.
func logDamage(path string, d damageReport, log *slog.Logger) {
	octets := func(ss []stretch) (n int) {
		for _, s := range ss {
			n += s.to - s.from
		}
		return n
	}
	switch {
	case d.unreadable:
		log.Error("queue: segment header damaged and no record to recover its secret from: none of its records could be told from message content, so none was replayed; acknowledged mail in it is lost",
			"segment", path, "octets", octets(d.lost))
		return
	case d.headerDamaged:
		log.Warn("queue: segment header damaged; its secret was recovered from its first record", "segment", path)
	}
	if len(d.lost) > 0 {
		log.Error("queue: damaged records skipped where the log had been made durable: acknowledged mail in them is lost",
			"segment", path, "stretches", len(d.lost), "first", d.lost[0].from, "octets", octets(d.lost))
	}
	if len(d.torn) > 0 {
		// Expected once after a crash: the records being written.
		log.Warn("queue: skipped damaged or torn records (written when the server stopped, never acknowledged)",
			"segment", path, "stretches", len(d.torn), "first", d.torn[0].from, "octets", octets(d.torn))
	}
}

// applyState applies a state record to an envelope.
func applyState(env *envelope.Envelope, st stateRecord) {
	for _, u := range st.Updates {
		if u.I >= 0 && u.I < len(env.Rcpts) {
			env.Rcpts[u.I].Status = u.Status
			env.Rcpts[u.I].LastError = u.Err
			env.Rcpts[u.I].LastFailure = u.F
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
	q.stats = countStats(entries)
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
