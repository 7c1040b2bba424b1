package smtpserver

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/msghdr"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/tlsutil"
)

// contentReply answers a fault the DATA reader or the BDAT text check found in a message.
func contentReply(err error) smtp.Reply {
	switch {
	case errors.Is(err, smtp.ErrTooBig):
		return replyTooBig
	case errors.Is(err, smtp.ErrLineTooLong):
		return smtp.R(smtp.CodeTransactionFailed, smtp.EnhMediaOther, "Error: message has a line longer than 1000 octets")
	case errors.Is(err, smtp.ErrBareLF):
		return smtp.R(smtp.CodeTransactionFailed, smtp.EnhSyntax, "Error: bare <LF> received in message data; lines must end with <CR><LF>")
	case errors.Is(err, smtp.ErrBareCR):
		return smtp.R(smtp.CodeTransactionFailed, smtp.EnhSyntax, "Error: bare <CR> received in message data")
	case errors.Is(err, smtp.ErrNUL):
		return replyNUL
	}
	return replyQueueError
}

// replyNUL refuses a message with a NUL octet, which text may not hold (RFC 2045 §2.7, §2.8):
// a server after us that strips NULs could otherwise see an end of data that we did not.
var replyNUL = smtp.R(smtp.CodeTransactionFailed, smtp.EnhMediaOther, "Error: message contains a NUL character; binary content needs BDAT with BODY=BINARYMIME")

// txReady checks that a transaction with recipients exists, for DATA and BDAT.
func (s *session) txReady() (smtp.Reply, bool) {
	switch {
	case s.helo == "":
		return replyNeedHelo, false
	case s.tx == nil || len(s.tx.rcpts) == 0:
		// Postfix answers DATA without MAIL the same way: what is missing first is a recipient.
		return replyNeedRcpt, false
	}
	return smtp.Reply{}, true
}

// startMessage opens the spool message of s.tx, writes tern's Received header into it and,
// when policy wants it, sets up the adding of a missing Date and Message-ID. It returns the
// Received header's size.
func (s *session) startMessage() (int64, error) {
	msg, err := s.opts.Spool.NewMessage()
	if err != nil {
		return 0, err
	}
	h := s.receivedHeader(msg.ID())
	if _, err := io.WriteString(msg, h); err != nil {
		msg.Abort()
		return 0, err
	}
	tx := s.tx
	tx.msg = msg
	tx.in = msg
	if p := s.opts.Headers; p != nil && p.AddMissingHeaders(s.client()) {
		now := time.Now()
		tx.fix = msghdr.NewAdder(msg, msghdr.Fields{Date: msghdr.Date(now), MessageID: msghdr.MessageID(now, msg.ID(), s.hostname())})
		tx.in = tx.fix
	}
	if s.opts.Authentication != nil {
		// Whoever sent it, no field may claim our results (RFC 8601 §5); DKIM sees the
		// message as it came.
		tx.strip = msghdr.NewRemover(tx.in, s.hostname())
		tx.in = tx.strip
		if tx.judge = s.startJudging(); tx.judge != nil {
			tx.author = msghdr.NewTap("From")
			tx.in = io.MultiWriter(tx.judge, tx.author, tx.strip)
		}
	}
	return int64(len(h)), nil
}

// cmdData receives a message with DATA (RFC 5321 §4.1.1.4).
func (s *session) cmdData(arg string) {
	if arg != "" {
		s.reply(replyUsage("DATA"))
		return
	}
	if r, ok := s.txReady(); !ok {
		s.reply(r)
		return
	}
	switch {
	case s.tx.chunked:
		s.reply(smtp.R(smtp.CodeBadSequence, smtp.EnhInvalidCommand, "Error: DATA after BDAT in the same transaction"))
		return
	case s.tx.body == envelope.BodyBinaryMIME:
		// Binary content cannot be dot-stuffed: RFC 3030 §3 requires BDAT for it.
		s.reply(smtp.R(smtp.CodeBadSequence, smtp.EnhInvalidCommand, "Error: BODY=BINARYMIME requires BDAT"))
		return
	}
	hdr, err := s.startMessage()
	if err != nil {
		s.log.Error("queue file create failed", "err", err)
		s.reply(replyQueueError)
		return
	}
	s.reply(smtp.R(smtp.CodeStartInput, "", "End data with <CR><LF>.<CR><LF>"))
	if !s.flush() {
		return
	}
	// The whole body must arrive within DataTimeout: a client trickling a line at a time does
	// not keep the session for longer.
	s.startPhase(phaseData, s.opts.DataTimeout)
	sw := &stickyWriter{w: s.tx.in}
	br := s.srv.bufs.dataReader(s.br)
	n, err := smtp.ReadData(br, sw, s.opts.MaxMessageSize)
	s.unread(br)
	s.phase.Store(phaseCommand)
	switch {
	case sw.err != nil: // ReadData read on to the end of the data: answer and go on
		s.rejectMessage(sw.err)
	case isContentError(err):
		s.rejectMessage(err)
	case err != nil:
		s.ioError(err)
	default:
		added, err := s.tx.endContent()
		if err != nil {
			s.rejectMessage(err)
			return
		}
		s.finishMessage(hdr + n + added)
	}
}

