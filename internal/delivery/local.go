package delivery

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/tern-mail/tern/internal/envelope"
)

// Local routes each recipient: an account in a local domain goes to its mailbox; anything else
// waits in the queue (remote delivery is its own issue), since queued mail must never be dropped.
type Local struct {
	// IsLocal reports whether a domain is local.
	IsLocal func(domain string) bool
	// Exists reports whether an address is an account; ErrNoAccount-like answers come back as
	// (false, nil) or an error that IsBadAddress recognises.
	Exists func(ctx context.Context, addr string) (bool, error)
	// IsBadAddress reports whether an Exists error means the address can never be an account.
	IsBadAddress func(error) bool
	// Mailbox stores mail for local accounts (Maildir).
	Mailbox Deliverer
	// Postmaster is where mail for postmaster@<a local domain> goes when that domain has no
	// postmaster account: RFC 5321 §4.5.1 requires the address to work everywhere.
	Postmaster string
}

// Deliver implements Deliverer.
func (l *Local) Deliver(ctx context.Context, env *envelope.Envelope, rcpt int, body io.Reader) error {
	addr := env.Rcpts[rcpt].Addr
	domain := strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
	if !l.IsLocal(domain) {
		return &Error{Code: 451, Enhanced: "4.4.0", Msg: "remote delivery is not available", Err: errors.New("no route to " + domain)}
	}
	ok, err := l.Exists(ctx, addr)
	if err != nil && l.IsBadAddress != nil && l.IsBadAddress(err) {
		ok, err = false, nil
	}
	if err != nil {
		return Temporary("account lookup failed", err)
	}
	if !ok && l.Postmaster != "" && strings.EqualFold(addr[:strings.LastIndexByte(addr, '@')], "postmaster") {
		// Deliver to the postmaster mailbox in a copy of the envelope: the queue's stays as is.
		env = env.Clone()
		env.Rcpts[rcpt].Addr = l.Postmaster
		return l.Mailbox.Deliver(ctx, env, rcpt, body)
	}
	if !ok {
		// The account went away between RCPT TO and delivery.
		return Permanentf(550, "5.1.1", "<%s>: user unknown", addr)
	}
	return l.Mailbox.Deliver(ctx, env, rcpt, body)
}
