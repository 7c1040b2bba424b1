package smtpserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/filter"
	"github.com/tern-mail/tern/internal/smtp"
)

// Filter inspects sessions and their messages: a milter, rspamd. Package app builds them from
// the configuration; the session only asks them and applies their verdicts (see filter.go's
// filterMessage for how the edits reach the queue).
type Filter interface {
	// Open starts filtering one session; nil when the filter does not serve its listener.
	Open(ctx context.Context, c FilterConn) FilterSession
}

// FilterConn describes a session to a filter.
type FilterConn struct {
	Role     Role
	Listener string // the listener's name
	Hostname string // ours
	Remote   netip.AddrPort
	Local    netip.AddrPort
}

// FilterState is what the session knows when it asks a filter.
type FilterState struct {
	Helo     string
	TLS      *tls.ConnectionState
	User     string // the authenticated account, "" before AUTH
	AuthMech string
	From     string // the reverse-path, "" for <>
	FromArgs string // the ESMTP parameters of MAIL FROM, as sent
	Rcpts    []string
	QueueID  string // at the end of a message
	// ClientName is the client's forward-confirmed name from the screening lookups, as
	// Postfix's smtpd has it: the name, "unknown" without one, "" when it was not looked up
	// (no screening on this listener, or the lookups did not end in time). ClientPTR is the
	// first name its PTR records gave, confirmed or not; "" without one.
	ClientName, ClientPTR string
}

// FilterSession is one filter's view of one session. A failing filter answers with the
// verdict its configuration gives a filter that is down (tempfail or continue); the session
// never sees its error.
type FilterSession interface {
	Connect(ctx context.Context, st FilterState) filter.Verdict
	Helo(ctx context.Context, st FilterState) filter.Verdict
	Mail(ctx context.Context, st FilterState) filter.Verdict
	Rcpt(ctx context.Context, st FilterState, rcpt, args string) filter.Verdict
	// Message gets the message as stored (tern's Received field first) at the end of DATA or
	// of the last BDAT chunk, and answers with the verdict and edits for it.
	Message(ctx context.Context, st FilterState, h filter.Header, body io.Reader) filter.Verdict
	// Abort ends a transaction that did not get to Message (RSET, a refused message).
	Abort(ctx context.Context)
	Close()
}

// Rereader is a Message that can be read back before its commit (queue.Writer): content
// filters read the message as stored. Without it, messages are not filtered but tempfailed.
type Rereader interface {
	Reader() (io.ReadCloser, error)
}

// filtering is the session's filter state.
type filtering struct {
	sessions []FilterSession
	// done marks the filters that accepted for the whole session, txDone those that accepted
	// for the current transaction: neither is asked again.
	done, txDone []bool
	// inTx marks the filters that were sent MAIL and not yet the message or an abort: each
	// must get one or the other before the next MAIL.
	inTx []bool
	// discard is set when a filter discarded the transaction before its end.
	discard bool
}

// openFilters starts the session's filters and asks them about the connection. It answers
// the client itself and returns false when one refuses.
func (s *session) openFilters() bool {
	if len(s.opts.Filters) == 0 {
		return true
	}
	local, _ := netip.ParseAddrPort(s.raw.LocalAddr().String())
	c := FilterConn{Role: s.role, Listener: s.lis.Name, Hostname: s.hostname(), Remote: s.remote, Local: local}
	f := &filtering{}
	for _, fl := range s.opts.Filters {
		if fs := fl.Open(s.ctx, c); fs != nil {
			f.sessions = append(f.sessions, fs)
		}
	}
	if len(f.sessions) == 0 {
		return true
	}
	f.done = make([]bool, len(f.sessions))
	f.txDone = make([]bool, len(f.sessions))
	f.inTx = make([]bool, len(f.sessions))
	s.filters = f
	r, ok := s.askFilters("connect", func(ctx context.Context, fs FilterSession, st FilterState) filter.Verdict {
		return fs.Connect(ctx, st)
	})
	if !ok {
		// RFC 5321 §3.1: a server may refuse with 554 in place of the greeting; a tempfail
		// gets 421.
		if r.Code < 500 {
			r = smtp.R(smtp.CodeUnavailable, r.Enh, r.Text)
		} else {
			r = smtp.R(smtp.CodeTransactionFailed, r.Enh, r.Text)
		}
		s.reply(r)
		s.flush()
		return false
	}
	return true
}

// closeFilters ends the session's filters.
func (s *session) closeFilters() {
	if s.filters == nil {
		return
	}
	for _, fs := range s.filters.sessions {
		fs.Close()
	}
}

