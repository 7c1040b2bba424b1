// Package milter is tern's milter client: it asks a mail filter that speaks Sendmail's milter
// protocol (version 6: OpenDKIM, rspamd's proxy worker, clamav-milter) about each session
// and message, and turns its answers into filter verdicts for the session
// (smtpserver.FilterSession). The protocol itself is github.com/d--j/go-milter's client,
// which implements both sides and is tested against Postfix and Sendmail.
//
// Each SMTP session gets its own milter connection, opened at connect, as Postfix does. The
// macros are the ones Postfix sends, at the same stages. A milter that cannot be reached, that
// breaks the protocol, or that does not answer within its timeouts (connect, each command,
// the end of the message) gets its default action for the rest of the session: tempfail
// (451 4.7.1, Postfix's milter_default_action) or accept (go on without it). Its replies are
// read through a guard that refuses a packet larger than MaxPacket and more than MaxReply
// octets for one message before go-milter allocates them, so a milter gone wrong costs a
// session its filter, never the server its memory.
package milter

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/tern-mail/tern/internal/filter"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// Config is one milter.
type Config struct {
	Name string
	// Network and Address are where it listens: "unix" and a path, or "tcp" and host:port.
	Network, Address string
	// Roles are the listeners it filters.
	Roles []smtpserver.Role
	// ConnectTimeout, CommandTimeout and EOMTimeout bound the connection, each reply before
	// the end of a message, and the reply at its end.
	ConnectTimeout, CommandTimeout, EOMTimeout time.Duration
	// TempFail: a milter that is down answers 451 4.7.1; otherwise the session goes on
	// without it.
	TempFail bool
	Logger   *slog.Logger
}

// ParseAddress splits a milter address in Postfix's form, unix:/path or inet:host:port.
func ParseAddress(a string) (network, address string, err error) {
	switch {
	case strings.HasPrefix(a, "unix:/"):
		return "unix", strings.TrimPrefix(a, "unix:"), nil
	case strings.HasPrefix(a, "inet:"):
		return "tcp", strings.TrimPrefix(a, "inet:"), nil
	}
	return "", "", fmt.Errorf("milter: address %q: want unix:/path or inet:host:port", a)
}

// Filter is one configured milter; it implements smtpserver.Filter.
type Filter struct {
	cfg Config
	log *slog.Logger
}

// New returns the filter of one milter. Nothing is dialled until a session starts.
func New(cfg Config) *Filter {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Filter{cfg: cfg, log: log.With("milter", cfg.Name)}
}

// The macros Postfix sends at each stage (its milter_*_macros defaults), plus the client's
// address and name at connect, which Postfix makes available at every stage.
var stageMacros = map[gomilter.MacroStage][]gomilter.MacroName{
	gomilter.StageConnect: {gomilter.MacroMTAFQDN, gomilter.MacroDaemonName, gomilter.MacroDaemonAddr, gomilter.MacroMTAVersion,
		gomilter.MacroRFC1413AuthInfo, gomilter.MacroClientAddr, gomilter.MacroClientPort, gomilter.MacroClientName, gomilter.MacroClientPTR},
	gomilter.StageHelo: {gomilter.MacroTlsVersion, gomilter.MacroCipher, gomilter.MacroCipherBits, gomilter.MacroCertSubject, gomilter.MacroCertIssuer},
	gomilter.StageMail: {gomilter.MacroQueueId, gomilter.MacroAuthType, gomilter.MacroAuthAuthen, gomilter.MacroAuthAuthor,
		gomilter.MacroMailAddr, gomilter.MacroMailHost, gomilter.MacroMailMailer},
	gomilter.StageRcpt: {gomilter.MacroRcptAddr, gomilter.MacroRcptHost, gomilter.MacroRcptMailer},
	gomilter.StageData: {gomilter.MacroQueueId},
	gomilter.StageEOH:  {gomilter.MacroQueueId},
	gomilter.StageEOM:  {gomilter.MacroQueueId},
}

// Open starts a session with the milter (smtpserver.Filter); nil for a listener it does not
// filter. The connection is made by Connect.
func (f *Filter) Open(_ context.Context, c smtpserver.FilterConn) smtpserver.FilterSession {
	if !slices.Contains(f.cfg.Roles, c.Role) {
		return nil
	}
	return &session{f: f, conn: c, macros: gomilter.NewMacroBag()}
}

