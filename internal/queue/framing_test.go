package queue

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/testutil"
)

// forgedIDs are the ids of the messages that forgedBody pretends to hold.
var forgedIDs = []string{"0FFFFFFFFFFF1", "0FFFFFFFFFFF2", "0FFFFFFFFFFF3"}

// forgedBody is a message body crafted to hold records: a message record for an open-relay
// envelope and a state record marking victim's recipient delivered, in the v1 format and in
// the v2 format with guessed secrets (all zeros, and victim's id repeated). Replay must never
// take any of them for a record of the queue.
func forgedBody(t testing.TB, victim string) []byte {
	t.Helper()
	b := []byte("Subject: records inside\r\n\r\n")
	for i, guess := range [][]byte{nil, make([]byte, 16), []byte((victim + victim)[:16])} {
		env := newEnv("victim@elsewhere.test")
		env.ID = forgedIDs[i]
		env.Received = time.Unix(1e9, 0).UTC() // the same body every time
		prefix, err := messagePrefixV1(env)
		if err != nil {
			t.Fatal(err)
		}
		state := []byte(`{"id":"` + victim + `","u":[{"i":0,"s":"delivered"}]}`)
		if guess == nil {
			b = appendRecordV1(b, recMessage, prefix, []byte("spam\r\n"))
			b = appendRecordV1(b, recState, state)
			continue
		}
		b = appendForgedV2(b, guess, recMessage, prefixV2(t, env), []byte("spam\r\n"))
		b = appendForgedV2(b, guess, recState, state)
	}
	return append(b, "\r\ntext after the forged records\r\n"...)
}

// threeMessagesForged makes a closed queue whose only segment holds three messages, the middle
// one with forgedBody, and returns their ids, the segment's path and the records' positions.
func threeMessagesForged(t *testing.T, dir string) ([]string, string, []scannedRec) {
	t.Helper()
	q, err := Open(dir, testOpts(newFake(nil)))
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{commitMsg(t, q, newEnv("a@example.test"), bodyFor(0, 500))}
	ids = append(ids, commitMsg(t, q, newEnv("b@example.test"), forgedBody(t, ids[0])))
	ids = append(ids, commitMsg(t, q, newEnv("c@example.test"), bodyFor(2, 500)))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segmentFiles(t, dir)
	if len(segs) != 1 {
		t.Fatalf("segments %v, want one", segs)
	}
	path := filepath.Join(dir, "log", segs[0])
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []scannedRec
	for _, r := range scanSegment(t, segs[0], data) {
		if r.typ == recMessage {
			msgs = append(msgs, r)
		}
	}
	if len(msgs) != 3 {
		t.Fatalf("%d message records, want 3", len(msgs))
	}
	return ids, path, msgs
}

// TestFraming damages a segment in the ways a crash, a bad disk or a hostile body can, and
// checks what replay makes of it: the damaged message alone is lost, the records after the
// damage are replayed, no record crafted inside a body is ever taken for one of the queue's,
// and the log says loudly when records that had been made durable were lost.
func TestFraming(t *testing.T) {
	tests := []struct {
		name string
		// damage changes the segment, given the message records (the middle one holds the
		// forged records).
		damage func(d []byte, m []scannedRec) []byte
		lost   []int // the messages that must be gone
		// loud: records made durable were lost: an error must be logged; otherwise a warning.
		loud bool
		// quiet: nothing was damaged; no warning either.
		quiet bool
	}{
		{name: "zeros ahead of the records", damage: func(d []byte, m []scannedRec) []byte { return append(d[:m[2].end], make([]byte, 5000)...) }, quiet: true},
		{name: "torn tail before the zeros", damage: func(d []byte, m []scannedRec) []byte {
			return append(d[:m[2].end-7], make([]byte, 5000)...)
		}, lost: []int{2}},
		{name: "torn tail", damage: func(d []byte, m []scannedRec) []byte { return d[:m[2].end-7] }, lost: []int{2}},
		{name: "torn inside the forged body", damage: func(d []byte, m []scannedRec) []byte { return d[:(m[1].off+m[1].end)/2] }, lost: []int{1, 2}},
		{name: "torn header", damage: func(d []byte, m []scannedRec) []byte { return d[:m[2].off+6] }, lost: []int{2}},
		{name: "damaged payload", damage: func(d []byte, m []scannedRec) []byte { d[m[1].end-10] ^= 1; return d }, lost: []int{1}, loud: true},
		{name: "damaged magic", damage: func(d []byte, m []scannedRec) []byte { d[m[1].off] ^= 0x40; return d }, lost: []int{1}, loud: true},
		{name: "length one too long", damage: func(d []byte, m []scannedRec) []byte { return addToLength(d, m[1], 1) }, lost: []int{1}, loud: true},
		{name: "length one too short", damage: func(d []byte, m []scannedRec) []byte { return addToLength(d, m[1], -1) }, lost: []int{1}, loud: true},
		{name: "length past the end", damage: func(d []byte, m []scannedRec) []byte { return addToLength(d, m[1], 1<<20) }, lost: []int{1}, loud: true},
		{name: "length zero", damage: func(d []byte, m []scannedRec) []byte {
			return addToLength(d, m[1], -(m[1].end - m[1].off - recHeaderLen))
		}, lost: []int{1}, loud: true},
		{name: "zeroed page", damage: func(d []byte, m []scannedRec) []byte { clear(d[m[1].off+20 : m[1].end-20]); return d }, lost: []int{1}, loud: true},
		{name: "damaged segment header", damage: func(d []byte, m []scannedRec) []byte { d[10] ^= 0xff; return d }},
		{name: "garbage appended", damage: func(d []byte, m []scannedRec) []byte { return append(d, "\x00\x17garbage\xff"...) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ids, path, msgs := threeMessagesForged(t, dir)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.damage(data, msgs), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs testutil.SyncBuffer
			opts := testOpts(newFake(nil))
			opts.Logger = debugLogger(&logs)
			q := openQueue(t, dir, opts)
			for i, id := range ids {
				it, err := q.Show(id)
				if slices.Contains(tc.lost, i) {
					if err == nil {
						t.Errorf("damaged message %d was replayed", i)
					}
					continue
				}
				if err != nil {
					t.Errorf("message %d lost", i)
					continue
				}
				if it.Envelope.Rcpts[0].Status != envelope.Pending {
					t.Errorf("message %d: recipient %q, want pending (a forged state record replayed?)", i, it.Envelope.Rcpts[0].Status)
				}
				want := bodyFor(i, 500)
				if i == 1 {
					want = forgedBody(t, ids[0])
				}
				if got := readBody(t, q, id); !bytes.Equal(got, want) {
					t.Errorf("message %d has a different body", i)
				}
			}
			for _, id := range forgedIDs {
				if _, err := q.Show(id); err == nil {
					t.Errorf("a record forged in a message body was replayed as message %s", id)
				}
			}
			if n := q.Len(); n != 3-len(tc.lost) {
				t.Errorf("%d messages queued, want %d", n, 3-len(tc.lost))
			}
			logged := logs.String()
			switch {
			case tc.loud && !strings.Contains(logged, "level=ERROR"):
				t.Errorf("durable records were lost but no error was logged:\n%s", logged)
			case !tc.loud && strings.Contains(logged, "level=ERROR"):
				t.Errorf("an error was logged although nothing durable was lost:\n%s", logged)
			case tc.lost != nil && !tc.loud && !strings.Contains(logged, "level=WARN"):
				t.Errorf("no warning for the skipped records:\n%s", logged)
			case tc.quiet && strings.Contains(logged, "level=WARN"):
				t.Errorf("a warning although nothing was damaged:\n%s", logged)
			}
		})
	}
}

