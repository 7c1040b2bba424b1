package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// newAliases is alias expansion over the store, for the local domains of cfg.
func newAliases(cfg config.Config, store policy.AliasLookup) *policy.Aliases {
	return &policy.Aliases{
		IsLocal:   func(d string) bool { return slices.Contains(cfg.Domains, strings.ToLower(d)) },
		Lookup:    store,
		Separator: cfg.Addresses.SubaddressSeparator,
		MaxDepth:  cfg.Addresses.AliasDepth,
	}
}

// serverAliases is the server's alias expansion: over the account store, for the local domains
// of relay control (which a reload changes), reversing SRS addresses with the secret of the
// data directory. A reload replaces the settings of [addresses] (set) for what is expanded from
// then on; each expansion uses one set throughout.
type serverAliases struct {
	cur     atomic.Pointer[policy.Aliases]
	store   policy.AliasLookup
	isLocal func(domain string) bool // the relay's
	srs     *srsKeeper
}

var _ policy.Accounts = (*serverAliases)(nil)

// newServerRelay is relay control for cfg's local domains over the store, through the
// server's alias expansion.
func newServerRelay(cfg config.Config, data string, store policy.AliasLookup) (*policy.Relay, *serverAliases) {
	a := &serverAliases{store: store}
	relay := policy.NewRelay(cfg.Domains, a)
	a.isLocal = relay.IsLocal
	a.srs = newSRSKeeper(cfg, data, relay.IsLocal)
	a.set(cfg)
	return relay, a
}

// set makes cfg's [addresses] settings those of the expansions from now on.
func (a *serverAliases) set(cfg config.Config) {
	x := newAliases(cfg, a.store)
	x.IsLocal, x.SRS = a.isLocal, a.srs
	a.cur.Store(x)
}

// now is the expansion in force.
func (a *serverAliases) now() *policy.Aliases { return a.cur.Load() }

// Exists implements policy.Accounts. In a transaction with an expansion memo (withExpansionMemo)
// it keeps the expansion, for the commit.
func (a *serverAliases) Exists(ctx context.Context, addr string) (bool, error) {
	cur := a.now()
	x, err := cur.Expand(ctx, addr)
	if m, ok := ctx.Value(expansionMemoKey{}).(*expansionMemo); ok && err == nil {
		m.put(cur, addr, x)
	}
	return x.Exists(err)
}

// expansionMemo holds the expansions of a transaction's recipients, made at RCPT, so that the
// commit (aliasMessage) queues what was accepted without asking the store again: per
// recipient, two queries fewer. They are of one set of settings: a reload in between, which
// makes another, makes the commit expand again. The session uses it from its one goroutine.
type expansionMemo struct {
	aliases *policy.Aliases
	x       map[string]policy.Expansion // by the address as the session gives it
}

type expansionMemoKey struct{}

// withExpansionMemo gives a transaction (smtpserver.Options.TxContext) an expansion memo.
func withExpansionMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, expansionMemoKey{}, &expansionMemo{})
}

func (m *expansionMemo) put(aliases *policy.Aliases, addr string, x policy.Expansion) {
	if m.aliases != aliases || m.x == nil {
		m.aliases, m.x = aliases, make(map[string]policy.Expansion, 1)
	}
	m.x[addr] = x
}

// memoExpansion returns the expansion of addr kept in ctx's memo by the settings aliases, if any.
func memoExpansion(ctx context.Context, aliases *policy.Aliases, addr string) (policy.Expansion, bool) {
	m, ok := ctx.Value(expansionMemoKey{}).(*expansionMemo)
	if !ok || m.aliases != aliases {
		return policy.Expansion{}, false
	}
	x, ok := m.x[addr]
	return x, ok
}

// routeAliases makes delivery expand what the queue addresses to an alias itself (its reports
// to a sender that was an alias), and rewrite the sender of forwarded mail with SRS.
func routeAliases(r *delivery.Router, a *serverAliases) {
	r.Expand = func(ctx context.Context, addr string) ([]string, error) {
		x, err := a.now().Expand(ctx, addr)
		return x.Targets, err
	}
	r.Forward = a.srs.forward
}

