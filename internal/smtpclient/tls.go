package smtpclient

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/tern-mail/tern/internal/smtp"
)

// StartTLS sends STARTTLS (RFC 3207) and runs the TLS handshake with Options.TLSConfig. The
// server must have offered it. Afterwards the client knows no extensions until the next EHLO
// (RFC 3207 §4.2), which Hello sends, or the next command that needs it.
func (c *Client) StartTLS(ctx context.Context) error {
	switch {
	case c.tlsState != nil:
		return &Error{Command: CmdSTARTTLS, Err: ErrAlreadyTLS}
	case c.opts.TLSConfig == nil:
		return &Error{Command: CmdSTARTTLS, Permanent: true, Err: ErrNoTLSConfig}
	}
	if err := c.ensureHello(ctx); err != nil {
		return err
	}
	if !c.ext.StartTLS {
		return &Error{Command: CmdSTARTTLS, Err: ErrNotOffered}
	}
	r, err := c.cmd(ctx, CmdSTARTTLS, "STARTTLS")
	if err != nil {
		return err
	}
	if r.Code != smtp.CodeReady {
		return replyError(CmdSTARTTLS, r)
	}
	if c.br.Buffered() > 0 {
		return c.breakOn(CmdSTARTTLS, ErrDataAfterStartTLS)
	}
	return c.handshake(ctx, CmdSTARTTLS, c.opts.CommandTimeout)
}

// handshake puts TLS on the connection and forgets the session's state.
func (c *Client) handshake(ctx context.Context, cmd string, timeout time.Duration) error {
	if c.opts.TLSConfig == nil {
		return &Error{Command: cmd, Permanent: true, Err: ErrNoTLSConfig}
	}
	tc := tls.Client(c.conn, c.opts.TLSConfig)
	done := c.begin(ctx, timeout)
	err := tc.HandshakeContext(ctx)
	done()
	if err != nil {
		return c.breakOn(cmd, err)
	}
	st := tc.ConnectionState()
	c.dl.Lock()
	c.conn = tc
	c.dl.Unlock()
	c.tlsState = &st
	c.br.Reset(tc)
	c.bw.Reset(deadlineWriter{c})
	c.ext, c.esmtp, c.greeted, c.authed, c.inTx = Extensions{}, false, false, false, false
	return nil
}
