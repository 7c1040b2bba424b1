package maildir

import (
	"bufio"
	"bytes"
)

// lfWriter turns each CRLF pair in the stream written to it into LF, because messages arrive
// in SMTP wire form (RFC 5321 §2.3.8) while Maildir files use the local LF convention. A CR or
// LF that is not part of a pair is kept as it is: rewriting it would change the message.
//
// It streams: a CR at the end of one Write is held back until the next Write (or Close) shows
// whether an LF follows. Close must be called to emit such a trailing CR.
type lfWriter struct {
	w *bufio.Writer
	// cr is set when the last byte seen was a CR that has not been written yet.
	cr bool
	// n counts the bytes written to w.
	n int64
}

func (l *lfWriter) Write(p []byte) (int, error) {
	total := len(p)
	if l.cr && len(p) > 0 {
		l.cr = false
		if p[0] != '\n' {
			// A lone CR; the LF of a pair is written below together with what follows it.
			if err := l.w.WriteByte('\r'); err != nil {
				return 0, err
			}
			l.n++
		}
	}
	for len(p) > 0 {
		// Output p[:i], then drop the next skip bytes (a CR that is held back or that
		// precedes an LF; the LF itself starts the next round).
		i, skip := bytes.IndexByte(p, '\r'), 1
		switch {
		case i < 0:
			i, skip = len(p), 0
		case i == len(p)-1:
			l.cr = true // Decided by the next Write.
		case p[i+1] != '\n':
			i, skip = i+1, 0 // A lone CR: keep it.
		}
		if _, err := l.w.Write(p[:i]); err != nil {
			return 0, err
		}
		l.n += int64(i)
		p = p[i+skip:]
	}
	return total, nil
}

// Close writes a CR held back at the end of the stream. It does not flush or close w.
func (l *lfWriter) Close() error {
	if !l.cr {
		return nil
	}
	l.cr = false
	if err := l.w.WriteByte('\r'); err != nil {
		return err
	}
	l.n++
	return nil
}
