package reports

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/tlsrpt"
)

// sendTLS reports domain's TLS counts up to through, one report per day, to the mailto:
// destinations of its TLSRPT record (RFC 8460 §3). The record is asked first: when DNS fails
// the counts stay for the next run; when there is no record, nobody wants them and they are
// dropped.
func (s *Sender) sendTLS(ctx context.Context, domain string, through, now time.Time) ([]accounts.SentReport, error) {
	var rec tlsrpt.Record
	var recErr error
	if !s.o.NoTLS {
		txts, err := s.o.DNS.LookupTXT(ctx, "_smtp._tls."+domain)
		if err != nil {
			return nil, fmt.Errorf("TLSRPT record: %w (the counts are kept for the next run)", err)
		}
		rec, recErr = tlsrpt.FindRecord(txts)
	}
	days, err := s.take(ctx, accounts.ReportTLS, domain, through)
	if err != nil || s.o.NoTLS {
		return nil, err
	}
	if recErr != nil {
		if !errors.Is(recErr, tlsrpt.ErrNoRecord) {
			s.log.Warn("reports: unusable TLSRPT record: no TLS report", "domain", domain, "err", recErr)
		}
		return nil, nil
	}
	var sent []accounts.SentReport
	var errs []error
	for _, dc := range days {
		out, err := s.tlsDay(ctx, domain, rec, dc, now)
		sent = append(sent, out...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return sent, errors.Join(errs...)
}

func (s *Sender) tlsDay(ctx context.Context, domain string, rec tlsrpt.Record, dc dayCounts, now time.Time) ([]accounts.SentReport, error) {
	var counts []tlsrpt.Counted
	for _, r := range dc.rows {
		o, err := decodeRow[tlsrpt.Outcome](r.Row)
		if err != nil {
			s.log.Warn("reports: a stored TLS row is unreadable, dropped", "domain", domain, "err", err)
			continue
		}
		counts = append(counts, tlsrpt.Counted{Outcome: o, Success: r.Success, Failure: r.Failure})
	}
	if len(counts) == 0 {
		return nil, nil
	}
	base, gz, err := s.build(ctx, accounts.ReportTLS, domain, dc.day, now, func(m reportMeta) ([]byte, error) {
		return tlsrpt.NewReport(tlsrpt.Meta{OrganizationName: m.OrgName, ContactInfo: m.Email, ReportID: m.ReportID,
			Start: m.Begin, End: m.End}, counts).JSON()
	})
	if err != nil {
		return nil, err
	}
	id, begin, end := base.ReportID, base.Begin, base.End
	var sent []accounts.SentReport
	for i, u := range rec.RUA {
		if u.Scheme != "mailto" {
			sent = append(sent, s.post(ctx, u.String(), base, gz))
			continue
		}
		addr, err := tlsrpt.MailtoAddress(u)
		if err != nil {
			sent = append(sent, s.skipped(base, u.String(), err.Error()))
			continue
		}
		mb, err := mailbox(addr)
		if err != nil {
			sent = append(sent, s.skipped(base, u.String(), err.Error()))
			continue
		}
		addr = mb.String()
		m := reportMail{From: s.o.From, To: addr, Date: s.o.Now(), MessageID: s.messageID(id, i), Domain: domain,
			Submitter: s.o.Hostname, ReportID: id, TLS: true,
			Text: fmt.Sprintf("This is an SMTP TLS report (RFC 8460) from %s for %s,\n"+
				"covering %s to %s (UTC).\n", s.o.Hostname, domain, begin.Format(time.DateTime), end.Format(time.DateTime)),
			Filename: attachmentName(s.o.Hostname, domain, begin, end, "json.gz"), Attachment: gz}
		sent = append(sent, s.deliver(ctx, m, base, 0))
	}
	return sent, nil
}

// maxHTTPReply bounds what is read of a report server's answer (only its status matters).
const maxHTTPReply = 64 << 10

// post sends the gzip'd report to an https: destination (RFC 8460 §5.2): a POST with
// Content-Type application/tlsrpt+gzip, done when the server answers 2xx. There is one
// attempt: unlike a queued message, a failed POST is not tried again (the next day's report
// is).
func (s *Sender) post(ctx context.Context, uri string, base accounts.SentReport, gz []byte) accounts.SentReport {
	r := base
	r.Destination, r.Sent, r.Size = uri, s.o.Now().UTC(), int64(len(gz))
	if s.o.HTTP == nil {
		return s.skipped(base, uri, "https: reports are not sent (no HTTP client)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, bytes.NewReader(gz))
	if err != nil {
		return s.skipped(base, uri, "not posted: "+err.Error())
	}
	req.Header.Set("Content-Type", "application/tlsrpt+gzip")
	resp, err := s.o.HTTP.Do(req)
	if err != nil {
		r.Note = "not posted: " + err.Error()
		s.log.Warn("reports: report not posted", "kind", r.Kind, "domain", r.Domain, "report_id", r.ReportID, "url", uri, "err", err)
		return r
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHTTPReply)) // to reuse the connection; the status is the answer
	_ = resp.Body.Close()                                               // read-only: nothing to lose
	if resp.StatusCode/100 != 2 {
		r.Note = "not accepted: HTTP " + resp.Status
		s.log.Warn("reports: report refused", "kind", r.Kind, "domain", r.Domain, "report_id", r.ReportID, "url", uri, "status", resp.Status)
		return r
	}
	r.QueueID = "HTTP " + strconv.Itoa(resp.StatusCode)
	s.log.Info("reports: report posted", "kind", r.Kind, "domain", r.Domain, "report_id", r.ReportID, "url", uri,
		"status", resp.StatusCode, "size", r.Size)
	return r
}
