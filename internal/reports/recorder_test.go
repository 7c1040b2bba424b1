package reports

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/accounts/sqlite"
	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/tlsrpt"
)

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "accounts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func evaluation(ip string) dmarc.Evaluation {
	pub := samplePub
	return dmarc.Evaluation{Result: dmarc.Pass, FromDomain: "b.test", Published: &pub, Disposition: dmarc.PolicyNone,
		SPFAligned: true, SourceIP: ip, EnvelopeFrom: "b.test",
		SPF: dmarc.AuthResult{Domain: "b.test", Scope: "mfrom", Result: "pass"}}
}

// TestRecorder: evaluations and outcomes recorded from many goroutines add up per row; those
// without a report destination are not kept; a failed flush keeps the counts for the next.
func TestRecorder(t *testing.T) {
	ctx := context.Background()
	store := &failingStore{ReportStore: openStore(t)}
	clk := &clock{t: time.Date(2026, 12, 4, 23, 59, 0, 0, time.UTC)}
	r := NewRecorder(RecorderOptions{Store: store, Now: clk.now})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				r.RecordDMARC(evaluation("192.0.2.1"))
				r.RecordTLS(tlsrpt.Outcome{PolicyDomain: "B.test", PolicyType: tlsrpt.PolicyNotFound, Success: j%4 != 0,
					Failure: tlsrpt.StartTLSNotSupported, ReceivingIP: "192.0.2.25"})
			}
		}()
	}
	wg.Wait()
	r.RecordDMARC(dmarc.Evaluation{Result: dmarc.None, FromDomain: "x.test", SourceIP: "192.0.2.9"}) // no policy
	norua := evaluation("192.0.2.2")
	norua.Published.RUA = nil
	r.RecordDMARC(norua)

	store.fail = true
	if err := r.Flush(ctx); err == nil {
		t.Fatal("flush to a failing store succeeded")
	}
	store.fail = false
	clk.set(clk.now().Add(2 * time.Minute)) // the next day
	r.RecordDMARC(evaluation("192.0.2.1"))
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ps, err := store.PendingReports(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []accounts.ReportPending{
		{Kind: "dmarc", Day: "2026-12-04", Domain: "b.test", Rows: 1, Success: 800},
		{Kind: "dmarc", Day: "2026-12-05", Domain: "b.test", Rows: 1, Success: 1},
		{Kind: "tlsrpt", Day: "2026-12-04", Domain: "b.test", Rows: 2, Success: 600, Failure: 200},
	}
	if len(ps) != len(want) {
		t.Fatalf("pending %+v, want %+v", ps, want)
	}
	for i := range want {
		if ps[i] != want[i] {
			t.Errorf("pending[%d] = %+v, want %+v", i, ps[i], want[i])
		}
	}
}

// TestRecorderBound: past MaxRows new rows are dropped, existing ones still count.
func TestRecorderBound(t *testing.T) {
	store := openStore(t)
	r := NewRecorder(RecorderOptions{Store: store, MaxRows: 2})
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1"} {
		r.RecordDMARC(evaluation(ip))
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ps, err := store.PendingReports(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Rows != 2 || ps[0].Success != 3 {
		t.Errorf("pending %+v, want 2 rows, 3 messages", ps)
	}
}

// TestRecorderRun: the last flush at shutdown stores what was recorded.
func TestRecorderRun(t *testing.T) {
	store := openStore(t)
	r := NewRecorder(RecorderOptions{Store: store})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, time.Hour); close(done) }()
	r.RecordDMARC(evaluation("192.0.2.1"))
	cancel()
	<-done
	ps, err := store.PendingReports(context.Background())
	if err != nil || len(ps) != 1 {
		t.Errorf("after shutdown: %+v, %v", ps, err)
	}
}

type failingStore struct {
	accounts.ReportStore
	fail bool
}

func (s *failingStore) AddReportCounts(ctx context.Context, c []accounts.ReportCount) error {
	if s.fail {
		return errors.New("disk full")
	}
	return s.ReportStore.AddReportCounts(ctx, c)
}
