package queue

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
)

// written is a record the test wrote into a segment, where the queue would have.
type written struct {
	off, end int // header start, end of payload
	typ      byte
	payload  []byte
	mark     bool // a durable mark, which the scanner does not return
}

// segmentBuilder writes a version 2 segment the way the committer does: the header, then
// batches that start with a durable mark, each record stamped with the segment's secret.
type segmentBuilder struct {
	secret [secretLen]byte
	data   []byte
	recs   []written
}

func newSegmentBuilder(t testing.TB) *segmentBuilder {
	secret, err := newSecret()
	if err != nil {
		t.Fatal(err)
	}
	return &segmentBuilder{secret: secret, data: segmentHeader(secret)}
}

// batch appends a batch of records (each a type and its payload parts).
func (b *segmentBuilder) batch(recs ...[][]byte) {
	b.add(recDurable, true, binary.BigEndian.AppendUint64(nil, uint64(len(b.data))))
	for _, r := range recs {
		b.add(r[0][0], false, bytes.Join(r[1:], nil))
	}
}

func (b *segmentBuilder) add(typ byte, mark bool, payload []byte) {
	start := len(b.data)
	b.data = appendRecord(b.data, typ, payload)
	stampSecret(b.data[start:], &b.secret)
	b.recs = append(b.recs, written{start, len(b.data), typ, payload, mark})
}

// rec is a record argument of batch.
func rec(typ byte, payload ...[]byte) [][]byte { return append([][]byte{{typ}}, payload...) }

// fuzzEnv is the envelope of message n of the fuzz segments.
func fuzzEnv(n int) *envelope.Envelope {
	return &envelope.Envelope{ID: formatID(0x18F2A3B4C5D60 + uint64(n)), From: "a@example.org", Received: time.Unix(1e9, 0),
		Rcpts: []envelope.Recipient{{Addr: "b@example.test"}}}
}

// damageSegment applies the operations ops (5 octets each: kind, position, value) to data,
// whose records are recs, and returns the result and which octets were changed.
func damageSegment(data []byte, recs []written, ops []byte) ([]byte, []bool) {
	data = bytes.Clone(data)
	touched := make([]bool, len(data))
	for len(ops) >= 5 && len(data) > 0 {
		kind, pos, val := ops[0]%4, int(binary.BigEndian.Uint16(ops[1:]))%len(data), binary.BigEndian.Uint16(ops[3:])
		ops = ops[5:]
		switch kind {
		case 0: // a flipped octet
			data[pos] ^= byte(val) | 1
			touched[pos] = true
		case 1: // a torn tail
			data, touched = data[:pos], touched[:pos]
		case 2: // a wrong length in a record's header
			r := recs[pos%len(recs)]
			at := r.off + keyLen + 1
			if at+4 > len(data) {
				continue
			}
			n := binary.BigEndian.Uint32(data[at:])
			binary.BigEndian.PutUint32(data[at:], n+uint32(int16(val)))
			for i := at; i < at+4; i++ {
				touched[i] = true
			}
		case 3: // a zeroed stretch
			end := min(len(data), pos+int(val%512)+1)
			clear(data[pos:end])
			for i := pos; i < end; i++ {
				touched[i] = true
			}
		}
	}
	return data, touched
}

