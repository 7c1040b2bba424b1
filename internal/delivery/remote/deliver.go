package remote

import (
	"context"
	"errors"
	"fmt"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/mtasts"
	"github.com/tern-mail/tern/internal/smtp"
)

// pass is one delivery of a message to the recipients of one domain: the hosts of its route
// tried in turn until every recipient has a final outcome.
type pass struct {
	d        *Deliverer
	env      *envelope.Envelope
	body     delivery.Body
	rt       *route
	sts      *mtasts.Policy
	reqTLS   bool
	sig      sigCache
	out      []delivery.Outcome
	left     []*pending // the recipients without a final outcome yet
	attempts int        // connections opened
}

// pending is a recipient still to deliver.
type pending struct {
	idx      int             // index in env.Rcpts
	pos      int             // position in the outcomes
	lastTemp *delivery.Error // the last temporary failure
	lastPerm *delivery.Error // the last permanent failure that another host may still undo
}

// deliverDomain delivers env to the recipients idx, all of one domain (or all, via the
// relayhost), and returns their outcomes in order.
func (d *Deliverer) deliverDomain(ctx context.Context, env *envelope.Envelope, domain string, idx []int, body delivery.Body) []delivery.Outcome {
	p := &pass{d: d, env: env, body: body, out: make([]delivery.Outcome, len(idx))}
	for i, r := range idx {
		p.left = append(p.left, &pending{idx: r, pos: i})
	}
	p.run(ctx, domain)
	d.logOutcomes(env, idx, p.out)
	return p.out
}

func (p *pass) run(ctx context.Context, domain string) {
	rt, err := p.d.route(ctx, domain)
	if err != nil {
		p.fail(err)
		p.finish()
		return
	}
	p.rt = rt
	p.reqTLS = p.d.opts.RequireTLS(p.env)
	if !rt.relay && !rt.literal {
		var fetchErr error
		p.sts, fetchErr = p.d.stsPolicy(ctx, rt.domain)
		if fetchErr != nil {
			// Once per pass, not per MX host: the policy is the domain's.
			p.d.reportSTSFetch(rt.domain, p.sts, fetchErr)
		}
	}
	if p.reqTLS && !rt.relay && !rt.mxSecure && (p.sts == nil || p.sts.Mode != mtasts.ModeEnforce) {
		// RFC 8689 §4.2.1: the MX must come from DNSSEC or be checked against MTA-STS. No
		// host can change that, so the failure is final at once.
		p.fail(errRequireTLS(domain, "", fmt.Errorf("MX of %s is neither DNSSEC-validated nor under an enforced MTA-STS policy", domain)))
		p.finish()
		return
	}
	for _, h := range rt.hosts {
		if len(p.left) == 0 || p.attempts == maxAttempts {
			break
		}
		if ctx.Err() != nil {
			p.fail(&delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhSystemOther, Msg: "delivery interrupted", Err: ctx.Err()})
			break
		}
		p.tryHost(ctx, h)
	}
	p.finish()
}

// tryHost tries each address of h, while recipients are left.
func (p *pass) tryHost(ctx context.Context, h *host) {
	if h.err != nil {
		p.fail(h.err)
		return
	}
	plan, err := p.d.tlsPlan(ctx, p.rt, h, p.sts, p.reqTLS)
	if err != nil {
		p.d.log.Warn("remote: host skipped", "msgid", p.env.ID, "remote", h.name, "err", err.Error())
		p.d.reportPlanFailure(p.rt, h, p.sts, err)
		p.fail(p.requireTLS(err))
		return
	}
	for _, addr := range h.addrs {
		if len(p.left) == 0 || p.attempts == maxAttempts || ctx.Err() != nil {
			return
		}
		p.attempts++
		a := &attempt{rt: p.rt, h: h, addr: addr, plan: plan, env: p.env, body: p.body, sig: &p.sig, reqTLS: p.reqTLS}
		for _, r := range p.left {
			a.rcpts = append(a.rcpts, r.idx)
		}
		res := p.d.attempt(ctx, a)
		if res.retryPlain {
			a.noTLS = true
			res = p.d.attempt(ctx, a)
		}
		if res.hostErr != nil {
			p.fail(p.requireTLS(res.hostErr))
			continue
		}
		var still []*pending
		for i, r := range p.left {
			switch res := res.rcpts[i]; {
			case res.err == nil:
				p.out[r.pos] = delivery.Outcome{RemoteMTA: h.name, Relayed: res.relayed}
			case res.err.Permanent:
				p.out[r.pos] = delivery.Outcome{Err: res.err, RemoteMTA: h.name}
			default:
				r.lastTemp = res.err // a 4xx: the next host may take it
				still = append(still, r)
			}
		}
		p.left = still
	}
}