// session is the milter's view of one SMTP session. It belongs to the SMTP session's
// goroutine.
type session struct {
	f      *Filter
	conn   smtpserver.FilterConn
	macros *gomilter.MacroBag
	cs     *gomilter.ClientSession
	guard  *guardConn
	// down is set once the milter failed: every later call gets the default.
	down bool
	// inMessage is set between DataStart and the final reply, so that a refusal in the middle
	// of the message is followed by an abort, which puts the milter back before MAIL.
	inMessage bool
}

// watch ends the wait for the milter when ctx ends (the session's: a shutdown out of time);
// the call then fails and gets the default.
func (s *session) watch(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, s.guard.stop) // the call in progress reports it
}

// fail records a failure of the milter and returns the default verdict.
func (s *session) fail(stage string, err error) filter.Verdict {
	if !s.down {
		s.f.log.Warn("milter failed", "stage", stage, "err", err, "default", s.defaultVerdict().Action.String())
		s.down = true
		if s.cs != nil {
			_ = s.cs.Close() // it failed already: nothing to learn from Close
		}
	}
	return s.defaultVerdict()
}

func (s *session) defaultVerdict() filter.Verdict {
	if s.f.cfg.TempFail {
		return filter.Verdict{Action: filter.TempFail, Reply: smtp.R(smtp.CodeLocalError, smtp.EnhNotAuthorized, "Error: content filter unavailable, try again later")}
	}
	return filter.Verdict{Action: filter.Accept}
}

func (s *session) dial(network, address string) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, s.f.cfg.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	s.guard = &guardConn{Conn: c, eomTimeout: s.f.cfg.EOMTimeout}
	return s.guard, nil
}

type dialFunc func(network, address string) (net.Conn, error)

func (d dialFunc) Dial(network, address string) (net.Conn, error) { return d(network, address) }

// Connect opens the milter connection and sends the client's address.
func (s *session) Connect(ctx context.Context, st smtpserver.FilterState) filter.Verdict {
	m := s.macros
	m.Set(gomilter.MacroMTAFQDN, s.conn.Hostname)
	m.Set(gomilter.MacroMTAVersion, "tern")
	m.Set(gomilter.MacroDaemonName, cmp.Or(s.conn.Listener, s.conn.Role.String()))
	m.Set(gomilter.MacroDaemonAddr, s.conn.Local.Addr().Unmap().String())
	ip := s.conn.Remote.Addr().Unmap()
	m.Set(gomilter.MacroClientAddr, ip.String())
	m.Set(gomilter.MacroClientPort, strconv.Itoa(int(s.conn.Remote.Port())))
	// The screening lookups' names, with Postfix's "unknown" for none (or none looked up).
	name := cmp.Or(st.ClientName, "unknown")
	m.Set(gomilter.MacroClientName, name)
	m.Set(gomilter.MacroClientPTR, cmp.Or(st.ClientPTR, st.ClientName, "unknown"))
	m.Set(gomilter.MacroRFC1413AuthInfo, name+" ["+ip.String()+"]")
	opts := []gomilter.Option{
		gomilter.WithDialer(dialFunc(s.dial)),
		gomilter.WithReadTimeout(s.f.cfg.CommandTimeout),
		gomilter.WithWriteTimeout(s.f.cfg.CommandTimeout),
		gomilter.WithMaximumVersion(6),
		gomilter.WithActions(gomilter.AllClientSupportedActionMasks),
	}
	for stage, names := range stageMacros {
		opts = append(opts, gomilter.WithMacroRequest(stage, names))
	}
	cs, err := gomilter.NewClient(s.f.cfg.Network, s.f.cfg.Address, opts...).Session(m)
	if err != nil {
		return s.fail("connect", err)
	}
	s.cs = cs
	defer s.watch(ctx)()
	family := gomilter.FamilyInet
	if ip.Is6() {
		family = gomilter.FamilyInet6
	}
	// The connect event's host is the name, or Sendmail's "[address]" without one (as
	// Postfix's milter8_conn_event sends it).
	host := name
	if name == "unknown" {
		host = "[" + ip.String() + "]"
	}
	act, err := cs.Conn(host, family, s.conn.Remote.Port(), ip.String())
	return s.verdict("connect", act, err)
}

