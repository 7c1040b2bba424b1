package smtpclient

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/smtp"
)

// maxAuthRounds bounds the challenges of one exchange; no mechanism here needs more than three.
const maxAuthRounds = 16

// maxAuthCommand is the longest AUTH command with an initial response that is sent: the
// command line limit of RFC 5321 §4.5.3.1.4, CRLF included. A longer initial response is sent
// in answer to the server's empty challenge instead (RFC 4954 §4).
const maxAuthCommand = 512

// redacted replaces what the client sends during AUTH in the trace, unless TraceSecrets.
const redacted = "[redacted]"

// Auth runs an AUTH exchange (RFC 4954) with a SASL client: the base64 framing, the "*" that
// cancels when the mechanism fails (a bad challenge, a server that cannot prove itself), and the
// empty response to data the server sends with its success (SCRAM's server-final-message,
// DIGEST-MD5's rspauth). The mechanism need not have been advertised: a server that does not
// know it says so (504), which is an *Error like any refusal.
func (c *Client) Auth(ctx context.Context, sc sasl.Client) error {
	if err := c.usable(CmdAUTH); err != nil {
		return err
	}
	if err := c.ensureHello(ctx); err != nil {
		return err
	}
	mech, ir, err := sc.Start()
	if err != nil {
		return &Error{Command: CmdAUTH, Permanent: true, Err: err}
	}
	if err := checkArg(CmdAUTH, mech); err != nil || strings.ContainsRune(mech, ' ') {
		return &Error{Command: CmdAUTH, Permanent: true, Err: ErrBadArgument}
	}
	line, shown := "AUTH "+mech, "AUTH "+mech
	if ir != nil {
		enc := "=" // an empty initial response (RFC 4954 §4)
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		if len(line)+1+len(enc)+2 <= maxAuthCommand {
			line += " " + enc
			shown += " " + c.secret(enc)
		}
	}
	done := c.begin(ctx, c.opts.CommandTimeout)
	defer done()
	c.writeLine(line, shown)
	if err := c.flush(CmdAUTH); err != nil {
		return err
	}
	for round := 0; ; round++ {
		r, err := c.readReply(CmdAUTH)
		if err != nil {
			return err
		}
		switch {
		case r.Code == smtp.CodeAuthOK:
			c.authed = true
			return nil
		case r.Code != smtp.CodeAuthChallenge:
			return replyError(CmdAUTH, r)
		case round == maxAuthRounds:
			return c.cancelAuth(ErrTooManyRounds)
		}
		challenge, err := base64.StdEncoding.DecodeString(strings.TrimSpace(r.Text))
		if err != nil {
			return c.cancelAuth(ErrBadChallenge)
		}
		resp, err := sc.Next(challenge)
		if err != nil {
			return c.cancelAuth(err)
		}
		enc := base64.StdEncoding.EncodeToString(resp) // an empty response is an empty line
		c.refreshDeadline(true)
		c.writeLine(enc, c.secret(enc))
		if err := c.flush(CmdAUTH); err != nil {
			return err
		}
	}
}

// secret is what the trace shows for a line the client sends during AUTH.
func (c *Client) secret(line string) string {
	if c.opts.TraceSecrets || line == "" {
		return line
	}
	return redacted
}

// cancelAuth ends an exchange the client cannot go on with by sending "*" (RFC 4954 §4) and
// reading the server's answer (501). The Error carries the client's reason, not that reply.
func (c *Client) cancelAuth(cause error) error {
	c.writeLine("*", "*")
	if err := c.flush(CmdAUTH); err != nil {
		return err
	}
	if _, err := c.readReply(CmdAUTH); err != nil {
		return err
	}
	e := &Error{Command: CmdAUTH, Err: cause}
	if !errors.Is(cause, ErrBadChallenge) && !errors.Is(cause, ErrTooManyRounds) {
		// The mechanism refused the server's data: trying again gets the same.
		e.Permanent = true
	}
	return e
}