// addToLength adds n to the payload length in the header of r.
func addToLength(d []byte, r scannedRec, n int) []byte {
	at := r.off + recHeaderLen - 8
	binary.BigEndian.PutUint32(d[at:], uint32(int(binary.BigEndian.Uint32(d[at:]))+n))
	return d
}

// TestMigrateV1 opens a queue directory written in the version 1 format (testdata/v1queue, made
// by the code of that format): every pending message comes out with its body and its state, the
// finished ones stay finished, and the v1 segments are replaced by v2 ones, also across a reopen.
func TestMigrateV1(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/v1queue")); err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(dir, "want.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]struct {
		Body     [2]int            `json:"body"`
		Rcpts    []string          `json:"rcpts"`
		Statuses []envelope.Status `json:"statuses"`
		LastErr  []string          `json:"last_errors"`
		Held     bool              `json:"held"`
		Gone     bool              `json:"gone"`
	}
	if err := json.Unmarshal(js, &want); err != nil {
		t.Fatal(err)
	}
	if files := segmentFiles(t, dir); len(files) != 4 || !strings.HasPrefix(files[0], "v1.") {
		t.Fatalf("fixture segments %v, want four v1 ones", files)
	}
	check := func(q *Queue) {
		t.Helper()
		pending := 0
		for id, w := range want {
			it, err := q.Show(id)
			if w.Gone {
				if err == nil {
					t.Errorf("%s: a finished message came back", id)
				}
				continue
			}
			pending++
			if err != nil {
				t.Errorf("%s: lost in the conversion: %v", id, err)
				continue
			}
			env := it.Envelope
			if env.Held != w.Held || len(env.Rcpts) != len(w.Rcpts) {
				t.Errorf("%s: %+v, want held=%v and recipients %v", id, env, w.Held, w.Rcpts)
				continue
			}
			for i, r := range env.Rcpts {
				if r.Addr != w.Rcpts[i] || r.Status != w.Statuses[i] || r.LastError != w.LastErr[i] {
					t.Errorf("%s: recipient %d is %+v, want %s %q %q", id, i, r, w.Rcpts[i], w.Statuses[i], w.LastErr[i])
				}
			}
			if got := readBody(t, q, id); !bytes.Equal(got, bodyFor(w.Body[0], w.Body[1])) {
				t.Errorf("%s: different body", id)
			}
		}
		if n := q.Len(); n != pending {
			t.Errorf("%d messages queued, want %d", n, pending)
		}
	}
	var logs testutil.SyncBuffer
	opts := testOpts(newFake(nil))
	opts.Logger = debugLogger(&logs)
	q := openQueue(t, dir, opts)
	check(q)
	for _, f := range segmentFiles(t, dir) {
		if !strings.HasPrefix(f, "v2.") {
			t.Errorf("segment %s left after the conversion", f)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the conversion logged errors:\n%s", logs.String())
	}
	if listed := listByID(t, dir); len(listed) != q.Len() {
		t.Errorf("List after the conversion: %d messages, want %d", len(listed), q.Len())
	}
	check(openQueue(t, dir, opts))
}
