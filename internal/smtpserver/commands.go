package smtpserver

import (
	"strconv"
	"strings"

	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
)

// Replies used in more than one place.
var (
	replyOK         = smtp.R(smtp.CodeOK, smtp.EnhOther, "Ok")
	replyNeedHelo   = smtp.R(smtp.CodeBadSequence, smtp.EnhInvalidCommand, "Error: send HELO/EHLO first")
	replyNeedMail   = smtp.R(smtp.CodeBadSequence, smtp.EnhInvalidCommand, "Error: need MAIL command")
	replyNeedRcpt   = smtp.R(smtp.CodeBadSequence, smtp.EnhInvalidCommand, "Error: need RCPT command")
	replyInTx       = smtp.R(smtp.CodeBadSequence, smtp.EnhInvalidCommand, "Error: MAIL transaction in progress")
	replyUnknown    = smtp.R(smtp.CodeSyntaxError, smtp.EnhSyntax, "Error: command not recognized")
	replyNotImpl    = smtp.R(smtp.CodeNotImplemented, smtp.EnhInvalidCommand, "Error: command not implemented")
	replyQueueError = smtp.R(smtp.CodeLocalError, smtp.EnhSystemOther, "Error: queue file write error")
	replyTooBig     = smtp.R(smtp.CodeExceededStorage, smtp.EnhMsgTooBig, "Message size exceeds fixed limit")
	replyLongLine   = smtp.R(smtp.CodeSyntaxError, smtp.EnhSyntax, "Error: line too long")
	replyBadSyntax  = smtp.R(smtp.CodeSyntaxError, smtp.EnhSyntax, "Error: bad syntax")
)

// replyUsage is the 501 for a command with bad arguments, showing how it is used.
func replyUsage(usage string) smtp.Reply {
	return smtp.R(smtp.CodeParamSyntax, smtp.EnhInvalidArgs, "Syntax: "+usage)
}

// command runs one command line.
func (s *session) command(line string) {
	if hasNUL(line) {
		// No command has a NUL in it, and C tools downstream (logs, milters) would read only
		// the part before it: the line is refused whole (see lineError).
		s.counts[countUnknown]++
		s.reply(smtp.R(smtp.CodeSyntaxError, smtp.EnhSyntax, "Error: NUL character received"))
		return
	}
	verb, arg := smtp.ParseCommand(line)
	limit := smtp.MaxCommandLine
	switch verb {
	case "MAIL":
		limit = smtp.MaxMailLine
	case "RCPT":
		limit = smtp.MaxRcptLine
	case "AUTH":
		limit = MaxAuthLine
	}
	if len(line)+2 > limit {
		s.reply(replyLongLine)
		return
	}
	switch verb {
	case "HELO":
		s.cmdHelo(arg, false)
	case "EHLO":
		s.cmdHelo(arg, true)
	case "MAIL":
		s.cmdMail(arg)
	case "RCPT":
		s.cmdRcpt(arg)
	case "DATA":
		s.cmdData(arg)
	case "BDAT":
		s.cmdBdat(arg)
	case "RSET":
		s.cmdRset(arg)
	case "NOOP":
		s.reply(replyOK) // arguments are allowed and ignored (RFC 5321 §4.1.1.9)
	case "QUIT":
		s.cmdQuit(arg)
	case "VRFY":
		s.cmdVrfy(arg)
	case "EXPN", "TURN":
		s.reply(replyNotImpl) // RFC 5321 §3.5.2 allows refusing EXPN; TURN is obsolete (RFC 2821)
	case "HELP":
		s.cmdHelp()
	case "ETRN":
		s.cmdEtrn(arg)
	case "STARTTLS":
		s.cmdStartTLS(arg)
	case "AUTH":
		s.cmdAuth(arg)
	case "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT":
		// Someone points a web client (or a cross-protocol attack) at us: do not play along.
		s.log.Info("HTTP command, closing", "verb", verb)
		s.refuse(smtp.R(smtp.CodeUnavailable, smtp.EnhSecurityOther, s.hostname()+" Error: HTTP is not SMTP, closing"))
	case "":
		s.counts[countUnknown]++
		s.reply(replyBadSyntax)
		return
	default:
		s.counts[countUnknown]++
		s.reply(replyUnknown)
		return
	}
	s.count(verb)
}

func (s *session) cmdHelo(arg string, esmtp bool) {
	if arg == "" {
		if esmtp {
			s.reply(replyUsage("EHLO hostname"))
		} else {
			s.reply(replyUsage("HELO hostname"))
		}
		return
	}
	// The greeting resets any transaction (RFC 5321 §4.1.4).
	s.abortTx()
	s.helo = sanitizeHelo(arg)
	s.esmtp = esmtp
	if r, ok := s.filterHelo(); !ok {
		s.helo = ""
		s.reply(r)
		return
	}
	if !esmtp {
		s.reply(smtp.R(smtp.CodeOK, "", s.hostname()))
		return
	}
	o := s.opts
	var b strings.Builder
	b.Grow(256 + len(s.hostname())) // the whole reply, AUTH with a few mechanisms included
	b.WriteString(s.hostname())
	b.WriteString("\nPIPELINING\nSIZE ")
	b.WriteString(strconv.FormatInt(o.MaxMessageSize, 10))
	b.WriteString("\nVRFY\nETRN\n")
	if s.offersStartTLS() {
		b.WriteString("STARTTLS\n")
	}
	if ms := s.authMechanisms(); len(ms) > 0 {
		// AUTH= too, for the old Outlook versions that only understand the draft's form.
		list := strings.Join(ms, " ")
		b.WriteString("AUTH " + list + "\nAUTH=" + list + "\n")
	}
	if s.tls != nil {
		b.WriteString("REQUIRETLS\n") // RFC 8689 §4: offered only once TLS is up
	}
	b.WriteString("ENHANCEDSTATUSCODES\n8BITMIME\nDSN\nSMTPUTF8\nCHUNKING\nBINARYMIME\nLIMITS RCPTMAX=")
	b.WriteString(strconv.Itoa(o.MaxRcpts))
	s.reply(smtp.R(smtp.CodeOK, "", b.String()))
}

