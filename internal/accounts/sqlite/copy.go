package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
)

var _ accounts.Copier = (*Store)(nil)

// Dump implements accounts.Copier.
func (s *Store) Dump(ctx context.Context) (d accounts.Dump, err error) {
	if d.Accounts, err = s.storedAccounts(ctx); err != nil {
		return d, err
	}
	if err = accounts.DumpPublic(ctx, s, &d); err != nil {
		return d, err
	}
	err = s.each(ctx, `SELECT kind, day, domain, row, policy, success, failure FROM report_counts
		ORDER BY kind, day, domain, row`, func(rows *sql.Rows) error {
		var c accounts.ReportCount
		err := rows.Scan(&c.Kind, &c.Day, &c.Domain, &c.Row, &c.Policy, &c.Success, &c.Failure)
		d.ReportCounts = append(d.ReportCounts, c)
		return err
	})
	if err != nil {
		return d, err
	}
	return d, nil
}

// storedAccounts reads the accounts with their hashes and secrets.
func (s *Store) storedAccounts(ctx context.Context) ([]accounts.StoredAccount, error) {
	var list []accounts.StoredAccount
	index := map[string]int{}
	err := s.each(ctx, `SELECT address, password, created_at FROM users ORDER BY address`, func(rows *sql.Rows) error {
		var a accounts.StoredAccount
		var created int64
		err := rows.Scan(&a.Addr, &a.Hash, &created)
		a.Created = time.Unix(created, 0)
		index[a.Addr] = len(list)
		list = append(list, a)
		return err
	})
	if err != nil {
		return nil, err
	}
	err = s.each(ctx, `SELECT address, kind, secret FROM secrets ORDER BY address, kind`, func(rows *sql.Rows) error {
		var addr string
		var sec accounts.Secret
		if err := rows.Scan(&addr, &sec.Kind, &sec.Value); err != nil {
			return err
		}
		if i, ok := index[addr]; ok { // a foreign key keeps it so; a secret of nobody is no secret
			list[i].Secrets = append(list[i].Secrets, sec)
		}
		return nil
	})
	return list, err
}

// each runs query and calls scan for each row.
func (s *Store) each(ctx context.Context, query string, scan func(*sql.Rows) error) error {
	rows, err := s.db.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("sqlite: dump: %w", err)
	}
	defer func() { _ = rows.Close() }() // rows.Err below reports what matters
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("sqlite: dump: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: dump: %w", err)
	}
	return nil
}

// Load implements accounts.Copier.
func (s *Store) Load(ctx context.Context, d accounts.Dump) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		exec := func(what, query string, args ...any) error {
			if _, err := tx.ExecContext(ctx, query, args...); err != nil {
				return fmt.Errorf("sqlite: load %s: %w", what, err)
			}
			return nil
		}
		for _, a := range d.Accounts {
			if err := exec(a.Addr, `INSERT INTO users (address, password, created_at) VALUES (?, ?, ?)
				ON CONFLICT (address) DO UPDATE SET password = excluded.password, created_at = excluded.created_at`,
				a.Addr, a.Hash, a.Created.Unix()); err != nil {
				return err
			}
			if err := exec(a.Addr, `DELETE FROM secrets WHERE address = ?`, a.Addr); err != nil {
				return err
			}
			if err := insertSecrets(ctx, tx, a.Addr, a.Secrets); err != nil {
				return err
			}
		}
		for _, a := range d.Aliases {
			for _, t := range a.Targets {
				if err := exec("alias "+a.Addr, `INSERT INTO aliases (address, target, domain) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
					a.Addr, t, accounts.AliasDomain(a.Addr)); err != nil {
					return err
				}
			}
		}
		for _, k := range d.DKIMKeys {
			if err := exec("DKIM key "+k.Selector+" of "+k.Domain, `INSERT INTO dkim_keys
				(domain, selector, algorithm, state, created_at, private) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (domain, selector) DO UPDATE SET algorithm = excluded.algorithm, state = excluded.state,
					created_at = excluded.created_at, private = excluded.private`,
				k.Domain, k.Selector, k.Algorithm, string(k.State), k.Created.Unix(), k.Private); err != nil {
				return err
			}
		}
		for _, c := range d.ReportCounts {
			if err := exec("report counts of "+c.Domain, `INSERT INTO report_counts (kind, day, domain, row, policy, success, failure)
				VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (kind, day, domain, row) DO UPDATE SET policy = excluded.policy,
					success = excluded.success, failure = excluded.failure`,
				c.Kind, c.Day, c.Domain, c.Row, c.Policy, c.Success, c.Failure); err != nil {
				return err
			}
		}
		for _, r := range d.SentReports {
			if err := exec("report "+r.ReportID, `INSERT INTO reports_sent
				(kind, domain, report_id, begin_at, end_at, destination, size, sent_at, queue_id, note)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (report_id, destination) DO UPDATE SET kind = excluded.kind, domain = excluded.domain,
					begin_at = excluded.begin_at, end_at = excluded.end_at, size = excluded.size,
					sent_at = excluded.sent_at, queue_id = excluded.queue_id, note = excluded.note`,
				r.Kind, r.Domain, r.ReportID, r.Begin.Unix(), r.End.Unix(), r.Destination, r.Size,
				r.Sent.Unix(), r.QueueID, r.Note); err != nil {
				return err
			}
		}
		return nil
	})
}
