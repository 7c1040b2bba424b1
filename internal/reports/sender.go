package reports

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
)

// Submit queues one report message from the null sender to rcpt and returns its queue id.
// Reports go out like any other mail tern originates, so remote delivery DKIM-signs them with
// the keys of the From domain.
type Submit func(ctx context.Context, rcpt string, msg []byte) (queueID string, err error)

// SenderOptions configure a Sender.
type SenderOptions struct {
	Store accounts.ReportStore // required
	// Flush writes what the recorder holds to the store before a run (nil: nothing to do).
	Flush func(ctx context.Context) error
	// Submit queues a report. Required.
	Submit Submit
	// DNS answers the TLSRPT records and DMARC's external destination verification. Required.
	DNS TXTLookuper
	// Hostname is the report's submitter (org_name, TLS-Report-Submitter) and the domain of
	// its Message-ID.
	Hostname string
	// From is the report's From address and contact (email, contact-info).
	From string
	// HTTP posts TLS reports to https: destinations (RFC 8460 §5.2); nil: those are skipped.
	HTTP *http.Client
	// NoDMARC and NoTLS leave reports of that kind unsent (the counts are dropped).
	NoDMARC, NoTLS bool
	// Sent is told of each report recorded, by kind (accounts.ReportDMARC, ReportTLS) and
	// outcome (Outcome*), for metrics. Nil: nobody.
	Sent func(kind, outcome string)
	// Jitter is the random wait Run adds after midnight and after it starts, up to its
	// argument. Default RandomJitter.
	Jitter func(max time.Duration) time.Duration
	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default: discard
}

// Sender makes the reports from the counts in the store and queues them.
type Sender struct {
	o   SenderOptions
	log *slog.Logger
}

// NewSender makes a Sender.
func NewSender(o SenderOptions) *Sender {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Jitter == nil {
		o.Jitter = RandomJitter
	}
	return &Sender{o: o, log: o.Logger}
}

// Send makes and queues the reports due: those of every day before today (UTC) that have
// counts, and today's so far when today is set (tern reports send --now; the rest of today
// is then reported after midnight, from the end of this report on). The counts are taken from
// the store as they are reported, so none is reported twice, by this node or another sharing
// the store. It returns what it recorded as sent (or skipped, with a Note).
func (s *Sender) Send(ctx context.Context, today bool) ([]accounts.SentReport, error) {
	if s.o.Flush != nil {
		if err := s.o.Flush(ctx); err != nil {
			return nil, err
		}
	}
	now := s.o.Now().UTC()
	dayStart := now.Truncate(24 * time.Hour)
	through := dayStart.Add(-24 * time.Hour)
	if today {
		through = dayStart
	}
	pending, err := s.o.Store.PendingReports(ctx)
	if err != nil {
		return nil, err
	}
	type target struct{ kind, domain string }
	var targets []target
	for _, p := range pending {
		t := target{p.Kind, p.Domain}
		if p.Day <= through.Format(time.DateOnly) && !slices.Contains(targets, t) {
			targets = append(targets, t)
		}
	}
	var all []accounts.SentReport
	var errs []error
	for _, t := range targets {
		var sent []accounts.SentReport
		var err error
		switch t.kind {
		case accounts.ReportDMARC:
			sent, err = s.sendDMARC(ctx, t.domain, through, now)
		case accounts.ReportTLS:
			sent, err = s.sendTLS(ctx, t.domain, through, now)
		default:
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s report for %s: %w", t.kind, t.domain, err))
		}
		if len(sent) > 0 {
			if err := s.o.Store.AddSentReports(ctx, sent); err != nil {
				errs = append(errs, err)
			}
			all = append(all, sent...)
		}
		if s.o.Sent != nil {
			for _, r := range sent {
				s.o.Sent(r.Kind, outcome(r))
			}
		}
	}
	return all, errors.Join(errs...)
}

// Outcomes of a report to one destination, given to SenderOptions.Sent.
const (
	OutcomeQueued  = "queued"  // a message to a mailto: destination was queued
	OutcomePosted  = "posted"  // POSTed to an https: destination, which took it
	OutcomeSkipped = "skipped" // not sent there: an unverified external address, a size limit, a failed POST
)

// outcome says what became of r.
func outcome(r accounts.SentReport) string {
	switch {
	case r.Note != "" || r.QueueID == "":
		return OutcomeSkipped
	case strings.HasPrefix(r.Destination, "https:"):
		return OutcomePosted
	}
	return OutcomeQueued
}

// dayCounts are the counts of one day taken from the store.
type dayCounts struct {
	day  time.Time
	rows []accounts.ReportCount
}

