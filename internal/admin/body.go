package admin

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// OpBody's reply is a Reply line (its Error set when the message cannot be read), then the
// message in frames: a 4-octet big-endian length and that many octets, until a frame of length
// 0. The last frame tells the client it has the whole message: a server that fails in the
// middle closes the connection without it, and the client says the copy is cut short rather
// than pass a truncated message off as whole.

// maxFrame bounds one frame, so a client never allocates more than that for one.
const maxFrame = 64 << 10

// frameWriter writes what it is given as frames.
type frameWriter struct{ w io.Writer }

func (f frameWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxFrame)]
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(chunk)))
		if _, err := f.w.Write(hdr[:]); err != nil {
			return n, err
		}
		m, err := f.w.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		p = p[len(chunk):]
	}
	return n, nil
}

// end writes the last frame.
func (f frameWriter) end() error {
	_, err := f.w.Write(make([]byte, 4))
	return err
}

// sendBody answers OpBody on c: the reply line, then the message id in frames.
func sendBody(q Queue, id string, c io.Writer) error {
	rc, err := q.Body(id)
	if err != nil {
		return json.NewEncoder(c).Encode(Reply{Error: ReplyError(id, err)})
	}
	defer func() { _ = rc.Close() }() // a reader: closing it only unpins the message
	if err := json.NewEncoder(c).Encode(Reply{}); err != nil {
		return err
	}
	fw := frameWriter{c}
	if _, err := io.Copy(fw, rc); err != nil {
		return fmt.Errorf("admin: sending the message: %w", err)
	}
	return fw.end()
}

// ErrCutShort is returned by CallBody when the connection ended before the whole message came.
var ErrCutShort = errors.New("admin: the message was cut short (see the server's log)")

// CallBody asks the server listening at path for the whole message id as queued, and copies it
// to w octet for octet. The reply's Error is returned as an error.
func CallBody(ctx context.Context, path, id string, w io.Writer) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }() // read to its end or failed: nothing left to report
	if err := c.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if err := json.NewEncoder(c).Encode(Request{Op: OpBody, Arg: id}); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	dec := json.NewDecoder(io.LimitReader(c, 64<<10))
	var rep Reply
	if err := dec.Decode(&rep); err != nil {
		return fmt.Errorf("admin: reading the reply: %w", err)
	}
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	// The frames begin after the newline that ends the reply line.
	r := io.MultiReader(dec.Buffered(), c)
	var nl [1]byte
	if _, err := io.ReadFull(r, nl[:]); err != nil || nl[0] != '\n' {
		return fmt.Errorf("%w: no message after the reply", ErrCutShort)
	}
	return readFrames(r, w)
}

// readFrames copies the frames of r to w, up to the last one.
func readFrames(r io.Reader, w io.Writer) error {
	buf := make([]byte, maxFrame)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return fmt.Errorf("%w: %w", ErrCutShort, err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		switch {
		case n == 0:
			return nil
		case n > maxFrame:
			return fmt.Errorf("admin: a frame of %d octets, more than %d", n, maxFrame)
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return fmt.Errorf("%w: %w", ErrCutShort, err)
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
	}
}
