package smtpserver

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/smtp"
)

// AuthOptions enable SMTP AUTH (RFC 4954).
type AuthOptions struct {
	// Mechanisms are offered in this order; the -PLUS ones only over TLS.
	Mechanisms []string
	// NewServer starts the server half of a mechanism (sasl.NewServer in production).
	NewServer func(ctx context.Context, mech string, creds sasl.Credentials, opts sasl.ServerOptions) (sasl.Server, error)
	// Credentials look up what the mechanisms verify against.
	Credentials sasl.Credentials
	// Realms are offered by DIGEST-MD5.
	Realms []string
	// AllowCleartext offers AUTH without TLS; LoopbackIsSecure does so only to loopback clients.
	AllowCleartext, LoopbackIsSecure bool
	// SenderMustOwn limits an authenticated client's MAIL FROM to its own addresses.
	SenderMustOwn bool
	// Senders, when set, decides which addresses are an account's own for SenderMustOwn
	// (policy.Senders: the aliases that deliver to it too); nil: policy.CheckSender.
	Senders SenderChecker
	// AllowAuthzID lets PLAIN and SCRAM clients act for another account.
	AllowAuthzID bool
	// GSSAPI is the Kerberos service state GSSAPI needs (keytab, principal, principal map);
	// nil when GSSAPI is not configured.
	GSSAPI *sasl.GSSAPIAcceptor
	// Limiter slows down and blocks failed attempts; nil means no limit.
	Limiter *policy.AuthLimiter
}

// SenderChecker decides whether an account may use an envelope sender (policy.Senders).
type SenderChecker interface {
	CheckSender(ctx context.Context, account string, from smtp.Address) smtp.Reply
}

// MaxAuthLine is the longest AUTH command or response line, CRLF included: RFC 4954 §4 lets
// clients send initial responses up to 12288 octets.
const MaxAuthLine = 12288 + 2

var (
	replyAuthOK        = smtp.R(smtp.CodeAuthOK, smtp.EnhSecurityOther, "Authentication successful")
	replyAuthFailed    = smtp.R(smtp.CodeAuthFailed, smtp.EnhBadCredentials, "Error: authentication failed")
	replyAuthCancelled = smtp.R(smtp.CodeParamSyntax, smtp.EnhSecurityOther, "Error: authentication cancelled")
	replyBadBase64     = smtp.R(smtp.CodeParamSyntax, smtp.EnhSyntax, "Error: invalid base64 data")
	replyBadSASL       = smtp.R(smtp.CodeParamSyntax, smtp.EnhSyntax, "Error: malformed authentication response")
	replyAuthTempFail  = smtp.R(smtp.CodeTempUnavailable, smtp.EnhSecurityOther, "Temporary authentication failure")
	replyAuthRequired  = smtp.R(smtp.CodeAuthRequired, smtp.EnhSecurityOther, "Authentication required")
	replyTLSRequired   = smtp.R(smtp.CodeAuthRequired, smtp.EnhSecurityOther, "Must issue a STARTTLS command first")
	replyEncryptFirst  = smtp.R(smtp.CodeEncryptionRequired, smtp.EnhEncryptionNeeded, "Encryption required for requested authentication mechanism")
)

// authSecure reports whether this connection may carry AUTH: over TLS, or as configured.
func (s *session) authSecure() bool {
	a := s.opts.Auth
	return s.tls != nil || a.AllowCleartext || a.LoopbackIsSecure && s.remote.Addr().Unmap().IsLoopback()
}

// authMechanisms are the mechanisms offered on this connection now.
func (s *session) authMechanisms() []string {
	a := s.opts.Auth
	if a == nil || s.user != "" || !s.authSecure() {
		return nil
	}
	var ms []string
	for _, m := range a.Mechanisms {
		if strings.HasSuffix(m, "-PLUS") && s.tls == nil {
			continue // channel binding needs a TLS channel
		}
		ms = append(ms, m)
	}
	return ms
}

// loginRecorder remembers the login name a mechanism asked about, for the log and the limiter:
// a failed exchange has no authenticated identity to tell. It also gives each lookup its
// deadline (the session's lookup context).
type loginRecorder struct {
	sasl.Credentials
	s     *session
	login string
}

func (r *loginRecorder) CheckPassword(ctx context.Context, login, password string) (string, error) {
	r.login = login
	ctx, cancel := r.lookupContext(ctx)
	defer cancel()
	acct, err := r.Credentials.CheckPassword(ctx, login, password)
	return acct, lookupError(ctx, err)
}

func (r *loginRecorder) Secret(ctx context.Context, login, kind string) (string, []byte, error) {
	r.login = login
	ctx, cancel := r.lookupContext(ctx)
	defer cancel()
	acct, secret, err := r.Credentials.Secret(ctx, login, kind)
	return acct, secret, lookupError(ctx, err)
}

// Account passes sasl.AccountChecker through (GSSAPI asks it), when the credentials have it.
func (r *loginRecorder) Account(ctx context.Context, login string) (string, error) {
	r.login = login
	ac, ok := r.Credentials.(sasl.AccountChecker)
	if !ok {
		return "", fmt.Errorf("%w: the account store cannot check accounts", sasl.ErrUnavailable)
	}
	ctx, cancel := r.lookupContext(ctx)
	defer cancel()
	acct, err := ac.Account(ctx, login)
	return acct, lookupError(ctx, err)
}

// lookupContext bounds one lookup; ctx is the session's, which the mechanism was started with.
func (r *loginRecorder) lookupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, min(r.s.opts.IdleTimeout, lookupTimeout))
}

