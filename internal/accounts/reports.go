package accounts

import (
	"context"
	"time"
)

// ReportStore keeps what DMARC aggregate reports (RFC 7489 §7.2) and TLS reports (RFC 8460) are
// made of: counts per UTC day, report kind, policy domain and row, added by every node that
// shares the store, and the reports sent from them. It lives with the accounts because that is
// the store the nodes of a cluster share; what a row means is package reports' business: here it
// is an opaque key.
type ReportStore interface {
	// AddReportCounts adds each count to its row (kind, day, domain, row), creating the row
	// when it is new; a row's Policy becomes the one given. All in one transaction.
	AddReportCounts(ctx context.Context, counts []ReportCount) error

	// PendingReports sums the rows not sent yet, per kind, day and domain, sorted by kind, day,
	// domain.
	PendingReports(ctx context.Context) ([]ReportPending, error)

	// TakeReportCounts removes and returns the rows of kind and domain for the days up to and
	// including through ("2006-01-02"), in one transaction: whoever takes them sends them, so
	// two nodes never report the same counts twice.
	TakeReportCounts(ctx context.Context, kind, domain, through string) ([]ReportCount, error)

	// AddSentReports records reports sent (or skipped, with a Note), in one transaction.
	AddSentReports(ctx context.Context, sent []SentReport) error

	// SentReports returns the reports recorded since the given time, oldest first.
	SentReports(ctx context.Context, since time.Time) ([]SentReport, error)

	// LastReportEnd is the end of the last report period of kind for domain (the zero time
	// when there was none), so that the next report begins there.
	LastReportEnd(ctx context.Context, kind, domain string) (time.Time, error)
}

// The report kinds.
const (
	ReportDMARC = "dmarc"  // DMARC aggregate reports (RFC 7489 §7.2)
	ReportTLS   = "tlsrpt" // SMTP TLS reports (RFC 8460)
)

// ReportCount is one row of report statistics.
type ReportCount struct {
	Kind   string // ReportDMARC or ReportTLS
	Day    string // the UTC day, "2006-01-02"
	Domain string // the policy domain: who gets the report
	// Row names what is counted (package reports encodes it): for DMARC the source IP,
	// identifiers, evaluation and authentication results; for TLS the policy and failure.
	Row string
	// Policy is the policy published as the row was last counted (for DMARC the DMARC record
	// with its rua= addresses); opaque here.
	Policy string
	// Success and Failure are the counts: messages for DMARC (Success only), sessions for TLS.
	Success, Failure int64
}

// ReportPending sums the unsent rows of one kind, day and domain.
type ReportPending struct {
	Kind, Day, Domain string
	Rows              int
	Success, Failure  int64
}

// SentReport is one report to one destination.
type SentReport struct {
	Kind     string
	Domain   string // the policy domain
	ReportID string
	// Begin and End are the period the report covers.
	Begin, End  time.Time
	Destination string // the mailto: address or https: URI
	Size        int64  // of the message (or the body POSTed)
	Sent        time.Time
	// QueueID is the queue id of the report's message, or for a report POSTed to an https:
	// destination the server's status ("HTTP 200"); empty when it was not sent.
	QueueID string
	// Note says why a report was not sent to Destination (an unverified external address,
	// a size limit); empty when it was sent.
	Note string
}
