package queue

import (
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"testing"

	"github.com/tern-mail/tern/internal/envelope"
)

// scannedRec is one valid record of a segment file.
type scannedRec struct {
	off, end int // header start, end of payload
	typ      byte
	id       string // the message id of a message or state record
}

// scanSegment returns the valid records of the segment file name holding data.
func scanSegment(t testing.TB, name string, data []byte) []scannedRec {
	t.Helper()
	_, version, ok := parseSegmentName(name)
	if !ok {
		t.Fatalf("%s is not a segment name", name)
	}
	var (
		rr     recordReader
		decode = decodeMessage
		hdr    = recHeaderLen
	)
	if version == 1 {
		rr, decode, hdr = &scannerV1{data: data}, decodeMessageV1, recHeaderLenV1
	} else {
		rr = newScanner(data)
	}
	var out []scannedRec
	for rr.next() {
		typ, rec, off := rr.record()
		r := scannedRec{off: int(off) - hdr, end: int(off) + len(rec), typ: typ}
		switch typ {
		case recMessage:
			dm, err := decode(rec)
			if err != nil {
				t.Fatalf("%s: record at %d: %v", name, r.off, err)
			}
			r.id = dm.env.ID
		case recState:
			var st stateRecord
			if err := json.Unmarshal(rec, &st); err != nil {
				t.Fatalf("%s: record at %d: %v", name, r.off, err)
			}
			r.id = st.ID
		}
		out = append(out, r)
	}
	return out
}

// messagePrefixV1 is the part of a version 1 message record before an inline body.
func messagePrefixV1(env *envelope.Envelope) ([]byte, error) {
	js, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	p := binary.AppendUvarint(nil, uint64(len(js)))
	return append(append(p, js...), bodyInline), nil
}

// appendRecordV1 appends a version 1 record, as the code before the secret wrote them.
func appendRecordV1(b []byte, typ byte, payload ...[]byte) []byte {
	n := 0
	for _, p := range payload {
		n += len(p)
	}
	h := binary.BigEndian.AppendUint32([]byte{typ}, uint32(n))
	crc := crc32.Update(0, crcTable, h)
	for _, p := range payload {
		crc = crc32.Update(crc, crcTable, p)
	}
	b = append(append(b, recMagicV1...), h...)
	b = binary.BigEndian.AppendUint32(b, crc)
	for _, p := range payload {
		b = append(b, p...)
	}
	return b
}

// prefixV2 is the part of a message record before an inline body.
func prefixV2(t testing.TB, env *envelope.Envelope) []byte {
	t.Helper()
	p, err := messagePrefix(env, nil, bodyInline)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// appendForgedV2 appends a record in the version 2 layout with the given (guessed) secret.
func appendForgedV2(b, secret []byte, typ byte, payload ...[]byte) []byte {
	start := len(b)
	b = appendRecord(b, typ, payload...)
	copy(b[start+len(recMagic):start+keyLen], secret)
	return b
}

// closeEmpty closes q and checks that nothing comes back from its directory dir: every message
// in it finished.
func closeEmpty(t testing.TB, q *Queue, dir string) {
	t.Helper()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if listed := listByID(t, dir); len(listed) != 0 {
		t.Errorf("%d finished messages come back after a restart", len(listed))
	}
}

// compactLoop runs compaction over and over, each round after step if not nil, until the stop
// it returns is called; stop waits for the loop to end.
func compactLoop(q *Queue, step func()) (stop func()) {
	stopc, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stopc:
				return
			default:
			}
			if step != nil {
				step()
			}
			q.compact()
		}
	}()
	return func() { close(stopc); <-done }
}
