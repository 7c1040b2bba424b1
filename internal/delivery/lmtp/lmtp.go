// Package lmtp delivers mail for local accounts to a mailbox server over LMTP (RFC 2033), such
// as Dovecot's lmtp service, instead of writing Maildir files itself. It is a
// delivery.BatchDeliverer (delivery.Router.LMTP): the queue hands it the local recipients of a
// message and gets one Outcome per recipient.
//
// It owns the LMTP conversation and the mapping of the server's replies to outcomes. It does
// not decide who is local or look up accounts (the router does), does not retry (the queue
// does) and keeps no state between calls.
//
// # The conversation
//
// Each DeliverBatch opens one connection (TCP, or a unix socket with "unix:/path"), sends
// LHLO, then MAIL, one RCPT per recipient with the address as given (the full address: the
// server's auth_username_format decides what it looks up), and the message, and reads one
// reply per accepted recipient after the data (RFC 2033 §4.2). MAIL carries BODY=8BITMIME and
// SMTPUTF8 when the envelope has them and the server offers them; a server that does not is
// sent the message without, since it is the final destination and no further hop can be hurt
// by what it stores (Dovecot 2.3 offers no SMTPUTF8: it takes a UTF-8 sender anyway, but
// refuses a non-ASCII local part at RCPT with 501 5.5.4, which bounces). Bare CR and LF in a text body are turned into CRLF. A BODY=BINARYMIME
// message goes out with DATA as 8BITMIME when its octets allow it (no NUL, CRLF line ends
// only); otherwise it fails with 554 5.6.3, since DATA cannot carry it unchanged and tern
// does not convert. A quarantined message (it failed DMARC) gets QuarantineField on top.
//
// # Outcomes
//
// A 2xx for a recipient means the server has the message: delivered. A 4xx is temporary and a
// 5xx permanent, with Code, Enh and Msg taken from the server's reply, as it sent it, for
// the DSN. A refused MAIL or DATA decides for every recipient still open. Failures that are
// not about the message (no connection, a refused greeting or LHLO, a connection lost before
// a recipient's reply, a malformed reply, a timeout) are temporary for every recipient not yet
// decided: a misconfigured or restarting mailbox server must hold mail, not bounce it. Such a
// failure after the data may leave the server with the message for a recipient whose reply
// was lost: that recipient gets it a second time on the retry, the lesser evil.
//
// Outcome.RemoteMTA is left empty: this is local delivery, and the queue reads an empty
// RemoteMTA as such. The server's address is in the log lines instead.
package lmtp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/smtpclient"
)

// Default timeouts (RFC 5321 §4.5.3.2, which LMTP inherits).
const (
	DefaultConnectTimeout = 30 * time.Second
	DefaultCommandTimeout = 5 * time.Minute
	DefaultDataTimeout    = 10 * time.Minute
)

// Timeouts bound each step of a delivery. A zero field takes its default.
type Timeouts struct {
	// Connect bounds connecting (TCP or the unix socket). Default: 30 seconds.
	Connect time.Duration
	// Command bounds the greeting, each command and its reply, and each write of the message.
	// Default: 5 minutes.
	Command time.Duration
	// Data bounds the wait for each recipient's reply after the message: the server may deliver
	// to each mailbox in turn, running filters. Default: 10 minutes.
	Data time.Duration
}

// QuarantineField is put on top of a quarantined message (envelope.Envelope.Quarantine: it
// failed DMARC and policy quarantines it), since LMTP cannot name a folder. It is the field
// SpamAssassin writes and that the Sieve rules of Dovecot's and most distributions' examples
// file into Junk (if header :contains "X-Spam-Flag" "YES" { fileinto "Junk"; }), so an
// existing setup acts on it unchanged; the Authentication-Results field below it says why.
const QuarantineField = "X-Spam-Flag: YES\r\n"

// Options configure a Deliverer.
type Options struct {
	// Addr is the LMTP server: "HOST:PORT" for TCP, or "unix:/path/to/socket". Required.
	Addr string
	// LocalName is the name LHLO sends. Default: "localhost".
	LocalName string
	// Timeouts bound each step.
	Timeouts Timeouts
	// Logger gets one line per recipient outcome, and the LMTP dialogue at debug level.
	// Default: discard.
	Logger *slog.Logger
}

// Deliverer delivers to one LMTP server. It is safe for concurrent use: each call has its own
// connection.
type Deliverer struct {
	opts    Options
	log     *slog.Logger
	network string // "tcp" or "unix"
	address string // Addr without "unix:"
	addrErr error  // why Addr is unusable, reported (temporary) by every delivery
}

var _ delivery.BatchDeliverer = (*Deliverer)(nil)

// New returns a Deliverer for opts. An unusable Addr (see config.ParseLMTPAddr, with which the
// configuration checks delivery.lmtp before the server starts) makes every delivery fail,
// temporarily.
func New(opts Options) *Deliverer {
	if opts.LocalName == "" {
		opts.LocalName = "localhost"
	}
	t := &opts.Timeouts
	t.Connect = orDefault(t.Connect, DefaultConnectTimeout)
	t.Command = orDefault(t.Command, DefaultCommandTimeout)
	t.Data = orDefault(t.Data, DefaultDataTimeout)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Deliverer{opts: opts, log: opts.Logger}
	d.network, d.address, d.addrErr = config.ParseLMTPAddr(opts.Addr)
	return d
}

