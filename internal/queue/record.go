package queue

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/tern-mail/tern/internal/envelope"
)

// On-disk format, version 2, in the segment files <queue>/log/v2.<seq>.log:
//
//	segment header: "TERNLOG2" | secret (16 octets) | CRC-32C of the 24 octets before (uint32 BE)
//	record:         "TRN2" | secret (16) | type (1) | payload length (uint32 BE) | CRC-32C (uint32 BE) | payload
//
// The secret is drawn from crypto/rand when the segment is created and never leaves the
// queue directory. Every record of the segment carries it, so that the records can be told
// from their payloads: a payload holds a message body, which is the sender's text and may be
// crafted to look like records, but no sender can know the secret. Replay therefore never
// takes anything for a record that does not start with magic+secret, and after damage it can
// resynchronise by searching for the next magic+secret, which only a record header holds. The
// CRC (type, length and payload; computed by the session, off the committer's path) detects
// damage; it is not what makes records unforgeable.
//
// A record is one of:
//
//   - recMessage: an accepted message. Payload: uvarint length, envelope (JSON); uvarint
//     length, effects (JSON, may be empty); body placement (1 octet); the inline body. The
//     effects are a state record about another message that takes effect with this one: a
//     delivery report carries the outcome it reports (see reports.go).
//   - recState: recipient outcomes and other changes for a message recorded earlier (JSON).
//   - recVoid: a tombstone, always the first record of a segment: the records of the previous
//     segment from a given offset on were refused (their fdatasync failed) and must not be
//     replayed. Payload: that segment's sequence number and the offset (uint64 BE each).
//   - recDurable: the first record of every batch the committer writes: how much of the
//     segment had been made durable before the batch (uint64 BE). Replay uses it to tell the
//     torn tail of a crash from damage to records that had been acknowledged.
//
// Version 1 (v1.<seq>.log; record_v1.go) had no segment header and no secret; its segments are
// replayed once at Open and their pending messages copied forward into version 2.
const (
	segMagic     = "TERNLOG2"
	secretLen    = 16
	segHeaderLen = 8 + secretLen + 4 // magic, secret, CRC

	recMagic     = "TRN2"
	keyLen       = 4 + secretLen // magic and secret: what every record header starts with
	recHeaderLen = keyLen + 1 + 4 + 4
	// maxRecord bounds a payload on replay, so a corrupt length cannot make us allocate wildly.
	// Commit refuses a larger record, since replay would skip it.
	maxRecord = 64 << 20
	// maxInline caps Options.InlineMax, leaving room in a record for the envelope.
	maxInline = maxRecord / 2

	recMessage byte = 'M'
	recState   byte = 'S'
	recVoid    byte = 'V'
	recDurable byte = 'D'
)

// Body placement flags in a message record.
const (
	bodyInline   byte = 0 // the body follows the envelope in the record
	bodyExternal byte = 1 // the body is in <queue>/body/<id>
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// stateRecord is the payload of a recState record, and the effects of a message record.
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
	// F is the failure as a report may show it (envelope.Recipient.LastFailure).
	F *envelope.Failure `json:"f,omitempty"`
}

// newSecret returns a fresh segment secret.
func newSecret() ([secretLen]byte, error) {
	var s [secretLen]byte
	_, err := rand.Read(s[:])
	return s, err
}

// segmentHeader returns the header of a segment with secret.
func segmentHeader(secret [secretLen]byte) []byte {
	h := append([]byte(segMagic), secret[:]...)
	return binary.BigEndian.AppendUint32(h, crc32.Checksum(h, crcTable))
}

// appendRecord appends a complete record to b, with a zero secret: the committer stamps the
// segment's secret into it (stampSecret) when it knows the segment. The CRC does not cover the
// secret, so that the session can compute it.
func appendRecord(b []byte, typ byte, payload ...[]byte) []byte {
	n := 0
	for _, p := range payload {
		n += len(p)
	}
	start := len(b)
	b = appendHeader(b, typ, n)
	crc := crc32.Update(0, crcTable, b[start+keyLen:start+keyLen+5])
	for _, p := range payload {
		b = append(b, p...)
		crc = crc32.Update(crc, crcTable, p)
	}
	binary.BigEndian.PutUint32(b[start+keyLen+5:start+recHeaderLen], crc)
	return b
}

// appendHeader appends a record header with a zero secret and CRC.
func appendHeader(b []byte, typ byte, n int) []byte {
	var zero [secretLen + 1 + 4 + 4]byte
	b = append(b, recMagic...)
	b = append(b, zero[:]...)
	start := len(b) - len(zero)
	b[start+secretLen] = typ
	binary.BigEndian.PutUint32(b[start+secretLen+1:], uint32(n))
	return b
}

