package queue

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
)

// scanAll returns every record the scanner finds in data, checking each one's framing.
func scanAll(t *testing.T, data []byte) (recs []span, skips int) {
	t.Helper()
	sc := scanner{data: data}
	for sc.next() {
		off := int(sc.recOff) - recHeaderLen
		if off < 0 || int(sc.recOff)+len(sc.rec) > len(data) {
			t.Fatalf("record at %d runs outside the data", off)
		}
		h := data[off:]
		if string(h[:4]) != recMagic || h[4] != sc.typ || int(binary.BigEndian.Uint32(h[5:9])) != len(sc.rec) {
			t.Fatalf("record at %d: header does not match", off)
		}
		crc := crc32.Update(crc32.Update(0, crcTable, h[4:9]), crcTable, sc.rec)
		if crc != binary.BigEndian.Uint32(h[9:13]) {
			t.Fatalf("record at %d returned with a bad CRC", off)
		}
		if len(recs) > 0 && off < recs[len(recs)-1].end {
			t.Fatalf("record at %d overlaps the previous one", off)
		}
		recs = append(recs, span{off, int(sc.recOff) + len(sc.rec), sc.typ})
	}
	return recs, sc.skips
}

// FuzzScanner feeds the record scanner arbitrary segment contents. It must never panic, must
// return only records with a valid CRC, must find valid records that follow garbage, and must
// not look inside a torn record for more records.
func FuzzScanner(f *testing.F) {
	env := &envelope.Envelope{ID: "18F2A3B4C5D6E", From: "a@example.org", Received: time.Unix(1e9, 0),
		Rcpts: []envelope.Recipient{{Addr: "b@example.test"}}}
	prefix, err := messagePrefix(env, bodyInline)
	if err != nil {
		f.Fatal(err)
	}
	msg := appendRecord(nil, recMessage, prefix, []byte("Subject: hi\r\n\r\nbody\r\n"))
	state := appendRecord(nil, recState, []byte(`{"id":"18F2A3B4C5D6E","u":[{"i":0,"s":"delivered"}]}`))
	f.Add([]byte{}, []byte("payload"))
	f.Add(msg, []byte("x"))
	f.Add(append(bytes.Clone(msg), state...), append(bytes.Clone(prefix), "body"...))
	f.Add(msg[:len(msg)-3], state)                           // a torn tail
	f.Add([]byte("TRN1M\xff\xff\xff\xffgarbage"), []byte{5}) // absurd length; a one-octet message payload
	f.Add([]byte("TRN1S\x00\x00\x00\x02\x00\x00\x00\x00{}"), []byte{0})
	f.Add(bytes.Repeat([]byte("TRN1"), 20), append(bytes.Clone(msg), msg...)) // records in a payload
	f.Fuzz(func(t *testing.T, data, payload []byte) {
		// Arbitrary data: no panic, only valid records; replay copes with whatever they hold.
		scanAll(t, data)
		seg := &segment{path: "fuzz"}
		log := slog.New(slog.DiscardHandler)
		replaySegment(seg, data, make(map[string]*entry), log)
		for _, typ := range []byte{recMessage, recState} {
			replaySegment(seg, appendRecord(nil, typ, payload), make(map[string]*entry), log)
		}

		// Valid records after garbage are found, whole and in order. The garbage holds no
		// magic, as a stretch of damage found by resyncing would not.
		garbage := bytes.ReplaceAll(data, []byte(recMagic), []byte("TRNx"))
		r1 := appendRecord(nil, recMessage, payload)
		r2 := appendRecord(nil, recState, payload, []byte("!"))
		all := append(append(bytes.Clone(garbage), r1...), r2...)
		recs, skips := scanAll(t, all)
		want := []span{
			{len(garbage), len(garbage) + len(r1), recMessage},
			{len(garbage) + len(r1), len(all), recState},
		}
		if len(recs) != 2 || recs[0] != want[0] || recs[1] != want[1] {
			t.Fatalf("records after %d octets of garbage: %v, want %v", len(garbage), recs, want)
		}
		if wantSkips := min(len(garbage), 1); skips != wantSkips {
			t.Fatalf("%d damaged stretches reported, want %d", skips, wantSkips)
		}

		// A torn last record: what precedes it is intact, nothing inside it is a record.
		for _, cut := range []int{1, len(r2) / 2, len(r2) - recHeaderLen} {
			if cut <= 0 || cut >= len(r2) {
				continue
			}
			torn := append(bytes.Clone(r1), r2[:len(r2)-cut]...)
			recs, skips := scanAll(t, torn)
			if len(recs) != 1 || recs[0] != (span{0, len(r1), recMessage}) {
				t.Fatalf("torn tail cut by %d: records %v, want only the first", cut, recs)
			}
			if skips != 1 {
				t.Fatalf("torn tail cut by %d: %d damaged stretches, want 1", cut, skips)
			}
		}
	})
}
