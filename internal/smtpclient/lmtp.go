package smtpclient

// LMTP (RFC 2033) is SMTP for the last hop into a mailbox server: LHLO instead of EHLO, and,
// after the end of the data, one reply per accepted recipient instead of one for the message,
// because the server delivers to each mailbox on its own and some may fail (a full mailbox)
// while others succeed. Everything before the data (MAIL, RCPT, PIPELINING, the reply bounds
// and deadlines) is the SMTP client's.

import (
	"context"
	"io"
	"strings"

	"github.com/tern-mail/tern/internal/smtp"
)

// LMTPResult is what an LMTP server said during SendLMTP.
type LMTPResult struct {
	// Mail is the reply to MAIL; zero if MAIL was not sent or not answered.
	Mail smtp.Reply
	// Data is the reply to the DATA command (354 when the message went out); zero if DATA was
	// not sent or not answered.
	Data smtp.Reply
	// Rcpts has one entry per Envelope.Rcpts, in order. Reply is the reply that decided the
	// recipient's fate: the refusal of its RCPT, the server's reply for it after the data
	// (RFC 2033 §4.2), or the refusal of MAIL or DATA; it is zero when the connection failed
	// first. Err is nil when the server took the message for the recipient, and otherwise an
	// *Error: its Command is CmdRCPT for a refused RCPT, CmdDATA for a refusal after the data,
	// or the step that failed for every recipient still open.
	Rcpts []RcptResult
}

// Delivered returns the recipients the server took the message for.
func (r *LMTPResult) Delivered() []string { return taken(r.Rcpts) }

// lhlo sends LHLO and records the extensions (RFC 2033 §4.1). There is no fallback: a server
// that refuses LHLO does not speak LMTP, and HELO would not make it.
func (c *Client) lhlo(ctx context.Context) error {
	if err := c.usable(CmdLHLO); err != nil {
		return err
	}
	c.ext, c.esmtp, c.greeted = Extensions{}, false, false
	r, err := c.cmd(ctx, CmdLHLO, "LHLO "+c.opts.LocalName)
	if err != nil {
		return err
	}
	if r.Code != smtp.CodeOK {
		return replyError(CmdLHLO, r)
	}
	c.ext = parseExtensions(r.Text)
	c.esmtp, c.greeted = true, true
	return nil
}

