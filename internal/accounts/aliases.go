package accounts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// AliasStore keeps aliases: an alias address and the targets mail for it goes to. It holds
// the table only; what an address expands to (recursion, loops, subaddresses, the order of
// the forms) is policy's (policy.Aliases), so that every backend expands the same way.
//
// An alias address is either local@domain (an address alias) or @domain, whose targets are
// either addresses (a catch-all: mail for any address of the domain that nothing else takes) or
// one @otherdomain (a domain alias: local@domain goes to local@otherdomain). A target is an
// address (a local account, another alias, or an external address) or, for a domain alias,
// @domain. Both are kept normalized (NormalizeAlias, NormalizeTarget).
type AliasStore interface {
	// AddAlias adds targets to the alias addr (making it if needed), in one transaction; a
	// target it already has is left alone. It returns ErrBadAddress for a malformed address or
	// target, and ErrBadAlias for a form that does not fit (a domain target on an address alias,
	// or a domain alias with address targets too).
	AddAlias(ctx context.Context, addr string, targets ...string) error

	// DeleteAlias removes the given targets of addr, or the whole alias when none are given;
	// ErrNotFound when the alias, or one of the targets, is not there (nothing is removed then).
	DeleteAlias(ctx context.Context, addr string, targets ...string) error

	// Aliases returns the aliases of domain (every domain when domain is ""), sorted by
	// address, each with its targets sorted.
	Aliases(ctx context.Context, domain string) ([]Alias, error)

	// AliasTargets returns the targets of the alias addr (already normalized by the caller,
	// local@domain or @domain), sorted; none when there is no such alias. It is on the hot path
	// (RCPT TO), so it is one indexed lookup and does not normalize.
	AliasTargets(ctx context.Context, addr string) ([]string, error)
}

// Alias is an alias address with its targets.
type Alias struct {
	Addr    string
	Targets []string
}

// ErrBadAlias is returned when an alias and its targets do not make one of the forms an
// AliasStore keeps.
var ErrBadAlias = errors.New("accounts: bad alias")

// NormalizeAlias returns the normalized alias address: local@domain as NormalizeAddress makes
// it, or @domain with a valid domain.
func NormalizeAlias(addr string) (string, error) {
	if d, ok := strings.CutPrefix(addr, "@"); ok {
		return normalizeDomain(addr, d)
	}
	return NormalizeAddress(addr)
}

// NormalizeTarget returns the normalized target: an address, or @domain.
func NormalizeTarget(target string) (string, error) { return NormalizeAlias(target) }

func normalizeDomain(orig, d string) (string, error) {
	if len(d) > maxDomainLen+1 {
		return "", badAddress(orig, "too long")
	}
	d = strings.ToLower(d)
	if err := checkDomain(d); err != nil {
		return "", badAddress(orig, err.Error())
	}
	return "@" + d, nil
}

// CheckAliasForm reports, as an error wrapping ErrBadAlias, a normalized alias whose targets
// do not make a valid form: a domain target (@domain) only goes alone, on a domain alias
// (@domain), to another domain.
func CheckAliasForm(addr string, targets []string) error {
	domains := 0
	for _, t := range targets {
		if !strings.HasPrefix(t, "@") {
			continue
		}
		domains++
		switch {
		case !strings.HasPrefix(addr, "@"):
			return fmt.Errorf("%w: %s is an address; only a domain (@example.org) can have a domain target (%s)", ErrBadAlias, addr, t)
		case t == addr:
			return fmt.Errorf("%w: %s cannot be an alias of itself", ErrBadAlias, addr)
		}
	}
	if domains > 0 && len(targets) > 1 {
		return fmt.Errorf("%w: %s: a domain alias has one target, a domain (a catch-all has addresses)", ErrBadAlias, addr)
	}
	return nil
}

// NormalizeAliasEntry normalizes an alias address and its targets, dropping repeated targets:
// what every store does before writing or deleting an alias.
func NormalizeAliasEntry(addr string, targets []string) (string, []string, error) {
	a, err := NormalizeAlias(addr)
	if err != nil {
		return "", nil, err
	}
	ts := make([]string, 0, len(targets))
	for _, t := range targets {
		n, err := NormalizeTarget(t)
		if err != nil {
			return "", nil, err
		}
		if !slices.Contains(ts, n) {
			ts = append(ts, n)
		}
	}
	return a, ts, nil
}

// AliasDomain is the domain part of a normalized alias address (local@domain or @domain).
func AliasDomain(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }

// CheckAliasAdd checks that adding targets to the alias addr, which has the targets have
// already, gives a valid alias: the form is checked with the targets already there, so that a
// domain alias does not get address targets too, in two steps.
func CheckAliasAdd(addr string, have, targets []string) error {
	all := slices.Clone(have)
	for _, t := range targets {
		if !slices.Contains(all, t) {
			all = append(all, t)
		}
	}
	return CheckAliasForm(addr, all)
}

// ResolveApart is what a store's Resolve (alias targets, and whether addr is an account, which
// it reports only when there are none: policy.AddressResolver) answers for an address its one
// query cannot take as it is (one that Exists would normalize, or refuse): the two calls.
func ResolveApart(ctx context.Context, s Store, addr string) (targets []string, account bool, err error) {
	if targets, err = s.AliasTargets(ctx, addr); len(targets) > 0 || err != nil {
		return targets, false, err
	}
	account, err = s.Exists(ctx, addr)
	return nil, account, err
}
