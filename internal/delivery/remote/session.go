package remote

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/sevenbit"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/smtpclient"
)

// attempt is one connection to one address of one host, for the recipients still pending.
type attempt struct {
	rt     *route
	h      *host
	addr   netip.Addr
	plan   *tlsPlan
	env    *envelope.Envelope
	rcpts  []int // indexes in env.Rcpts
	body   delivery.Body
	sig    *sigCache // the pass's signature of the message as queued
	conv   bool      // body is the message converted to 7 bits, not as queued
	reqTLS bool
	noTLS  bool // a retry without STARTTLS after a failed handshake (plan level may only)
}

// rcptResult is one recipient's result of an attempt: err nil means delivered.
type rcptResult struct {
	err     *delivery.Error
	relayed bool // delivered to a server without DSN, and the sender asked for NOTIFY=SUCCESS
}

// attemptResult is either one result per recipient, or a failure of the host itself.
type attemptResult struct {
	rcpts   []rcptResult
	hostErr *delivery.Error
	// retryPlain asks for the same address again without TLS: the handshake failed under the
	// opportunistic policy, where plaintext is allowed (Postfix does the same).
	retryPlain bool
}

// all gives every recipient the same (final) error.
func (r *attemptResult) all(n int, err *delivery.Error) {
	r.rcpts = make([]rcptResult, n)
	for i := range r.rcpts {
		r.rcpts[i].err = err
	}
}

// attempt runs one SMTP session and logs it in one line.
func (d *Deliverer) attempt(ctx context.Context, a *attempt) (res attemptResult) {
	remote := a.h.name + "[" + a.addr.String() + "]:" + strconv.Itoa(a.rt.port)
	check := &tlsCheck{plan: a.plan, roots: d.opts.RootCAs, now: d.opts.Now}
	tlsDesc := "none"
	defer func() { d.logAttempt(a, remote, tlsDesc, &res) }()

	binary := a.env.Body == envelope.BodyBinaryMIME
	var trace smtpclient.TraceFunc
	if d.log.Enabled(ctx, slog.LevelDebug) {
		trace = func(dir smtpclient.Direction, tls bool, line string) {
			d.log.Debug("remote: trace", "msgid", a.env.ID, "remote", remote, "dir", dir.String(), "tls", tls, "line", line)
		}
	}
	me := d.self.Load() // one name for the whole attempt
	opts := smtpclient.Options{
		LocalName:      me.hostname,
		TLSConfig:      d.tlsConfig(a.rt, a.h, check),
		ConnectTimeout: d.opts.Timeouts.Connect,
		CommandTimeout: d.opts.Timeouts.Command,
		DataTimeout:    d.opts.Timeouts.Data,
		// BINARYMIME goes out in BDAT chunks as it is (RFC 3030); anything else as DATA, with
		// bare CR and LF made CRLF rather than refused.
		Chunking:             binary,
		NormalizeLineEndings: !binary,
		Trace:                trace, // AUTH lines are redacted by smtpclient
		ImplicitTLS:          a.rt.relay && d.opts.RelayImplicitTLS,
	}
	addr := net.JoinHostPort(a.addr.String(), strconv.Itoa(a.rt.port))
	probe, dead := d.hosts.admit(addr, a.rt.domain)
	if dead != nil {
		res.hostErr = dead
		return res
	}
	c, err := smtpclient.Dial(ctx, addr, opts)
	if err != nil {
		res.hostErr = clientError(a.h.name, remote, err)
		var failed *delivery.Error
		if unreachable(err) && ctx.Err() == nil {
			failed = res.hostErr
		}
		d.hosts.done(addr, a.rt.domain, probe, failed)
		return res
	}
	d.hosts.done(addr, a.rt.domain, probe, nil)
	defer func() {
		// QUIT also after a host failure: the server did nothing wrong by being refused.
		// On a broken connection it only closes.
		if err := c.Quit(ctx); err != nil {
			d.log.Debug("remote: QUIT", "msgid", a.env.ID, "remote", remote, "err", err)
		}
	}()
	if f := strings.Fields(c.Greeting().Text); len(f) > 0 && strings.EqualFold(strings.TrimSuffix(f[0], "."), strings.TrimSuffix(me.hostname, ".")) {
		// The server greets with our name: it is us, through some route we did not see
		// (Postfix: "host greeted me with my own hostname").
		res.all(len(a.rcpts), errLoop(a.rt.domain, a.h.name))
		return res
	}
	if err := c.Hello(ctx); err != nil {
		res.hostErr = clientError(a.h.name, remote, err)
		return res
	}
	offered := c.Extensions().StartTLS
	var tlsErr error
	res.retryPlain, res.hostErr, tlsErr = d.startTLS(ctx, c, a, remote)
	d.reportSession(a, c, check, offered, tlsErr)
	if res.retryPlain || res.hostErr != nil {
		return res
	}
	st, on := c.TLS()
	tlsDesc = check.describe(st, on)
	if !on && a.plan.level >= levelEncrypt {
		res.hostErr = &delivery.Error{Code: smtp.CodeTempUnavailable, Enh: smtp.EnhNoTLS, RemoteMTA: a.h.name,
			Msg: "TLS is required, but was not offered by host " + a.h.name,
			Err: fmt.Errorf("%s: no STARTTLS; TLS required by %s (%s)", remote, a.plan.source, a.plan.level)}
		return res
	}
	if verified, why := check.result(); a.plan.testing != nil && (!on || !verified) {
		// RFC 8461 §5: in mode testing, a failure is only reported.
		d.log.Warn("remote: MTA-STS testing: delivery would have failed under enforce", "msgid", a.env.ID, "remote", remote, "tls", tlsDesc, "err", why)
	}
	if a.rt.relay && d.opts.RelayAuth != nil {
		if herr := d.relayAuth(ctx, c, remote, on, st); herr != nil {
			res.hostErr = herr
			return res
		}
	}
	ext := c.Extensions()
	if a.reqTLS && !ext.Has("REQUIRETLS") {
		res.hostErr = errRequireTLS(a.rt.domain, a.h.name, fmt.Errorf("%s does not offer REQUIRETLS", remote))
		return res
	}
	params, final, herr := d.mailParams(ctx, a, ext)
	switch {
	case herr != nil:
		res.hostErr = herr
	case final != nil:
		res.all(len(a.rcpts), final)
	default:
		res = d.transactions(ctx, c, a, remote, ext, params)
	}
	return res
}

