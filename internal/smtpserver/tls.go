package smtpserver

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/tlsutil"
)

// handshakeTimeout bounds a TLS handshake, which a client could otherwise stall forever (the
// idle timeout, when shorter, bounds it too).
const handshakeTimeout = 30 * time.Second

// cmdStartTLS upgrades the connection (RFC 3207).
func (s *session) cmdStartTLS(arg string) {
	switch {
	case arg != "":
		s.reply(replyUsage("STARTTLS"))
		return
	case s.opts.TLS == nil:
		s.reply(replyNotImpl)
		return
	case s.tls != nil:
		s.reply(smtp.R(smtp.CodeBadSequence, smtp.EnhInvalidCommand, "Error: TLS already active"))
		return
	case s.tx != nil:
		s.reply(replyInTx)
		return
	}
	s.reply(smtp.R(smtp.CodeReady, smtp.EnhOther, "Ready to start TLS"))
	if !s.flush() {
		return
	}
	// Anything the client sent after STARTTLS came in cleartext and could have been injected by
	// a man in the middle (CVE-2011-0411): it is thrown away, never read as commands under TLS.
	if n := s.br.Buffered() + len(s.in.pending); n > 0 {
		s.log.Warn("discarding input pipelined after STARTTLS", "octets", n)
	}
	s.handshake()
}

// handshake runs the TLS handshake on the connection and, on success, starts the session over
// as RFC 3207 §4.2 demands: no greeting, no transaction, the client must EHLO again.
func (s *session) handshake() bool {
	tc := tls.Server(s.conn, s.opts.TLS)
	// Bounded as a whole, like a command line (a client trickling its ClientHello holds its slot
	// no longer than one trickling a command), and cut when a shutdown runs out of time.
	d := min(handshakeTimeout, s.opts.IdleTimeout)
	s.readBy = time.Now().Add(d)
	ctx, cancel := context.WithTimeout(s.ctx, d)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.log.Info("TLS handshake failed", "err", err)
		s.obs().Refused(s.listenerName(), RefusedTLS)
		s.quit = true
		return false
	}
	cs := tc.ConnectionState()
	s.tls = &cs
	s.conn = tc
	// Whatever was buffered in cleartext is dropped with the Reset (see cmdStartTLS).
	s.in = primedReader{r: tc}
	s.br.Reset(&s.in)
	s.bw.Reset(tc)
	// Nothing learnt before TLS is kept (RFC 3207 §4.2), an authentication included.
	s.helo, s.esmtp, s.user, s.authMech = "", false, "", ""
	s.abortTx()
	s.log.Info("TLS established", "tls", tlsutil.Describe(cs))
	return true
}