// FuzzScanner builds segments the way the queue does, with message bodies chosen by the fuzzer
// (which may embed records: version 1 ones, version 2 ones with a guessed secret), damages them
// (flipped octets, torn tails, wrong lengths, zeroed stretches) and checks that the scanner
// never panics, never returns a record that the queue did not write (nothing forged in a body,
// nothing made up by damage), and finds every record that the damage left whole. Arbitrary
// data is also fed to both format versions' scanners and to replay.
func FuzzScanner(f *testing.F) {
	env := fuzzEnv(9)
	forgedV1 := appendRecordV1(nil, recMessage, must(messagePrefixV1(env)), []byte("spam"))
	forgedV2 := appendForgedV2(nil, make([]byte, secretLen), recMessage, must(messagePrefix(env, nil, bodyInline)), []byte("spam"))
	forgedState := appendForgedV2(nil, []byte("18F2A3B4C5D6018F"), recState, []byte(`{"id":"18F2A3B4C5D60","u":[{"i":0,"s":"delivered"}]}`))
	f.Add([]byte("Subject: hi\r\n\r\nbody\r\n"), []byte{})
	f.Add(forgedV1, []byte{1, 0, 200, 0, 0})                                          // torn inside the body
	f.Add(append(bytes.Clone(forgedV2), forgedState...), []byte{2, 0, 1, 0xff, 0xff}) // length one short
	f.Add(forgedState, []byte{0, 0, 40, 0, 0x40})                                     // a damaged header
	f.Add(bytes.Repeat([]byte(recMagic), 30), []byte{3, 0, 10, 0, 0xff, 2, 0, 3, 0x40, 0})
	f.Add(append(append(bytes.Clone(forgedV1), forgedV2...), forgedState...), []byte{0, 0, 5, 0, 1}) // the segment header
	f.Fuzz(func(t *testing.T, body, ops []byte) {
		log := slog.New(slog.DiscardHandler)
		// Arbitrary data: no panic, in either version; replay copes with whatever it finds.
		for _, v := range []int{1, 2} {
			replaySegment(&segment{path: "fuzz", version: v}, body, make(map[string]*entry), log)
		}

		b := newSegmentBuilder(t)
		// Garbage (the body) between a good header and good records: every record found, and
		// nothing in the garbage, which cannot know the secret.
		b.data = append(b.data, body...)
		b.batch(rec(recMessage, must(messagePrefix(fuzzEnv(0), nil, bodyInline)), []byte("x")))
		checkScan(t, b, b.data, make([]bool, len(b.data)))

		// A segment as the queue writes it, the fuzzer's body in its messages, then damaged.
		b = newSegmentBuilder(t)
		b.batch(rec(recMessage, must(messagePrefix(fuzzEnv(1), nil, bodyInline)), body))
		b.batch(rec(recState, []byte(`{"id":"`+fuzzEnv(1).ID+`","u":[{"i":0,"e":"451 later"}]}`)),
			rec(recMessage, must(messagePrefix(fuzzEnv(2), &stateRecord{ID: fuzzEnv(1).ID, DelayNotified: true}, bodyInline)), body, body))
		b.batch(rec(recMessage, must(messagePrefix(fuzzEnv(3), nil, bodyInline)), []byte("last")))
		damaged, touched := damageSegment(b.data, b.recs, ops)
		checkScan(t, b, damaged, touched)
		entries := make(map[string]*entry)
		replaySegment(&segment{path: "fuzz", version: 2}, damaged, entries, log)
		for id, e := range entries {
			if id != fuzzEnv(1).ID && id != fuzzEnv(2).ID && id != fuzzEnv(3).ID {
				t.Fatalf("replay made up message %s (secret %x)", id, b.secret)
			}
			if e.bodyOff < 0 || e.bodyOff+e.bodyLen > int64(len(damaged)) {
				t.Fatalf("message %s: body at %d+%d outside the segment", id, e.bodyOff, e.bodyLen)
			}
		}
	})
}

// checkScan scans data, b's segment after damage (touched marks the octets changed), and checks
// that every record returned is one b wrote, unchanged and where b wrote it, and that every
// record the damage left whole is returned.
func checkScan(t *testing.T, b *segmentBuilder, data []byte, touched []bool) {
	t.Helper()
	at := make(map[int]written)
	for _, w := range b.recs {
		at[w.off] = w
	}
	found := make(map[int]bool)
	sc := newScanner(data)
	for sc.next() {
		off := int(sc.recOff) - recHeaderLen
		w, ok := at[off]
		if !ok || w.mark || w.typ != sc.typ || !bytes.Equal(w.payload, sc.rec) {
			t.Fatalf("scanner returned a record the queue did not write: type %q at %d, %d octets (secret %s)",
				sc.typ, off, len(sc.rec), hex.EncodeToString(b.secret[:]))
		}
		found[off] = true
	}
	intact := func(from, to int) bool {
		if to > len(data) {
			return false
		}
		for _, c := range touched[from:to] {
			if c {
				return false
			}
		}
		return true
	}
	// Without an intact header or first record, the secret is lost and nothing can be found.
	if !intact(0, segHeaderLen) && (len(b.recs) == 0 || !intact(b.recs[0].off, b.recs[0].end)) {
		return
	}
	for _, w := range b.recs {
		if !w.mark && intact(w.off, w.end) && !found[w.off] {
			t.Fatalf("intact record at %d (type %q) not found; damage report %+v", w.off, w.typ, sc.damage())
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