// stampSecret writes secret into the header of the record that starts rec.
func stampSecret(rec []byte, secret *[secretLen]byte) {
	copy(rec[len(recMagic):keyLen], secret[:])
}

// appendUint64Record appends a record whose payload is the numbers vs (recVoid, recDurable),
// built in place: the committer writes one per batch.
func appendUint64Record(b []byte, typ byte, vs ...uint64) []byte {
	start := len(b)
	b = appendHeader(b, typ, 8*len(vs))
	for _, v := range vs {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	crc := crc32.Update(0, crcTable, b[start+keyLen:start+keyLen+5])
	crc = crc32.Update(crc, crcTable, b[start+recHeaderLen:])
	binary.BigEndian.PutUint32(b[start+keyLen+5:start+recHeaderLen], crc)
	return b
}

// messagePrefix is the part of a message record's payload before an inline body. effects may
// be nil.
func messagePrefix(env *envelope.Envelope, effects *stateRecord, placement byte) ([]byte, error) {
	js, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	var eff []byte
	if effects != nil {
		if eff, err = json.Marshal(effects); err != nil {
			return nil, err
		}
	}
	p := make([]byte, 0, len(js)+len(eff)+2*binary.MaxVarintLen64+1)
	p = binary.AppendUvarint(p, uint64(len(js)))
	p = append(p, js...)
	p = binary.AppendUvarint(p, uint64(len(eff)))
	p = append(p, eff...)
	return append(p, placement), nil
}

// decodedMessage is a message record read back.
type decodedMessage struct {
	env       *envelope.Envelope
	effects   *stateRecord // nil when the record has none
	placement byte
	bodyStart int // offset of the inline body within the payload
}

// decodeMessage decodes a version 2 message record.
func decodeMessage(payload []byte) (decodedMessage, error) {
	js, rest, ok := cutUvarint(payload)
	if !ok {
		return decodedMessage{}, errors.New("queue: bad message record")
	}
	eff, rest, ok := cutUvarint(rest)
	if !ok || len(rest) < 1 {
		return decodedMessage{}, errors.New("queue: bad message record")
	}
	dm := decodedMessage{placement: rest[0], bodyStart: len(payload) - len(rest) + 1}
	var err error
	if dm.env, err = decodeEnvelope(js, dm.placement); err != nil {
		return decodedMessage{}, err
	}
	if len(eff) > 0 {
		dm.effects = new(stateRecord)
		if err := json.Unmarshal(eff, dm.effects); err != nil {
			return decodedMessage{}, fmt.Errorf("queue: bad effects: %w", err)
		}
	}
	return dm, nil
}

// cutUvarint splits p into the field of the length its uvarint prefix gives and the rest.
func cutUvarint(p []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return nil, nil, false
	}
	return p[k : k+int(n)], p[k+int(n):], true
}

// decodeEnvelope checks what every message record version needs of its envelope.
func decodeEnvelope(js []byte, placement byte) (*envelope.Envelope, error) {
	env := new(envelope.Envelope)
	if err := json.Unmarshal(js, env); err != nil {
		return nil, fmt.Errorf("queue: bad envelope: %w", err)
	}
	if env.ID == "" || !validID(env.ID) {
		return nil, errors.New("queue: bad message id")
	}
	if placement != bodyInline && placement != bodyExternal {
		return nil, errors.New("queue: bad body placement")
	}
	return env, nil
}

// recordReader walks the valid records of one segment held in memory.
type recordReader interface {
	// next advances to the next valid record; false at the end of the segment.
	next() bool
	// record is the current record: its type, payload and the payload's offset in the segment.
	record() (typ byte, payload []byte, off int64)
	// damage reports what was skipped, once next has returned false.
	damage() damageReport
}

// damageReport says what a reader skipped. Lost stretches held records that had been made
// durable (acknowledged mail may be gone: a disk error, or a file changed behind our back);
// torn ones were being written when the server stopped (the torn tail of a crash: expected).
type damageReport struct {
	lost, torn []stretch
	// unreadable is set when the segment's header is damaged and its secret could not be
	// found: none of its records could be told from a body, so none was replayed.
	unreadable bool
	// headerDamaged is set when the header was damaged but the secret was recovered from the
	// first record.
	headerDamaged bool
}

// stretch is a range of octets of a segment.
type stretch struct{ from, to int }