// defaultRcptLimit is the most recipients tern puts in one transaction: the number RFC 5321
// §4.5.3.1.8 obliges every server to take. A server that says LIMITS RCPTMAX (RFC 9422) gets
// no more than that.
const defaultRcptLimit = 100

// rcptLimit is the most recipients per transaction for a server with ext.
func rcptLimit(ext smtpclient.Extensions) int {
	for _, f := range strings.Fields(ext.Keywords["LIMITS"]) {
		if v, ok := strings.CutPrefix(strings.ToUpper(f), "RCPTMAX="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 && n < defaultRcptLimit {
				return n
			}
		}
	}
	return defaultRcptLimit
}

// tooManyRecipients reports whether err is a server's "452 4.5.3 too many recipients": not
// a problem of the recipient, only of how many came in one transaction (RFC 5321 §4.5.3.1.10).
func tooManyRecipients(err *delivery.Error) bool {
	return err != nil && err.Code == smtp.CodeInsufficientStorage && (err.Enh == smtp.EnhTooManyRcpts || err.Enh == smtp.EnhOther)
}

// transactions sends the message in as many transactions on this connection as the
// recipients need: rcptLimit at a time, and the recipients a server refused with "too many
// recipients" again in the next one, as long as the last one delivered to someone (so that
// it ends). A host failure after the first transaction fails only the recipients left.
func (d *Deliverer) transactions(ctx context.Context, c *smtpclient.Client, a *attempt, remote string, ext smtpclient.Extensions, params []string) attemptResult {
	limit := rcptLimit(ext)
	results := make([]rcptResult, len(a.rcpts))
	todo := make([]int, len(a.rcpts)) // positions in a.rcpts
	for i := range todo {
		todo[i] = i
	}
	for first := true; len(todo) > 0; first = false {
		chunk, rest := todo[:min(limit, len(todo))], todo[min(limit, len(todo)):]
		sub := *a
		sub.rcpts = make([]int, len(chunk))
		for j, pos := range chunk {
			sub.rcpts[j] = a.rcpts[pos]
		}
		tr := d.transaction(ctx, c, &sub, remote, ext, params)
		if tr.hostErr != nil {
			if first {
				return tr // nothing happened on this connection: a host failure as before
			}
			// Those delivered stay delivered; the others wait for the next host or attempt.
			for _, pos := range todo {
				results[pos].err = tr.hostErr
			}
			break
		}
		delivered := false
		for j, pos := range chunk {
			results[pos] = tr.rcpts[j]
			delivered = delivered || tr.rcpts[j].err == nil
		}
		var again []int
		if delivered {
			for j, pos := range chunk {
				if tooManyRecipients(tr.rcpts[j].err) {
					again = append(again, pos)
				}
			}
		}
		todo = append(again, rest...)
	}
	return attemptResult{rcpts: results}
}