// Helo sends HELO/EHLO, with the TLS macros once TLS is up.
func (s *session) Helo(ctx context.Context, st smtpserver.FilterState) filter.Verdict {
	if s.down {
		return s.defaultVerdict()
	}
	defer s.watch(ctx)()
	if st.TLS != nil {
		// Postfix's values: TLSv1.3, the OpenSSL-like suite name, its key bits.
		s.macros.Set(gomilter.MacroTlsVersion, strings.Replace(tls.VersionName(st.TLS.Version), "TLS 1", "TLSv1", 1))
		s.macros.Set(gomilter.MacroCipher, tls.CipherSuiteName(st.TLS.CipherSuite))
		bits := "256"
		if strings.Contains(tls.CipherSuiteName(st.TLS.CipherSuite), "AES_128") {
			bits = "128"
		}
		s.macros.Set(gomilter.MacroCipherBits, bits)
	}
	act, err := s.cs.Helo(st.Helo)
	return s.verdict("helo", act, err)
}

// Mail sends MAIL FROM, with the authentication macros.
func (s *session) Mail(ctx context.Context, st smtpserver.FilterState) filter.Verdict {
	if s.down {
		return s.defaultVerdict()
	}
	defer s.watch(ctx)()
	m := s.macros
	m.Set(gomilter.MacroAuthAuthen, st.User)
	m.Set(gomilter.MacroAuthType, st.AuthMech)
	m.Set(gomilter.MacroMailAddr, st.From)
	m.Set(gomilter.MacroMailMailer, "smtp")
	host := ""
	if i := strings.LastIndexByte(st.From, '@'); i >= 0 {
		host = st.From[i+1:]
	}
	m.Set(gomilter.MacroMailHost, host)
	m.Set(gomilter.MacroQueueId, "")
	act, err := s.cs.Mail("<"+st.From+">", st.FromArgs)
	return s.verdict("mail", act, err)
}

// Rcpt sends one RCPT TO.
func (s *session) Rcpt(ctx context.Context, _ smtpserver.FilterState, rcpt, args string) filter.Verdict {
	if s.down {
		return s.defaultVerdict()
	}
	defer s.watch(ctx)()
	s.macros.Set(gomilter.MacroRcptAddr, rcpt)
	host := ""
	if i := strings.LastIndexByte(rcpt, '@'); i >= 0 {
		host = rcpt[i+1:]
	}
	s.macros.Set(gomilter.MacroRcptHost, host)
	s.macros.Set(gomilter.MacroRcptMailer, "smtp")
	act, err := s.cs.Rcpt("<"+rcpt+">", args)
	return s.verdict("rcpt", act, err)
}

// Message sends DATA, the header fields, the body in chunks and the end of the message, and
// returns the milter's verdict with its edits.
func (s *session) Message(ctx context.Context, st smtpserver.FilterState, h filter.Header, body io.Reader) filter.Verdict {
	if s.down {
		return s.defaultVerdict()
	}
	defer s.watch(ctx)()
	s.macros.Set(gomilter.MacroQueueId, st.QueueID)
	s.inMessage = true
	s.guard.startMessage()
	act, err := s.cs.DataStart()
	if v, stop := s.midMessage("data", act, err); stop {
		return v
	}
	for _, f := range h.Fields {
		act, err := s.cs.HeaderField(f.Name, f.Value(), nil)
		if v, stop := s.midMessage("header", act, err); stop {
			return v
		}
	}
	act, err = s.cs.HeaderEnd()
	if v, stop := s.midMessage("eoh", act, err); stop {
		return v
	}
	buf := make([]byte, bodyChunk)
	for !s.cs.Skip() {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			act, err := s.cs.BodyChunk(buf[:n])
			if v, stop := s.midMessage("body", act, err); stop {
				return v
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return s.fail("body", rerr)
		}
	}
	// Only the final reply gets the end-of-message timeout: the milter may take its time
	// there (a virus scan, a signature), not on every chunk.
	s.guard.eom = true
	mods, act, err := s.cs.End()
	s.guard.eom = false
	s.inMessage = false
	if err != nil {
		return s.fail("eom", err)
	}
	return withEdits(s.verdict("eom", act, nil), mods)
}

// bodyChunk is the size of the body chunks sent: the largest the protocol allows without
// negotiating more (SMFIC_BODY, 65535 octets).
const bodyChunk = 65535

