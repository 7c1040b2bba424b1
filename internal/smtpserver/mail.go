package smtpserver

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/msghdr"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
)

// transaction is one MAIL ... end-of-data exchange.
type transaction struct {
	ctx        context.Context // the session's, or what Options.TxContext made of it
	from       smtp.Address    // zero for the null sender
	body       envelope.Body
	smtputf8   bool
	requireTLS bool
	ret        string
	envid      string
	rcpts      []envelope.Recipient
	seen       map[string]bool // recipients already accepted, to store each once
	accepted   int             // RCPT commands accepted, duplicates included (the limit counts these)
	overshoot  int             // RCPT commands refused for the recipient limit

	// BDAT state (RFC 3030): the message being assembled from chunks, the text check that runs
	// across chunk boundaries, and the reply every further chunk gets once one has failed.
	msg     Message
	chunked bool
	size    int64 // octets the client sent in chunks (what the size limit counts)
	hdrSize int64 // octets of our Received header, stored in front
	text    smtp.TextChecker
	failed  smtp.Reply // Code 0 until a chunk fails

	// fix adds the missing Date and Message-ID as the body streams (DATA and BDAT); nil when
	// policy does not want them added.
	fix *msghdr.Adder
	// strip takes forged Authentication-Results fields out (whenever there is an
	// Authentication, judged or not); judge checks SPF and DKIM (see authres.go), nil when
	// policy does not judge the client.
	strip *msghdr.Remover
	judge *judgement
	// author keeps the From fields as the message streams, for DMARC; nil when not judged.
	author *msghdr.Tap
	// in is where the client's octets go: the head of the chain judge (and author), strip, fix, msg.
	in io.Writer
}

// endContent ends the message (strip decides on a field held at its end, fix adds the fields of
// a message without a body) and returns the octets added less those removed.
func (tx *transaction) endContent() (int64, error) {
	var n int64
	if tx.strip != nil {
		if err := tx.strip.Close(); err != nil {
			return 0, err
		}
		n -= tx.strip.Removed()
	}
	if tx.fix != nil {
		err := tx.fix.Close()
		return n + tx.fix.Added(), err
	}
	return n, nil
}

// abortTx drops the current transaction and any partly received message.
func (s *session) abortTx() {
	if s.tx != nil && s.tx.msg != nil {
		s.tx.msg.Abort()
	}
	if s.tx != nil && s.tx.judge != nil {
		s.tx.judge.abort()
	}
	s.filterAbort()
	s.tx = nil
}

// cmdMail starts a transaction (RFC 5321 §4.1.1.2). Every decision gets one log line.
func (s *session) cmdMail(arg string) {
	r, from := s.mail(arg)
	r = s.filterMail(arg, r)
	if r.Positive() {
		s.log.Info("mail", "from", from, "code", r.Code, "body", string(s.tx.body), "smtputf8", s.tx.smtputf8)
	} else {
		s.log.Info("mail rejected", "from", from, "code", r.Code, "reason", r.Text)
		s.obs().CommandRefused(s.listenerName(), CommandMail, r)
	}
	s.reply(r)
}

// mail decides on a MAIL command and, when it is accepted, starts s.tx. It returns the reply
// and the sender as given, for the log.
func (s *session) mail(arg string) (smtp.Reply, string) {
	switch {
	case s.helo == "":
		return replyNeedHelo, ""
	case s.tx != nil:
		return smtp.R(smtp.CodeBadSequence, smtp.EnhInvalidCommand, "Error: nested MAIL command"), ""
	case s.lis.RequireTLS && s.tls == nil:
		return replyTLSRequired, ""
	case s.user == "" && s.lis.RequireAuth && s.opts.Auth != nil:
		// RFC 6409 §4.3: a submission server requires authentication.
		return replyAuthRequired, ""
	}
	pa, err := smtp.ParsePathArg(arg, "FROM:")
	if err != nil {
		return replyUsage("MAIL FROM:<address>"), ""
	}
	tx := &transaction{seen: make(map[string]bool)}
	if r, ok := s.mailParams(tx, pa.Params); !ok {
		return r, pa.Path
	}
	from, err := smtp.ParseReversePath(pa.Path)
	if err != nil || len(pa.Path) > smtp.MaxPath {
		return smtp.R(smtp.CodeParamSyntax, smtp.EnhBadSenderSyntax, "<"+pa.Path+">: Sender address rejected: bad address syntax"), pa.Path
	}
	if !from.IsASCII() && !tx.smtputf8 {
		return smtp.R(smtp.CodeMailboxNameInvalid, smtp.EnhNonASCIIAddr, "<"+pa.Path+">: Sender address rejected: non-ASCII address needs SMTPUTF8"), pa.Path
	}
	if s.user != "" && s.opts.Auth.SenderMustOwn {
		if r := s.checkSender(from); !r.Positive() {
			return r, pa.Path
		}
	}
	if r, ok := s.rateMail(); !ok {
		return r, pa.Path
	}
	tx.from = from
	tx.ctx = s.ctx
	if s.opts.TxContext != nil {
		tx.ctx = s.opts.TxContext(s.ctx)
	}
	s.tx = tx
	return smtp.R(smtp.CodeOK, smtp.EnhSenderOK, "Ok"), from.String()
}