// startTLS runs STARTTLS when the server offers it. The session goes on (with or without TLS)
// unless there is a host failure, or the connection must be retried without TLS. tlsErr is
// STARTTLS's own failure (a refusal, or the handshake's), for TLS-RPT.
func (d *Deliverer) startTLS(ctx context.Context, c *smtpclient.Client, a *attempt, remote string) (retryPlain bool, hostErr *delivery.Error, tlsErr error) {
	if a.noTLS || !c.Extensions().StartTLS {
		return false, nil, nil
	}
	err := c.StartTLS(ctx)
	if err == nil {
		if err := c.Hello(ctx); err != nil {
			return false, clientError(a.h.name, remote, err), nil
		}
		return false, nil, nil
	}
	retryPlain, hostErr = d.startTLSFailed(a, remote, err)
	return retryPlain, hostErr, err
}

// startTLSFailed is what a failed STARTTLS (err) means for the session.
func (d *Deliverer) startTLSFailed(a *attempt, remote string, err error) (retryPlain bool, hostErr *delivery.Error) {
	var ce *smtpclient.Error
	refused := errors.As(err, &ce) && ce.Code != 0
	switch {
	case refused && ce.Code == smtp.CodeUnavailable:
		return false, clientError(a.h.name, remote, err) // 421: the server is closing
	case refused && a.plan.level == levelMay:
		// The server offered STARTTLS and then refused it: go on without, as the policy
		// allows.
		d.log.Info("remote: STARTTLS refused, going on without TLS", "msgid", a.env.ID, "remote", remote, "code", ce.Code)
		return false, nil
	case a.plan.level == levelMay && !refused:
		d.log.Info("remote: TLS handshake failed, retrying without TLS", "msgid", a.env.ID, "remote", remote, "err", err)
		return true, nil
	case !refused && lostConnection(err):
		// The connection failed, not TLS: a timeout or a reset says nothing of the host's TLS.
		return false, clientError(a.h.name, remote, err)
	case refused:
		return false, &delivery.Error{Code: smtp.CodeTempUnavailable, Enh: smtp.EnhNoTLS, RemoteMTA: a.h.name,
			Msg: "TLS is required, but host " + a.h.name + " refused STARTTLS",
			Err: fmt.Errorf("%s: %w; TLS required by %s", remote, err, a.plan.source)}
	}
	return false, &delivery.Error{Code: smtp.CodeTempUnavailable, Enh: smtp.EnhCryptoFailure, RemoteMTA: a.h.name,
		Msg: "TLS negotiation with " + a.h.name + " failed",
		Err: fmt.Errorf("%s: %w; TLS (%s) required by %s", remote, err, a.plan.level, a.plan.source)}
}

