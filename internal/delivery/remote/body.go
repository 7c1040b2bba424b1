package remote

import (
	"bufio"
	"io"

	"github.com/tern-mail/tern/internal/delivery"
)

// scanResult says where a message has octets above 127.
type scanResult struct {
	header8 bool // in the header section
	body8   bool // after the first empty line
}

// scanBody reads the message once to find 8-bit octets. It runs only when a server lacks an
// extension the envelope declared (8BITMIME, SMTPUTF8): a message declared 8-bit that is in
// fact 7-bit can still go, as Postfix finds too.
func scanBody(b delivery.Body) (scanResult, error) {
	rc, err := b.Open()
	if err != nil {
		return scanResult{}, err
	}
	defer func() { _ = rc.Close() }() // only read: a failed Close loses nothing
	var s scanResult
	inHeader, lineStart := true, true
	br := bufio.NewReaderSize(rc, 64<<10)
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			return s, nil
		}
		if err != nil {
			return scanResult{}, err
		}
		switch {
		case c == '\n':
			if lineStart && inHeader {
				inHeader = false // an empty line ends the header section
			}
			lineStart = true
			continue
		case c == '\r':
			continue // part of the line end; lineStart stays as it is
		case c >= 0x80:
			if inHeader {
				s.header8 = true
			} else {
				s.body8 = true
				return s, nil // nothing later can change the answer
			}
		}
		lineStart = false
	}
}