// midMessage turns an answer inside the message into a verdict; stop is set when the message
// is decided (refused, discarded, accepted, or the milter failed).
func (s *session) midMessage(stage string, act *gomilter.Action, err error) (filter.Verdict, bool) {
	if err != nil {
		return s.fail(stage, err), true
	}
	if act.Type == gomilter.ActionContinue || act.Type == gomilter.ActionSkip {
		return filter.Verdict{}, false
	}
	return s.finishEarly(stage, act), true
}

// finishEarly ends a message the milter decided before its end, and puts the milter back
// before MAIL.
func (s *session) finishEarly(stage string, act *gomilter.Action) filter.Verdict {
	v := s.verdict(stage, act, nil)
	s.inMessage = false
	if s.down {
		return v
	}
	if err := s.cs.Abort(nil); err != nil {
		s.fail("abort", err)
	}
	return v
}

// Abort ends a transaction (RSET, a refused message).
func (s *session) Abort(context.Context) {
	if s.down || s.cs == nil {
		return
	}
	s.inMessage = false
	if err := s.cs.Abort(nil); err != nil {
		s.fail("abort", err)
	}
}

// Close ends the milter connection.
func (s *session) Close() {
	if s.cs != nil && !s.down {
		_ = s.cs.Close() // QUIT is a courtesy: the milter's reply does not matter
	}
}

// verdict maps a milter action to a filter verdict; an error is a failed milter.
func (s *session) verdict(stage string, act *gomilter.Action, err error) filter.Verdict {
	if err != nil {
		return s.fail(stage, err)
	}
	switch act.Type {
	case gomilter.ActionAccept:
		return filter.Verdict{Action: filter.Accept}
	case gomilter.ActionDiscard:
		return filter.Verdict{Action: filter.Discard}
	case gomilter.ActionReject:
		return filter.Verdict{Action: filter.Reject}
	case gomilter.ActionTempFail:
		return filter.Verdict{Action: filter.TempFail}
	case gomilter.ActionRejectWithCode:
		r, ok := ParseReply(int(act.SMTPCode), act.SMTPReply)
		switch {
		case !ok:
			s.f.log.Warn("milter sent a bad reply; using the default", "stage", stage, "code", act.SMTPCode)
			return filter.Verdict{Action: filter.Reject}
		case r.Code < 500:
			return filter.Verdict{Action: filter.TempFail, Reply: r}
		}
		return filter.Verdict{Action: filter.Reject, Reply: r}
	}
	return filter.Verdict{}
}

