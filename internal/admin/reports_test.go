package admin

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/accounts"
)

// TestReportsSend: the server sends reports when it can, says why when it cannot; without a
// server (tern queue's direct mode) the operation is refused.
func TestReportsSend(t *testing.T) {
	ctx := context.Background()
	if rep := sendReports(ctx, Options{}); !strings.Contains(rep.Error, "sends no reports") {
		t.Errorf("reports off: %+v", rep)
	}
	sent := []accounts.SentReport{{Kind: accounts.ReportDMARC, Domain: "b.test", ReportID: "1", QueueID: "Q1"}}
	opts := Options{SendReports: func(context.Context) ([]accounts.SentReport, error) { return sent, errors.New("c.test: DNS failed") }}
	rep := sendReports(ctx, opts)
	if len(rep.Reports) != 1 || rep.Reports[0].QueueID != "Q1" || rep.Error != "c.test: DNS failed" {
		t.Errorf("reply %+v", rep)
	}
	if rep := Handle(ctx, &fakeQueue{}, Request{Op: OpReportsSend}); !strings.Contains(rep.Error, "not running") {
		t.Errorf("direct: %+v", rep)
	}
}
