package smtpclient

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/tern-mail/tern/internal/smtp"
)

// Envelope is what Send needs besides the message.
type Envelope struct {
	// From is the reverse-path without brackets ("" for the null sender of a bounce).
	From string
	// MailParams are MAIL parameters as sent ("BODY=8BITMIME", "SMTPUTF8", "RET=HDRS").
	MailParams []string
	// Size is the message's size in octets, if known: sent as SIZE= when the server offers SIZE,
	// and checked against its limit before anything is sent (RFC 1870 §6). 0: unknown.
	Size int64
	// Rcpts are the recipients, each with its RCPT parameters.
	Rcpts []Recipient
}

// Recipient is one forward-path and its RCPT parameters ("NOTIFY=NEVER", "ORCPT=...").
type Recipient struct {
	Addr   string
	Params []string
}

// RcptResult is the server's answer to one recipient.
type RcptResult struct {
	Addr  string
	Reply smtp.Reply
	Err   error // nil if accepted; an *Error otherwise
}

// SendResult is what the server said during Send.
type SendResult struct {
	Mail  smtp.Reply
	Rcpts []RcptResult // one per Envelope.Rcpts, in order, until a broken connection; empty if MAIL failed
	Data  smtp.Reply   // the reply to the end of the message (DATA, or the last BDAT)
}

// Accepted returns the recipients the server accepted.
func (r *SendResult) Accepted() []string { return taken(r.Rcpts) }

// taken returns the addresses of the results without an error.
func taken(rs []RcptResult) []string {
	var out []string
	for _, rr := range rs {
		if rr.Err == nil {
			out = append(out, rr.Addr)
		}
	}
	return out
}

// Mail sends MAIL FROM:<from> with params, starting a transaction (after RSET if one is open).
func (c *Client) Mail(ctx context.Context, from string, params ...string) error {
	if err := c.beginTx(ctx, from, params); err != nil {
		return err
	}
	r, err := c.cmd(ctx, CmdMAIL, mailLine(from, params))
	if err != nil {
		return err
	}
	if r.Code/100 != 2 {
		return replyError(CmdMAIL, r)
	}
	c.inTx = true
	return nil
}

// Rcpt sends RCPT TO:<to> with params.
func (c *Client) Rcpt(ctx context.Context, to string, params ...string) error {
	if err := checkArg(CmdRCPT, append([]string{to}, params...)...); err != nil {
		return err
	}
	r, err := c.cmd(ctx, CmdRCPT, rcptLine(to, params))
	if err != nil {
		return err
	}
	if r.Code/100 != 2 {
		return replyError(CmdRCPT, r)
	}
	return nil
}

// Data sends DATA and, after 354, the message (dot-stuffed, see Options.NormalizeLineEndings),
// and returns the server's reply to its end. The transaction is over either way.
func (c *Client) Data(ctx context.Context, msg io.Reader) (smtp.Reply, error) {
	if c.opts.LMTP {
		return smtp.Reply{}, &Error{Command: CmdDATA, Err: ErrLMTPData}
	}
	r, err := c.cmd(ctx, CmdDATA, "DATA")
	if err != nil {
		return smtp.Reply{}, err
	}
	if r.Code != smtp.CodeStartInput {
		c.inTx = false
		return r, replyError(CmdDATA, r)
	}
	return c.sendData(ctx, msg)
}

// Bdat sends the message in BDAT chunks (RFC 3030), the last with LAST, and returns the reply
// to the last. The server must have offered CHUNKING.
func (c *Client) Bdat(ctx context.Context, msg io.Reader) (smtp.Reply, error) {
	if err := c.usable(CmdBDAT); err != nil {
		return smtp.Reply{}, err
	}
	if c.opts.LMTP {
		return smtp.Reply{}, &Error{Command: CmdBDAT, Err: ErrLMTPData}
	}
	if !c.ext.Chunking {
		return smtp.Reply{}, &Error{Command: CmdBDAT, Err: ErrNotOffered}
	}
	return c.sendChunks(ctx, msg)
}