// withEdits adds the milter's modifications to v.
func withEdits(v filter.Verdict, mods []gomilter.ModifyAction) filter.Verdict {
	for _, m := range mods {
		var e filter.Edit
		switch m.Type {
		case gomilter.ActionAddHeader:
			e = filter.Edit{Kind: filter.AddHeader, Name: m.HeaderName, Value: m.HeaderValue}
		case gomilter.ActionInsertHeader:
			e = filter.Edit{Kind: filter.InsertHeader, Name: m.HeaderName, Value: m.HeaderValue, Index: int(m.HeaderIndex)}
		case gomilter.ActionChangeHeader:
			if m.HeaderIndex == 0 {
				continue // index 0 means nothing in the protocol; it must not delete them all
			}
			e = filter.Edit{Kind: filter.ChangeHeader, Name: m.HeaderName, Value: m.HeaderValue, Index: int(m.HeaderIndex)}
		case gomilter.ActionReplaceBody:
			e = filter.Edit{Kind: filter.ReplaceBody, Body: m.Body}
		case gomilter.ActionChangeFrom:
			e = filter.Edit{Kind: filter.ChangeFrom, Addr: m.From}
		case gomilter.ActionAddRcpt:
			e = filter.Edit{Kind: filter.AddRcpt, Addr: m.Rcpt}
		case gomilter.ActionDelRcpt:
			e = filter.Edit{Kind: filter.DelRcpt, Addr: m.Rcpt}
		case gomilter.ActionQuarantine:
			v.Quarantine = cmpOr(m.Reason, "quarantined by milter")
			continue
		default:
			continue
		}
		v.Edits = append(v.Edits, e)
	}
	return v
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ParseReply turns a milter's SMFIR_REPLYCODE text ("550 5.7.1 text", lines joined with
// CRLF, each with the code and "-" or " ") into a reply. ok is false when the code is no 4xx
// or 5xx, or a line does not start with it.
func ParseReply(code int, text string) (smtp.Reply, bool) {
	if code < 400 || code > 599 {
		return smtp.Reply{}, false
	}
	c := strconv.Itoa(code)
	enh := ""
	var lines []string
	for i, line := range strings.Split(strings.TrimRight(text, "\r\n"), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if !strings.HasPrefix(line, c) || len(line) > 3 && line[3] != ' ' && line[3] != '-' {
			return smtp.Reply{}, false
		}
		line = strings.TrimLeft(line[3:], " -")
		if e, rest, ok := cutEnhanced(line, c[0]); ok {
			if i == 0 {
				enh = e
			}
			line = rest
		}
		lines = append(lines, strings.Map(printable, line))
		if len(lines) == 20 { // a reply is for people; a milter sending more is broken
			break
		}
	}
	if enh == "" {
		enh = smtp.EnhNotAuthorized
	}
	return smtp.R(code, enh, strings.Join(lines, "\n")), true
}

// cutEnhanced takes an enhanced status code of class cls off the start of line (RFC 3463).
func cutEnhanced(line string, cls byte) (enh, rest string, ok bool) {
	word, rest, _ := strings.Cut(line, " ")
	parts := strings.Split(word, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || parts[0][0] != cls {
		return "", line, false
	}
	for _, p := range parts[1:] {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 999 || len(p) > 3 {
			return "", line, false
		}
	}
	return parts[1] + "." + parts[2], rest, true
}

func printable(r rune) rune {
	if r < 32 || r == 127 {
		return -1
	}
	return r
}

// guardConn bounds what the milter may send before go-milter reads it: each packet to
// MaxPacket octets (go-milter allocates a packet's announced size before reading it, up to
// 512 MiB) and all packets of one message to MaxReply. It also moves the read deadline of the
// final reply to the end-of-message timeout.
type guardConn struct {
	net.Conn
	eomTimeout time.Duration
	eom        bool // waiting for the final reply of a message
	frame      framer

	// stopped is set when the session's context ended: from then on every deadline is now, so
	// that a deadline go-milter sets after the stop (each read sets its own) cannot undo it.
	mu      sync.Mutex
	stopped bool
}

// stop ends the wait in progress and every later one.
func (g *guardConn) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopped = true
	_ = g.Conn.SetDeadline(time.Now()) // the call in progress fails with a timeout
}

// deadline is t, or now once stopped; g.mu is held.
func (g *guardConn) deadline(t time.Time) time.Time {
	if g.stopped {
		return time.Now()
	}
	return t
}

func (g *guardConn) SetDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Conn.SetDeadline(g.deadline(t))
}

func (g *guardConn) SetWriteDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Conn.SetWriteDeadline(g.deadline(t))
}

// The guard's bounds: a packet carries at most a body chunk of the largest size the protocol
// negotiates (1 MiB) or a header field; a message's edits at most a body the size of
// tern's largest message, twice over.
const (
	MaxPacket = 1<<20 + 64<<10
	MaxReply  = 64 << 20
)

// ErrTooBig is the guard's refusal of a milter's packet or reply.
var ErrTooBig = errors.New("milter: reply too big")

func (g *guardConn) startMessage() {
	g.frame.total = 0
}

func (g *guardConn) SetReadDeadline(t time.Time) error {
	if !t.IsZero() && g.eom {
		t = time.Now().Add(g.eomTimeout)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Conn.SetReadDeadline(g.deadline(t))
}

func (g *guardConn) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	if ferr := g.frame.feed(p[:n]); ferr != nil {
		return 0, ferr
	}
	return n, err
}

// framer follows the milter packets in a stream (a 4-octet big-endian length, then that many
// octets) and refuses those past the bounds.
type framer struct {
	hdr   [4]byte
	nhdr  int
	left  uint32 // octets of the current packet still to come
	total int64  // octets since the start of the message
}

func (f *framer) feed(p []byte) error {
	f.total += int64(len(p))
	if f.total > MaxReply {
		return ErrTooBig
	}
	for len(p) > 0 {
		if f.left > 0 {
			n := min(uint32(len(p)), f.left)
			f.left -= n
			p = p[n:]
			continue
		}
		f.hdr[f.nhdr] = p[0]
		f.nhdr++
		p = p[1:]
		if f.nhdr == 4 {
			f.nhdr = 0
			f.left = uint32(f.hdr[0])<<24 | uint32(f.hdr[1])<<16 | uint32(f.hdr[2])<<8 | uint32(f.hdr[3])
			if f.left > MaxPacket {
				return ErrTooBig
			}
		}
	}
	return nil
}
