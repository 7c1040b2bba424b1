package send

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/smtp"
)

// defaultBody is swaks' default body, so that tests written for one read the same with the other.
const defaultBody = "This is a test mailing\r\n"

// maxTextLine is the longest line a message may have without an encoding, CRLF excluded (RFC
// 5322 §2.1.1).
const maxTextLine = 998

// messageInfo is what the transaction needs to know about the message it sends.
type messageInfo struct {
	text     []byte
	eightBit bool // it has octets over 127 (BODY=8BITMIME if the server offers it)
}

// buildMessage makes the message tern send sends when no --data is given: Date, To, From,
// Subject, Message-Id and X-Mailer, the --header lines, and the body. A body that is not ASCII
// (or has lines too long for SMTP) gets MIME headers and is sent 8bit when the server offers
// 8BITMIME (and the lines fit), quoted-printable otherwise.
func buildMessage(o *Options, now time.Time, msgID string, server8bit bool) (messageInfo, error) {
	date := now.Format(time.RFC1123Z)
	body := defaultBody
	if o.Body != "" {
		body = crlf(o.Body)
		if !strings.HasSuffix(body, "\r\n") {
			body += "\r\n"
		}
	}
	subject := "test " + date
	var h strings.Builder
	fmt.Fprintf(&h, "Date: %s\r\n", date)
	fmt.Fprintf(&h, "To: %s\r\n", strings.Join(o.To, ", "))
	fmt.Fprintf(&h, "From: %s\r\n", displayFrom(o.From))
	fmt.Fprintf(&h, "Subject: %s\r\n", subject)
	fmt.Fprintf(&h, "Message-Id: %s\r\n", msgID)
	h.WriteString("X-Mailer: tern send\r\n")

	info := messageInfo{}
	if !smtp.IsASCII(body) || hasLongLine(body) {
		h.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n")
		if server8bit && !hasLongLine(body) {
			h.WriteString("Content-Transfer-Encoding: 8bit\r\n")
			info.eightBit = true
		} else {
			h.WriteString("Content-Transfer-Encoding: quoted-printable\r\n")
			var qp bytes.Buffer
			w := quotedprintable.NewWriter(&qp)
			_, _ = w.Write([]byte(body)) // into a bytes.Buffer: cannot fail
			_ = w.Close()
			body = crlf(qp.String())
			if !strings.HasSuffix(body, "\r\n") {
				body += "\r\n"
			}
		}
	}
	headers := make([]string, len(o.Headers))
	for i, hdr := range o.Headers {
		headers[i] = encodeHeader(hdr)
	}
	text, err := setHeaders([]byte(h.String()+"\r\n"+body), headers)
	if err != nil {
		return messageInfo{}, err
	}
	info.text = text
	info.eightBit = info.eightBit || !smtp.IsASCII(string(text))
	return info, nil
}

// encodeHeader encodes the non-ASCII value of an unstructured field (Subject, Comments, X-*)
// as an RFC 2047 encoded word, for a message tern send builds; other fields are left as they
// are (an address cannot be encoded that way).
func encodeHeader(h string) string {
	name, value, ok := strings.Cut(h, ":")
	if !ok || smtp.IsASCII(value) {
		return h
	}
	n := strings.ToLower(strings.TrimSpace(name))
	if n != "subject" && n != "comments" && !strings.HasPrefix(n, "x-") {
		return h
	}
	return name + ": " + mime.QEncoding.Encode("utf-8", strings.TrimSpace(value))
}

// displayFrom is the From header's value: the address, or for the null sender a placeholder
// (a header field cannot be empty).
func displayFrom(from string) string {
	if from == "" {
		return "<>"
	}
	return from
}

// messageID makes a Message-Id: the time, random octets and the local host name.
func messageID(now time.Time, rnd io.Reader, host string) (string, error) {
	b := make([]byte, 8)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", fmt.Errorf("send: random octets for the Message-Id: %w", err)
	}
	return "<" + now.UTC().Format("20060102150405") + "." + hex.EncodeToString(b) + "@" + host + ">", nil
}

// readData reads --data (a file, or the standard input for "-"), at most max octets, with its
// line ends made CRLF.
func readData(r io.Reader, max int64) (messageInfo, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return messageInfo{}, err
	}
	if int64(len(b)) > max {
		return messageInfo{}, fmt.Errorf("larger than %d octets", max)
	}
	text := []byte(crlf(string(b)))
	if len(text) > 0 && !bytes.HasSuffix(text, []byte("\r\n")) {
		text = append(text, '\r', '\n')
	}
	return messageInfo{text: text, eightBit: !smtp.IsASCII(string(text))}, nil
}

// crlf turns every line end (CRLF, bare LF, bare CR) into CRLF, the only one SMTP has.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// setHeaders applies --header lines to a message: each replaces the first field of its name
// (with its continuation lines) or, when there is none, is added at the end of the header.
func setHeaders(msg []byte, headers []string) ([]byte, error) {
	if len(headers) == 0 {
		return msg, nil
	}
	head, body, ok := bytes.Cut(msg, []byte("\r\n\r\n"))
	if !ok {
		if bytes.HasPrefix(msg, []byte("\r\n")) { // no header at all
			head, body = nil, msg[2:]
		} else { // no body
			head, body = bytes.TrimSuffix(msg, []byte("\r\n")), nil
		}
	}
	var fields []string // each a field with its continuation lines, CRLF between them
	if len(head) > 0 {
		for _, l := range strings.Split(string(head), "\r\n") {
			if (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) && len(fields) > 0 {
				fields[len(fields)-1] += "\r\n" + l
				continue
			}
			fields = append(fields, l)
		}
	}
	for _, h := range headers {
		name, _, err := checkHeader(h)
		if err != nil {
			return nil, err
		}
		replaced := false
		for i, f := range fields {
			if n, _, ok := strings.Cut(f, ":"); ok && strings.EqualFold(strings.TrimSpace(n), name) {
				fields[i], replaced = h, true
				break
			}
		}
		if !replaced {
			fields = append(fields, h)
		}
	}
	out := strings.Join(fields, "\r\n") + "\r\n\r\n"
	return append([]byte(out), body...), nil
}

// checkHeader checks a --header argument: "Name: value", a field name of printable ASCII
// without a colon (RFC 5322 §2.2), and no line break (which would add a header of its own).
func checkHeader(h string) (name, value string, err error) {
	name, value, ok := strings.Cut(h, ":")
	switch {
	case !ok || name == "":
		return "", "", fmt.Errorf("--header %q: want \"Name: value\"", h)
	case strings.ContainsAny(h, "\r\n"):
		return "", "", fmt.Errorf("--header %q: line break in the header", h)
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] >= 0x7f {
			return "", "", fmt.Errorf("--header %q: bad field name", h)
		}
	}
	return name, value, nil
}

func hasLongLine(s string) bool {
	for _, l := range strings.Split(s, "\r\n") {
		if len(l) > maxTextLine {
			return true
		}
	}
	return false
}
