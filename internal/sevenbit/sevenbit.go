// Package sevenbit converts an 8-bit MIME message to 7 bits, for a server that does not offer
// 8BITMIME (RFC 6152 §3: convert, or return the message). Each MIME part whose body has octets
// above 127 is re-encoded, quoted-printable for text and base64 for anything else, and its
// Content-Transfer-Encoding changed; multipart and message/rfc822 entities are converted part
// by part and labelled 7bit. Everything else is left octet for octet as it was.
//
// What cannot be converted without guessing is refused: 8-bit octets in a header section (they
// would need RFC 2047 encoding in an unknown charset), in a part that already claims
// quoted-printable or base64, or in the preamble or epilogue of a multipart.
//
// # Streaming
//
// The conversion streams: whatever the size of the message, it holds a 64 KiB read buffer, the
// Content-Type and Content-Transfer-Encoding fields of the entities it is in, and one bit per
// MIME entity. Whether a part is left as it was depends on whether its body has an 8-bit octet,
// which a stream only learns at the part's end; so [New] reads the message once to note that
// bit for every entity (the plan), and once more to check that the conversion succeeds and
// count its size. Each [Message.Open] then converts afresh from the source, but for a message
// of at most 64 KiB, which that second reading keeps converted in memory. The message must read
// the same each time (a queued message does).
//
// Limits of the stream that the message as a whole never hit: more than 1,048,576 MIME entities
// (ErrStructure), and a Content-Type or Content-Transfer-Encoding field of more than 64 KiB, or a
// line longer than 64 KiB that starts like a delimiter or is all CRs, where it matters
// (ErrLongLine).
package sevenbit

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors of New and Convert that say the message cannot be converted; it must then go back
// to its sender. Any other error is the source's, when reading it.
var (
	ErrHeader    = errors.New("8-bit octets in a header section")
	ErrEncoded   = errors.New("8-bit octets in a part encoded as quoted-printable or base64")
	ErrStructure = errors.New("8-bit octets outside any MIME part, or MIME parts nested too deep or too many")
	ErrLongLine  = errors.New("a MIME header field or delimiter line too long to convert")
)

// Refused reports whether err says that the message cannot be converted (rather than that
// it could not be read).
func Refused(err error) bool {
	return errors.Is(err, ErrHeader) || errors.Is(err, ErrEncoded) || errors.Is(err, ErrStructure) || errors.Is(err, ErrLongLine)
}

const (
	maxDepth    = 32      // nesting of multiparts and messages
	maxEntities = 1 << 20 // MIME entities of a message: the plan's bits (128 KiB)
	readSize    = 64 << 10
	maxField    = 64 << 10 // a Content-Type or Content-Transfer-Encoding field kept to be read
	writeSize   = 32 << 10 // Open's buffer in front of its pipe
	maxCached   = 256 << 10
)

// Has8Bit reports whether b has an octet above 127.
func Has8Bit(b []byte) bool {
	for len(b) >= 8 { // eight octets at a time: every message goes through here two or three times
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// Source is a message that can be read more than once, from its start each time (a
// delivery.Body).
type Source interface {
	Open() (io.ReadCloser, error)
}

// Message is the 7-bit form of a Source, converted afresh at each reading. It is a
// delivery.Body.
type Message struct {
	src    Source
	plan   plan
	size   int64
	cached []byte // the converted message, when it is small
}

// New checks that src can be converted and returns its 7-bit form; it reads src twice. A
// source with a Size method of at most maxCached/4 octets is kept converted in memory (at most
// three times as large), so that reading it again costs no conversion.
func New(src Source) (*Message, error) {
	m := &Message{src: src}
	if err := m.run(nil); err != nil {
		return nil, err
	}
	var w io.Writer = io.Discard
	var cache *bytes.Buffer
	if s, ok := src.(interface{ Size() int64 }); ok && s.Size() <= maxCached/4 {
		cache = new(bytes.Buffer)
		w = cache
	}
	n, err := m.WriteTo(w)
	if err != nil {
		return nil, err
	}
	m.size = n
	if cache != nil {
		m.cached = cache.Bytes()
	}
	return m, nil
}

// Size is the size of the converted message, in octets.
func (m *Message) Size() int64 { return m.size }

// WriteTo writes the converted message to w.
func (m *Message) WriteTo(w io.Writer) (int64, error) {
	if m.cached != nil {
		n, err := w.Write(m.cached)
		return int64(n), err
	}
	out := &output{w: w}
	err := m.run(out)
	return out.n, err
}

// Open returns a reader of the converted message, which a goroutine writes until the reader
// has it all or is closed.
func (m *Message) Open() (io.ReadCloser, error) {
	if m.cached != nil {
		return io.NopCloser(bytes.NewReader(m.cached)), nil
	}
	pr, pw := io.Pipe()
	go func() {
		// The conversion parses a message from the network: a panic in it is the reader's
		// error (the delivery's, temporary), not the end of the process.
		err := errPanicked
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("%w: %v", errPanicked, v)
			}
			pw.CloseWithError(err) // nil: the reader gets io.EOF
		}()
		bw := bufio.NewWriterSize(pw, writeSize)
		_, err = m.WriteTo(bw)
		if err == nil {
			err = bw.Flush()
		}
	}()
	return pr, nil
}