// relayAuth authenticates to the relayhost. Every failure is temporary: a wrong password is
// tern's problem, and must not bounce the sender's mail.
func (d *Deliverer) relayAuth(ctx context.Context, c *smtpclient.Client, remote string, tlsOn bool, st tls.ConnectionState) *delivery.Error {
	ra := d.opts.RelayAuth
	fail := func(enh, msg string, err error) *delivery.Error {
		return &delivery.Error{Code: smtp.CodeLocalError, Enh: enh, RemoteMTA: d.relayHost, Msg: msg, Err: fmt.Errorf("%s: %w", remote, err)}
	}
	ext := c.Extensions()
	mech := strings.ToUpper(ra.Mechanism)
	if mech == "" {
		for _, m := range authMechanisms {
			if ext.HasAuth(m) && (tlsOn || !needsTLS(m)) {
				mech = m
				break
			}
		}
		if mech == "" {
			return fail(smtp.EnhSecurityOther, "no usable AUTH mechanism at the relayhost",
				fmt.Errorf("offered %v, TLS %v (PLAIN and LOGIN need TLS)", ext.Auth, tlsOn))
		}
	}
	if needsTLS(mech) && !tlsOn {
		return fail(smtp.EnhSecurityOther, "refusing to authenticate to the relayhost without TLS",
			fmt.Errorf("%s would expose the password", mech))
	}
	var sc sasl.Client
	switch mech {
	case sasl.Plain:
		sc = sasl.NewPlainClient("", ra.User, ra.Password)
	case sasl.Login:
		sc = sasl.NewLoginClient(ra.User, ra.Password)
	default:
		var cs *tls.ConnectionState
		if tlsOn {
			cs = &st
		}
		sc = sasl.NewScramClient(mech, "", ra.User, ra.Password, cs)
	}
	if err := c.Auth(ctx, sc); err != nil {
		var ce *smtpclient.Error
		if errors.As(err, &ce) && ce.Code == smtp.CodeAuthFailed {
			return fail(smtp.EnhBadCredentials, "authentication to the relayhost failed: "+strconv.Itoa(ce.Code)+" "+ce.Enhanced+" "+replyText(ce.Text), err)
		}
		return fail(smtp.EnhSecurityOther, "authentication to the relayhost failed", err)
	}
	return nil
}

// needsTLS reports whether mech may only run over TLS: PLAIN and LOGIN send the password, the
// -PLUS mechanisms bind to the TLS channel.
func needsTLS(mech string) bool {
	return mech == sasl.Plain || mech == sasl.Login || strings.HasSuffix(mech, "-PLUS")
}