// take removes the counts of kind for domain up to through from the store, by day.
func (s *Sender) take(ctx context.Context, kind, domain string, through time.Time) ([]dayCounts, error) {
	rows, err := s.o.Store.TakeReportCounts(ctx, kind, domain, through.Format(time.DateOnly))
	if err != nil {
		return nil, err
	}
	var days []dayCounts
	for _, r := range rows {
		d, err := time.Parse(time.DateOnly, r.Day)
		if err != nil {
			s.log.Warn("reports: a count with a bad day dropped", "kind", kind, "domain", domain, "day", r.Day)
			continue
		}
		i := slices.IndexFunc(days, func(dc dayCounts) bool { return dc.day.Equal(d) })
		if i < 0 {
			days = append(days, dayCounts{day: d})
			i = len(days) - 1
		}
		days[i].rows = append(days[i].rows, r)
	}
	slices.SortFunc(days, func(a, b dayCounts) int { return a.day.Compare(b.day) })
	return days, nil
}

// period is what a report of day covers: the day, from the end of the last report if that is
// later (after tern reports send --now), up to now if the day is not over.
func (s *Sender) period(ctx context.Context, kind, domain string, day, now time.Time) (begin, end time.Time) {
	begin, end = day, day.Add(24*time.Hour)
	if end.After(now) {
		end = now
	}
	last, err := s.o.Store.LastReportEnd(ctx, kind, domain)
	if err == nil && last.After(begin) && last.Before(end) {
		begin = last
	}
	return begin, end
}

// newReportID is a report's id: its day and random hex, unique without coordination between
// nodes.
func newReportID(day time.Time) (string, error) {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return day.Format("20060102") + "." + hex.EncodeToString(b[:]), nil
}

// build makes the report of kind for domain's day: its id and period (in base, the record of
// what is sent), and the document doc writes for them, gzip'd.
func (s *Sender) build(ctx context.Context, kind, domain string, day, now time.Time,
	doc func(reportMeta) ([]byte, error)) (base accounts.SentReport, gz []byte, err error) {
	id, err := newReportID(day)
	if err != nil {
		return base, nil, err
	}
	begin, end := s.period(ctx, kind, domain, day, now)
	b, err := doc(reportMeta{OrgName: s.o.Hostname, Email: s.o.From, ReportID: id, Begin: begin, End: end})
	if err != nil {
		return base, nil, err
	}
	if gz, err = gzipped(b); err != nil {
		return base, nil, err
	}
	return accounts.SentReport{Kind: kind, Domain: domain, ReportID: id, Begin: begin, End: end}, gz, nil
}

// deliver queues one report message for each destination and records the outcome of each.
func (s *Sender) deliver(ctx context.Context, m reportMail, base accounts.SentReport, maxSize int64) accounts.SentReport {
	r := base
	r.Destination, r.Sent = "mailto:"+m.To, s.o.Now().UTC()
	msg, err := m.bytes()
	if err != nil {
		r.Note = "not sent: " + err.Error()
		return r
	}
	r.Size = int64(len(msg))
	if maxSize > 0 && r.Size > maxSize {
		// RFC 7489 §6.2: a report larger than the limit is not sent.
		r.Note = fmt.Sprintf("not sent: %d octets, over the destination's limit of %d", r.Size, maxSize)
		s.log.Info("reports: report over the destination's size limit, not sent", "kind", r.Kind, "domain", r.Domain,
			"report_id", r.ReportID, "rcpt", m.To, "size", r.Size, "limit", maxSize)
		return r
	}
	id, err := s.o.Submit(ctx, m.To, msg)
	if err != nil {
		r.Note = "not queued: " + err.Error()
		s.log.Warn("reports: report not queued", "kind", r.Kind, "domain", r.Domain, "report_id", r.ReportID, "rcpt", m.To, "err", err)
		return r
	}
	r.QueueID = id
	s.log.Info("reports: report queued", "kind", r.Kind, "domain", r.Domain, "report_id", r.ReportID, "rcpt", m.To,
		"msgid", id, "size", r.Size, "begin", r.Begin, "end", r.End)
	return r
}

// skipped records a destination a report did not go to, and logs why.
func (s *Sender) skipped(base accounts.SentReport, dest, why string) accounts.SentReport {
	base.Destination, base.Sent, base.Note = dest, s.o.Now().UTC(), why
	s.log.Info("reports: destination skipped", "kind", base.Kind, "domain", base.Domain, "report_id", base.ReportID,
		"destination", dest, "why", why)
	return base
}

// mostCommon is the policy most rows were counted under (a record may change during a day;
// a report has one policy_published).
func mostCommon(rows []accounts.ReportCount) string {
	n := map[string]int{}
	for _, r := range rows {
		n[r.Policy]++
	}
	var best string
	for p, c := range n {
		if c > n[best] || c == n[best] && p < best {
			best = p
		}
	}
	return best
}

func decodeRow[T any](s string) (T, error) {
	var v T
	err := json.Unmarshal([]byte(s), &v)
	return v, err
}

// messageID is the Message-ID of the report to the n-th destination.
func (s *Sender) messageID(reportID string, n int) string {
	return fmt.Sprintf("%s.%d@%s", reportID, n, cmp.Or(s.o.Hostname, "localhost"))
}
