package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/delivery/maildir"
	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/queue"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/smtpserver"
	"github.com/tern-mail/tern/internal/spf"
	"github.com/tern-mail/tern/internal/tlsrpt"
)

// Metrics is what the SMTP server reports to.
var _ smtpserver.Observer = (*Metrics)(nil)

// value reads one series of a vector.
func value(t *testing.T, v interface {
	GetMetricWithLabelValues(...string) (prometheus.Counter, error)
}, labels ...string) float64 {
	t.Helper()
	c, err := v.GetMetricWithLabelValues(labels...)
	if err != nil {
		t.Fatal(err)
	}
	return testutil.ToFloat64(c)
}

func TestObserver(t *testing.T) {
	m := New()
	m.Connected("smtp")
	m.Connected("smtp")
	m.Connected("submission")
	m.Refused("smtp", smtpserver.RefusedRate)
	m.SessionStarted("smtp")
	m.SessionStarted("submission")
	m.SessionEnded("submission")
	m.Accepted("smtp", 2000)
	m.Rejected("smtp", smtp.R(550, "7.1", "no"))
	m.Rejected("smtp", smtp.R(550, "7.1", "no again"))
	m.Rejected("submission", smtp.R(451, "3.0", "later"))
	m.CommandRefused("smtp", smtpserver.CommandRcpt, smtp.R(550, "1.1", "no such user"))
	m.CommandRefused("smtp", smtpserver.CommandMail, smtp.R(450, "7.1", "rate"))
	m.RateLimited("account-day-messages")
	m.Screened("greylist")
	m.ReportSent("dmarc", "queued")
	m.Screened("not a check!")
	m.Auth("PLAIN", true)
	m.Auth("PLAIN", false)
	m.Auth("SCRAM-SHA-256", false)
	m.Authenticated(spf.Pass, []dkim.Status{dkim.Pass, dkim.Fail}, dmarc.Pass)
	m.Authenticated(spf.SoftFail, nil, "")
	m.Filtered("discard")

	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"connections smtp", value(t, m.connections, "smtp"), 2},
		{"connections submission", value(t, m.connections, "submission"), 1},
		{"refused smtp rate", value(t, m.refused, "smtp", "rate"), 1},
		{"sessions smtp", testutil.ToFloat64(m.sessions.WithLabelValues("smtp")), 1},
		{"sessions submission", testutil.ToFloat64(m.sessions.WithLabelValues("submission")), 0},
		{"accepted smtp", value(t, m.accepted, "smtp"), 1},
		{"rejected 550 5.7.1", value(t, m.rejected, "smtp", "550 5.7.1"), 2},
		{"rejected 451 4.3.0", value(t, m.rejected, "submission", "451 4.3.0"), 1},
		{"rcpt refused 550 5.1.1", value(t, m.commands, "smtp", "rcpt", "550 5.1.1"), 1},
		{"mail refused 450 4.7.1", value(t, m.commands, "smtp", "mail", "450 4.7.1"), 1},
		{"rate limited", value(t, m.rateLimited, "account-day-messages"), 1},
		{"greylisted", value(t, m.screened, "greylist"), 1},
		{"report queued", value(t, m.reports, "dmarc", "queued"), 1},
		{"screen, odd name", value(t, m.screened, "other"), 1},
		{"auth PLAIN success", value(t, m.auth, "PLAIN", "success"), 1},
		{"auth PLAIN failure", value(t, m.auth, "PLAIN", "failure"), 1},
		{"auth SCRAM failure", value(t, m.auth, "SCRAM-SHA-256", "failure"), 1},
		{"spf pass", value(t, m.spf, "pass"), 1},
		{"spf softfail", value(t, m.spf, "softfail"), 1},
		{"dkim pass", value(t, m.dkim, "pass"), 1},
		{"dkim fail", value(t, m.dkim, "fail"), 1},
		{"dkim none (unsigned)", value(t, m.dkim, "none"), 1},
		{"dmarc pass", value(t, m.dmarc, "pass"), 1},
		{"filter discard", value(t, m.filtered, "discard"), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.dmarc); n != 1 {
		t.Errorf("dmarc series = %d, want 1 (an unchecked message counts for nothing)", n)
	}
	if n := testutil.CollectAndCount(m.messageSize); n != 1 {
		t.Errorf("message size series = %d, want 1", n)
	}
}

func TestReplyLabel(t *testing.T) {
	for _, c := range []struct {
		r    smtp.Reply
		want string
	}{
		{smtp.R(550, "7.1", "x"), "550 5.7.1"},
		{smtp.R(451, "3.0", "x"), "451 4.3.0"},
		{smtp.R(552, "3.4", "x"), "552 5.3.4"},
		{smtp.R(554, "", "x"), "554"},
		{smtp.R(550, "9.1", "x"), "5xx"},    // no such subject
		{smtp.R(550, "7.9999", "x"), "5xx"}, // a filter's invention
		{smtp.R(250, "0.0", "x"), "other"},
		{smtp.R(999, "", "x"), "other"},
	} {
		if got := ReplyLabel(c.r); got != c.want {
			t.Errorf("ReplyLabel(%d %q) = %q, want %q", c.r.Code, c.r.Enh, got, c.want)
		}
	}
}

