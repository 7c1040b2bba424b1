package smtpclient

import (
	"errors"
	"strings"

	"github.com/tern-mail/tern/internal/smtp"
)

// Default bounds of a reply. RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; real
// servers exceed it with long texts, so a line may be four times that. The whole reply is capped
// so that a hostile server cannot make the client buffer without end (STYLE §5).
const (
	DefaultMaxReplyLine  = 2048
	DefaultMaxReplyLines = 128
	DefaultMaxReplyBytes = 64 << 10
)

// readReply reads one reply, bounded in line length, number of lines and total size, and traces
// each line as it comes. Any failure leaves the connection out of step, so it breaks the client.
func (c *Client) readReply(cmd string) (smtp.Reply, error) {
	var (
		code  int
		lines []string
		total int
	)
	for {
		line, err := smtp.ReadLine(c.br, c.opts.MaxReplyLine, &c.scratch)
		if err != nil {
			switch {
			case errors.Is(err, smtp.ErrLineTooLong):
				err = ErrReplyLineTooLong
			case errors.Is(err, smtp.ErrBareLF), errors.Is(err, smtp.ErrBareCR):
				err = errors.Join(ErrMalformedReply, err)
			}
			return smtp.Reply{}, c.breakOn(cmd, err)
		}
		s := string(line)
		c.trace(Received, s)
		total += len(line) + 2
		switch {
		case total > c.opts.MaxReplyBytes:
			return smtp.Reply{}, c.breakOn(cmd, ErrReplyTooBig)
		case len(lines) == c.opts.MaxReplyLines:
			return smtp.Reply{}, c.breakOn(cmd, ErrReplyTooManyLines)
		}
		n, more, text, ok := parseReplyLine(s)
		if !ok || (code != 0 && n != code) {
			// RFC 5321 §4.2.1: every line of a multiline reply has the same code.
			return smtp.Reply{}, c.breakOn(cmd, ErrMalformedReply)
		}
		code = n
		lines = append(lines, text)
		if !more {
			break
		}
	}
	r := makeReply(code, lines)
	if r.Code == smtp.CodeUnavailable {
		// 421: the server is closing the connection (RFC 5321 §3.8).
		c.broken = &Error{Command: cmd, Code: r.Code, Enhanced: r.Enhanced(), Text: r.Text, Err: ErrBroken}
	}
	return r, nil
}

// parseReplyLine splits "250-text" or "250 text" (or a bare "250") into code, continuation
// flag and text. The code must be a valid reply code (RFC 5321 §4.2: 2yz to 5yz).
func parseReplyLine(s string) (code int, more bool, text string, ok bool) {
	if len(s) < 3 {
		return 0, false, "", false
	}
	if s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' {
		return 0, false, "", false
	}
	code = int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
	if len(s) == 3 {
		return code, false, "", true
	}
	switch s[3] {
	case ' ':
		return code, false, s[4:], true
	case '-':
		return code, true, s[4:], true
	}
	return 0, false, "", false
}

// makeReply builds the reply from its lines' texts. An enhanced status code (RFC 2034 §3) at the
// start of the first line, whose class matches the reply code, is taken out of the text, and
// the same code at the start of the other lines too.
func makeReply(code int, lines []string) smtp.Reply {
	r := smtp.Reply{Code: code}
	if enh, ok := enhancedPrefix(code, lines[0]); ok {
		r.Enh = enh[2:]
		for i, l := range lines {
			if rest, ok := strings.CutPrefix(l, enh); ok && (rest == "" || rest[0] == ' ') {
				lines[i] = strings.TrimPrefix(rest, " ")
			}
		}
	}
	r.Text = strings.Join(lines, "\n")
	return r
}

// enhancedPrefix returns the "class.subject.detail" code at the start of text (followed by a
// space or the end), if its class is the reply code's first digit (RFC 3463 §2: 2, 4 or 5).
func enhancedPrefix(code int, text string) (string, bool) {
	class := byte('0' + code/100)
	if class != '2' && class != '4' && class != '5' {
		return "", false
	}
	end := strings.IndexByte(text, ' ')
	if end < 0 {
		end = len(text)
	}
	enh := text[:end]
	parts := strings.Split(enh, ".")
	if len(parts) != 3 || parts[0] != string(class) {
		return "", false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return "", false
		}
	}
	return enh, true
}

// replyError is the Error for a reply that refused cmd.
func replyError(cmd string, r smtp.Reply) *Error {
	return &Error{
		Code:      r.Code,
		Enhanced:  r.Enhanced(),
		Text:      r.Text,
		Command:   cmd,
		Permanent: r.Code >= 500,
	}
}