func isContentError(err error) bool {
	return errors.Is(err, smtp.ErrTooBig) || errors.Is(err, smtp.ErrLineTooLong) ||
		errors.Is(err, smtp.ErrBareLF) || errors.Is(err, smtp.ErrBareCR) || errors.Is(err, smtp.ErrNUL)
}

// rejectMessage refuses the message being received and ends the transaction.
func (s *session) rejectMessage(err error) {
	r := contentReply(err)
	if r == replyQueueError {
		s.log.Error("queue file write failed", "err", err)
	} else {
		s.log.Info("message rejected", "code", r.Code, "reason", r.Text)
	}
	s.obs().Rejected(s.listenerName(), r)
	s.abortTx()
	s.reply(r)
}

// cmdBdat receives one chunk of a message (RFC 3030). The chunk is always read, even when it is
// refused, because the client sends it right after the command without waiting for a reply.
func (s *session) cmdBdat(arg string) {
	f := strings.Fields(arg)
	var size int64
	var err error
	if len(f) >= 1 && len(f) <= 2 && len(f[0]) <= 18 {
		size, err = strconv.ParseInt(f[0], 10, 64)
	}
	if len(f) < 1 || len(f) > 2 || len(f[0]) > 18 || err != nil || size < 0 ||
		len(f) == 2 && !strings.EqualFold(f[1], "LAST") || f[0][0] == '+' {
		// Without a size we cannot tell where the chunk ends: whatever follows would be read as
		// commands, so the connection must end here.
		s.refuse(smtp.R(smtp.CodeParamSyntax, smtp.EnhInvalidArgs, "Syntax: BDAT size [LAST]; closing connection"))
		return
	}
	last := len(f) == 2
	// The replies to the commands before the chunk go out before we wait for its data: the
	// client may wait for them before it sends the rest (RFC 3030 §4.2 lets it pipeline, not
	// must).
	if int64(s.br.Buffered()) < size && !s.flush() {
		return
	}
	// Each chunk must arrive within DataTimeout, read or thrown away.
	s.startPhase(phaseData, s.opts.DataTimeout)
	defer s.phase.Store(phaseCommand)
	if r, ok := s.txReady(); !ok {
		if _, err := io.CopyN(io.Discard, s.br, size); err != nil {
			s.ioError(err)
			return
		}
		s.reply(r)
		return
	}
	tx := s.tx
	if !tx.chunked {
		tx.chunked = true
		hdr, err := s.startMessage()
		if err != nil {
			s.log.Error("queue file create failed", "err", err)
			tx.failed = replyQueueError
		} else {
			tx.hdrSize = hdr
		}
	}
	if tx.failed.Code == 0 && tx.size+size > s.opts.MaxMessageSize {
		tx.failed = replyTooBig
	}
	if err := s.readChunk(tx, size); err != nil {
		s.ioError(err)
		return
	}
	if !last {
		if tx.failed.Code != 0 {
			s.reply(tx.failed)
			return
		}
		s.reply(smtp.R(smtp.CodeOK, smtp.EnhOther, "Ok: "+strconv.FormatInt(size, 10)+" octets received"))
		return
	}
	if tx.failed.Code != 0 {
		r := tx.failed
		s.log.Info("message rejected", "code", r.Code, "reason", r.Text)
		s.obs().Rejected(s.listenerName(), r)
		s.abortTx()
		s.reply(r)
		return
	}
	if tx.body != envelope.BodyBinaryMIME {
		if err := tx.text.Finish(); err != nil {
			s.rejectMessage(err)
			return
		}
		if tx.text.Unterminated() {
			// The last line lacks its CRLF; stored mail must end with one (RFC 5322 §2.3).
			if _, err := io.WriteString(tx.in, "\r\n"); err != nil {
				s.rejectMessage(err)
				return
			}
			tx.size += 2
		}
	}
	added, err := tx.endContent()
	if err != nil {
		s.rejectMessage(err)
		return
	}
	s.finishMessage(tx.hdrSize + tx.size + added)
}

// readChunk reads a BDAT chunk of size octets into the message, or discards it once the
// transaction has failed. Only an error reading from the client is returned.
func (s *session) readChunk(tx *transaction, size int64) error {
	if tx.failed.Code != 0 {
		_, err := io.CopyN(io.Discard, s.br, size)
		return err
	}
	w := tx.in
	if tx.body != envelope.BodyBinaryMIME {
		w = io.MultiWriter(&tx.text, w)
	}
	sw := &stickyWriter{w: w}
	br := s.br
	if size > bufSize {
		// A large chunk is read as DATA reads a message, in reads larger than the session's
		// reader holds.
		br = s.srv.bufs.dataReader(s.br)
		defer s.unread(br)
	}
	n, err := copyBuffered(sw, br, size)
	tx.size += n
	if sw.err != nil {
		s.log.Error("queue file write failed", "err", sw.err)
		tx.failed = replyQueueError
		// Keep in step with the client: the rest of the chunk is still on its way.
		if _, err := io.CopyN(io.Discard, br, size-n); err != nil {
			return err
		}
		return nil
	}
	return err
}