// withAliases makes the server expand aliases: the queue gets each message with its
// recipients expanded (aliasSpool), and an authenticated user may send as the aliases that
// deliver to it (senders, set again by a reload). Relay control asks the same expansion at
// RCPT (newServerRelay).
func withAliases(opts *smtpserver.Options, aliases *serverAliases) {
	opts.Spool = aliasSpool{Spool: opts.Spool, aliases: aliases}
	opts.TxContext = withExpansionMemo
	setSenders(opts, aliases)
}

// setSenders lets the authenticated users of new sessions send as the aliases that deliver
// to them, by the expansion in force.
func setSenders(opts *smtpserver.Options, aliases *serverAliases) {
	if opts.Auth != nil && aliases != nil {
		na := *opts.Auth
		na.Senders = &policy.Senders{Aliases: aliases.now()}
		opts.Auth = &na
	}
}

// aliasSpool expands the recipients of each message as it is committed, as Postfix's cleanup
// does before the queue: the queue holds the mailboxes and external addresses mail goes to,
// each once, and each keeps the address the client gave as its ORCPT (RFC 3461 §4.2), so that
// a DSN names it.
type aliasSpool struct {
	smtpserver.Spool
	aliases *serverAliases
}

func (s aliasSpool) NewMessage() (smtpserver.Message, error) {
	m, err := s.Spool.NewMessage()
	if err != nil {
		return nil, err
	}
	return aliasMessage{Message: m, aliases: s.aliases}, nil // expanded at commit: RCPT's expansions when kept (expandRcpts)
}

type aliasMessage struct {
	smtpserver.Message
	aliases *serverAliases
}

// Reader reads the message back for the content filters (smtpserver.Rereader): the wrapper
// must not hide what the queue's writer can do.
var _ smtpserver.Rereader = aliasMessage{}

func (m aliasMessage) Reader() (io.ReadCloser, error) {
	rr, ok := m.Message.(smtpserver.Rereader)
	if !ok {
		return nil, errors.New("alias expansion: the spool cannot read a message back")
	}
	return rr.Reader()
}

func (m aliasMessage) Commit(ctx context.Context, env *envelope.Envelope) error {
	rcpts, err := expandRcpts(ctx, m.aliases.now(), env.Rcpts)
	if err != nil {
		return fmt.Errorf("alias expansion: %w", err)
	}
	env.Rcpts = rcpts
	return m.Message.Commit(ctx, env)
}

// expandRcpts replaces each recipient in a local domain by its expansion: the one RCPT made
// when ctx's memo has it, else a new one. A recipient that expands to nothing (the postmaster,
// which RCPT accepts account or not; an alias gone when a reload made the commit expand again)
// is kept as it is: delivery then refuses it, or hands it to the postmaster.
func expandRcpts(ctx context.Context, aliases *policy.Aliases, rcpts []envelope.Recipient) ([]envelope.Recipient, error) {
	out := make([]envelope.Recipient, 0, len(rcpts))
	seen := make(map[string]bool, len(rcpts))
	for _, rc := range rcpts {
		targets := []string{rc.Addr}
		if aliases.IsLocal(envelope.Domain(rc.Addr)) {
			x, ok := memoExpansion(ctx, aliases, rc.Addr)
			if !ok {
				var err error
				if x, err = aliases.Expand(ctx, rc.Addr); err != nil {
					return nil, err
				}
			}
			if len(x.Targets) > 0 {
				targets = slices.Concat(x.Targets, x.Unknown) // a new slice: x may be the memo's
			}
		}
		for _, t := range targets {
			key := strings.ToLower(t)
			if seen[key] {
				continue // a duplicate after expansion is delivered once
			}
			seen[key] = true
			n := rc
			if !strings.EqualFold(t, rc.Addr) {
				n.Addr = t
				if n.ORcpt == "" {
					n.ORcpt = "rfc822;" + rc.Addr
				}
			}
			out = append(out, n)
		}
	}
	return out, nil
}

