package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tern-mail/tern/internal/accounts"
)

// AddAlias implements accounts.Store.
func (s *Store) AddAlias(ctx context.Context, addr string, targets ...string) error {
	addr, targets, err := accounts.NormalizeAliasEntry(addr, targets)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("%w: %s: no target", accounts.ErrBadAlias, addr)
	}
	return s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// Two nodes adding targets to one alias at once must not both pass the form check
		// below with the other's rows unseen: the lock serializes writers of this address.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, addr); err != nil {
			return fmt.Errorf("postgres: add alias %s: %w", addr, err)
		}
		have, err := targetsOf(ctx, tx, addr)
		if err != nil {
			return err
		}
		if err := accounts.CheckAliasAdd(addr, have, targets); err != nil {
			return err
		}
		for _, t := range targets {
			if _, err := tx.Exec(ctx,
				`INSERT INTO aliases (address, target, domain) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
				addr, t, accounts.AliasDomain(addr)); err != nil {
				return fmt.Errorf("postgres: add alias %s: %w", addr, err)
			}
		}
		return nil
	})
}

// DeleteAlias implements accounts.Store.
func (s *Store) DeleteAlias(ctx context.Context, addr string, targets ...string) error {
	addr, targets, err := accounts.NormalizeAliasEntry(addr, targets)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if len(targets) == 0 {
			tag, err := tx.Exec(ctx, `DELETE FROM aliases WHERE address = $1`, addr)
			if err != nil {
				return fmt.Errorf("postgres: delete alias %s: %w", addr, err)
			}
			return oneRow(tag, "alias "+addr, accounts.ErrNotFound)
		}
		for _, t := range targets {
			tag, err := tx.Exec(ctx, `DELETE FROM aliases WHERE address = $1 AND target = $2`, addr, t)
			if err != nil {
				return fmt.Errorf("postgres: delete alias %s: %w", addr, err)
			}
			if err := oneRow(tag, "alias "+addr+" to "+t, accounts.ErrNotFound); err != nil {
				return err
			}
		}
		return nil
	})
}

// Aliases implements accounts.Store.
func (s *Store) Aliases(ctx context.Context, domain string) ([]accounts.Alias, error) {
	domain = strings.ToLower(strings.TrimPrefix(domain, "@"))
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx,
		`SELECT address, target FROM aliases WHERE $1 = '' OR domain = $1 ORDER BY address, target`, domain)
	if err != nil {
		return nil, fmt.Errorf("postgres: aliases: %w", err)
	}
	var list []accounts.Alias
	var a, t string
	_, err = pgx.ForEachRow(rows, []any{&a, &t}, func() error {
		if n := len(list); n > 0 && list[n-1].Addr == a {
			list[n-1].Targets = append(list[n-1].Targets, t)
			return nil
		}
		list = append(list, accounts.Alias{Addr: a, Targets: []string{t}})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: aliases: %w", err)
	}
	return list, nil
}

// AliasTargets implements accounts.Store.
func (s *Store) AliasTargets(ctx context.Context, addr string) ([]string, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	return targetsOf(ctx, s.pool, addr)
}

// Resolve implements policy.AddressResolver: AliasTargets and Exists of addr in one query.
func (s *Store) Resolve(ctx context.Context, addr string) (targets []string, account bool, err error) {
	if norm, err := accounts.NormalizeAddress(addr); err != nil || norm != addr {
		return accounts.ResolveApart(ctx, s, addr)
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	// The NULL row says "an account".
	rows, err := s.pool.Query(ctx, `SELECT target FROM aliases WHERE address = $1
		UNION ALL SELECT NULL WHERE EXISTS (SELECT 1 FROM users WHERE address = $1)
		ORDER BY 1`, addr)
	if err != nil {
		return nil, false, fmt.Errorf("postgres: resolve %s: %w", addr, err)
	}
	all, err := pgx.CollectRows(rows, pgx.RowTo[*string])
	if err != nil {
		return nil, false, fmt.Errorf("postgres: resolve %s: %w", addr, err)
	}
	for _, t := range all {
		if t == nil {
			account = true
			continue
		}
		targets = append(targets, *t)
	}
	return targets, account && len(targets) == 0, nil
}

// querier is what targetsOf needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func targetsOf(ctx context.Context, q querier, addr string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT target FROM aliases WHERE address = $1 ORDER BY target`, addr)
	if err != nil {
		return nil, fmt.Errorf("postgres: alias %s: %w", addr, err)
	}
	ts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: alias %s: %w", addr, err)
	}
	return ts, nil
}
