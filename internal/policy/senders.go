package policy

import (
	"context"
	"slices"
	"strings"

	"github.com/tern-mail/tern/internal/smtp"
)

// Senders decides which envelope senders an authenticated account may use, as Postfix's
// smtpd_sender_login_maps with reject_sender_login_mismatch: its own address (CheckSender), and
// every address in a local domain whose expansion delivers to it (an alias of it, a list it is
// on, its address in an aliased domain), with a +detail too. A catch-all does not make its
// owner the owner of every address of its domain.
type Senders struct {
	Aliases *Aliases
}

// CheckSender decides whether account may use from as its envelope sender: a positive reply,
// the 553 of CheckSender, or 451 when the account store fails.
func (s *Senders) CheckSender(ctx context.Context, account string, from smtp.Address) smtp.Reply {
	r := CheckSender(account, from)
	if r.Positive() || s == nil || s.Aliases == nil || !s.Aliases.IsLocal(strings.ToLower(from.Domain)) {
		return r
	}
	x, err := s.Aliases.Expand(ctx, from.Local+"@"+from.Domain)
	if err != nil {
		return smtp.R(smtp.CodeLocalError, smtp.EnhSystemOther, "<"+from.String()+">: Sender address rejected: temporary lookup failure")
	}
	if !x.CatchAll && slices.Contains(x.Targets, strings.ToLower(account)) {
		return smtp.R(smtp.CodeOK, smtp.EnhSenderOK, "Ok")
	}
	return r
}
