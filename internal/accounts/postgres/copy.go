package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-mail/tern/internal/accounts"
)

var _ accounts.Copier = (*Store)(nil)

// Dump implements accounts.Copier. Unlike the other operations it is bounded only by ctx: a
// large store takes its time.
func (s *Store) Dump(ctx context.Context) (d accounts.Dump, err error) {
	if d.Accounts, err = s.storedAccounts(ctx); err != nil {
		return d, err
	}
	if err = accounts.DumpPublic(ctx, s, &d); err != nil {
		return d, err
	}
	rows, err := s.pool.Query(ctx, `SELECT kind, day, domain, "row", policy, success, failure FROM report_counts
		ORDER BY kind, day, domain, "row"`)
	if err != nil {
		return d, fmt.Errorf("postgres: dump: %w", err)
	}
	var c accounts.ReportCount
	if _, err := pgx.ForEachRow(rows, []any{&c.Kind, &c.Day, &c.Domain, &c.Row, &c.Policy, &c.Success, &c.Failure}, func() error {
		d.ReportCounts = append(d.ReportCounts, c)
		return nil
	}); err != nil {
		return d, fmt.Errorf("postgres: dump: %w", err)
	}
	return d, nil
}

// storedAccounts reads the accounts with their hashes and secrets.
func (s *Store) storedAccounts(ctx context.Context) ([]accounts.StoredAccount, error) {
	rows, err := s.pool.Query(ctx, `SELECT address, password, created_at FROM users ORDER BY address`)
	if err != nil {
		return nil, fmt.Errorf("postgres: dump: %w", err)
	}
	var list []accounts.StoredAccount
	index := map[string]int{}
	var a accounts.StoredAccount
	var created int64
	if _, err := pgx.ForEachRow(rows, []any{&a.Addr, &a.Hash, &created}, func() error {
		a.Created = time.Unix(created, 0)
		index[a.Addr] = len(list)
		list = append(list, a)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("postgres: dump: %w", err)
	}
	if rows, err = s.pool.Query(ctx, `SELECT address, kind, secret FROM secrets ORDER BY address, kind`); err != nil {
		return nil, fmt.Errorf("postgres: dump: %w", err)
	}
	var addr string
	var sec accounts.Secret
	if _, err := pgx.ForEachRow(rows, []any{&addr, &sec.Kind, &sec.Value}, func() error {
		if i, ok := index[addr]; ok { // a foreign key keeps it so
			list[i].Secrets = append(list[i].Secrets, sec)
		}
		sec.Value = nil // the next row scans into a new slice
		return nil
	}); err != nil {
		return nil, fmt.Errorf("postgres: dump: %w", err)
	}
	return list, nil
}

// Load implements accounts.Copier: one batch, in one round trip, in one transaction. Unlike
// the other operations it is bounded only by ctx.
func (s *Store) Load(ctx context.Context, d accounts.Dump) error {
	b := &pgx.Batch{}
	for _, a := range d.Accounts {
		b.Queue(`INSERT INTO users (address, password, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (address) DO UPDATE SET password = excluded.password, created_at = excluded.created_at`,
			a.Addr, a.Hash, a.Created.Unix())
		b.Queue(`DELETE FROM secrets WHERE address = $1`, a.Addr)
		for _, sec := range a.Secrets {
			b.Queue(`INSERT INTO secrets (address, kind, secret) VALUES ($1, $2, $3)`, a.Addr, sec.Kind, sec.Value)
		}
	}
	for _, a := range d.Aliases {
		for _, t := range a.Targets {
			b.Queue(`INSERT INTO aliases (address, target, domain) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
				a.Addr, t, accounts.AliasDomain(a.Addr))
		}
	}
	for _, k := range d.DKIMKeys {
		b.Queue(`INSERT INTO dkim_keys (domain, selector, algorithm, state, created_at, private)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (domain, selector) DO UPDATE SET algorithm = excluded.algorithm, state = excluded.state,
				created_at = excluded.created_at, private = excluded.private`,
			k.Domain, k.Selector, k.Algorithm, string(k.State), k.Created.Unix(), k.Private)
	}
	for _, c := range d.ReportCounts {
		b.Queue(`INSERT INTO report_counts (kind, day, domain, "row", policy, success, failure)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (kind, day, domain, "row") DO UPDATE SET policy = excluded.policy,
				success = excluded.success, failure = excluded.failure`,
			c.Kind, c.Day, c.Domain, c.Row, c.Policy, c.Success, c.Failure)
	}
	for _, r := range d.SentReports {
		b.Queue(`INSERT INTO reports_sent (kind, domain, report_id, begin_at, end_at, destination, size, sent_at, queue_id, note)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (report_id, destination) DO UPDATE SET kind = excluded.kind, domain = excluded.domain,
				begin_at = excluded.begin_at, end_at = excluded.end_at, size = excluded.size,
				sent_at = excluded.sent_at, queue_id = excluded.queue_id, note = excluded.note`,
			r.Kind, r.Domain, r.ReportID, r.Begin.Unix(), r.End.Unix(), r.Destination, r.Size,
			r.Sent.Unix(), r.QueueID, r.Note)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: load: %w", err)
	}
	return nil
}