// mailParams checks what the message needs against what the server offers and returns MAIL's
// parameters; an 8-bit message for a server without 8BITMIME is converted, in a.body, and then
// DKIM-signed, so that the signature covers what is sent. final fails every recipient for
// good; hostErr fails this host only.
func (d *Deliverer) mailParams(ctx context.Context, a *attempt, ext smtpclient.Extensions) (params []string, final, hostErr *delivery.Error) {
	h := a.h.name
	if sb, ok := a.body.(signedBody); ok {
		a.body = sb.body // signed by an earlier try on this attempt (without TLS now): sign again
	}
	var scan *scanResult
	scanned := func() (*scanResult, *delivery.Error) {
		if scan != nil {
			return scan, nil
		}
		s, err := scanBody(a.body)
		if err != nil {
			return nil, delivery.Temporary("cannot read the message", err)
		}
		scan = &s
		return scan, nil
	}
	switch a.env.Body {
	case envelope.Body8BitMIME:
		if ext.EightBitMIME {
			params = append(params, "BODY=8BITMIME")
			break
		}
		s, err := scanned()
		if err != nil {
			return nil, nil, err
		}
		if s.header8 {
			// RFC 6152 §3: 8-bit text must not go to a server without 8BITMIME, and an 8-bit
			// header cannot be made 7-bit without guessing its charset: the sender gets it back.
			return nil, &delivery.Error{Permanent: true, Code: smtp.CodeTransactionFailed, Enh: smtp.EnhConversion, RemoteMTA: h,
				Msg: "Conversion required but not supported: 8-bit header, and host " + h + " does not offer 8BITMIME"}, nil
		}
		if s.body8 {
			// The other choice RFC 6152 §3 gives: convert to 7 bits (quoted-printable or
			// base64 per part), as Postfix does.
			// The conversion streams from the queued message at each reading (DKIM, then
			// DATA): no copy of the message in memory or on disk.
			conv, err := sevenbit.New(a.body)
			if sevenbit.Refused(err) {
				return nil, &delivery.Error{Permanent: true, Code: smtp.CodeTransactionFailed, Enh: smtp.EnhConversion, RemoteMTA: h,
					Msg: "Conversion required but not possible: " + err.Error() + ", and host " + h + " does not offer 8BITMIME"}, nil
			}
			if err != nil {
				return nil, nil, delivery.Temporary("cannot read the message", err)
			}
			d.log.Info("remote: 8-bit message converted to 7 bits", "msgid", a.env.ID, "remote", h,
				"size", a.body.Size(), "converted_size", conv.Size())
			a.body, a.conv = conv, true
		}
	case envelope.BodyBinaryMIME:
		if !ext.Chunking || !ext.BinaryMIME {
			return nil, &delivery.Error{Permanent: true, Code: smtp.CodeTransactionFailed, Enh: smtp.EnhConversion, RemoteMTA: h,
				Msg: "Conversion required but not supported: binary message, and host " + h + " does not offer BINARYMIME and CHUNKING"}, nil
		}
		params = append(params, "BODY=BINARYMIME")
	}
	d.sign(ctx, a)
	if a.env.SMTPUTF8 {
		if ext.SMTPUTF8 {
			params = append(params, "SMTPUTF8")
		} else {
			needs := !smtp.IsASCII(a.env.From)
			for _, r := range a.rcpts {
				needs = needs || !smtp.IsASCII(a.env.Rcpts[r].Addr)
			}
			if !needs {
				s, err := scanned()
				if err != nil {
					return nil, nil, err
				}
				needs = s.header8
			}
			if needs {
				// RFC 6531 §3.2: without SMTPUTF8 at the server, the message cannot go.
				return nil, &delivery.Error{Permanent: true, Code: smtp.CodeMailboxNameInvalid, Enh: smtp.EnhNonASCIIAddr, RemoteMTA: h,
					Msg: "non-ASCII addresses not permitted: host " + h + " does not offer SMTPUTF8"}, nil
			}
		}
	}
	if ext.DSN {
		if ret := strings.ToUpper(a.env.Ret); ret == "FULL" || ret == "HDRS" {
			params = append(params, "RET="+ret)
		}
		if a.env.EnvID != "" {
			params = append(params, "ENVID="+smtp.EncodeXtext(a.env.EnvID))
		}
	}
	if a.reqTLS {
		params = append(params, "REQUIRETLS") // RFC 8689 §4.1
	}
	if size := a.body.Size(); ext.Size > 0 && size > ext.Size {
		// RFC 1870 §6: don't send what the server said it will refuse.
		return nil, &delivery.Error{Permanent: true, Code: smtp.CodeExceededStorage, Enh: smtp.EnhMsgTooBig, RemoteMTA: h,
			Msg: fmt.Sprintf("message size %d exceeds the limit of %d of host %s", size, ext.Size, h)}, nil
	}
	return params, nil, nil
}