// checkSender asks the configured SenderChecker, or policy.CheckSender, whether the account
// may use from.
func (s *session) checkSender(from smtp.Address) smtp.Reply {
	if sc := s.opts.Auth.Senders; sc != nil {
		ctx, cancel := s.lookupContext()
		defer cancel()
		return sc.CheckSender(ctx, s.user, from)
	}
	return policy.CheckSender(s.user, from)
}

// mailParams applies the ESMTP parameters of MAIL FROM to tx.
func (s *session) mailParams(tx *transaction, params []smtp.Param) (smtp.Reply, bool) {
	if len(params) > 0 && !s.esmtp {
		// Parameters are an ESMTP feature; a HELO client has not been told of any.
		return smtp.R(smtp.CodeParamsNotRecognized, smtp.EnhInvalidArgs, "Unsupported option: "+params[0].Key), false
	}
	bad := func(text string) (smtp.Reply, bool) {
		return smtp.R(smtp.CodeParamSyntax, smtp.EnhInvalidArgs, text), false
	}
	for _, p := range params {
		switch p.Key {
		case "SIZE": // RFC 1870
			n, err := strconv.ParseInt(p.Value, 10, 64)
			if err != nil || n < 0 || !p.HasValue {
				return bad("Bad message size syntax")
			}
			if n > s.opts.MaxMessageSize {
				return replyTooBig, false
			}
		case "BODY": // RFC 6152, RFC 3030
			switch b := envelope.Body(strings.ToUpper(p.Value)); b {
			case envelope.Body7Bit, envelope.Body8BitMIME, envelope.BodyBinaryMIME:
				tx.body = b
			default:
				return bad("Unsupported BODY type")
			}
		case "SMTPUTF8": // RFC 6531 §3.4
			if p.HasValue {
				return bad("SMTPUTF8 takes no value")
			}
			tx.smtputf8 = true
		case "REQUIRETLS": // RFC 8689: the message may only leave over verified TLS
			if p.HasValue || s.tls == nil {
				return smtp.R(smtp.CodeParamsNotRecognized, smtp.EnhInvalidArgs, "Unsupported option: REQUIRETLS"), false
			}
			tx.requireTLS = true
		case "RET": // RFC 3461 §4.3
			v := strings.ToUpper(p.Value)
			if v != "FULL" && v != "HDRS" {
				return bad("Bad RET parameter")
			}
			tx.ret = v
		case "AUTH": // RFC 4954 §5: the identity that submitted the message; we note who
			// authenticated ourselves, so the client's claim is only checked for syntax.
			if _, err := smtp.DecodeXtext(p.Value); err != nil || !p.HasValue {
				return bad("Bad AUTH parameter")
			}
		case "ENVID": // RFC 3461 §4.4
			v, err := smtp.DecodeXtext(p.Value)
			if err != nil || !p.HasValue || len(p.Value) > 100 {
				return bad("Bad ENVID parameter")
			}
			tx.envid = v
		default:
			return smtp.R(smtp.CodeParamsNotRecognized, smtp.EnhInvalidArgs, "Unsupported option: "+p.Key), false
		}
	}
	return smtp.Reply{}, true
}

// replyTooManyRcpts refuses a recipient past the limit: 452, not 552, so that the client sends
// the rest in another transaction (RFC 5321 §4.5.3.1.10).
var replyTooManyRcpts = smtp.R(smtp.CodeInsufficientStorage, smtp.EnhTooManyRcpts, "Too many recipients")

// cmdRcpt adds a recipient (RFC 5321 §4.1.1.3) after policy accepts it. Every decision gets
// one log line, except the recipients past the limit after the first.
func (s *session) cmdRcpt(arg string) {
	before := 0
	if s.tx != nil {
		before = len(s.tx.rcpts)
	}
	r, rcpt := s.rcpt(arg)
	r = s.filterRcpt(arg, before, r)
	if !r.Positive() {
		s.obs().CommandRefused(s.listenerName(), CommandRcpt, r)
	}
	from := ""
	if s.tx != nil {
		from = s.tx.from.String()
	}
	if r == replyTooManyRcpts {
		// A client that ignores RCPTMAX (Python's smtplib) gets MaxRcptOvershoot of these
		// free, as with Postfix's smtpd_recipient_overshoot_limit; only then do they count
		// as errors, so that it is not cut off before it can send to those it has.
		level := slog.LevelDebug
		if s.tx.overshoot == 1 {
			level = slog.LevelInfo
		}
		s.log.Log(s.ctx, level, "rcpt", "from", from, "rcpt", rcpt, "code", r.Code, "reason", r.Text, "over_limit", s.tx.overshoot)
		if s.tx.overshoot <= s.opts.MaxRcptOvershoot {
			s.replyUncounted(r)
			return
		}
		s.reply(r)
		return
	}
	s.log.Info("rcpt", "from", from, "rcpt", rcpt, "code", r.Code, "reason", r.Text)
	s.reply(r)
}