func TestWord(t *testing.T) {
	for in, want := range map[string]string{
		"pass": "pass", "sts-policy-fetch-error": "sts-policy-fetch-error",
		"": "other", "Pass": "other", "pass x@example.com": "other", strings.Repeat("a", 40): "other",
	} {
		if got := word(in); got != want {
			t.Errorf("word(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeDeliverer answers each recipient with the error errs gives its address.
type fakeDeliverer map[string]error

func (f fakeDeliverer) Deliver(_ context.Context, env *envelope.Envelope, rcpt int, _ io.Reader) error {
	return f[env.Rcpts[rcpt].Addr]
}

func (f fakeDeliverer) DeliverBatch(ctx context.Context, env *envelope.Envelope, rcpts []int, _ delivery.Body) []delivery.Outcome {
	out := make([]delivery.Outcome, len(rcpts))
	for k, i := range rcpts {
		out[k].Err = f.Deliver(ctx, env, i, nil)
	}
	return out
}

func TestDelivery(t *testing.T) {
	m := New()
	f := fakeDeliverer{
		"ok@example.test":   nil,
		"temp@example.test": delivery.Temporary("try later", errors.New("timeout")),
		"perm@example.test": delivery.Permanentf(550, "1.1", "no such user"),
		"odd@example.test":  errors.New("unclassified"), // taken as temporary, as the queue does
	}
	env := &envelope.Envelope{Received: time.Now().Add(-time.Minute)}
	for _, a := range []string{"ok@example.test", "temp@example.test", "perm@example.test", "odd@example.test"} {
		env.Rcpts = append(env.Rcpts, envelope.Recipient{Addr: a})
	}
	m.Batch(TransportRemote, f).DeliverBatch(context.Background(), env, []int{0, 1, 2, 3}, nil)
	one := m.One(TransportMaildir, f)
	for i := range env.Rcpts {
		_ = one.Deliver(context.Background(), env, i, nil) // counted, not checked
	}
	for _, tr := range []string{TransportRemote, TransportMaildir} {
		for res, want := range map[string]float64{ResultDelivered: 1, ResultDeferred: 2, ResultBounced: 1} {
			if got := value(t, m.attempts, tr, res); got != want {
				t.Errorf("%s %s = %v, want %v", tr, res, got, want)
			}
		}
	}
	if n := testutil.CollectAndCount(m.deliveryTime); n != 2 {
		t.Errorf("duration series = %d, want 2", n)
	}
	// One delivered recipient per transport, received a minute ago.
	for _, tr := range []string{TransportRemote, TransportMaildir} {
		h := m.latency.WithLabelValues(tr).(prometheus.Histogram)
		var pb dto.Metric
		if err := h.Write(&pb); err != nil {
			t.Fatal(err)
		}
		if n, sum := pb.GetHistogram().GetSampleCount(), pb.GetHistogram().GetSampleSum(); n != 1 || sum < 60 {
			t.Errorf("%s latency: %d samples, sum %v; want 1, at least 60s", tr, n, sum)
		}
	}
	if got := m.Batch(TransportRemote, f).(interface {
		Unwrap() delivery.BatchDeliverer
	}).Unwrap(); got == nil {
		t.Error("Unwrap lost the deliverer")
	}
}

// tlsSink keeps what the counter passes on.
type tlsSink struct{ got []tlsrpt.Outcome }

func (s *tlsSink) RecordTLS(o tlsrpt.Outcome) { s.got = append(s.got, o) }

func TestTLS(t *testing.T) {
	m := New()
	sink := &tlsSink{}
	rec := m.TLS(sink)
	rec.RecordTLS(tlsrpt.Outcome{PolicyDomain: "example.test", PolicyType: tlsrpt.PolicySTS, Success: true})
	rec.RecordTLS(tlsrpt.Outcome{PolicyDomain: "example.test", PolicyType: tlsrpt.PolicyNotFound, Failure: tlsrpt.StartTLSNotSupported})
	if len(sink.got) != 2 {
		t.Errorf("passed on %d outcomes, want 2", len(sink.got))
	}
	if got := value(t, m.deliveryTLS, "sts", "success"); got != 1 {
		t.Errorf("sts success = %v", got)
	}
	if got := value(t, m.deliveryTLS, "no-policy-found", "starttls-not-supported"); got != 1 {
		t.Errorf("no-policy-found starttls-not-supported = %v", got)
	}
	m.TLS(nil).RecordTLS(tlsrpt.Outcome{PolicyType: tlsrpt.PolicyTLSA, Success: true}) // no next: no panic
}

func TestQueue(t *testing.T) {
	m := New()
	if n := testutil.CollectAndCount(m.queueCollector); n != 0 {
		t.Errorf("before Queue: %d series, want none", n)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m.queueCollector.now = func() time.Time { return now }
	m.Queue(func() queue.Stats { return queue.Stats{Messages: 5, Held: 2, Oldest: now.Add(-90 * time.Second)} })
	want := `
# HELP tern_queue_held_messages Messages in the queue held by an administrator.
# TYPE tern_queue_held_messages gauge
tern_queue_held_messages 2
# HELP tern_queue_messages Messages in the queue.
# TYPE tern_queue_messages gauge
tern_queue_messages 5
# HELP tern_queue_oldest_message_age_seconds Age of the oldest message in the queue (0 when it is empty).
# TYPE tern_queue_oldest_message_age_seconds gauge
tern_queue_oldest_message_age_seconds 90
`
	if err := testutil.CollectAndCompare(m.queueCollector, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	m.Queue(func() queue.Stats { return queue.Stats{} })
	if err := testutil.CollectAndCompare(m.queueCollector, strings.NewReader(want), "tern_queue_oldest_message_age_seconds"); err == nil {
		t.Error("an empty queue has an age")
	}
}

func TestMaildir(t *testing.T) {
	m := New()
	if n := testutil.CollectAndCount(m.maildirCollector); n != 0 {
		t.Errorf("before Maildir: %d series, want none", n)
	}
	m.Maildir(func() maildir.Stats { return maildir.Stats{Fsynced: 7, BySyncFS: 30, SyncFS: 4} })
	want := `
# HELP tern_maildir_files_synced_total Maildir files made durable before going into new/, by way: fsync (each its own) or syncfs (with the other files of a batch).
# TYPE tern_maildir_files_synced_total counter
tern_maildir_files_synced_total{way="fsync"} 7
tern_maildir_files_synced_total{way="syncfs"} 30
# HELP tern_maildir_syncfs_total syncfs calls that made the files of a Maildir delivery batch durable.
# TYPE tern_maildir_syncfs_total counter
tern_maildir_syncfs_total 4
`
	if err := testutil.CollectAndCompare(m.maildirCollector, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestLint: the names, units and help texts pass promlint (what promtool check metrics runs).
func TestLint(t *testing.T) {
	m := New()
	m.Connected("smtp")
	m.Queue(func() queue.Stats { return queue.Stats{} })
	m.Maildir(func() maildir.Stats { return maildir.Stats{} })
	problems, err := testutil.GatherAndLint(m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestHandler(t *testing.T) {
	storeDown := errors.New("database is locked at /secret/path")
	for _, c := range []struct {
		name     string
		checks   []Check
		stopping bool
		path     string
		code     int
		body     string
	}{
		{name: "alive", path: "/healthz", code: 200, body: "ok"},
		{name: "alive while stopping", stopping: true, path: "/healthz", code: 200, body: "ok"},
		{name: "ready", path: "/readyz", code: 200, body: "ready",
			checks: []Check{{"queue", func(context.Context) error { return nil }}}},
		{name: "store down", path: "/readyz", code: 503, body: "not ready: accounts",
			checks: []Check{{"queue", func(context.Context) error { return nil }}, {"accounts", func(context.Context) error { return storeDown }}}},
		{name: "stopping", stopping: true, path: "/readyz", code: 503, body: "not ready: shutting down"},
		{name: "metrics", path: "/metrics", code: 200, body: "tern_smtp_connections_total"},
		{name: "unknown", path: "/nothing", code: 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := New()
			m.Connected("smtp")
			h := &Health{Checks: c.checks}
			if c.stopping {
				h.Stopping()
			}
			rec := httptest.NewRecorder()
			Handler(m, h, slog.New(slog.DiscardHandler)).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
			if rec.Code != c.code {
				t.Errorf("status %d, want %d", rec.Code, c.code)
			}
			if body := rec.Body.String(); !strings.Contains(body, c.body) || strings.Contains(body, "/secret") {
				t.Errorf("body %q, want %q and no error text", body, c.body)
			}
		})
	}
}

// destinations is a remote deliverer that names its destinations.
type destinations struct{ fakeDeliverer }

func (destinations) Destination(domain string) string { return "relay:smarthost" }

// The wrapper keeps the queue's per-destination concurrency as it was: the remote deliverer's
// names when it has them, the router's default otherwise.
func TestBatchDestination(t *testing.T) {
	m := New()
	if got := m.Batch(TransportRemote, destinations{}).(delivery.Destinations).Destination("example.org"); got != "relay:smarthost" {
		t.Errorf("through the wrapper: %q", got)
	}
	r := &delivery.Router{IsLocal: func(string) bool { return false }, Remote: fakeDeliverer{}}
	env := &envelope.Envelope{Rcpts: []envelope.Recipient{{Addr: "a@example.org"}}}
	plain := r.Destination(env)
	r.Remote = m.Batch(TransportRemote, fakeDeliverer{})
	if wrapped := r.Destination(env); wrapped != plain {
		t.Errorf("Destination wrapped %q, plain %q", wrapped, plain)
	}
}
