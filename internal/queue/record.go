package queue

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/tern-mail/tern/internal/envelope"
)

// On-disk record format, in the segment files of <queue>/log:
//
//	magic "TRN1" | type (1 octet) | payload length (uint32 BE) | CRC-32C (uint32 BE) | payload
//
// The CRC covers type, length and payload, so a torn or corrupt record is recognised and
// skipped; replay then looks for the next magic and resumes there. It never looks for records
// inside a record whose header is intact (see scanner.next): a payload holds a message body,
// which is the sender's text and may be crafted to look like records.
const (
	recMagic     = "TRN1"
	recHeaderLen = 4 + 1 + 4 + 4
	// maxRecord bounds a payload on replay, so a corrupt length cannot make us allocate wildly.
	// Commit refuses a larger record, since replay would skip it.
	maxRecord = 64 << 20
	// maxInline caps Options.InlineMax, leaving room in a record for the envelope.
	maxInline = maxRecord / 2

	recMessage byte = 'M' // an accepted message: envelope, then the body or a reference to it
	recState   byte = 'S' // recipient outcomes for a message recorded earlier
)

// Body placement flags in a message record.
const (
	bodyInline   byte = 0 // the body follows the envelope in the record
	bodyExternal byte = 1 // the body is in <queue>/body/<id>
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// stateRecord is the payload of a recState record.
type stateRecord struct {
	ID      string       `json:"id"`
	Updates []rcptUpdate `json:"u,omitempty"`
	// Held, when set, holds (true) or releases (false) the message.
	Held *bool `json:"h,omitempty"`
	// DelayNotified records that the sender got a delay notice.
	DelayNotified bool `json:"dn,omitempty"`
	// Attempts and Next (Unix milliseconds) record an attempt that left the message pending:
	// how many there have been and when the next is due.
	Attempts int   `json:"n,omitempty"`
	Next     int64 `json:"t,omitempty"`
	// Due records a flush: the message is due now, whatever Next said.
	Due bool `json:"due,omitempty"`
}

// rcptUpdate is the outcome of one delivery attempt to one recipient. A Pending status records
// only the error of a temporary failure (for `tern queue list`).
type rcptUpdate struct {
	I      int             `json:"i"`
	Status envelope.Status `json:"s,omitempty"`
	Err    string          `json:"e,omitempty"`
}

// appendRecord appends a complete record to b.
func appendRecord(b []byte, typ byte, payload ...[]byte) []byte {
	n := 0
	for _, p := range payload {
		n += len(p)
	}
	start := len(b)
	b = append(b, recMagic...)
	b = append(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = append(b, 0, 0, 0, 0) // CRC, filled in below
	crc := crc32.Update(0, crcTable, b[start+4:start+9])
	for _, p := range payload {
		b = append(b, p...)
		crc = crc32.Update(crc, crcTable, p)
	}
	binary.BigEndian.PutUint32(b[start+9:start+13], crc)
	return b
}

// messagePrefix is the part of a message record's payload before an inline body.
func messagePrefix(env *envelope.Envelope, placement byte) ([]byte, error) {
	js, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	p := binary.AppendUvarint(make([]byte, 0, len(js)+11), uint64(len(js)))
	p = append(p, js...)
	return append(p, placement), nil
}

// decodedMessage is a message record read back.
type decodedMessage struct {
	env       *envelope.Envelope
	placement byte
	bodyStart int // offset of the inline body within the payload
}

func decodeMessage(payload []byte) (decodedMessage, error) {
	n, k := binary.Uvarint(payload)
	// The envelope and the placement octet must fit: n <= len-k-1, written so that it cannot
	// wrap when the varint is the whole payload.
	if k <= 0 || n >= uint64(len(payload)-k) {
		return decodedMessage{}, errors.New("queue: bad message record")
	}
	env := new(envelope.Envelope)
	if err := json.Unmarshal(payload[k:k+int(n)], env); err != nil {
		return decodedMessage{}, fmt.Errorf("queue: bad envelope: %w", err)
	}
	if env.ID == "" || !validID(env.ID) {
		return decodedMessage{}, errors.New("queue: bad message id")
	}
	pl := payload[k+int(n)]
	if pl != bodyInline && pl != bodyExternal {
		return decodedMessage{}, errors.New("queue: bad body placement")
	}
	return decodedMessage{env: env, placement: pl, bodyStart: k + int(n) + 1}, nil
}

// scanner walks the records of one segment, held in memory, skipping damage.
//
// A record whose header is intact but whose CRC fails is skipped whole when its end is where the
// next record or the end of the segment should be; a record that runs past the end of the
// segment is the torn tail of a crash and ends the scan. Only when the header itself is
// damaged does the scanner move on octet by octet to the next magic. So the payload of a
// damaged record, which may hold a body crafted to look like records, is not searched for
// records unless its header's length is damaged too.
type scanner struct {
	data   []byte
	off    int // offset of the next unread octet
	skips  int // damaged stretches skipped
	typ    byte
	rec    []byte // payload of the current record
	recOff int64  // offset of the current record's payload in the segment
}

// next advances to the next valid record; false at the end of the segment.
func (s *scanner) next() bool {
	damaged := false
	for s.off+recHeaderLen <= len(s.data) {
		h := s.data[s.off:]
		if string(h[:4]) != recMagic {
			damaged = true
			s.off++
			continue
		}
		n := binary.BigEndian.Uint32(h[5:9])
		if n > maxRecord {
			damaged = true
			s.off++
			continue
		}
		end := recHeaderLen + int(n)
		if end > len(h) {
			// The record being written when the process died: nothing after this header is a
			// record of its own.
			break
		}
		payload := h[recHeaderLen:end]
		crc := crc32.Update(0, crcTable, h[4:9])
		if crc32.Update(crc, crcTable, payload) != binary.BigEndian.Uint32(h[9:13]) {
			damaged = true
			if next := h[end:min(end+4, len(h))]; string(next) == recMagic[:len(next)] {
				// The length leads to the next record (or the end): it is right, and only the
				// payload is damaged.
				s.off += end
			} else {
				s.off++
			}
			continue
		}
		if damaged {
			s.skips++
		}
		s.typ, s.rec, s.recOff = h[4], payload, int64(s.off+recHeaderLen)
		s.off += end
		return true
	}
	if damaged || s.off < len(s.data) {
		s.skips++ // a torn tail: the record being written when the process died
	}
	s.off = len(s.data)
	return false
}
