package bench

import (
	"io"
	"strconv"
	"time"
)

// message is the text every bench message shares, made once per run: only the Message-ID
// differs between messages, so making one costs an append of a number into a buffer the
// worker keeps, and the generator is never what a run measures.
type message struct {
	head   []byte // the header fields before the Message-ID's number
	tail   []byte // the rest of the Message-ID field and the blank line
	body   []byte // the body: lines of text that add up to the --size
	digits int    // the width the sequence number is padded to, so every message has one size
}

// fillerLine is what the body repeats: 76 printable characters and CRLF, and no line starts
// with a dot (dot-stuffing would change the octets sent).
const fillerLine = "The quick brown fox jumps over the lazy dog. 0123456789 tern bench filler...\r\n"

// newMessage builds the shared text for messages of size octets (at least the header) from
// from to the first of to; total is the most messages the run sends (0: unbounded), which
// sets the width of the sequence number.
func newMessage(size int, from, to, runID string, now time.Time, total int) *message {
	m := &message{digits: 10}
	if total > 0 {
		m.digits = len(strconv.Itoa(total))
	}
	m.head = []byte("Date: " + now.Format(time.RFC1123Z) + "\r\n" +
		"From: <" + from + ">\r\n" +
		"To: <" + to + ">\r\n" +
		"Subject: tern bench\r\n" +
		"Message-ID: <bench.")
	m.tail = []byte("." + runID + "@tern.bench>\r\n\r\n")
	n := max(size-len(m.head)-m.digits-len(m.tail), 2)
	m.body = make([]byte, 0, n)
	for len(m.body)+len(fillerLine) <= n {
		m.body = append(m.body, fillerLine...)
	}
	if rest := n - len(m.body); rest > 0 {
		// The last line: as much filler as fits, then its CRLF.
		m.body = append(m.body, fillerLine[:max(rest-2, 0)]...)
		m.body = append(m.body, "\r\n"[:min(rest, 2)]...)
	}
	return m
}

// size is the octets of each message.
func (m *message) size() int { return len(m.head) + m.digits + len(m.tail) + len(m.body) }

// header appends the header section of message seq to buf.
func (m *message) header(buf []byte, seq int64) []byte {
	buf = append(buf, m.head...)
	s := strconv.FormatInt(seq, 10)
	for i := len(s); i < m.digits; i++ {
		buf = append(buf, '0')
	}
	buf = append(buf, s...)
	return append(buf, m.tail...)
}

// msgReader reads a header and a body without copying them into one buffer; smtpclient's
// io.Copy takes its WriteTo, so a message is two writes into the dot-stuffer.
type msgReader struct {
	parts [2][]byte
	i     int // the part being read
	off   int // in it
}

func (r *msgReader) reset(head, body []byte) {
	r.parts, r.i, r.off = [2][]byte{head, body}, 0, 0
}

func (r *msgReader) Read(p []byte) (int, error) {
	for r.i < len(r.parts) && r.off == len(r.parts[r.i]) {
		r.i, r.off = r.i+1, 0
	}
	if r.i == len(r.parts) {
		return 0, io.EOF
	}
	n := copy(p, r.parts[r.i][r.off:])
	r.off += n
	return n, nil
}

func (r *msgReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for ; r.i < len(r.parts); r.i, r.off = r.i+1, 0 {
		n, err := w.Write(r.parts[r.i][r.off:])
		total += int64(n)
		r.off += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
