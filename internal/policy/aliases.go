package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tern-mail/tern/internal/accounts"
)

// AliasLookup is what alias expansion needs of the account store.
type AliasLookup interface {
	// Exists reports whether addr is an account (see accounts.Store).
	Exists(ctx context.Context, addr string) (bool, error)
	// AliasTargets returns the targets of a normalized alias address (local@domain or
	// @domain), none when there is no such alias.
	AliasTargets(ctx context.Context, addr string) ([]string, error)
}

// AddressResolver is an AliasLookup that answers, in one query, the two questions expansion
// asks of an address first: its alias targets (AliasTargets), and whether it is an account
// (Exists), which it reports only when there are no targets. Expansion uses it when the store
// has it.
type AddressResolver interface {
	Resolve(ctx context.Context, addr string) (targets []string, account bool, err error)
}

// DefaultAliasDepth is how many aliases deep an expansion may go, as Postfix's
// virtual_alias_recursion_limit.
const DefaultAliasDepth = 10

// Aliases expands a recipient in a local domain to where its mail goes, as Postfix's
// virtual_alias_maps with virtual mailboxes does. For an address the forms are tried in this
// order, the first that matches wins:
//
//  1. an alias of the address (its targets are expanded in turn; a target that is an address
//     on the way, an alias of itself included, is delivered to when it is an account, as
//     Postfix's "bob@ -> bob@, bob@elsewhere" keeps a copy, and is a loop otherwise);
//  2. an account;
//  3. user+detail (with the separator configured): the same two for user, the address
//     with the detail becoming the account's or alias's (the detail is kept in ORCPT by the
//     caller);
//  4. a domain alias (@domain -> @other): local@other, expanded;
//  5. a catch-all (@domain -> addresses): its targets, expanded.
//
// Addresses outside the local domains are final (external forwards). The expansion of an
// address that leads nowhere, or only into loops, is empty: such a recipient is refused at
// RCPT like an unknown user.
type Aliases struct {
	// IsLocal reports whether a domain is local. Required.
	IsLocal func(domain string) bool
	// Lookup is the account store. Required.
	Lookup AliasLookup
	// Separator is the subaddress separator ("+"); empty: no subaddressing.
	Separator string
	// MaxDepth bounds the nesting. Zero: DefaultAliasDepth.
	MaxDepth int
	// SRS, when set, reverses SRS addresses: one in a local domain expands to the address it
	// stands for (a bounce to forwarded mail goes back to the original sender), and one that
	// does not verify expands to nothing, with BadSRS set.
	SRS SRSReverser
}

// SRSReverser reverses SRS addresses (package srs, with the server's secret).
type SRSReverser interface {
	// Reverse returns the address an SRS address stands for; isSRS is false, and nothing else
	// is set, when addr is not an SRS address at all; err says why one does not verify.
	Reverse(addr string) (orig string, isSRS bool, err error)
}

// ErrBadSRS is wrapped by Exists for an SRS address that does not verify (a forged hash, an
// expired stamp): Relay refuses it with its own reason.
var ErrBadSRS = errors.New("policy: invalid SRS address")

// Expansion is what a recipient expands to.
type Expansion struct {
	// Targets are the final addresses, normalized and each once: local accounts and external
	// addresses. Empty when the recipient is unknown or every branch loops.
	Targets []string
	// Unknown are the targets in a local domain that are neither accounts nor aliases
	// (normalized, each once). They do not make the address deliverable, but the message is
	// queued for them too, to bounce: an alias with a mistyped target must not lose that copy
	// in silence.
	Unknown []string
	// Loop is set when a branch was dropped because it led back to an address on the way.
	Loop bool
	// BadSRS is why an SRS address did not verify.
	BadSRS error
	// TooDeep is set when a branch was dropped for going deeper than MaxDepth.
	TooDeep bool
	// CatchAll is set when a catch-all took the address (sender ownership does not follow it).
	CatchAll bool
}

// Expand returns where mail for addr goes. An address that cannot be one (accounts.ErrBadAddress)
// expands to nothing; err is for lookup failures.
func (a *Aliases) Expand(ctx context.Context, addr string) (Expansion, error) {
	var x Expansion
	if a.SRS != nil {
		// Before normalizing: an SRS hash may hold a '/', which no account name does.
		if at := strings.LastIndexByte(addr, '@'); at > 0 && a.IsLocal(strings.ToLower(addr[at+1:])) {
			orig, isSRS, err := a.SRS.Reverse(addr)
			switch {
			case isSRS && err != nil:
				x.BadSRS = err
				return x, nil
			case isSRS:
				x.Targets = []string{orig}
				return x, nil
			}
		}
	}
	norm, err := accounts.NormalizeAddress(addr)
	if err != nil {
		if errors.Is(err, accounts.ErrBadAddress) {
			return x, nil
		}
		return x, err
	}
	e := expander{a: a, ctx: ctx, x: &x}
	err = e.expand(norm, nil)
	return x, err
}