// rcpt decides on a RCPT command and adds the recipient to s.tx when it is accepted. It returns
// the reply and the recipient as given, for the log.
func (s *session) rcpt(arg string) (smtp.Reply, string) {
	if s.tx == nil {
		return replyNeedMail, ""
	}
	if s.tx.chunked {
		return smtp.R(smtp.CodeBadSequence, smtp.EnhInvalidCommand, "Error: RCPT after BDAT"), ""
	}
	pa, err := smtp.ParsePathArg(arg, "TO:")
	if err != nil {
		return replyUsage("RCPT TO:<address>"), ""
	}
	var rcpt envelope.Recipient
	if len(pa.Params) > 0 && !s.esmtp {
		return smtp.R(smtp.CodeParamsNotRecognized, smtp.EnhInvalidArgs, "Unsupported option: "+pa.Params[0].Key), pa.Path
	}
	if r, ok := rcptParams(&rcpt, pa.Params); !ok {
		return r, pa.Path
	}
	addr, err := smtp.ParseForwardPath(pa.Path)
	if err != nil || len(pa.Path) > smtp.MaxPath {
		return smtp.R(smtp.CodeParamSyntax, smtp.EnhBadDestSyntax, "<"+pa.Path+">: Recipient address rejected: bad address syntax"), pa.Path
	}
	if addr.Domain == "" { // <Postmaster>
		addr.Domain = s.opts.PostmasterDomain
	}
	if !addr.IsASCII() && !s.tx.smtputf8 {
		return smtp.R(smtp.CodeMailboxNameInvalid, smtp.EnhNonASCIIAddr, "<"+pa.Path+">: Recipient address rejected: non-ASCII address needs SMTPUTF8"), pa.Path
	}
	if s.tx.accepted >= s.opts.MaxRcpts {
		s.tx.overshoot++
		return replyTooManyRcpts, addr.String()
	}
	if r, ok := s.rateRcpt(); !ok {
		return r, addr.String()
	}
	ctx, cancel := s.lookupContextFrom(s.tx.ctx)
	defer cancel()
	r := s.opts.Rcpts.CheckRcpt(ctx, s.client(), addr)
	if r.Positive() && s.screen != nil {
		r = s.screenRcpt(addr)
	}
	if !r.Positive() {
		return r, addr.String()
	}
	s.tx.accepted++
	rcpt.Addr = addr.String()
	if key := strings.ToLower(rcpt.Addr); !s.tx.seen[key] {
		s.tx.seen[key] = true
		s.tx.rcpts = append(s.tx.rcpts, rcpt)
	}
	return r, rcpt.Addr
}

// rcptParams applies the DSN parameters of RCPT TO (RFC 3461 §4.1, §4.2).
func rcptParams(rcpt *envelope.Recipient, params []smtp.Param) (smtp.Reply, bool) {
	bad := func(text string) (smtp.Reply, bool) {
		return smtp.R(smtp.CodeParamSyntax, smtp.EnhInvalidArgs, text), false
	}
	for _, p := range params {
		switch p.Key {
		case "NOTIFY":
			if !p.HasValue {
				return bad("Bad NOTIFY parameter")
			}
			seen := map[string]bool{}
			for _, n := range strings.Split(strings.ToUpper(p.Value), ",") {
				if n != "NEVER" && n != "SUCCESS" && n != "FAILURE" && n != "DELAY" || seen[n] {
					return bad("Bad NOTIFY parameter")
				}
				seen[n] = true
				rcpt.Notify = append(rcpt.Notify, n)
			}
			if seen["NEVER"] && len(seen) > 1 {
				return bad("NOTIFY=NEVER cannot be combined")
			}
		case "ORCPT":
			typ, val, ok := strings.Cut(p.Value, ";")
			if !ok || typ == "" || !smtp.IsAtom(typ) {
				return bad("Bad ORCPT parameter")
			}
			dec, err := smtp.DecodeXtext(val)
			if err != nil || dec == "" {
				return bad("Bad ORCPT parameter")
			}
			rcpt.ORcpt = typ + ";" + dec
		default:
			return smtp.R(smtp.CodeParamsNotRecognized, smtp.EnhInvalidArgs, "Unsupported option: "+p.Key), false
		}
	}
	return smtp.Reply{}, true
}
