package queue

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/testutil"
)

// TestSegmentZeroedAhead: the active segment's file is filled with zeros ahead of its records,
// a step at a time and never past the segment size, and replay takes the zeros for space not
// written yet: every message comes back and nothing is reported damaged.
func TestSegmentZeroedAhead(t *testing.T) {
	for _, segSize := range []int64{DefaultSegmentSize, 48 << 10} {
		dir := t.TempDir()
		opts := testOpts(newFake(nil))
		opts.SegmentSize = segSize
		q := openQueue(t, dir, opts)
		var ids []string
		fileSize := func() (written, onDisk int64) {
			q.mu.Lock()
			seg := q.segs[len(q.segs)-1]
			written = seg.size
			q.mu.Unlock()
			fi, err := os.Stat(seg.path)
			if err != nil {
				t.Fatal(err)
			}
			return written, fi.Size()
		}
		// Past one step of zeros (or, with small segments, across several segments).
		for i := range 60 {
			ids = append(ids, commitMsg(t, q, newEnv("a@example.test"), bodyFor(i, 100<<10)))
			written, onDisk := fileSize()
			switch ahead := onDisk - written; {
			case onDisk > max(segSize, written):
				t.Fatalf("segment size %d: %d octets on disk after %d written, past the segment size", segSize, onDisk, written)
			case ahead < min(preallocStep/2, segSize-written):
				t.Fatalf("segment size %d: %d octets on disk after %d written: zeros only %d ahead", segSize, onDisk, written, ahead)
			}
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		var logs testutil.SyncBuffer
		opts.Logger = debugLogger(&logs)
		q = openQueue(t, dir, opts)
		for i, id := range ids {
			if got := readBody(t, q, id); string(got) != string(bodyFor(i, 100<<10)) {
				t.Fatalf("segment size %d: message %d came back different", segSize, i)
			}
		}
		if l := logs.String(); strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			t.Errorf("segment size %d: replay reported damage:\n%s", segSize, l)
		}
		segs := segmentFiles(t, dir)
		if len(segs) == 0 {
			t.Fatal("no segments")
		}
		if segSize < preallocStep {
			continue
		}
		// What preallocation is for: the records are written over zeros already there.
		fi, err := os.Stat(filepath.Join(dir, "log", segs[0]))
		if err != nil || fi.Size() < 60*(100<<10)+preallocStep/2 {
			t.Errorf("first segment: %v %v, want zeros ahead of 60 x 100 KiB", fi.Size(), err)
		}
	}
}