// Send runs one mail transaction: MAIL, one RCPT per recipient, and the message with DATA (or
// BDAT, see Options.Chunking) if any recipient was accepted.
//
// With PIPELINING (RFC 2920) MAIL, the RCPTs and DATA go out in one write and the replies are
// read in order; the message follows only after the 354. Should the server accept DATA although
// it refused every recipient, the data is ended at once with an empty message (RFC 2920 §3.1).
//
// A nil msg stops after the recipients, with the transaction open (for tools that test a
// server's envelope checks): the next Mail or Send resets it.
//
// The error is nil when the server accepted the message (or, with a nil msg, the envelope) for
// at least one recipient; the refused ones are in SendResult.Rcpts. Otherwise it is the *Error
// of MAIL, of the first refused recipient when all were refused, or of the data.
//
// Over LMTP (Options.LMTP) only a nil msg is allowed; SendLMTP sends messages.
func (c *Client) Send(ctx context.Context, env Envelope, msg io.Reader) (*SendResult, error) {
	res := &SendResult{}
	if c.opts.LMTP && msg != nil {
		return res, &Error{Command: CmdDATA, Err: ErrLMTPData}
	}
	params, err := c.prepareTx(ctx, env)
	if err != nil {
		return res, err
	}
	chunks := msg != nil && c.opts.Chunking && c.ext.Chunking
	sendData := msg != nil && !chunks
	pipelined := c.ext.Pipelining && !c.opts.NoPipelining

	var dataReply smtp.Reply
	var dataSent bool
	if pipelined {
		if dataSent, dataReply, err = c.pipelineEnvelope(ctx, env, params, sendData, res); err != nil {
			return res, err
		}
	} else {
		r, err := c.cmd(ctx, CmdMAIL, mailLine(env.From, params))
		if err != nil {
			return res, err
		}
		res.Mail = r
		if r.Code/100 != 2 {
			return res, replyError(CmdMAIL, r)
		}
		c.inTx = true
		for _, rc := range env.Rcpts {
			r, err := c.cmd(ctx, CmdRCPT, rcptLine(rc.Addr, rc.Params))
			if err != nil {
				return res, err
			}
			res.Rcpts = append(res.Rcpts, rcptResult(rc.Addr, r))
		}
	}
	if res.Mail.Code/100 != 2 {
		return res, replyError(CmdMAIL, res.Mail)
	}
	var firstRefusal error
	accepted := 0
	for _, rr := range res.Rcpts {
		if rr.Err == nil {
			accepted++
		} else if firstRefusal == nil {
			firstRefusal = rr.Err
		}
	}
	if accepted == 0 {
		if dataSent && dataReply.Code == smtp.CodeStartInput {
			// RFC 2920 §3.1: the DATA went through although no recipient did; end it empty.
			if err := c.endEmptyData(ctx); err != nil {
				return res, err
			}
		}
		return res, firstRefusal
	}
	if msg == nil {
		return res, nil
	}
	if chunks {
		r, err := c.sendChunks(ctx, msg)
		res.Data = r
		return res, err
	}
	if !dataSent {
		r, err := c.cmd(ctx, CmdDATA, "DATA")
		if err != nil {
			return res, err
		}
		dataReply = r
	}
	if dataReply.Code != smtp.CodeStartInput {
		c.inTx = false
		res.Data = dataReply
		return res, replyError(CmdDATA, dataReply)
	}
	r, err := c.sendData(ctx, msg)
	res.Data = r
	return res, err
}

// pipelineEnvelope writes MAIL, the RCPTs and (with withData) DATA at once, then reads their
// replies in order into res.
func (c *Client) pipelineEnvelope(ctx context.Context, env Envelope, params []string, withData bool, res *SendResult) (dataSent bool, dataReply smtp.Reply, err error) {
	if err := c.usable(CmdMAIL); err != nil {
		return false, dataReply, err
	}
	done := c.begin(ctx, c.opts.CommandTimeout)
	defer done()
	line := mailLine(env.From, params)
	c.writeLine(line, line)
	for _, rc := range env.Rcpts {
		line := rcptLine(rc.Addr, rc.Params)
		c.writeLine(line, line)
	}
	if withData {
		c.writeLine("DATA", "DATA")
	}
	if err := c.flush(CmdMAIL); err != nil {
		return false, dataReply, err
	}
	r, err := c.readReply(CmdMAIL)
	if err != nil {
		return false, dataReply, err
	}
	res.Mail = r
	if r.Code/100 == 2 {
		c.inTx = true
	}
	for _, rc := range env.Rcpts {
		r, err := c.readReply(CmdRCPT)
		if err != nil {
			return false, dataReply, err
		}
		res.Rcpts = append(res.Rcpts, rcptResult(rc.Addr, r))
	}
	if !withData {
		return false, dataReply, nil
	}
	if dataReply, err = c.readReply(CmdDATA); err != nil {
		return false, dataReply, err
	}
	if dataReply.Code == smtp.CodeStartInput && res.Mail.Code/100 != 2 {
		// A server that takes DATA without a sender is broken; end the data empty anyway.
		if err := c.endEmptyData(ctx); err != nil {
			return true, dataReply, err
		}
		dataReply = smtp.Reply{}
	}
	return true, dataReply, nil
}