func orDefault(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}

// DeliverBatch implements delivery.BatchDeliverer.
func (d *Deliverer) DeliverBatch(ctx context.Context, env *envelope.Envelope, rcpts []int, body delivery.Body) []delivery.Outcome {
	out := make([]delivery.Outcome, len(rcpts))
	if len(rcpts) == 0 {
		return out
	}
	errs := d.deliver(ctx, env, rcpts, body)
	for i, err := range errs {
		if err != nil { // keep a nil *delivery.Error out of the interface
			out[i].Err = err
		}
	}
	d.logOutcomes(env, rcpts, errs)
	return out
}

// deliver runs one LMTP transaction for rcpts and returns their failures (nil: delivered).
func (d *Deliverer) deliver(ctx context.Context, env *envelope.Envelope, rcpts []int, body delivery.Body) []*delivery.Error {
	errs := make([]*delivery.Error, len(rcpts))
	failAll := func(err *delivery.Error) []*delivery.Error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if d.addrErr != nil {
		return failAll(&delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhSystemOther,
			Msg: "local mailbox server misconfigured", Err: d.addrErr})
	}
	binary := env.Body == envelope.BodyBinaryMIME
	if binary {
		if err := checkBinary(body); err != nil {
			return failAll(err)
		}
	}

	c, err := d.connect(ctx, env)
	if err != nil {
		return failAll(d.sessionError(err))
	}
	defer func() {
		if err := c.Quit(ctx); err != nil {
			d.log.Debug("lmtp: QUIT failed", "msgid", env.ID, "remote", d.opts.Addr, "err", err)
		}
	}()
	ext := c.Extensions()
	senv := smtpclient.Envelope{From: env.From, Size: env.Size}
	if (env.Body == envelope.Body8BitMIME || binary) && ext.EightBitMIME {
		senv.MailParams = append(senv.MailParams, "BODY=8BITMIME")
	}
	if env.SMTPUTF8 && ext.SMTPUTF8 {
		senv.MailParams = append(senv.MailParams, "SMTPUTF8")
	}
	for _, i := range rcpts {
		senv.Rcpts = append(senv.Rcpts, smtpclient.Recipient{Addr: env.Rcpts[i].Addr})
	}

	msg, err := body.Open()
	if err != nil {
		return failAll(delivery.Temporary("cannot read the queued message", err))
	}
	defer func() { _ = msg.Close() }() // only read: a failed Close loses nothing
	var r io.Reader = msg
	if env.Quarantine {
		r = io.MultiReader(strings.NewReader(QuarantineField), msg)
		senv.Size += int64(len(QuarantineField))
	}
	res, _ := c.SendLMTP(ctx, senv, r) // res.Rcpts decides for each recipient
	for i, rr := range res.Rcpts {
		if rr.Err != nil {
			errs[i] = d.clientError(rr.Err)
		}
	}
	return errs
}

// connect dials the server, reads its greeting and sends LHLO.
func (d *Deliverer) connect(ctx context.Context, env *envelope.Envelope) (*smtpclient.Client, error) {
	t := d.opts.Timeouts
	copts := smtpclient.Options{
		LMTP:           true,
		LocalName:      d.opts.LocalName,
		ConnectTimeout: t.Connect,
		CommandTimeout: t.Command,
		DataTimeout:    t.Data,
		// Text messages with bare line ends are repaired rather than refused over and over;
		// a BINARYMIME body was checked to have none (see checkBinary).
		NormalizeLineEndings: true,
	}
	if d.log.Enabled(ctx, slog.LevelDebug) {
		copts.Trace = func(dir smtpclient.Direction, _ bool, line string) {
			d.log.Debug("lmtp: "+dir.String(), "msgid", env.ID, "remote", d.opts.Addr, "line", line)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, t.Connect)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(dctx, d.network, d.address)
	if err != nil {
		return nil, &smtpclient.Error{Command: smtpclient.CmdConnect, Err: err}
	}
	c, err := smtpclient.New(ctx, conn, copts)
	if err != nil {
		return nil, err
	}
	if err := c.Hello(ctx); err != nil {
		_ = c.Close() // the failed greeting is the error to report
		return nil, err
	}
	return c, nil
}

// logOutcomes writes one line per recipient, for the operator.
func (d *Deliverer) logOutcomes(env *envelope.Envelope, rcpts []int, errs []*delivery.Error) {
	for n, de := range errs {
		attrs := []any{"msgid", env.ID, "rcpt", env.Rcpts[rcpts[n]].Addr, "remote", d.opts.Addr}
		if de == nil {
			d.log.Info("lmtp: outcome", append(attrs, "status", "delivered", "code", smtp.CodeOK)...)
			continue
		}
		status := "deferred"
		if de.Permanent {
			status = "bounced"
		}
		d.log.Info("lmtp: outcome", append(attrs, "status", status, "code", de.Code,
			"enhanced", de.Enhanced(), "err", de.Error())...)
	}
}
