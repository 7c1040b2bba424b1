package sqlite

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
)

func pending(t *testing.T, s accounts.Store) string {
	t.Helper()
	ps, err := s.PendingReports(context.Background())
	must(t, err)
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s %s %s rows=%d ok=%d fail=%d;", p.Kind, p.Day, p.Domain, p.Rows, p.Success, p.Failure)
	}
	return b.String()
}

// TestReportCounts: counts add up per row, from several writers at once (two nodes sharing
// the file), the latest policy wins, and a row taken is gone: it is never reported twice.
func TestReportCounts(t *testing.T) {
	ctx := context.Background()
	s, path := newStore(t)
	other := openAt(t, path) // a second node on the same file
	row := func(day, domain, r, policy string, ok, fail int64) accounts.ReportCount {
		return accounts.ReportCount{Kind: accounts.ReportTLS, Day: day, Domain: domain, Row: r, Policy: policy, Success: ok, Failure: fail}
	}
	var wg sync.WaitGroup
	for i, st := range []accounts.Store{s, other, s, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			must(t, st.AddReportCounts(ctx, []accounts.ReportCount{
				row("2026-12-04", "b.test", "r1", fmt.Sprint("p", i), 2, 1),
				row("2026-12-05", "b.test", "r1", "p", 1, 0),
			}))
		}()
	}
	wg.Wait()
	must(t, s.AddReportCounts(ctx, []accounts.ReportCount{
		row("2026-12-04", "b.test", "r2", "last", 0, 5),
		row("2026-12-04", "c.test", "r1", "p", 1, 0),
		{Kind: accounts.ReportDMARC, Day: "2026-12-04", Domain: "b.test", Row: "x", Policy: "d", Success: 3},
	}))
	want := "dmarc 2026-12-04 b.test rows=1 ok=3 fail=0;" +
		"tlsrpt 2026-12-04 b.test rows=2 ok=8 fail=9;tlsrpt 2026-12-04 c.test rows=1 ok=1 fail=0;" +
		"tlsrpt 2026-12-05 b.test rows=1 ok=4 fail=0;"
	if got := pending(t, s); got != want {
		t.Errorf("pending:\n got %s\nwant %s", got, want)
	}

	got, err := other.TakeReportCounts(ctx, accounts.ReportTLS, "b.test", "2026-12-04")
	must(t, err)
	if len(got) != 2 || got[0].Row != "r1" || got[0].Success != 8 || got[0].Failure != 4 || got[1].Policy != "last" {
		t.Errorf("taken: %+v", got)
	}
	again, err := s.TakeReportCounts(ctx, accounts.ReportTLS, "b.test", "2026-12-04")
	must(t, err)
	if len(again) != 0 {
		t.Errorf("taken twice: %+v", again)
	}
	want = "dmarc 2026-12-04 b.test rows=1 ok=3 fail=0;tlsrpt 2026-12-04 c.test rows=1 ok=1 fail=0;tlsrpt 2026-12-05 b.test rows=1 ok=4 fail=0;"
	if got := pending(t, s); got != want {
		t.Errorf("pending after take:\n got %s\nwant %s", got, want)
	}
}

func TestSentReports(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	end, err := s.LastReportEnd(ctx, accounts.ReportDMARC, "b.test")
	must(t, err)
	if !end.IsZero() {
		t.Errorf("no report yet: last end %v", end)
	}
	must(t, s.AddSentReports(ctx, []accounts.SentReport{
		{Kind: accounts.ReportDMARC, Domain: "b.test", ReportID: "1", Begin: t0, End: t0.Add(24 * time.Hour),
			Destination: "mailto:r@b.test", Size: 900, Sent: t0.Add(25 * time.Hour), QueueID: "Q1"},
		{Kind: accounts.ReportDMARC, Domain: "b.test", ReportID: "1", Begin: t0, End: t0.Add(24 * time.Hour),
			Destination: "mailto:r@x.test", Sent: t0.Add(25 * time.Hour), Note: "not authorized"},
		{Kind: accounts.ReportDMARC, Domain: "b.test", ReportID: "0", Begin: t0.Add(-24 * time.Hour), End: t0,
			Destination: "mailto:r@b.test", Size: 800, Sent: t0.Add(time.Hour), QueueID: "Q0"},
	}))
	end, err = s.LastReportEnd(ctx, accounts.ReportDMARC, "b.test")
	must(t, err)
	if !end.Equal(t0.Add(24 * time.Hour)) {
		t.Errorf("last end %v", end)
	}
	sent, err := s.SentReports(ctx, t0.Add(2*time.Hour))
	must(t, err)
	if len(sent) != 2 || sent[0].Destination != "mailto:r@b.test" || sent[0].Size != 900 || sent[1].Note != "not authorized" ||
		!sent[0].Begin.Equal(t0) || sent[0].QueueID != "Q1" {
		t.Errorf("sent: %+v", sent)
	}
}