// prepareTx checks env, readies the session (see beginTx) and returns the MAIL parameters,
// with SIZE= added when the server offers SIZE and the size is known (RFC 1870 §6: a message
// over the server's limit is refused before anything is sent).
func (c *Client) prepareTx(ctx context.Context, env Envelope) ([]string, error) {
	if len(env.Rcpts) == 0 {
		return nil, &Error{Command: CmdRCPT, Permanent: true, Err: ErrNoRecipients}
	}
	params := env.MailParams
	if err := c.beginTx(ctx, env.From, params); err != nil {
		return nil, err
	}
	for _, rc := range env.Rcpts {
		if err := checkArg(CmdRCPT, append([]string{rc.Addr}, rc.Params...)...); err != nil {
			return nil, err
		}
	}
	if env.Size > 0 && c.ext.Has("SIZE") && !slices.ContainsFunc(params, isSizeParam) {
		if c.ext.Size > 0 && env.Size > c.ext.Size {
			return nil, &Error{Command: CmdMAIL, Permanent: true, Err: ErrMessageTooBig}
		}
		params = append(params[:len(params):len(params)], "SIZE="+strconv.FormatInt(env.Size, 10))
	}
	return params, nil
}

func isSizeParam(p string) bool { return len(p) > 5 && strings.EqualFold(p[:5], "SIZE=") }

func rcptResult(addr string, r smtp.Reply) RcptResult {
	rr := RcptResult{Addr: addr, Reply: r}
	if r.Code/100 != 2 {
		rr.Err = replyError(CmdRCPT, r)
	}
	return rr
}

// beginTx checks MAIL's arguments and readies the session: EHLO if needed, RSET if a
// transaction is open.
func (c *Client) beginTx(ctx context.Context, from string, params []string) error {
	if err := checkArg(CmdMAIL, append([]string{from}, params...)...); err != nil {
		return err
	}
	if err := c.usable(CmdMAIL); err != nil {
		return err
	}
	if err := c.ensureHello(ctx); err != nil {
		return err
	}
	if c.inTx {
		return c.Reset(ctx)
	}
	return nil
}

func mailLine(from string, params []string) string {
	return "MAIL FROM:<" + from + ">" + joinParams(params)
}

func rcptLine(to string, params []string) string {
	return "RCPT TO:<" + to + ">" + joinParams(params)
}

func joinParams(params []string) string {
	if len(params) == 0 {
		return ""
	}
	return " " + strings.Join(params, " ")
}

// endEmptyData ends a DATA that should not carry a message: "." alone, an empty message the
// server has no recipient for.
func (c *Client) endEmptyData(ctx context.Context) error {
	done := c.begin(ctx, c.opts.CommandTimeout)
	defer done()
	c.writeLine(".", ".")
	if err := c.flush(CmdDATA); err != nil {
		return err
	}
	c.inTx = false
	if c.opts.LMTP {
		// RFC 2033 §4.2: no recipient, no reply after the data. A server that took this DATA
		// does not follow the RFC, so how many replies come is unknown: drop the connection
		// rather than read them out of step.
		_ = c.breakOn(CmdDATA, ErrLMTPDataWithoutRcpts)
		return nil
	}
	_, err := c.readReply(CmdDATA)
	return err
}

// sendData writes the message after a 354 and reads the reply to its end.
func (c *Client) sendData(ctx context.Context, msg io.Reader) (smtp.Reply, error) {
	done := c.begin(ctx, c.opts.CommandTimeout)
	defer done()
	if err := c.writeData(msg); err != nil {
		return smtp.Reply{}, err
	}
	c.setTimeout(c.opts.DataTimeout)
	r, err := c.readReply(CmdDATA)
	if err != nil {
		return smtp.Reply{}, err
	}
	c.inTx = false
	if r.Code/100 != 2 {
		return r, replyError(CmdDATA, r)
	}
	return r, nil
}