// transaction sends the message and maps the replies to per-recipient results.
func (d *Deliverer) transaction(ctx context.Context, c *smtpclient.Client, a *attempt, remote string, ext smtpclient.Extensions, params []string) (res attemptResult) {
	h := a.h.name
	utf8 := slices.Contains(params, "SMTPUTF8")
	env := smtpclient.Envelope{From: a.env.From, MailParams: params, Size: a.body.Size()}
	for _, r := range a.rcpts {
		env.Rcpts = append(env.Rcpts, smtpclient.Recipient{Addr: a.env.Rcpts[r].Addr, Params: rcptParams(a.env.Rcpts[r], ext.DSN, utf8)})
	}
	msg, err := a.body.Open()
	if err != nil {
		res.hostErr = delivery.Temporary("cannot read the message", err)
		return res
	}
	defer func() { _ = msg.Close() }() // only read: a failed Close loses nothing
	sr, err := c.Send(ctx, env, msg)
	if sr.Mail.Code/100 != 2 {
		switch {
		case sr.Mail.Code >= 500:
			res.all(len(a.rcpts), replyError(h, remote, smtpclient.CmdMAIL, sr.Mail))
		case sr.Mail.Code != 0:
			res.hostErr = replyError(h, remote, smtpclient.CmdMAIL, sr.Mail)
		case smtpclient.IsPermanent(err):
			res.all(len(a.rcpts), &delivery.Error{Permanent: true, Code: smtp.CodeTransactionFailed, Enh: smtp.EnhProtoOther, RemoteMTA: h,
				Msg: "the envelope cannot be sent", Err: err})
		default:
			res.hostErr = clientError(h, remote, err)
		}
		return res
	}
	res.rcpts = make([]rcptResult, len(a.rcpts))
	var accepted []int
	for i := range a.rcpts {
		if i >= len(sr.Rcpts) {
			res.rcpts[i].err = clientError(h, remote, err) // the connection broke before its reply
			continue
		}
		if rr := sr.Rcpts[i]; rr.Err != nil {
			res.rcpts[i].err = replyError(h, remote, smtpclient.CmdRCPT, rr.Reply)
			continue
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		return res
	}
	var derr *delivery.Error
	switch {
	case err == nil:
	case sr.Data.Code != 0:
		cmd := smtpclient.CmdDATA
		if a.env.Body == envelope.BodyBinaryMIME {
			cmd = smtpclient.CmdBDAT
		}
		derr = replyError(h, remote, cmd, sr.Data)
	default:
		derr = clientError(h, remote, err)
	}
	for _, i := range accepted {
		res.rcpts[i].err = derr
		if derr == nil && !ext.DSN {
			// RFC 3461 §5.2.2: the server will not report success, so we do, as "relayed".
			res.rcpts[i].relayed = slices.ContainsFunc(a.env.Rcpts[a.rcpts[i]].Notify, func(n string) bool { return strings.EqualFold(n, "SUCCESS") })
		}
	}
	return res
}

// rcptParams are the DSN parameters of one recipient (RFC 3461 §4), for a server that offers DSN.
func rcptParams(r envelope.Recipient, dsn, utf8 bool) []string {
	if !dsn {
		return nil
	}
	var p []string
	if len(r.Notify) > 0 {
		p = append(p, "NOTIFY="+strings.ToUpper(strings.Join(r.Notify, ",")))
	}
	if v, ok := encodeORcpt(r.ORcpt, utf8); ok {
		p = append(p, "ORCPT="+v)
	}
	return p
}

// encodeORcpt encodes a decoded ORCPT ("rfc822;bob@example.com") for the wire: xtext (RFC 3461
// §4.2), or for the utf-8 address type utf-8-addr-xtext, or -unitext in an SMTPUTF8
// transaction (RFC 6533 §3).
func encodeORcpt(orcpt string, utf8 bool) (string, bool) {
	typ, addr, ok := strings.Cut(orcpt, ";")
	if !ok || addr == "" || !smtp.IsAtom(typ) {
		return "", false
	}
	if !strings.EqualFold(typ, "utf-8") {
		return typ + ";" + smtp.EncodeXtext(addr), true
	}
	var b strings.Builder
	b.WriteString(typ + ";")
	for _, r := range addr {
		switch {
		case r > 0x20 && r < 0x7f && r != '+' && r != '=' && r != '\\':
			b.WriteRune(r)
		case r >= 0x80 && utf8:
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, `\x{%02X}`, r)
		}
	}
	return b.String(), true
}

// logAttempt writes the one line of a connection.
func (d *Deliverer) logAttempt(a *attempt, remote, tlsDesc string, res *attemptResult) {
	attrs := []any{"msgid", a.env.ID, "remote", remote, "tls", tlsDesc, "policy", a.plan.level.String() + "/" + a.plan.source}
	switch {
	case res.retryPlain:
		attrs = append(attrs, "result", "TLS handshake failed")
	case res.hostErr != nil:
		attrs = append(attrs, "code", res.hostErr.Code, "result", "host failed", "err", res.hostErr.Error())
	default:
		var ok, perm, temp int
		code := smtp.CodeOK
		for _, r := range res.rcpts {
			switch {
			case r.err == nil:
				ok++
			case r.err.Permanent:
				perm++
				code = r.err.Code
			default:
				temp++
				code = r.err.Code
			}
		}
		attrs = append(attrs, "code", code, "result", fmt.Sprintf("%d delivered, %d refused, %d deferred", ok, perm, temp))
	}
	d.log.Info("remote: connection", attrs...)
}

// lostConnection reports whether a failed TLS handshake was the connection's failure (a
// timeout, a reset, an early close) rather than TLS's own (an alert from the server, a
// certificate that does not verify).
func lostConnection(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return false // crypto/tls reports the server's alert so
	}
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.As(err, &ne) && ne.Timeout()
}