type expander struct {
	a   *Aliases
	ctx context.Context
	x   *Expansion
}

func (e *expander) add(addr string) {
	if !slices.Contains(e.x.Targets, addr) {
		e.x.Targets = append(e.x.Targets, addr)
	}
}

// expand adds the final addresses of addr (normalized); path holds the aliases on the way.
func (e *expander) expand(addr string, path []string) error {
	at := strings.LastIndexByte(addr, '@')
	local, domain := addr[:at], addr[at+1:]
	if !e.a.IsLocal(domain) {
		e.add(addr)
		return nil
	}
	if slices.Contains(path, addr) {
		// Back to an address on the way: an account ends it there, anything else loops.
		ok, err := e.a.Lookup.Exists(e.ctx, addr)
		if err != nil {
			return err
		}
		if ok {
			e.add(addr)
		} else {
			e.x.Loop = true
		}
		return nil
	}
	if len(path) >= cmp.Or(e.a.MaxDepth, DefaultAliasDepth) {
		// Too deep is a loop in all but name: the branch is dropped, as a loop is.
		e.x.Loop, e.x.TooDeep = true, true
		return nil
	}
	found, err := e.alias(addr, path)
	if found || err != nil {
		return err
	}
	if sep := e.a.Separator; sep != "" {
		if base, _, ok := strings.Cut(local, sep); ok && base != "" {
			found, err := e.alias(base+"@"+domain, path)
			if found || err != nil {
				return err
			}
		}
	}
	targets, err := e.a.Lookup.AliasTargets(e.ctx, "@"+domain)
	if err != nil {
		return err
	}
	if len(targets) == 0 && len(path) > 0 && !slices.Contains(e.x.Unknown, addr) {
		// A target that names nothing (a typo, a deleted account): kept, so that the queue
		// bounces it instead of its copy vanishing.
		e.x.Unknown = append(e.x.Unknown, addr)
	}
	path = append(path, addr)
	for _, t := range targets {
		if other, ok := strings.CutPrefix(t, "@"); ok {
			if err := e.expand(local+"@"+other, path); err != nil {
				return err
			}
			continue
		}
		e.x.CatchAll = true
		if err := e.expand(t, path); err != nil {
			return err
		}
	}
	return nil
}

// alias expands addr as an alias or an account (forms 1 and 2); found is false when it is
// neither.
func (e *expander) alias(addr string, path []string) (found bool, err error) {
	targets, account, err := e.resolve(addr)
	if err != nil {
		return false, err
	}
	if len(targets) > 0 {
		path = append(path, addr)
		for _, t := range targets {
			if strings.HasPrefix(t, "@") {
				continue // not a form the store keeps for an address
			}
			if err := e.expand(t, path); err != nil {
				return true, err
			}
		}
		return true, nil
	}
	if account {
		e.add(addr)
	}
	return account, nil
}

// resolve returns the alias targets of addr and, when there are none, whether it is an
// account: in one query when the store can (AddressResolver).
func (e *expander) resolve(addr string) (targets []string, account bool, err error) {
	if r, ok := e.a.Lookup.(AddressResolver); ok {
		return r.Resolve(e.ctx, addr)
	}
	targets, err = e.a.Lookup.AliasTargets(e.ctx, addr)
	if len(targets) > 0 || err != nil {
		return targets, false, err
	}
	account, err = e.a.Lookup.Exists(e.ctx, addr)
	return nil, account, err
}

// Exists reports whether addr expands to anything: Relay asks it at RCPT TO, so that aliases
// are accepted and unknown addresses, and aliases that only loop, are refused there.
func (a *Aliases) Exists(ctx context.Context, addr string) (bool, error) {
	x, err := a.Expand(ctx, addr)
	return x.Exists(err)
}

// Exists is Aliases.Exists of an expansion already made, and the error it came with.
func (x Expansion) Exists(err error) (bool, error) {
	if x.BadSRS != nil {
		return false, fmt.Errorf("%w: %w", ErrBadSRS, x.BadSRS)
	}
	return len(x.Targets) > 0, err
}

// srsReason is the reply text for an SRS address that does not verify: the reason package srs
// gives, without the address (the reply names it already).
func srsReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "srs: "); i >= 0 {
		msg = msg[i+len("srs: "):]
	}
	if i := strings.Index(msg, ": \""); i >= 0 {
		msg = msg[:i]
	}
	return msg
}
