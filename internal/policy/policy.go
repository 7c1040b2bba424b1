// Package policy makes the server's acceptance decisions, as functions of the request, the
// stores it is given and the recent past it counts (on a clock it is handed): whether a
// recipient is accepted (relay control: tern is never an open relay), whether another
// connection is allowed (ConnLimiter), which connections, messages and recipients come too fast
// (Rate, over the counters of package ratelimit), how failed AUTH attempts are slowed and blocked
// (AuthLimiter), who may use ETRN and how often (ETRN), and whose messages get the Date and
// Message-ID fields they lack (Headers). It answers with the smtp.Reply the
// client should see; it does no I/O of its own beyond the lookups it is handed and the log lines
// of its limiters, and never touches the wire.
package policy

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/smtp"
)

// Client describes the session a decision is about.
type Client struct {
	IP            netip.Addr
	Authenticated bool   // SMTP AUTH succeeded (relaying is allowed; comes with AUTH)
	User          string // the authenticated account, if any
}

// Accounts is what relay control needs of the account store.
type Accounts interface {
	// Exists reports whether addr is an account, or delivers to one (Aliases.Exists). An
	// address that cannot be an account fails with accounts.ErrBadAddress, which relay control
	// takes as "no such user".
	Exists(ctx context.Context, addr string) (bool, error)
}

// Relay decides which recipients are accepted: accounts in local domains from anyone, other
// domains only from authenticated clients.
type Relay struct {
	domains  atomic.Pointer[map[string]bool] // lower case; SetLocalDomains replaces it
	accounts Accounts
}

// NewRelay returns relay control for the given local domains (compared case-insensitively).
func NewRelay(localDomains []string, accounts Accounts) *Relay {
	r := &Relay{accounts: accounts}
	r.SetLocalDomains(localDomains)
	return r
}

// SetLocalDomains replaces the local domains (a reload), for the decisions made from now on.
func (r *Relay) SetLocalDomains(localDomains []string) {
	m := make(map[string]bool, len(localDomains))
	for _, d := range localDomains {
		m[strings.ToLower(d)] = true
	}
	r.domains.Store(&m)
}

// IsLocal reports whether domain is one of the local domains.
func (r *Relay) IsLocal(domain string) bool { return (*r.domains.Load())[strings.ToLower(domain)] }

// CheckRcpt decides whether rcpt is accepted from c. The reply is positive (250 2.1.5) or says
// why not: 550 5.1.1 for an unknown local user, 554 5.7.1 for relaying without authentication
// (the Postfix replies an administrator knows), 451 4.3.0 when the account store fails.
func (r *Relay) CheckRcpt(ctx context.Context, c Client, rcpt smtp.Address) smtp.Reply {
	addr := "<" + rcpt.String() + ">"
	if r.IsLocal(rcpt.Domain) && strings.EqualFold(rcpt.Local, "postmaster") {
		// RFC 5321 §4.5.1: every domain must accept mail for its postmaster, account or not
		// (delivery.Local decides where it goes).
		return smtp.R(smtp.CodeOK, smtp.EnhDestOK, "Ok")
	}
	if r.IsLocal(rcpt.Domain) {
		ok, err := r.accounts.Exists(ctx, rcpt.Local+"@"+rcpt.Domain)
		if errors.Is(err, accounts.ErrBadAddress) {
			ok, err = false, nil
		}
		if errors.Is(err, ErrBadSRS) {
			// A bounce to an address we never made, or made too long ago (aliases.go).
			return smtp.R(smtp.CodeMailboxUnavailable, smtp.EnhBadDestMailbox, addr+": Recipient address rejected: "+srsReason(err))
		}
		if err != nil {
			return smtp.R(smtp.CodeLocalError, smtp.EnhSystemOther, addr+": Recipient address rejected: temporary lookup failure")
		}
		if !ok {
			return smtp.R(smtp.CodeMailboxUnavailable, smtp.EnhBadDestMailbox, addr+": Recipient address rejected: User unknown")
		}
		return smtp.R(smtp.CodeOK, smtp.EnhDestOK, "Ok")
	}
	if c.Authenticated {
		return smtp.R(smtp.CodeOK, smtp.EnhDestOK, "Ok")
	}
	return smtp.R(smtp.CodeTransactionFailed, smtp.EnhNotAuthorized, addr+": Relay access denied")
}