// fail records a failure for every recipient left.
func (p *pass) fail(err *delivery.Error) {
	for _, r := range p.left {
		if err.Permanent {
			r.lastPerm = err
		} else {
			r.lastTemp = err
		}
	}
}

// requireTLS is what a host's failure err means for this message. For a REQUIRETLS message a
// TLS failure (no STARTTLS, a failed handshake, a certificate that does not verify, an MX the
// enforced MTA-STS policy does not list) is RFC 8689 §4.2.1's: this host cannot take it, and
// when no host of the route can, the sender gets a non-delivery report at once, with 5.7.30.
// Through the relayhost it stays temporary (4.7.30): the relayhost is the admin's own, and
// mail waits for a fix of it as it does for a failed relay AUTH; at expiry the report still
// says 5.7.30. Other failures (a host that cannot be reached, a 4xx) are what they are.
func (p *pass) requireTLS(err *delivery.Error) *delivery.Error {
	if !p.reqTLS || !tlsFailure(err) {
		return err
	}
	e := &delivery.Error{Permanent: true, Code: smtp.CodeMailboxUnavailable, Enh: smtp.EnhRequireTLS,
		Msg: "REQUIRETLS support required: " + err.Msg, RemoteMTA: err.RemoteMTA, Err: err.Err}
	if p.rt.relay {
		e.Permanent, e.Code = false, smtp.CodeLocalError
	}
	return e
}

// tlsFailure reports whether err is tern's own finding (a 4xx) that a host offers no TLS or
// that its TLS failed: 4.7.4 or 4.7.5.
func tlsFailure(err *delivery.Error) bool {
	return err.Code/100 == 4 && (err.Enh == smtp.EnhNoTLS || err.Enh == smtp.EnhCryptoFailure)
}

// finish gives each recipient left its last error: a temporary one if there was any, since a
// host that failed temporarily may still take the message (RFC 5321 §4.5.4.1: keep trying).
func (p *pass) finish() {
	for _, r := range p.left {
		err := r.lastTemp
		if err == nil {
			err = r.lastPerm
		}
		if err == nil { // no host at all was tried; route never returns that
			err = &delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhNoRoute, Msg: "no usable host"}
		}
		if err == r.lastTemp && r.lastPerm != nil && r.lastPerm.Code >= 500 && r.lastPerm.Enh == smtp.EnhRequireTLS {
			err = requireTLSPending(r.lastPerm, r.lastTemp)
		}
		p.out[r.pos] = delivery.Outcome{Err: err, RemoteMTA: err.RemoteMTA}
	}
	p.left = nil
}

// requireTLSPending is the failure of a REQUIRETLS message that a host could not take over the
// TLS it asks for (lacking), while another failed for now (other): tried again, and reported
// as a REQUIRETLS failure (5.7.30) if the message expires, not as a generic expiry.
func requireTLSPending(lacking, other *delivery.Error) *delivery.Error {
	also := other.Msg
	if other.RemoteReply {
		also = fmt.Sprintf("host %s said: %d %s %s", other.RemoteMTA, other.Code, other.Enhanced(), other.Msg)
	}
	return &delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhRequireTLS,
		Msg: lacking.Msg + "; other hosts: " + also, Err: errors.Join(lacking.Err, other)}
}
