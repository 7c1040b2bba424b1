package reports

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/tlsrpt"
)

// DefaultFlushInterval is how often a Recorder writes its counts to the store: what a crash
// may lose.
const DefaultFlushInterval = time.Minute

// DefaultMaxRows bounds the distinct rows a Recorder holds between flushes: a flood of mail
// from ever new addresses cannot grow it without bound; past it, evaluations are dropped (and
// the drop logged at the next flush).
const DefaultMaxRows = 100_000

// Recorder counts DMARC evaluations and TLS outcomes in memory, per UTC day, policy domain and
// row, and adds them to the store at each flush. Recording takes a lock and a map update, and
// never waits for the store: it is on the path of every message received and every session
// delivered. A crash loses the counts since the last flush (a minute by default): statistics,
// never mail. It is safe for concurrent use.
type Recorder struct {
	store   accounts.ReportStore
	now     func() time.Time
	log     *slog.Logger
	maxRows int
	noDMARC bool
	noTLS   bool

	mu      sync.Mutex
	counts  map[countKey]*counter
	dropped int64 // evaluations and outcomes not counted since the last flush (too many rows)
}

type countKey struct{ kind, day, domain, row string }

type counter struct {
	policy           string
	success, failure int64
}

// RecorderOptions configure a Recorder.
type RecorderOptions struct {
	Store   accounts.ReportStore // required
	Now     func() time.Time     // default time.Now
	Logger  *slog.Logger         // default: discard
	MaxRows int                  // default DefaultMaxRows
	// NoDMARC and NoTLS make RecordDMARC and RecordTLS do nothing (reports of that kind are
	// off), so that the hooks can be connected whatever the settings.
	NoDMARC, NoTLS bool
}

// NewRecorder makes a Recorder that flushes to o.Store.
func NewRecorder(o RecorderOptions) *Recorder {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxRows <= 0 {
		o.MaxRows = DefaultMaxRows
	}
	return &Recorder{store: o.Store, now: o.Now, log: o.Logger, maxRows: o.MaxRows, noDMARC: o.NoDMARC, noTLS: o.NoTLS,
		counts: map[countKey]*counter{}}
}

// RecordDMARC counts one evaluation for the aggregate report to its policy's domain. Only
// evaluations under a published policy that asks for aggregate reports (rua=) are counted:
// nobody would receive the others.
func (r *Recorder) RecordDMARC(ev dmarc.Evaluation) {
	if r.noDMARC || ev.Published == nil || len(ev.Published.RUA) == 0 || ev.Published.Domain == "" {
		return
	}
	rowKey, err := encodeJSON(newDMARCRow(ev))
	if err != nil {
		return // strings and bools only: it cannot fail
	}
	policy, err := encodeJSON(ev.Published)
	if err != nil {
		return
	}
	r.add(accounts.ReportDMARC, ev.Published.Domain, rowKey, policy, true)
}

// RecordTLS counts one outbound TLS session for the TLS report to its policy domain. Whether
// that domain wants reports is asked when the report is due (its _smtp._tls record).
func (r *Recorder) RecordTLS(o tlsrpt.Outcome) {
	if r.noTLS || o.PolicyDomain == "" {
		return
	}
	row := successRow(o)
	if !o.Success {
		row = tlsRow(o)
	}
	rowKey, err := encodeJSON(row)
	if err != nil {
		return
	}
	r.add(accounts.ReportTLS, o.PolicyDomain, rowKey, "", o.Success)
}

func (r *Recorder) add(kind, domain, row, policy string, success bool) {
	k := countKey{kind, r.now().UTC().Format(time.DateOnly), strings.ToLower(strings.TrimSuffix(domain, ".")), row}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.counts[k]
	if c == nil {
		if len(r.counts) >= r.maxRows {
			r.dropped++
			return
		}
		c = &counter{}
		r.counts[k] = c
	}
	c.policy = policy
	if success {
		c.success++
	} else {
		c.failure++
	}
}

// Flush adds the counts so far to the store. When the store fails they are kept for the next
// flush (as far as MaxRows allows).
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	counts, dropped := r.counts, r.dropped
	r.counts, r.dropped = map[countKey]*counter{}, 0
	r.mu.Unlock()
	if dropped > 0 {
		r.log.Warn("reports: too many distinct report rows in memory: some evaluations were not counted",
			"max_rows", r.maxRows, "dropped", dropped)
	}
	if len(counts) == 0 {
		return nil
	}
	rows := make([]accounts.ReportCount, 0, len(counts))
	for k, c := range counts {
		rows = append(rows, accounts.ReportCount{Kind: k.kind, Day: k.day, Domain: k.domain, Row: k.row,
			Policy: c.policy, Success: c.success, Failure: c.failure})
	}
	if err := r.store.AddReportCounts(ctx, rows); err != nil {
		r.restore(counts)
		return fmt.Errorf("reports: flush %d rows: %w", len(rows), err)
	}
	return nil
}

// restore puts counts that could not be stored back, merged with those recorded meanwhile.
func (r *Recorder) restore(counts map[countKey]*counter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, c := range counts {
		if now := r.counts[k]; now != nil {
			now.success += c.success
			now.failure += c.failure
			continue
		}
		if len(r.counts) >= r.maxRows {
			r.dropped += c.success + c.failure
			continue
		}
		r.counts[k] = c
	}
}

// Run flushes every interval until ctx is done, then once more (with a bounded wait) so that a
// clean shutdown loses nothing.
func (r *Recorder) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := r.Flush(fctx); err != nil {
				r.log.Error("reports: last flush at shutdown failed: the statistics since the last flush are lost", "err", err)
			}
			return
		case <-t.C:
			if err := r.Flush(ctx); err != nil {
				r.log.Warn("reports: flush failed, kept for the next one", "err", err)
			}
		}
	}
}