// sanitizeHelo keeps the HELO argument printable and free of header syntax, since it is
// copied into the Received header.
func sanitizeHelo(h string) string {
	if len(h) > 255 {
		h = h[:255]
	}
	return strings.Map(func(r rune) rune {
		if r < 33 || r > 126 || r == '(' || r == ')' || r == '\\' || r == ';' {
			return '?'
		}
		return r
	}, h)
}

// offersStartTLS reports whether EHLO offers STARTTLS (and HELP lists it): there is a
// certificate and the session is not under TLS yet.
func (s *session) offersStartTLS() bool { return s.opts.TLS != nil && s.tls == nil }

// cmdHelp lists the commands this session takes now (RFC 5321 §4.1.1.8), as Exim does:
// STARTTLS and AUTH only where EHLO would offer them. Any argument gets the same list. (Postfix
// does not implement HELP and answers 502.)
func (s *session) cmdHelp() {
	cmds := []string{"HELO", "EHLO"}
	if s.offersStartTLS() {
		cmds = append(cmds, "STARTTLS")
	}
	if len(s.authMechanisms()) > 0 {
		cmds = append(cmds, "AUTH")
	}
	cmds = append(cmds, "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "ETRN", "HELP")
	s.reply(smtp.R(smtp.CodeHelp, smtp.EnhOther, "Commands supported:\n"+strings.Join(cmds, " ")))
}

func (s *session) cmdRset(arg string) {
	if arg != "" {
		s.reply(replyUsage("RSET"))
		return
	}
	s.abortTx()
	s.reply(replyOK)
}

func (s *session) cmdQuit(arg string) {
	if arg != "" {
		s.reply(replyUsage("QUIT"))
		return
	}
	s.closeWith(smtp.R(smtp.CodeClosing, smtp.EnhOther, "Bye"))
}

// cmdVrfy never says whether an address exists: that would hand out the list of accounts
// (RFC 5321 §3.5.3 allows 252 for exactly this).
func (s *session) cmdVrfy(arg string) {
	if arg == "" {
		s.reply(replyUsage("VRFY address"))
		return
	}
	s.reply(smtp.R(smtp.CodeCannotVerify, smtp.EnhOther, "Cannot VRFY user, but will accept message and attempt delivery"))
}

// cmdEtrn starts delivery of the mail queued for a domain (RFC 1985): "ETRN example.com" for the
// domain, "ETRN @example.com" for it and its subdomains, "ETRN #example.com" for the queue named
// after it (tern's queues are named by domain). Who may ask, and how often, is policy's.
func (s *session) cmdEtrn(arg string) {
	switch {
	case s.helo == "":
		s.reply(replyNeedHelo)
		return
	case s.tx != nil:
		s.reply(replyInTx)
		return
	case arg == "" || strings.ContainsAny(arg, " \t"):
		s.reply(replyUsage("ETRN [@|#]domain"))
		return
	}
	req := policy.ETRNRequest{Node: arg, Domain: arg, Subdomains: strings.HasPrefix(arg, "@")}
	if req.Subdomains || strings.HasPrefix(arg, "#") {
		req.Domain = arg[1:]
	}
	if _, err := smtp.ParseDomain(req.Domain); err != nil || strings.HasPrefix(req.Domain, "[") {
		s.reply(smtp.R(smtp.CodeParamSyntax, smtp.EnhInvalidArgs, "Syntax: ETRN [@|#]domain"))
		return
	}
	if s.opts.Flusher == nil || s.opts.ETRN == nil {
		// Nothing to run, or nobody to decide who may: a server without both offers no ETRN.
		s.reply(smtp.R(smtp.CodeETRNUnable, smtp.EnhSystemOther, "Unable to queue messages for node "+arg))
		return
	}
	if r := s.opts.ETRN.CheckETRN(s.client(), req); !r.Positive() {
		s.log.Info("etrn refused", "node", arg, "code", r.Code, "reason", r.Text)
		s.reply(r)
		return
	}
	n := s.opts.Flusher.Flush(req.Domain, req.Subdomains)
	s.log.Info("etrn", "node", arg, "messages", n)
	if n == 0 {
		s.reply(smtp.R(smtp.CodeETRNNoMessages, smtp.EnhOther, "OK, no messages waiting for node "+arg))
		return
	}
	s.reply(smtp.R(smtp.CodeETRNStarted, smtp.EnhOther, "OK, pending messages for node "+arg+" started"))
}