// errPanicked is the error of a reader whose conversion panicked.
var errPanicked = errors.New("sevenbit: conversion panicked")

// run reads the source through: without out, to make the plan; with out, to write the
// converted message by the plan.
func (m *Message) run(out *output) error {
	rc, err := m.src.Open()
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }() // only read: a failed Close loses nothing
	c := &conv{r: bufio.NewReaderSize(rc, readSize), start: true, plan: &m.plan, out: out}
	if out == nil {
		m.plan = plan{}
	}
	return c.entity("text/plain", 0)
}

// Convert returns msg in 7 bits, or msg itself when it has no 8-bit octet.
func Convert(msg []byte) ([]byte, error) {
	if !Has8Bit(msg) {
		return msg, nil
	}
	m, err := New(bytesSource(msg))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(int(m.size))
	if _, err := m.WriteTo(&out); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

type bytesSource []byte

func (b bytesSource) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
func (b bytesSource) Size() int64                  { return int64(len(b)) }

// plan says, for each MIME entity in the order their headers start, whether its body has an
// 8-bit octet (and so is converted). The entities inside one without are dropped from it as
// soon as its end shows that: the converter copies such an entity whole and never asks.
type plan struct {
	bits []uint64
	n    int
}

// add appends an entity, without 8-bit octets so far, and returns its index.
func (p *plan) add() (int, error) {
	if p.n >= maxEntities {
		return 0, ErrStructure
	}
	i := p.n
	if i/64 >= len(p.bits) {
		p.bits = append(p.bits, 0)
	}
	p.bits[i/64] &^= 1 << (i % 64)
	p.n++
	return i, nil
}

func (p *plan) set(i int) { p.bits[i/64] |= 1 << (i % 64) }

func (p *plan) get(i int) bool { return i < p.n && p.bits[i/64]&(1<<(i%64)) != 0 }

// output counts what it writes, refuses 8-bit octets (never send what the server cannot take),
// and refuses a line that starts like the delimiter of a multipart whose part it is in, when
// that part was converted: a quoted-printable soft break can put any text at the start of a
// line, and such a line would end the part early for some readers.
type output struct {
	w      io.Writer
	n      int64
	checks [][]byte // the delimiters no line may start with
	maxLen int      // the longest of checks
	head   []byte   // the start of the line being written, up to maxLen
	inLine bool     // past the start of the line: nothing to check until its end
}

func (o *output) Write(p []byte) (int, error) {
	if Has8Bit(p) {
		return 0, ErrStructure
	}
	if len(o.checks) > 0 {
		if err := o.check(p); err != nil {
			return 0, err
		}
	}
	n, err := o.w.Write(p)
	o.n += int64(n)
	return n, err
}

func (o *output) writeString(s string) error {
	_, err := io.WriteString(o, s)
	return err
}

func (o *output) check(p []byte) error {
	for len(p) > 0 {
		if o.inLine {
			j := bytes.IndexByte(p, '\n')
			if j < 0 {
				return nil
			}
			p, o.inLine, o.head = p[j+1:], false, o.head[:0]
			continue
		}
		k := min(len(p), o.maxLen-len(o.head))
		if j := bytes.IndexByte(p[:k], '\n'); j >= 0 {
			k = j + 1
		}
		o.head, p = append(o.head, p[:k]...), p[k:]
		for _, d := range o.checks {
			if bytes.HasPrefix(o.head, d) {
				return ErrStructure
			}
		}
		switch {
		case o.head[len(o.head)-1] == '\n':
			o.head = o.head[:0]
		case len(o.head) >= o.maxLen:
			o.inLine = true
		}
	}
	return nil
}

// push and pop add and remove a check; both happen at the start of a line.
func (o *output) push(delim []byte) {
	o.checks = append(o.checks, delim)
	o.maxLen = max(o.maxLen, len(delim))
	o.head, o.inLine = o.head[:0], false
}

func (o *output) pop() {
	o.checks = o.checks[:len(o.checks)-1]
	o.maxLen = 0
	for _, d := range o.checks {
		o.maxLen = max(o.maxLen, len(d))
	}
	o.head, o.inLine = o.head[:0], false
}