// writeData writes the message text after a 354, dot-stuffed, and its end, within the current
// step (see begin).
func (c *Client) writeData(msg io.Reader) error {
	var out io.Writer = c.bw
	var lt *lineTracer
	if c.opts.TraceData && c.opts.Trace != nil {
		lt = &lineTracer{c: c}
		out = io.MultiWriter(c.bw, lt)
	}
	dw := smtp.NewDotWriter(out, c.opts.NormalizeLineEndings)
	if _, err := io.Copy(dw, msg); err != nil {
		// Never end the data after a failure: closing the connection makes the server drop
		// the partial message.
		return c.breakOn(CmdDATA, err)
	}
	if err := dw.Close(); err != nil {
		return c.breakOn(CmdDATA, err)
	}
	return c.flush(CmdDATA)
}

// sendChunks sends the message as BDAT chunks of ChunkSize octets and returns the reply to the
// last. Chunks are not pipelined: each waits for its reply, so a refusal stops the rest.
func (c *Client) sendChunks(ctx context.Context, msg io.Reader) (smtp.Reply, error) {
	done := c.begin(ctx, c.opts.CommandTimeout)
	defer done()
	src := bufio.NewReaderSize(msg, c.opts.ChunkSize)
	buf := make([]byte, c.opts.ChunkSize)
	var norm normalizer
	var lt *lineTracer
	if c.opts.TraceData && c.opts.Trace != nil {
		lt = &lineTracer{c: c}
	}
	for {
		n, err := io.ReadFull(src, buf)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return smtp.Reply{}, c.breakOn(CmdBDAT, err)
		}
		last := err != nil
		if !last {
			if _, perr := src.Peek(1); perr == io.EOF {
				last = true
			} else if perr != nil {
				return smtp.Reply{}, c.breakOn(CmdBDAT, perr)
			}
		}
		chunk := buf[:n]
		if c.opts.NormalizeLineEndings {
			chunk = norm.normalize(nil, chunk, last)
		}
		line := "BDAT " + strconv.Itoa(len(chunk))
		if last {
			line += " LAST"
		}
		c.writeLine(line, line)
		c.bw.Write(chunk)
		if lt != nil {
			_, _ = lt.Write(chunk) // a trace into memory: cannot fail
			if last {
				lt.flushPartial()
			}
		}
		if err := c.flush(CmdBDAT); err != nil {
			return smtp.Reply{}, err
		}
		if last {
			c.setTimeout(c.opts.DataTimeout)
		}
		r, err := c.readReply(CmdBDAT)
		if err != nil {
			return smtp.Reply{}, err
		}
		if r.Code/100 != 2 {
			c.inTx = false
			return r, replyError(CmdBDAT, r)
		}
		if last {
			c.inTx = false
			return r, nil
		}
	}
}

// normalizer turns bare CR and LF into CRLF across chunk boundaries, and ends the text with
// CRLF.
type normalizer struct {
	cr      bool // the previous chunk ended in a CR
	started bool // some text was seen
	eol     bool // the text so far ends with a line end
}

func (n *normalizer) normalize(dst, src []byte, last bool) []byte {
	for _, b := range src {
		n.started = true
		switch {
		case n.cr && b == '\n':
			n.cr = false
			continue // the CRLF was written at the CR
		case b == '\r':
			dst = append(dst, '\r', '\n')
			n.cr, n.eol = true, true
			continue
		case b == '\n':
			dst = append(dst, '\r', '\n')
			n.cr, n.eol = false, true
			continue
		}
		n.cr, n.eol = false, false
		dst = append(dst, b)
	}
	if last && n.started && !n.eol {
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// lineTracer traces message text, one line per CRLF; a line longer than maxTraceLine is traced
// in pieces.
type lineTracer struct {
	c   *Client
	buf []byte
}

const maxTraceLine = 4096

func (t *lineTracer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.buf = append(t.buf, p...)
			if len(t.buf) > maxTraceLine {
				t.flushPartial()
			}
			break
		}
		t.buf = append(t.buf, p[:i+1]...)
		p = p[i+1:]
		line := strings.TrimSuffix(strings.TrimSuffix(string(t.buf), "\n"), "\r")
		t.buf = t.buf[:0]
		t.c.trace(Sent, line)
	}
	return n, nil
}

func (t *lineTracer) flushPartial() {
	if len(t.buf) > 0 {
		t.c.trace(Sent, string(t.buf))
		t.buf = t.buf[:0]
	}
}