// stickyWriter remembers a write error, so that a copy stops on it and the caller can tell a
// failed write from a failed read.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (sw *stickyWriter) Write(p []byte) (int, error) {
	n, err := sw.w.Write(p)
	if err != nil {
		sw.err = err
	}
	return n, err
}

// finishMessage commits the received message and answers with its queue id, or 451.
func (s *session) finishMessage(size int64) {
	tx := s.tx
	env := &envelope.Envelope{
		ID:         tx.msg.ID(),
		From:       tx.from.String(),
		Body:       tx.body,
		SMTPUTF8:   tx.smtputf8,
		RequireTLS: tx.requireTLS,
		Ret:        tx.ret,
		EnvID:      tx.envid,
		Rcpts:      tx.rcpts,
		Received:   time.Now(),
		ClientIP:   s.remote.Addr().Unmap().String(),
		Helo:       s.helo,
		AuthUser:   s.user,
		Size:       size,
	}
	if tx.judge != nil {
		s.phase.Store(phaseCommit)
		ar, quarantine, r := s.judge(tx.judge)
		s.phase.Store(phaseCommand)
		if r.Code != 0 {
			what := "message deferred"
			if r.Code >= 500 {
				what = "message refused"
			}
			s.log.Info(what, "code", r.Code, "reason", r.Text)
			s.obs().Rejected(s.listenerName(), r)
			s.abortTx()
			s.reply(r)
			return
		}
		env.Prepend, env.Quarantine = ar, quarantine
		env.Size += int64(len(ar))
	}
	if !s.filterMessage(env) {
		return
	}
	// The commit is not cancelled when a shutdown runs out of time (nor is its connection
	// closed): cancelling a commit whose record may already be on its way to the disk would
	// answer 451 for a message that is stored, and the client would send it again. It is
	// bounded by the idle timeout the client gives us too (RFC 5321 §4.5.3.2.6 gives it 10m).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(tx.ctx), s.opts.IdleTimeout)
	defer cancel()
	s.phase.Store(phaseCommit)
	err := tx.msg.Commit(ctx, env)
	s.phase.Store(phaseCommand)
	if err != nil {
		s.log.Error("queue commit failed", "msgid", env.ID, "err", err)
		s.obs().Rejected(s.listenerName(), replyQueueError)
		s.abortTx()
		s.reply(replyQueueError)
		return
	}
	s.tx = nil
	s.messages++
	s.errors = 0
	s.log.Info("queued", "msgid", env.ID, "from", env.From, "nrcpt", len(env.Rcpts), "size", size)
	s.obs().Accepted(s.listenerName(), size)
	s.reply(smtp.R(smtp.CodeOK, smtp.EnhOther, "Ok: queued as "+env.ID))
}

// receivedHeader is the trace header of RFC 5321 §4.4, with the protocol name of RFC 3848 /
// RFC 6531 and, like Postfix, the TLS parameters in a comment.
func (s *session) receivedHeader(id string) string {
	tx := s.tx
	proto := "SMTP"
	if s.esmtp {
		proto = "ESMTP"
		if tx.smtputf8 {
			proto = "UTF8SMTP"
		}
	}
	// The field is built in one allocation (it runs for every message): the address and the
	// date are formatted on the stack.
	var scratch [64]byte
	var b strings.Builder
	b.Grow(receivedSize + len(s.helo) + len(s.hostname()) + len(id))
	b.WriteString("Received: from ")
	b.WriteString(s.helo)
	b.WriteString(" (")
	if name := s.clientName(); name != "" {
		b.WriteString(name) // Postfix's "(name [ip])", "(unknown [ip])"
		b.WriteByte(' ')
	}
	ip := s.remote.Addr().Unmap()
	b.WriteByte('[')
	if ip.Is6() {
		b.WriteString("IPv6:")
	}
	b.Write(ip.AppendTo(scratch[:0]))
	b.WriteString("])\r\n")
	if s.tls != nil {
		b.WriteString("\t(using ")
		b.WriteString(tlsutil.Describe(*s.tls))
		b.WriteString(")\r\n")
	}
	b.WriteString("\tby ")
	b.WriteString(s.hostname())
	b.WriteString(" (tern) with ")
	b.WriteString(proto)
	if s.tls != nil {
		b.WriteByte('S')
	}
	if s.user != "" {
		b.WriteByte('A') // RFC 3848: ESMTPA, ESMTPSA
	}
	b.WriteString(" id ")
	b.WriteString(id)
	if len(tx.rcpts) == 1 {
		// Only for a single recipient, so that Bcc recipients are not revealed to each other.
		b.WriteString("\r\n\tfor <")
		b.WriteString(tx.rcpts[0].Addr)
		b.WriteString(">")
	}
	b.WriteString("; ")
	b.Write(time.Now().AppendFormat(scratch[:0], time.RFC1123Z))
	b.WriteString("\r\n")
	return b.String()
}

// receivedSize is room for the fixed text of a Received field, a client name and an IPv6
// address, a TLS description, a recipient and the date.
const receivedSize = 512
