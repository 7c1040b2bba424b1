package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-mail/tern/internal/accounts"
)

// AddReportCounts implements accounts.Store.
func (s *Store) AddReportCounts(ctx context.Context, counts []accounts.ReportCount) error {
	if len(counts) == 0 {
		return nil
	}
	return s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		for _, c := range counts {
			if _, err := tx.Exec(ctx, `INSERT INTO report_counts (kind, day, domain, "row", policy, success, failure)
				VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (kind, day, domain, "row") DO UPDATE SET policy = excluded.policy,
					success = report_counts.success + excluded.success,
					failure = report_counts.failure + excluded.failure`,
				c.Kind, c.Day, c.Domain, c.Row, c.Policy, c.Success, c.Failure); err != nil {
				return fmt.Errorf("postgres: report counts of %s: %w", c.Domain, err)
			}
		}
		return nil
	})
}

// PendingReports implements accounts.Store.
func (s *Store) PendingReports(ctx context.Context) ([]accounts.ReportPending, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT kind, day, domain, COUNT(*), SUM(success), SUM(failure)
		FROM report_counts GROUP BY kind, day, domain ORDER BY kind, day, domain`)
	if err != nil {
		return nil, fmt.Errorf("postgres: pending reports: %w", err)
	}
	var out []accounts.ReportPending
	var p accounts.ReportPending
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&p.Kind, &p.Day, &p.Domain, &n, &p.Success, &p.Failure}, func() error {
		p.Rows = int(n)
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: pending reports: %w", err)
	}
	return out, nil
}

// TakeReportCounts implements accounts.Store.
func (s *Store) TakeReportCounts(ctx context.Context, kind, domain, through string) ([]accounts.ReportCount, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	// DELETE ... RETURNING: the rows are gone in the statement that reads them, so two nodes
	// never both report them.
	rows, err := s.pool.Query(ctx, `DELETE FROM report_counts WHERE kind = $1 AND domain = $2 AND day <= $3
		RETURNING kind, day, domain, "row", policy, success, failure`, kind, domain, through)
	if err != nil {
		return nil, fmt.Errorf("postgres: take report counts: %w", err)
	}
	var out []accounts.ReportCount
	var c accounts.ReportCount
	_, err = pgx.ForEachRow(rows, []any{&c.Kind, &c.Day, &c.Domain, &c.Row, &c.Policy, &c.Success, &c.Failure}, func() error {
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: take report counts: %w", err)
	}
	return out, nil
}

// AddSentReports implements accounts.Store.
func (s *Store) AddSentReports(ctx context.Context, sent []accounts.SentReport) error {
	return s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		for _, r := range sent {
			if _, err := tx.Exec(ctx, `INSERT INTO reports_sent
				(kind, domain, report_id, begin_at, end_at, destination, size, sent_at, queue_id, note)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
				r.Kind, r.Domain, r.ReportID, r.Begin.Unix(), r.End.Unix(), r.Destination, r.Size,
				r.Sent.Unix(), r.QueueID, r.Note); err != nil {
				return fmt.Errorf("postgres: report %s sent: %w", r.ReportID, err)
			}
		}
		return nil
	})
}

// SentReports implements accounts.Store.
func (s *Store) SentReports(ctx context.Context, since time.Time) ([]accounts.SentReport, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT kind, domain, report_id, begin_at, end_at, destination, size,
		sent_at, queue_id, note FROM reports_sent WHERE sent_at >= $1 ORDER BY sent_at, report_id, destination`, since.Unix())
	if err != nil {
		return nil, fmt.Errorf("postgres: reports sent: %w", err)
	}
	var out []accounts.SentReport
	var r accounts.SentReport
	var begin, end, sent int64
	_, err = pgx.ForEachRow(rows, []any{&r.Kind, &r.Domain, &r.ReportID, &begin, &end, &r.Destination, &r.Size,
		&sent, &r.QueueID, &r.Note}, func() error {
		r.Begin, r.End, r.Sent = time.Unix(begin, 0).UTC(), time.Unix(end, 0).UTC(), time.Unix(sent, 0).UTC()
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: reports sent: %w", err)
	}
	return out, nil
}

// LastReportEnd implements accounts.Store.
func (s *Store) LastReportEnd(ctx context.Context, kind, domain string) (time.Time, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var end *int64
	if err := s.pool.QueryRow(ctx, `SELECT MAX(end_at) FROM reports_sent WHERE kind = $1 AND domain = $2`,
		kind, domain).Scan(&end); err != nil {
		return time.Time{}, fmt.Errorf("postgres: last report of %s: %w", domain, err)
	}
	if end == nil {
		return time.Time{}, nil
	}
	return time.Unix(*end, 0).UTC(), nil
}
