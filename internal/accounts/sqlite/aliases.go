package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

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
	return s.inTx(ctx, func(tx *sql.Tx) error {
		have, err := queryTargets(ctx, tx, addr)
		if err != nil {
			return err
		}
		if err := accounts.CheckAliasAdd(addr, have, targets); err != nil {
			return err
		}
		for _, t := range targets {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO aliases (address, target, domain) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
				addr, t, accounts.AliasDomain(addr)); err != nil {
				return fmt.Errorf("sqlite: add alias %s: %w", addr, err)
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
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if len(targets) == 0 {
			res, err := tx.ExecContext(ctx, `DELETE FROM aliases WHERE address = ?`, addr)
			if err != nil {
				return fmt.Errorf("sqlite: delete alias %s: %w", addr, err)
			}
			return oneRow(res, "alias "+addr, accounts.ErrNotFound)
		}
		for _, t := range targets {
			res, err := tx.ExecContext(ctx, `DELETE FROM aliases WHERE address = ? AND target = ?`, addr, t)
			if err != nil {
				return fmt.Errorf("sqlite: delete alias %s: %w", addr, err)
			}
			if err := oneRow(res, "alias "+addr+" to "+t, accounts.ErrNotFound); err != nil {
				return err
			}
		}
		return nil
	})
}

// Aliases implements accounts.Store.
func (s *Store) Aliases(ctx context.Context, domain string) ([]accounts.Alias, error) {
	domain = strings.ToLower(strings.TrimPrefix(domain, "@"))
	rows, err := s.db.QueryContext(ctx,
		`SELECT address, target FROM aliases WHERE ? = '' OR domain = ? ORDER BY address, target`, domain, domain)
	if err != nil {
		return nil, fmt.Errorf("sqlite: aliases: %w", err)
	}
	defer func() { _ = rows.Close() }() // rows.Err below reports what matters
	var list []accounts.Alias
	for rows.Next() {
		var a, t string
		if err := rows.Scan(&a, &t); err != nil {
			return nil, fmt.Errorf("sqlite: aliases: %w", err)
		}
		if n := len(list); n > 0 && list[n-1].Addr == a {
			list[n-1].Targets = append(list[n-1].Targets, t)
			continue
		}
		list = append(list, accounts.Alias{Addr: a, Targets: []string{t}})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: aliases: %w", err)
	}
	return list, nil
}

// AliasTargets implements accounts.Store.
func (s *Store) AliasTargets(ctx context.Context, addr string) ([]string, error) {
	targets, err := cached(s.cache, targetsMap, addr, func() ([]string, error) {
		rows, err := s.aliasTargets.QueryContext(ctx, addr)
		if err != nil {
			return nil, fmt.Errorf("sqlite: alias %s: %w", addr, err)
		}
		return scanTargets(rows, addr)
	})
	return slices.Clone(targets), err
}

// Resolve implements policy.AddressResolver: AliasTargets and Exists of addr in one query.
func (s *Store) Resolve(ctx context.Context, addr string) (targets []string, account bool, err error) {
	if norm, err := accounts.NormalizeAddress(addr); err != nil || norm != addr {
		return accounts.ResolveApart(ctx, s, addr)
	}
	r, err := cached(s.cache, resolvedMap, addr, func() (resolution, error) {
		targets, account, err := s.resolveQuery(ctx, addr)
		return resolution{targets, account}, err
	})
	r = r.clone()
	return r.targets, r.account, err
}

// resolveQuery is Resolve of a normalized address, from the database.
func (s *Store) resolveQuery(ctx context.Context, addr string) (targets []string, account bool, err error) {
	rows, err := s.resolve.QueryContext(ctx, addr)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: resolve %s: %w", addr, err)
	}
	defer func() { _ = rows.Close() }() // rows.Err below reports what matters
	for rows.Next() {
		var t sql.NullString
		if err := rows.Scan(&t); err != nil {
			return nil, false, fmt.Errorf("sqlite: resolve %s: %w", addr, err)
		}
		if !t.Valid {
			account = true
			continue
		}
		targets = append(targets, t.String)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("sqlite: resolve %s: %w", addr, err)
	}
	return targets, account && len(targets) == 0, nil
}

func queryTargets(ctx context.Context, tx *sql.Tx, addr string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT target FROM aliases WHERE address = ? ORDER BY target`, addr)
	if err != nil {
		return nil, fmt.Errorf("sqlite: alias %s: %w", addr, err)
	}
	return scanTargets(rows, addr)
}

func scanTargets(rows *sql.Rows, addr string) ([]string, error) {
	defer func() { _ = rows.Close() }() // rows.Err below reports what matters
	var ts []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("sqlite: alias %s: %w", addr, err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: alias %s: %w", addr, err)
	}
	return ts, nil
}
