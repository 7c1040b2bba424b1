package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tern-mail/tern/internal/envelope"
)

// replay reads every segment in logDir, oldest first, and returns the segments and the messages
// that still have pending recipients. With keepOpen, each segment's file stays open for reading
// bodies (the queue); without, nothing stays open (a listing).
func replay(logDir string, keepOpen bool, log *slog.Logger) ([]*segment, map[string]*entry, error) {
	des, err := os.ReadDir(logDir)
	if err != nil {
		return nil, nil, fmt.Errorf("queue: %w", err)
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
		f, err := os.Open(seg.path)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("queue: %w", err)
		}
		data, err := io.ReadAll(f)
		if err != nil {
			f.Close()
			closeAll()
			return nil, nil, fmt.Errorf("queue: %w", err)
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
	for id, e := range entries {
		if e.env.Done() {
			delete(entries, id)
			e.seg.live--
		}
	}
	return segs, entries, nil
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
			for _, u := range st.Updates {
				if u.I >= 0 && u.I < len(e.env.Rcpts) {
					e.env.Rcpts[u.I].Status = u.Status
					e.env.Rcpts[u.I].LastError = u.Err
				}
			}
		}
	}
	if sc.skips > 0 {
		// Expected once after a crash (the record being written); more means damage.
		log.Warn("queue: skipped damaged or torn records", "segment", seg.path, "stretches", sc.skips)
	}
}

// recover replays the log into the queue, makes every pending message due and removes body
// files that no record refers to (bodies of messages that never got their 250).
func (q *Queue) recover() error {
	segs, entries, err := replay(q.logDir(), true, q.log)
	if err != nil {
		return err
	}
	q.segs, q.entries = segs, entries
	for id, e := range entries {
		q.ids.observe(id)
		if e.external {
			if _, err := os.Stat(filepath.Join(q.bodyDir(), bodyName(id))); err != nil {
				// Cannot happen unless someone removed the file: say so loudly, the mail is gone.
				q.log.Error("queue: body file of a queued message is missing", "msgid", id, "err", err)
				delete(entries, id)
				e.seg.live--
				continue
			}
		}
		q.ready = append(q.ready, e)
	}
	slices.SortFunc(q.ready, func(a, b *entry) int { return strings.Compare(a.env.ID, b.env.ID) })
	if len(q.ready) > 0 {
		q.log.Info("queue: recovered messages", "messages", len(q.ready))
	}
	des, err := os.ReadDir(q.bodyDir())
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	for _, de := range des {
		id, ok := strings.CutPrefix(de.Name(), "v1.")
		if e := entries[id]; ok && e != nil && e.external {
			continue
		}
		if err := os.Remove(filepath.Join(q.bodyDir(), de.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("queue: %w", err)
		}
	}
	return nil
}

// compact copies the pending messages of the oldest segment forward into the active one once
// the log has moved two segments on, so that the oldest can be deleted.
func (q *Queue) compact() {
	q.mu.Lock()
	if len(q.segs) < 3 {
		q.mu.Unlock()
		return
	}
	old := q.segs[0]
	type move struct {
		e   *entry
		env *envelope.Envelope
	}
	var moves []move
	for _, e := range q.entries {
		if e.seg == old && !e.busy {
			moves = append(moves, move{e, e.env.Clone()})
		}
	}
	q.mu.Unlock()
	for _, m := range moves {
		placement := bodyInline
		var body []byte
		if m.e.external {
			placement = bodyExternal
		} else {
			body = make([]byte, m.e.bodyLen)
			if _, err := old.f.ReadAt(body, m.e.bodyOff); err != nil {
				q.log.Error("queue: compaction read", "msgid", m.env.ID, "err", err)
				continue
			}
		}
		prefix, err := messagePrefix(m.env, placement)
		if err != nil {
			continue
		}
		res := q.append(&appendReq{rec: appendRecord(nil, recMessage, prefix, body), sync: true})
		if res.err != nil {
			q.log.Error("queue: compaction write", "msgid", m.env.ID, "err", res.err)
			return
		}
		q.mu.Lock()
		// A message that finished or started an attempt meanwhile stays where it was: the copy
		// is then only a harmless duplicate that replay supersedes with later state records.
		if q.entries[m.env.ID] == m.e && !m.e.busy && m.e.seg == old {
			old.live--
			m.e.seg = res.seg
			m.e.bodyOff = res.off + recHeaderLen + int64(len(prefix))
			res.seg.live++
		}
		q.mu.Unlock()
	}
	q.mu.Lock()
	q.dropSegments()
	q.mu.Unlock()
}

// List returns the envelopes of the messages queued in dir, oldest first, without opening the
// queue for writing: it is safe while a server runs (`tern queue list`, like mailq).
func List(dir string, log *slog.Logger) ([]*envelope.Envelope, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	_, entries, err := replay(filepath.Join(dir, "log"), false, log)
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
