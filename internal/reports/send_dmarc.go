package reports

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/dmarc"
)

// sendDMARC reports domain's DMARC counts up to through, one report per day, to each mailto:
// address of the policy's rua= that passes the external destination verification.
func (s *Sender) sendDMARC(ctx context.Context, domain string, through, now time.Time) ([]accounts.SentReport, error) {
	days, err := s.take(ctx, accounts.ReportDMARC, domain, through)
	if err != nil || s.o.NoDMARC {
		return nil, err
	}
	var sent []accounts.SentReport
	var errs []error
	for _, dc := range days {
		out, err := s.dmarcDay(ctx, domain, dc, now)
		sent = append(sent, out...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return sent, errors.Join(errs...)
}

func (s *Sender) dmarcDay(ctx context.Context, domain string, dc dayCounts, now time.Time) ([]accounts.SentReport, error) {
	pub, err := decodeRow[dmarc.Published](mostCommon(dc.rows))
	if err != nil {
		return nil, fmt.Errorf("stored policy: %w", err)
	}
	var counts []dmarcCount
	for _, r := range dc.rows {
		row, err := decodeRow[dmarcRow](r.Row)
		if err != nil {
			s.log.Warn("reports: a stored DMARC row is unreadable, dropped", "domain", domain, "err", err)
			continue
		}
		counts = append(counts, dmarcCount{Row: row, Count: r.Success})
	}
	if len(counts) == 0 {
		return nil, nil
	}
	base, gz, err := s.build(ctx, accounts.ReportDMARC, domain, dc.day, now, func(m reportMeta) ([]byte, error) {
		return dmarcXML(m, pub, counts)
	})
	if err != nil {
		return nil, err
	}
	id, begin, end := base.ReportID, base.Begin, base.End
	var sent []accounts.SentReport
	for i, uri := range pub.RUA {
		rua, err := parseRUA(uri)
		if err != nil {
			sent = append(sent, s.skipped(base, uri, err.Error()))
			continue
		}
		if err := verifyExternal(ctx, s.o.DNS, pub.Domain, rua.Domain); err != nil {
			sent = append(sent, s.skipped(base, rua.URI, err.Error()))
			continue
		}
		m := reportMail{From: s.o.From, To: rua.Address, Date: s.o.Now(), MessageID: s.messageID(id, i), Domain: domain,
			Submitter: s.o.Hostname, ReportID: id,
			Text: fmt.Sprintf("This is a DMARC aggregate report (RFC 7489) from %s for %s,\n"+
				"covering %s to %s (UTC): %d rows.\n", s.o.Hostname, domain,
				begin.Format(time.DateTime), end.Format(time.DateTime), len(counts)),
			Filename: attachmentName(s.o.Hostname, domain, begin, end, "xml.gz"), Attachment: gz}
		sent = append(sent, s.deliver(ctx, m, base, rua.MaxSize))
	}
	return sent, nil
}
