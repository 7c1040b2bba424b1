package delivery

import (
	"context"
	"errors"
	"strings"

	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/smtp"
)

// Router sends each recipient where it belongs: an account in a local domain to its mailbox
// (Maildir, or an LMTP server), any other address to remote delivery. It is what the queue
// calls; the queue hands it the recipients of one domain at a time.
type Router struct {
	// IsLocal reports whether a domain is local.
	IsLocal func(domain string) bool
	// Exists reports whether an address is an account.
	Exists func(ctx context.Context, addr string) (bool, error)
	// IsBadAddress reports whether an Exists error means the address can never be an account.
	IsBadAddress func(error) bool
	// Postmaster is where mail for postmaster@<a local domain> goes when that domain has no
	// postmaster account: RFC 5321 §4.5.1 requires the address to work everywhere.
	Postmaster string
	// Mailbox stores mail for local accounts (Maildir): all of a message's local recipients in
	// one call when it is also a BatchDeliverer, else one recipient at a time.
	Mailbox Deliverer
	// LMTP, when set, takes local mail instead of Mailbox (an LMTP server such as Dovecot).
	LMTP BatchDeliverer
	// Remote delivers to other domains; nil keeps such mail waiting in the queue.
	Remote BatchDeliverer
	// Expand, when set, gives the targets of a local address that is not an account (an
	// alias: expand.go); nil keeps such a recipient as it is.
	Expand func(ctx context.Context, addr string) ([]string, error)
	// Forward, when set, rewrites the envelope of mail that leaves for remote delivery (the
	// sender of forwarded mail, with SRS); nil sends it as it is.
	Forward func(env *envelope.Envelope) (*envelope.Envelope, error)
}

// DeliverBatch implements BatchDeliverer.
func (r *Router) DeliverBatch(ctx context.Context, env *envelope.Envelope, rcpts []int, body Body) []Outcome {
	known := accountsSeen{}
	env, rcpts, merge := r.expand(ctx, env, rcpts, known)
	return merge(r.deliverBatch(ctx, env, rcpts, body, known))
}

// accountsSeen holds the answers of Exists during one DeliverBatch, so that expansion and
// delivery ask the store once per address. It lives for one call only: each attempt of the
// queue looks the accounts up again, so that an account deleted since RCPT TO is unknown to
// delivery (and its mail bounced), as an alias changed since is expanded anew.
type accountsSeen map[string]bool

// exists is r.Exists with IsBadAddress applied (an address that can never be an account does
// not exist), answered from known when the address was looked up in this call. Errors are not
// kept: each asker gets its own try.
func (r *Router) exists(ctx context.Context, addr string, known accountsSeen) (bool, error) {
	if ok, seen := known[addr]; seen {
		return ok, nil
	}
	ok, err := r.Exists(ctx, addr)
	if err != nil && r.IsBadAddress != nil && r.IsBadAddress(err) {
		ok, err = false, nil
	}
	if err == nil {
		known[addr] = ok
	}
	return ok, err
}

func (r *Router) deliverBatch(ctx context.Context, env *envelope.Envelope, rcpts []int, body Body, known accountsSeen) []Outcome {
	out := make([]Outcome, len(rcpts))
	var local, remote []int // indexes into rcpts
	for k, i := range rcpts {
		addr := env.Rcpts[i].Addr
		if r.IsLocal(envelope.Domain(addr)) {
			local = append(local, k)
		} else {
			remote = append(remote, k)
		}
	}
	if len(remote) > 0 {
		idx := pick(rcpts, remote)
		if r.Remote == nil {
			for _, k := range remote {
				out[k].Err = &Error{Code: smtp.CodeLocalError, Enh: smtp.EnhRoutingOther, Msg: "remote delivery is not available",
					Err: errors.New("no remote deliverer configured")}
			}
		} else if renv, err := r.forward(env); err != nil {
			for _, k := range remote {
				out[k].Err = Temporary("cannot rewrite the sender for forwarding", err)
			}
		} else {
			res := r.Remote.DeliverBatch(ctx, renv, idx, body)
			for n, k := range remote {
				if n < len(res) {
					out[k] = res[n]
				} else {
					out[k].Err = Temporary("internal error", errors.New("remote deliverer gave too few results"))
				}
			}
		}
	}
	if len(local) > 0 {
		r.deliverLocal(ctx, env, rcpts, local, body, out, known)
	}
	return out
}