func (s *session) filterState() FilterState {
	st := FilterState{Helo: s.helo, TLS: s.tls, User: s.user, AuthMech: s.authMech}
	// At connect this waits for the lookups (bounded), as Postfix's smtpd resolves the client
	// before it tells its milters.
	st.ClientName, st.ClientPTR = s.clientNames()
	if s.tx != nil {
		st.From = s.tx.from.String()
		for _, r := range s.tx.rcpts {
			st.Rcpts = append(st.Rcpts, r.Addr)
		}
		if s.tx.msg != nil {
			st.QueueID = s.tx.msg.ID()
		}
	}
	return st
}

// askFilters asks every filter still listening, in order, and stops at the first refusal. A
// discard before the end of a message marks the transaction (Postfix does the same).
func (s *session) askFilters(stage string, ask func(context.Context, FilterSession, FilterState) filter.Verdict) (smtp.Reply, bool) {
	f := s.filters
	if f == nil {
		return smtp.Reply{}, true
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	st := s.filterState()
	for i, fs := range f.sessions {
		if f.done[i] || f.txDone[i] {
			continue
		}
		if stage == "mail" {
			f.inTx[i] = true
		}
		v := ask(ctx, fs, st)
		switch v.Action {
		case filter.Accept:
			if stage == "connect" || stage == "helo" {
				f.done[i] = true
			} else {
				f.txDone[i] = true
			}
		case filter.Discard:
			f.discard = true
		case filter.Reject, filter.TempFail:
			r := v.RefusalReply()
			s.log.Info("filter refused", "stage", stage, "filter", i, "code", r.Code, "reason", r.Text)
			s.obs().Filtered(v.Action.String())
			return r, false
		}
	}
	return smtp.Reply{}, true
}

// filterHelo asks the filters about HELO/EHLO.
func (s *session) filterHelo() (smtp.Reply, bool) {
	return s.askFilters("helo", func(ctx context.Context, fs FilterSession, st FilterState) filter.Verdict {
		return fs.Helo(ctx, st)
	})
}

// filterMail asks the filters about an accepted MAIL FROM; on a refusal the transaction ends.
func (s *session) filterMail(arg string, r smtp.Reply) smtp.Reply {
	if s.filters == nil || !r.Positive() {
		return r
	}
	f := s.filters
	clear(f.txDone)
	f.discard = false
	fr, ok := s.askFilters("mail", func(ctx context.Context, fs FilterSession, st FilterState) filter.Verdict {
		st.FromArgs = esmtpArgs(arg)
		return fs.Mail(ctx, st)
	})
	if !ok {
		s.abortTx()
		return fr
	}
	return r
}

// filterRcpt asks the filters about an accepted recipient; on a refusal it is taken back out.
func (s *session) filterRcpt(arg string, before int, r smtp.Reply) smtp.Reply {
	if s.filters == nil || !r.Positive() || s.tx == nil || len(s.tx.rcpts) == before {
		return r
	}
	rcpt := s.tx.rcpts[len(s.tx.rcpts)-1]
	fr, ok := s.askFilters("rcpt", func(ctx context.Context, fs FilterSession, st FilterState) filter.Verdict {
		return fs.Rcpt(ctx, st, rcpt.Addr, esmtpArgs(arg))
	})
	if !ok {
		s.tx.rcpts = s.tx.rcpts[:before]
		delete(s.tx.seen, strings.ToLower(rcpt.Addr))
		return fr
	}
	return r
}

// esmtpArgs is the parameter part of a MAIL or RCPT argument, after the path.
func esmtpArgs(arg string) string {
	if i := strings.IndexByte(arg, '>'); i >= 0 {
		return strings.TrimSpace(arg[i+1:])
	}
	return ""
}

// filterAbort tells the filters that the transaction ended before its message did.
func (s *session) filterAbort() {
	f := s.filters
	if f == nil {
		return
	}
	for i, fs := range f.sessions {
		if f.inTx[i] {
			f.inTx[i] = false
			fs.Abort(s.ctx)
		}
	}
}

// filterMessage runs the filters on the received message before it is committed, in order,
// each on the message as the ones before it left it, and applies their verdicts to env and
// s.tx.msg. It answers the client itself and returns false when the message is not to be
// committed (refused or discarded).
//
// The queue commits a message as it streams, so an edit of its text cannot be made in place:
// the edited message is written to a new queue message and the first is aborted. That costs
// one more write of the message (no fsync: the aborted one never reaches its commit) and only
// when a filter edits the text; envelope edits and a hold only change env.
func (s *session) filterMessage(env *envelope.Envelope) bool {
	f := s.filters
	if f == nil {
		return true
	}
	// Every filter still in the transaction that does not get the message (one before it
	// refused, or it accepted earlier) gets an abort.
	defer s.filterAbort()
	discard := f.discard
	for i, fs := range f.sessions {
		if f.done[i] || f.txDone[i] || discard {
			continue
		}
		f.inTx[i] = false
		v, err := s.filterOne(fs, env)
		if err != nil {
			s.log.Error("filter: reading the message back failed", "err", err)
			s.abortTx()
			s.reply(replyQueueError)
			return false
		}
		switch v.Action {
		case filter.Reject, filter.TempFail:
			r := v.RefusalReply()
			s.log.Info("message refused by filter", "filter", i, "code", r.Code, "reason", r.Text)
			s.obs().Rejected(s.listenerName(), r)
			s.obs().Filtered(v.Action.String())
			s.abortTx()
			s.reply(r)
			return false
		case filter.Discard:
			discard = true
			continue
		}
		if v.Quarantine != "" {
			env.Held = true
			s.log.Info("message held by filter", "filter", i, "msgid", env.ID, "reason", v.Quarantine)
			s.obs().Filtered("quarantine")
		}
		editEnvelope(env, v.Edits)
		if len(env.Rcpts) == 0 {
			discard = true // Postfix too discards a message whose recipients were all deleted
			continue
		}
		if filter.ChangesText(v.Edits) {
			if err := s.rewriteMessage(env, v.Edits); err != nil {
				s.log.Error("filter: rewriting the message failed", "err", err)
				s.abortTx()
				s.reply(replyQueueError)
				return false
			}
		}
	}
	if discard {
		// The client is told what it would have been told: the message is gone for good.
		s.log.Info("message discarded by filter", "msgid", env.ID, "from", env.From, "nrcpt", len(env.Rcpts))
		s.obs().Filtered(filter.Discard.String())
		id := env.ID
		s.abortTx()
		s.messages++
		s.errors = 0
		s.reply(smtp.R(smtp.CodeOK, smtp.EnhOther, "Ok: queued as "+id))
		return false
	}
	return true
}

// filterOne hands the stored message to one filter.
func (s *session) filterOne(fs FilterSession, env *envelope.Envelope) (filter.Verdict, error) {
	rr, ok := s.tx.msg.(Rereader)
	if !ok {
		return filter.Verdict{}, errors.New("smtpserver: the spool cannot read a message back")
	}
	rc, err := rr.Reader()
	if err != nil {
		return filter.Verdict{}, err
	}
	defer func() { _ = rc.Close() }() // only read: nothing to lose
	h, body, err := filter.ReadHeader(bufio.NewReader(rc))
	if err != nil {
		return filter.Verdict{}, err
	}
	st := s.filterState()
	st.From, st.QueueID = env.From, env.ID
	st.Rcpts = st.Rcpts[:0]
	for _, r := range env.Rcpts {
		st.Rcpts = append(st.Rcpts, r.Addr)
	}
	// The message is not durable yet: a shutdown may close the connection while a filter
	// thinks (phaseCommand), and the client sends it again.
	return fs.Message(s.ctx, st, h, body), nil
}

// editEnvelope applies a filter's sender and recipient edits.
func editEnvelope(env *envelope.Envelope, edits []filter.Edit) {
	for _, e := range edits {
		addr := strings.TrimSuffix(strings.TrimPrefix(e.Addr, "<"), ">")
		switch e.Kind {
		case filter.ChangeFrom:
			env.From = addr
		case filter.AddRcpt:
			if addr != "" && !slices.ContainsFunc(env.Rcpts, func(r envelope.Recipient) bool { return strings.EqualFold(r.Addr, addr) }) {
				env.Rcpts = append(env.Rcpts, envelope.Recipient{Addr: addr})
			}
		case filter.DelRcpt:
			env.Rcpts = slices.DeleteFunc(env.Rcpts, func(r envelope.Recipient) bool { return strings.EqualFold(r.Addr, addr) })
		}
	}
}

// rewriteMessage writes the message with the edits to a new queue message, which takes the
// place of the first. Our Received field names the queue id: it gets the new one.
func (s *session) rewriteMessage(env *envelope.Envelope, edits []filter.Edit) error {
	tx := s.tx
	rc, err := tx.msg.(Rereader).Reader() // filterOne checked
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }() // only read: nothing to lose
	h, body, err := filter.ReadHeader(bufio.NewReader(rc))
	if err != nil {
		return err
	}
	msg, err := s.opts.Spool.NewMessage()
	if err != nil {
		return err
	}
	old := tx.msg.ID()
	if len(h.Fields) > 0 && strings.HasPrefix(h.Fields[0].Raw, "Received: from ") {
		h.Fields[0].Raw = strings.Replace(h.Fields[0].Raw, " id "+old, " id "+msg.ID(), 1)
	}
	newBody, replaced, aerr := filter.Apply(&h, edits)
	if aerr != nil {
		s.log.Warn("filter: an edit was skipped", "err", aerr)
	}
	if replaced {
		body = strings.NewReader(string(filter.CRLF(newBody)))
	}
	size, err := h.Write(msg, body)
	if err != nil {
		msg.Abort()
		return err
	}
	tx.msg.Abort()
	tx.msg = msg
	env.ID = msg.ID()
	env.Size = size + int64(len(env.Prepend))
	s.log.Info("message edited by filter", "msgid", msg.ID(), "was", old)
	return nil
}
