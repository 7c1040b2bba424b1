package testutil

import "io"

// eightBitHeader and eightBitLine make an EightBitBody: UTF-8 text labelled 8bit, with
// octets above 127 on every line, so that a server without 8BITMIME gets it converted.
const (
	eightBitHeader = "MIME-Version: 1.0\r\nSubject: large 8-bit\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
	eightBitLine   = "Gr\u00fc\u00dfe aus K\u00f6ln = 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"
)

// EightBitBody is an 8-bit message body (a delivery.Body) of that many octets, read without
// any allocation, like LargeBody: each Open reads it from the start.
type EightBitBody int64

// Open implements delivery.Body.
func (b EightBitBody) Open() (io.ReadCloser, error) { return io.NopCloser(b.Reader()), nil }

// Reader returns a reader of the message.
func (b EightBitBody) Reader() io.Reader { return &eightBitReader{size: int64(b)} }

// Size implements delivery.Body.
func (b EightBitBody) Size() int64 { return int64(b) }

// EightBitSize is the size of the EightBitBody of whole lines nearest below n octets.
func EightBitSize(n int64) int64 {
	h, l := int64(len(eightBitHeader)), int64(len(eightBitLine))
	return h + max(n-h, 0)/l*l
}

type eightBitReader struct{ size, off int64 }

func (r *eightBitReader) Read(p []byte) (int, error) {
	return readRepeated(p, eightBitHeader, eightBitLine, &r.off, r.size)
}