// SendLMTP runs one LMTP transaction (the client needs Options.LMTP): LHLO if not done yet,
// MAIL, one RCPT per recipient and DATA, pipelined when the server offers PIPELINING (as LMTP
// servers do, RFC 2033 §5), then the message (dot-stuffed, as Data sends it; nil is an empty
// message) and one reply per accepted recipient, in the order of their RCPTs (RFC 2033 §4.2).
// Each of those replies is waited for within Options.DataTimeout, since the server may deliver
// to each mailbox in turn. Options.Chunking is ignored: the message goes out with DATA.
//
// The result has an entry for every recipient, whatever happened (see LMTPResult.Rcpts): a
// recipient whose reply after the data never came (the server closed the connection, or sent
// 421 for an earlier one) gets the failure as a temporary *Error, since the server may or may
// not have delivered to it.
//
// The error is nil when the message was delivered to at least one recipient. Otherwise it is
// the *Error that ended the transaction (MAIL, DATA, the connection), or that of the first
// recipient.
func (c *Client) SendLMTP(ctx context.Context, env Envelope, msg io.Reader) (*LMTPResult, error) {
	res := &LMTPResult{Rcpts: make([]RcptResult, len(env.Rcpts))}
	for i, rc := range env.Rcpts {
		res.Rcpts[i].Addr = rc.Addr
	}
	decided := make([]bool, len(env.Rcpts)) // delivered, or refused at RCPT or after the data
	// failRest gives every recipient not yet decided (nor refused) the reply r (zero: none)
	// and err, and returns the transaction's error.
	failRest := func(r smtp.Reply, err error) error {
		for i := range res.Rcpts {
			if !decided[i] && res.Rcpts[i].Err == nil {
				res.Rcpts[i].Reply, res.Rcpts[i].Err, decided[i] = r, err, true
			}
		}
		return res.err(err)
	}
	if !c.opts.LMTP {
		return res, failRest(smtp.Reply{}, &Error{Command: CmdMAIL, Permanent: true, Err: ErrNotLMTP})
	}
	if msg == nil {
		msg = strings.NewReader("")
	}
	params, err := c.prepareTx(ctx, env)
	if err != nil {
		return res, failRest(smtp.Reply{}, err)
	}

	// The envelope: MAIL, the RCPTs and DATA.
	var dataSent bool
	if c.ext.Pipelining && !c.opts.NoPipelining {
		sr := &SendResult{}
		dataSent, res.Data, err = c.pipelineEnvelope(ctx, env, params, true, sr)
		res.Mail = sr.Mail
		copy(res.Rcpts, sr.Rcpts)
		if err != nil {
			return res, failRest(smtp.Reply{}, err)
		}
	} else {
		r, err := c.cmd(ctx, CmdMAIL, mailLine(env.From, params))
		if err != nil {
			return res, failRest(smtp.Reply{}, err)
		}
		res.Mail = r
		if r.Code/100 == 2 {
			c.inTx = true
			for i, rc := range env.Rcpts {
				r, err := c.cmd(ctx, CmdRCPT, rcptLine(rc.Addr, rc.Params))
				if err != nil {
					return res, failRest(smtp.Reply{}, err)
				}
				res.Rcpts[i] = rcptResult(rc.Addr, r)
			}
		}
	}
	if res.Mail.Code/100 != 2 {
		// The RCPT replies after a refused MAIL (503s, when pipelined) say nothing more.
		for i := range res.Rcpts {
			res.Rcpts[i] = RcptResult{Addr: env.Rcpts[i].Addr}
		}
		return res, failRest(res.Mail, replyError(CmdMAIL, res.Mail))
	}
	var accepted []int
	for i, rr := range res.Rcpts {
		if rr.Err == nil {
			accepted = append(accepted, i)
		}
	}
	if len(accepted) == 0 {
		c.inTx = false
		if dataSent && res.Data.Code == smtp.CodeStartInput {
			// The recipients' refusals say it all; a failure here only breaks the client.
			_ = c.endEmptyData(ctx)
		}
		return res, res.err(nil)
	}
	if !dataSent {
		r, err := c.cmd(ctx, CmdDATA, "DATA")
		if err != nil {
			return res, failRest(smtp.Reply{}, err)
		}
		res.Data = r
	}
	if res.Data.Code != smtp.CodeStartInput {
		c.inTx = false
		return res, failRest(res.Data, replyError(CmdDATA, res.Data))
	}

	// The message, and a reply per accepted recipient.
	done := c.begin(ctx, c.opts.CommandTimeout)
	defer done()
	if err := c.writeData(msg); err != nil {
		return res, failRest(smtp.Reply{}, err)
	}
	c.inTx = false
	for _, i := range accepted {
		c.setTimeout(c.opts.DataTimeout)
		r, err := c.readReply(CmdDATA)
		if err != nil {
			return res, failRest(smtp.Reply{}, err)
		}
		res.Rcpts[i].Reply, res.Rcpts[i].Err, decided[i] = r, nil, true
		if r.Code/100 != 2 {
			res.Rcpts[i].Err = replyError(CmdDATA, r)
		}
		if r.Code == smtp.CodeUnavailable {
			// 421: the server is closing the connection (RFC 5321 §3.8), so no reply will
			// come for the others; readReply has marked the client broken.
			return res, failRest(r, replyError(CmdDATA, r))
		}
	}
	return res, res.err(nil)
}

// err is SendLMTP's error: nil when some recipient got the message, else txErr when the
// transaction failed as a whole, else the first recipient's.
func (r *LMTPResult) err(txErr error) error {
	var first error
	for _, rr := range r.Rcpts {
		if rr.Err == nil {
			return nil
		}
		if first == nil {
			first = rr.Err
		}
	}
	if txErr != nil {
		return txErr
	}
	return first
}
