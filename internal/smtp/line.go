package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Errors of the line and data readers. A reader that returns one of the content errors has
// consumed the offending input up to its end (the end of the line, or the end of DATA), so the
// session stays in step with the client and can answer and go on.
var (
	ErrLineTooLong = errors.New("smtp: line too long")
	ErrBareLF      = errors.New("smtp: bare LF")
	ErrBareCR      = errors.New("smtp: bare CR")
	ErrNUL         = errors.New("smtp: NUL octet")
	ErrTooBig      = errors.New("smtp: message too big")
)

// ReadLine reads one CRLF-terminated line of at most max octets (CRLF included) and returns it
// without the CRLF. The slice is only valid until the next read from r.
//
// A longer line is consumed to its end and reported as ErrLineTooLong. A line ended by a bare
// LF, or holding a bare CR, is reported as ErrBareLF or ErrBareCR: accepting either is what made
// SMTP smuggling possible (SEC Consult 2023), so both are refused rather than repaired. A bare
// LF wins over the length: the reader has split the stream where a peer that splits on CRLF
// would not, so the caller must not read on as if the next line were in step.
// EOF before a line end is io.ErrUnexpectedEOF (io.EOF if no octet of the line came).
// NUL octets are passed through: what they mean is the caller's business.
func ReadLine(r *bufio.Reader, max int, scratch *[]byte) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err == nil && len(line) <= max {
		return checkLine(line)
	}
	// Slow path: the line spans buffer refills, is too long, or the stream ended.
	buf := (*scratch)[:0]
	tooLong := false
	var prev byte // the last octet of the previous piece, for a CR LF split between reads
	for {
		if !tooLong {
			if len(buf)+len(line) > max {
				tooLong = true
				buf = buf[:0]
			} else {
				buf = append(buf, line...)
			}
		}
		switch err {
		case nil:
			*scratch = buf
			if tooLong {
				if !endsInCRLF(line, prev) {
					return nil, ErrBareLF
				}
				return nil, ErrLineTooLong
			}
			return checkLine(buf)
		case bufio.ErrBufferFull:
			if len(line) > 0 {
				prev = line[len(line)-1]
			}
			line, err = r.ReadSlice('\n')
		case io.EOF:
			*scratch = buf
			if len(buf) == 0 && !tooLong {
				return nil, io.EOF
			}
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// endsInCRLF reports whether the last piece of a line, which ends in LF, makes a CR LF with
// the octet before it; prev is the last octet of the piece before.
func endsInCRLF(last []byte, prev byte) bool {
	if n := len(last); n >= 2 {
		return last[n-2] == '\r'
	}
	return prev == '\r'
}

// checkLine strips the CRLF from a line that ends in LF, refusing a bare LF or CR.
func checkLine(line []byte) ([]byte, error) {
	n := len(line)
	if n < 2 || line[n-2] != '\r' {
		return nil, ErrBareLF
	}
	line = line[:n-2]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, ErrBareCR
	}
	return line, nil
}
