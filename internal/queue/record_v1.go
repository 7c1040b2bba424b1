package queue

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// The version 1 format, read only: Open replays v1.<seq>.log segments once, copies their
// pending messages forward into version 2 segments and deletes them.
//
//	record: magic "TRN1" | type (1 octet) | payload length (uint32 BE) | CRC-32C (uint32 BE) | payload
//
// Message payload: uvarint length, envelope (JSON), body placement (1 octet), inline body.
// Without a secret, a record cannot be told from a body crafted to look like one; the scanner
// below therefore searches for records only where the damage leaves no other choice.
const (
	recMagicV1     = "TRN1"
	recHeaderLenV1 = 4 + 1 + 4 + 4
)

// decodeMessageV1 decodes a version 1 message record.
func decodeMessageV1(payload []byte) (decodedMessage, error) {
	js, rest, ok := cutUvarint(payload)
	if !ok || len(rest) < 1 {
		return decodedMessage{}, errors.New("queue: bad message record")
	}
	env, err := decodeEnvelope(js, rest[0])
	if err != nil {
		return decodedMessage{}, err
	}
	return decodedMessage{env: env, placement: rest[0], bodyStart: len(payload) - len(rest) + 1}, nil
}

// scannerV1 walks the records of a version 1 segment, skipping damage.
//
// A record whose header is intact but whose CRC fails is skipped whole when its end is where the
// next record or the end of the segment should be; a record that runs past the end of the
// segment is the torn tail of a crash and ends the scan. Only when the header itself is
// damaged does the scanner move on octet by octet to the next magic.
type scannerV1 struct {
	cursor
	data    []byte
	off     int // offset of the next unread octet
	skipped []stretch
}

func (s *scannerV1) next() bool {
	from := -1 // start of the damaged stretch being skipped
	for s.off+recHeaderLenV1 <= len(s.data) {
		h := s.data[s.off:]
		if from < 0 {
			from = s.off
		}
		if string(h[:4]) != recMagicV1 {
			s.off++
			continue
		}
		n := binary.BigEndian.Uint32(h[5:9])
		if n > maxRecord {
			s.off++
			continue
		}
		end := recHeaderLenV1 + int(n)
		if end > len(h) {
			break // the record being written when the process died
		}
		payload := h[recHeaderLenV1:end]
		crc := crc32.Update(0, crcTable, h[4:9])
		if crc32.Update(crc, crcTable, payload) != binary.BigEndian.Uint32(h[9:13]) {
			if next := h[end:min(end+4, len(h))]; string(next) == recMagicV1[:len(next)] {
				s.off += end // the length leads to the next record: only the payload is damaged
			} else {
				s.off++
			}
			continue
		}
		if from < s.off {
			s.skipped = append(s.skipped, stretch{from, s.off})
		}
		s.typ, s.rec, s.recOff = h[4], payload, int64(s.off+recHeaderLenV1)
		s.off += end
		return true
	}
	if from < 0 {
		from = s.off
	}
	if from < len(s.data) {
		s.skipped = append(s.skipped, stretch{from, len(s.data)})
	}
	s.off = len(s.data)
	return false
}

// damage reports every skipped stretch as torn: version 1 cannot tell.
func (s *scannerV1) damage() damageReport { return damageReport{torn: s.skipped} }
