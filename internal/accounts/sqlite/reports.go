package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
)

// AddReportCounts implements accounts.Store.
func (s *Store) AddReportCounts(ctx context.Context, counts []accounts.ReportCount) error {
	if len(counts) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO report_counts (kind, day, domain, row, policy, success, failure)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (kind, day, domain, row) DO UPDATE SET policy = excluded.policy,
				success = success + excluded.success, failure = failure + excluded.failure`)
		if err != nil {
			return fmt.Errorf("sqlite: report counts: %w", err)
		}
		defer func() { _ = st.Close() }() // the transaction's outcome is what matters
		for _, c := range counts {
			if _, err := st.ExecContext(ctx, c.Kind, c.Day, c.Domain, c.Row, c.Policy, c.Success, c.Failure); err != nil {
				return fmt.Errorf("sqlite: report counts of %s: %w", c.Domain, err)
			}
		}
		return nil
	})
}

// PendingReports implements accounts.Store.
func (s *Store) PendingReports(ctx context.Context) ([]accounts.ReportPending, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT kind, day, domain, COUNT(*), SUM(success), SUM(failure)
		FROM report_counts GROUP BY kind, day, domain ORDER BY kind, day, domain`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: pending reports: %w", err)
	}
	defer func() { _ = rows.Close() }() // rows.Err below reports what matters
	var out []accounts.ReportPending
	for rows.Next() {
		var p accounts.ReportPending
		if err := rows.Scan(&p.Kind, &p.Day, &p.Domain, &p.Rows, &p.Success, &p.Failure); err != nil {
			return nil, fmt.Errorf("sqlite: pending reports: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: pending reports: %w", err)
	}
	return out, nil
}

// TakeReportCounts implements accounts.Store.
func (s *Store) TakeReportCounts(ctx context.Context, kind, domain, through string) ([]accounts.ReportCount, error) {
	var out []accounts.ReportCount
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// DELETE ... RETURNING: the rows are gone in the statement that reads them.
		rows, err := tx.QueryContext(ctx, `DELETE FROM report_counts WHERE kind = ? AND domain = ? AND day <= ?
			RETURNING kind, day, domain, row, policy, success, failure`, kind, domain, through)
		if err != nil {
			return fmt.Errorf("sqlite: take report counts: %w", err)
		}
		defer func() { _ = rows.Close() }() // rows.Err below reports what matters
		for rows.Next() {
			var c accounts.ReportCount
			if err := rows.Scan(&c.Kind, &c.Day, &c.Domain, &c.Row, &c.Policy, &c.Success, &c.Failure); err != nil {
				return fmt.Errorf("sqlite: take report counts: %w", err)
			}
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite: take report counts: %w", err)
		}
		return rows.Close()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AddSentReports implements accounts.Store.
func (s *Store) AddSentReports(ctx context.Context, sent []accounts.SentReport) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, r := range sent {
			if _, err := tx.ExecContext(ctx, `INSERT INTO reports_sent
				(kind, domain, report_id, begin_at, end_at, destination, size, sent_at, queue_id, note)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				r.Kind, r.Domain, r.ReportID, r.Begin.Unix(), r.End.Unix(), r.Destination, r.Size,
				r.Sent.Unix(), r.QueueID, r.Note); err != nil {
				return fmt.Errorf("sqlite: report %s sent: %w", r.ReportID, err)
			}
		}
		return nil
	})
}

// SentReports implements accounts.Store.
func (s *Store) SentReports(ctx context.Context, since time.Time) ([]accounts.SentReport, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT kind, domain, report_id, begin_at, end_at, destination, size,
		sent_at, queue_id, note FROM reports_sent WHERE sent_at >= ? ORDER BY sent_at, report_id, destination`, since.Unix())
	if err != nil {
		return nil, fmt.Errorf("sqlite: reports sent: %w", err)
	}
	defer func() { _ = rows.Close() }() // rows.Err below reports what matters
	var out []accounts.SentReport
	for rows.Next() {
		var r accounts.SentReport
		var begin, end, sent int64
		if err := rows.Scan(&r.Kind, &r.Domain, &r.ReportID, &begin, &end, &r.Destination, &r.Size,
			&sent, &r.QueueID, &r.Note); err != nil {
			return nil, fmt.Errorf("sqlite: reports sent: %w", err)
		}
		r.Begin, r.End, r.Sent = time.Unix(begin, 0).UTC(), time.Unix(end, 0).UTC(), time.Unix(sent, 0).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: reports sent: %w", err)
	}
	return out, nil
}

// LastReportEnd implements accounts.Store.
func (s *Store) LastReportEnd(ctx context.Context, kind, domain string) (time.Time, error) {
	var end sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(end_at) FROM reports_sent WHERE kind = ? AND domain = ?`,
		kind, domain).Scan(&end); err != nil {
		return time.Time{}, fmt.Errorf("sqlite: last report of %s: %w", domain, err)
	}
	if !end.Valid {
		return time.Time{}, nil
	}
	return time.Unix(end.Int64, 0).UTC(), nil
}