// lookupError makes a lookup that ran out of time (or was cut by a shutdown) a temporary
// failure whatever the store made of it: it says nothing about the password, so it must not
// be answered 535 or counted by the limiter.
func lookupError(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && !errors.Is(err, sasl.ErrUnavailable) {
		return fmt.Errorf("%w: %v (%v)", sasl.ErrUnavailable, ctx.Err(), err)
	}
	return err
}

// cmdAuth runs an AUTH exchange (RFC 4954).
func (s *session) cmdAuth(arg string) {
	a := s.opts.Auth
	switch {
	case a == nil:
		s.reply(smtp.R(smtp.CodeBadSequence, smtp.EnhInvalidCommand, "Error: authentication not enabled"))
		return
	case s.helo == "":
		s.reply(replyNeedHelo)
		return
	case s.user != "":
		s.reply(smtp.R(smtp.CodeBadSequence, smtp.EnhInvalidCommand, "Error: already authenticated"))
		return
	case s.tx != nil:
		s.reply(replyInTx)
		return
	case s.lis.RequireTLS && s.tls == nil:
		s.reply(replyTLSRequired)
		return
	case !s.authSecure():
		s.reply(replyEncryptFirst)
		return
	}
	mech, ir, hasIR := strings.Cut(arg, " ")
	mech = strings.ToUpper(mech)
	if mech == "" {
		s.reply(replyUsage("AUTH mechanism [initial-response]"))
		return
	}
	if !slices.Contains(s.authMechanisms(), mech) {
		s.reply(smtp.R(smtp.CodeParamNotImplemented, smtp.EnhInvalidArgs, "Unrecognized authentication type"))
		return
	}
	if a.Limiter != nil {
		if r, ok := a.Limiter.Allow(s.remote.Addr()); !ok {
			s.log.Warn("auth refused: client blocked")
			s.closeWith(r)
			return
		}
	}
	var resp []byte // nil: no initial response
	if hasIR {
		var ok bool
		if resp, ok = decodeAuthLine(ir); !ok {
			s.reply(replyBadBase64)
			return
		}
	}
	creds := &loginRecorder{Credentials: a.Credentials, s: s}
	srv, err := a.NewServer(s.ctx, mech, creds, sasl.ServerOptions{
		Hostname:     s.hostname(),
		Realms:       a.Realms,
		TLS:          s.tls,
		Certificate:  s.srv.leaf,
		AllowAuthzID: a.AllowAuthzID,
		GSSAPI:       a.GSSAPI,
	})
	if err != nil {
		s.log.Error("auth: cannot start mechanism", "mech", mech, "err", err)
		s.reply(replyAuthTempFail)
		return
	}
	for {
		challenge, done, err := srv.Next(resp)
		if err != nil {
			s.authFailed(mech, creds.login, err)
			return
		}
		if done {
			s.authSucceeded(mech, srv.Identity())
			return
		}
		s.reply(smtp.R(smtp.CodeAuthChallenge, "", base64.StdEncoding.EncodeToString(challenge)))
		if !s.flush() {
			return
		}
		line, err := s.readLine(false)
		if err != nil {
			if !s.lineError(err) {
				return
			}
			s.log.Info("auth aborted", "mech", mech, "err", err)
			return // lineError answered; the exchange is over
		}
		if string(line) == "*" {
			s.log.Info("auth cancelled", "mech", mech, "user", creds.login)
			s.reply(replyAuthCancelled)
			return
		}
		var ok bool
		if resp, ok = decodeAuthLine(string(line)); !ok {
			s.log.Info("auth aborted: bad base64", "mech", mech, "user", creds.login)
			s.reply(replyBadBase64)
			return
		}
	}
}

// decodeAuthLine decodes a base64 client response; "=" is the empty initial response.
func decodeAuthLine(s string) ([]byte, bool) {
	if s == "=" {
		return []byte{}, true
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || strings.ContainsAny(s, " \t") {
		return nil, false
	}
	return b, true
}

// authSucceeded records the identity, unless the limiter refuses this client the account (it
// failed for it while the account is under attack, or got blocked meanwhile): that is answered
// exactly like a wrong password, so that a guesser cannot tell it guessed right.
func (s *session) authSucceeded(mech, account string) {
	if lim := s.opts.Auth.Limiter; lim != nil {
		if why, ok := lim.Succeeded(s.remote.Addr(), account); !ok {
			s.authFailed(mech, account, fmt.Errorf("%w: right credentials refused: %s", sasl.ErrAuthFailed, why))
			return
		}
	}
	s.user = account
	s.authMech = mech
	s.log.Info("auth", "mech", mech, "user", account)
	s.obs().Auth(mech, true)
	s.reply(replyAuthOK)
}

// authFailed answers a failed exchange. Wrong credentials are answered after the limiter's
// delay, and the log line names the client and the login (for fail2ban), never the response.
func (s *session) authFailed(mech, login string, err error) {
	var r smtp.Reply
	switch {
	case errors.Is(err, sasl.ErrUnavailable):
		s.log.Error("auth: credentials unavailable", "mech", mech, "user", login, "err", err)
		s.reply(replyAuthTempFail)
		return
	case errors.Is(err, sasl.ErrProtocol):
		r = replyBadSASL
	default:
		r = replyAuthFailed
	}
	s.log.Warn("auth failed", "mech", mech, "user", login, "reason", err)
	s.obs().Auth(mech, false)
	if lim := s.opts.Auth.Limiter; lim != nil {
		delay, block, blocked := lim.Failed(s.remote.Addr(), login)
		// The delay holds only this session; the server goes on.
		timer := time.NewTimer(delay)
		<-timer.C
		if blocked {
			s.reply(r)
			s.closeWith(block)
			return
		}
	}
	s.reply(r)
}