// Destination is where the pending recipients of env go when that is a single server that
// may hang, for the queue's per-destination concurrency: the LMTP server, or the remote
// deliverer's name for the place (see Destinations), or the domain. "" when the mail goes to
// local Maildirs, or to several places.
func (r *Router) Destination(env *envelope.Envelope) string {
	dest := ""
	for _, rc := range env.Rcpts {
		if rc.Status != envelope.Pending {
			continue
		}
		domain := envelope.Domain(rc.Addr)
		var d string
		switch {
		case r.IsLocal(domain) && r.LMTP == nil:
			continue // Maildir: no server to wait for
		case r.IsLocal(domain):
			d = "lmtp"
		default:
			d = "domain:" + domain
			if ds, ok := r.Remote.(Destinations); ok {
				d = ds.Destination(domain)
			}
		}
		if dest != "" && d != dest {
			return ""
		}
		dest = d
	}
	return dest
}

// Destinations is implemented by a remote deliverer that knows where a domain's mail goes
// (the relayhost for every domain, when it has one).
type Destinations interface {
	Destination(domain string) string
}

// deliverLocal checks each local recipient's account (mapping postmaster) and delivers.
func (r *Router) deliverLocal(ctx context.Context, env *envelope.Envelope, rcpts, local []int, body Body, out []Outcome, known accountsSeen) {
	lenv := env // a copy is made only when postmaster is mapped
	var ok []int
	for _, k := range local {
		i := rcpts[k]
		addr := env.Rcpts[i].Addr
		exists, err := r.exists(ctx, addr, known)
		switch {
		case err != nil:
			out[k].Err = Temporary("account lookup failed", err)
			continue
		case !exists && r.Postmaster != "" && strings.EqualFold(addr[:strings.LastIndexByte(addr, '@')], "postmaster"):
			if lenv == env {
				lenv = env.Clone()
			}
			lenv.Rcpts[i].Addr = r.Postmaster
		case !exists:
			// The account went away between RCPT TO and delivery.
			out[k].Err = Permanentf(smtp.CodeMailboxUnavailable, smtp.EnhBadDestMailbox, "<%s>: user unknown", addr)
			continue
		}
		ok = append(ok, k)
	}
	if len(ok) == 0 {
		return
	}
	if r.LMTP != nil {
		fill(out, ok, r.LMTP.DeliverBatch(ctx, lenv, pick(rcpts, ok), body), "LMTP")
		return
	}
	if bm, isBatch := r.Mailbox.(BatchDeliverer); isBatch {
		// One batch for all of them: they share the fsyncs of their mailboxes (Maildir).
		fill(out, ok, bm.DeliverBatch(ctx, lenv, pick(rcpts, ok), body), "mailbox")
		return
	}
	for _, k := range ok {
		rc, err := body.Open()
		if err != nil {
			out[k].Err = err
			continue
		}
		out[k].Err = r.Mailbox.Deliver(ctx, lenv, rcpts[k], rc)
		_ = rc.Close() // only read: the outcome is what Deliver said
	}
}

// fill sets out[k] to the n-th result for the n-th k of ks; the ones a batch deliverer (named
// who) gave no result for fail temporarily.
func fill(out []Outcome, ks []int, res []Outcome, who string) {
	for n, k := range ks {
		if n < len(res) {
			out[k] = res[n]
		} else {
			out[k].Err = Temporary("internal error", errors.New(who+" deliverer gave too few results"))
		}
	}
}

// pick returns rcpts[k] for each k in ks.
func pick(rcpts, ks []int) []int {
	idx := make([]int, len(ks))
	for n, k := range ks {
		idx[n] = rcpts[k]
	}
	return idx
}

// forward is env as remote delivery gets it (Forward).
func (r *Router) forward(env *envelope.Envelope) (*envelope.Envelope, error) {
	if r.Forward == nil {
		return env, nil
	}
	return r.Forward(env)
}