// AliasAdd adds targets to an alias, and says on w what the alias now expands to.
func AliasAdd(ctx context.Context, cfg config.Config, addr string, targets []string, w io.Writer) error {
	return withAliasStore(cfg, addr, true, func(s accounts.Store) error {
		if err := s.AddAlias(ctx, addr, targets...); err != nil {
			return err
		}
		norm, _ := accounts.NormalizeAlias(addr)
		all, err := s.AliasTargets(ctx, norm)
		if err != nil {
			return err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "alias %s: %s\n", norm, strings.Join(all, " "))
		if noteNotLocal(&b, cfg, norm) && !strings.HasPrefix(norm, "@") {
			x, err := newAliases(cfg, s).Expand(ctx, norm)
			if err != nil {
				return err
			}
			switch {
			case len(x.Targets) == 0:
				fmt.Fprintf(&b, "note: %s delivers nowhere yet (no account or external address at the end): it is refused at RCPT\n", norm)
			default:
				fmt.Fprintf(&b, "delivers to: %s\n", strings.Join(x.Targets, " "))
			}
			if len(x.Unknown) > 0 {
				fmt.Fprintf(&b, "note: %s neither an account nor an alias: mail to them bounces\n", strings.Join(x.Unknown, " "))
			}
			if x.Loop {
				fmt.Fprintf(&b, "note: part of %s loops back to itself (or is more than %d aliases deep) and is dropped\n", norm, cfg.Addresses.AliasDepth)
			}
		}
		_, err = io.WriteString(w, b.String())
		return err
	})
}

// AliasDel removes targets of an alias, or the whole alias when none are given.
func AliasDel(ctx context.Context, cfg config.Config, addr string, targets []string, w io.Writer) error {
	return withAliasStore(cfg, addr, false, func(s accounts.Store) error {
		if err := s.DeleteAlias(ctx, addr, targets...); err != nil {
			return err
		}
		norm, _ := accounts.NormalizeAlias(addr)
		var err error
		if len(targets) == 0 {
			_, err = fmt.Fprintf(w, "deleted alias %s\n", norm)
		} else {
			_, err = fmt.Fprintf(w, "deleted %d target(s) of %s\n", len(targets), norm)
		}
		return err
	})
}

// AliasList prints the aliases of domain (all when ""), one a line: the address, its kind when
// it is a domain's, and its targets.
func AliasList(ctx context.Context, cfg config.Config, domain string, w io.Writer) error {
	return withAliasStore(cfg, "", false, func(s accounts.Store) error {
		list, err := s.Aliases(ctx, domain)
		if err != nil {
			return err
		}
		width := 0
		for _, a := range list {
			width = max(width, len(a.Addr))
		}
		var b strings.Builder
		for _, a := range list {
			kind := ""
			switch {
			case strings.HasPrefix(a.Addr, "@") && strings.HasPrefix(a.Targets[0], "@"):
				kind = "(domain alias) "
			case strings.HasPrefix(a.Addr, "@"):
				kind = "(catch-all) "
			}
			fmt.Fprintf(&b, "%-*s  %s%s\n", width, a.Addr, kind, strings.Join(a.Targets, " "))
		}
		_, err = io.WriteString(w, b.String())
		return err
	})
}

// withAliasStore is withAccounts with the errors worded for aliases.
func withAliasStore(cfg config.Config, addr string, create bool, f func(s accounts.Store) error) error {
	return withAccounts(cfg, addr, create, func(s accounts.Store) error { return aliasError(addr, f(s)) })
}

// aliasError words the errors of the alias store that are not an account's.
func aliasError(addr string, err error) error {
	switch {
	case errors.Is(err, accounts.ErrNotFound):
		return errorf(err, "%s: no such alias or target (tern alias list shows them)", addr)
	case errors.Is(err, accounts.ErrBadAlias):
		return errorf(err, "%s", strings.TrimPrefix(err.Error(), "accounts: "))
	}
	return err
}