// cursor holds the current record of a reader.
type cursor struct {
	typ    byte
	rec    []byte
	recOff int64
}

func (c *cursor) record() (byte, []byte, int64) { return c.typ, c.rec, c.recOff }

// scanner reads a version 2 segment.
type scanner struct {
	cursor
	data          []byte
	key           []byte // magic and secret: what every record of this segment starts with
	off           int    // offset of the next unread octet
	skipped       []stretch
	durable       int // the most the records' durable marks say was made durable
	headerDamaged bool
	unreadable    bool
}

// newScanner starts reading a version 2 segment. When the segment header is damaged, the
// secret is taken from the first record, which lies right after the header: a record found
// there is one the committer wrote, not one found by searching a body.
func newScanner(data []byte) *scanner {
	s := &scanner{data: data, off: len(data)}
	switch {
	case len(data) < segHeaderLen:
		// A crash while the segment was being created: nothing in it was ever acknowledged.
		s.skip(0)
	case string(data[:len(segMagic)]) == segMagic &&
		crc32.Checksum(data[:segHeaderLen-4], crcTable) == binary.BigEndian.Uint32(data[segHeaderLen-4:]):
		s.key = append([]byte(recMagic), data[len(segMagic):len(segMagic)+secretLen]...)
		s.off = segHeaderLen
	default:
		s.headerDamaged = true
		first := data[segHeaderLen:]
		if len(first) >= recHeaderLen && string(first[:len(recMagic)]) == recMagic && validRecord(first) {
			s.key = bytes.Clone(first[:keyLen])
			s.off = segHeaderLen
		} else if len(first) > 0 {
			s.unreadable = true
			s.skip(0)
		}
	}
	return s
}

// validRecord reports whether h starts with a whole record whose CRC is right.
func validRecord(h []byte) bool {
	n := binary.BigEndian.Uint32(h[keyLen+1:])
	if n > maxRecord || int(n) > len(h)-recHeaderLen {
		return false
	}
	crc := crc32.Update(0, crcTable, h[keyLen:keyLen+5])
	return crc32.Update(crc, crcTable, h[recHeaderLen:recHeaderLen+int(n)]) == binary.BigEndian.Uint32(h[keyLen+5:])
}

func (s *scanner) next() bool {
	for s.off < len(s.data) {
		h := s.data[s.off:]
		if len(h) < recHeaderLen || !bytes.HasPrefix(h, s.key) || !validRecord(h) {
			// A torn or damaged record, or one whose length is wrong: the next record is
			// wherever the next magic+secret is (a payload cannot hold one), whatever the
			// length said. Only when none follows is this the end of the segment.
			s.resync()
			continue
		}
		n := int(binary.BigEndian.Uint32(h[keyLen+1:]))
		s.typ, s.rec, s.recOff = h[keyLen], h[recHeaderLen:recHeaderLen+n], int64(s.off+recHeaderLen)
		s.off += recHeaderLen + n
		if s.typ == recDurable {
			if len(s.rec) == 8 {
				s.durable = max(s.durable, int(min(binary.BigEndian.Uint64(s.rec), uint64(len(s.data)))))
			}
			continue
		}
		return true
	}
	return false
}

// resync skips from the current offset to the next record header, or to the end. Zeros from
// there to the end, past what the durable marks say was flushed, are no damage: they are the
// space the committer fills ahead of its records (Queue.preallocate), not written yet.
func (s *scanner) resync() {
	from := s.off
	if i := bytes.Index(s.data[from+1:], s.key); i >= 0 {
		s.off = from + 1 + i
	} else {
		s.off = len(s.data)
		if from >= s.durable && allZero(s.data[from:]) {
			return
		}
	}
	s.skip(from)
}

func allZero(b []byte) bool { return len(bytes.TrimLeft(b, "\x00")) == 0 }

// skip notes that the octets from from to s.off were skipped.
func (s *scanner) skip(from int) {
	if s.off <= from {
		return
	}
	if n := len(s.skipped); n > 0 && s.skipped[n-1].to == from {
		s.skipped[n-1].to = s.off
		return
	}
	s.skipped = append(s.skipped, stretch{from, s.off})
}

func (s *scanner) damage() damageReport {
	r := damageReport{unreadable: s.unreadable, headerDamaged: s.headerDamaged}
	for _, st := range s.skipped {
		// Behind a damaged header the durable marks themselves may be wrong: assume the worst.
		if st.from < s.durable || s.unreadable || s.headerDamaged {
			r.lost = append(r.lost, st)
		} else {
			r.torn = append(r.torn, st)
		}
	}
	return r
}
