// Package metrics owns tern's Prometheus collectors and the HTTP endpoint that serves them with
// the health checks (/metrics, /healthz, /readyz). The packages it watches never import
// Prometheus: the SMTP server reports through smtpserver.Observer, delivery through the
// deliverer wrappers here (Batch, One), the queue through a Stats function read at scrape
// time. Every label value is from a small fixed set (a listener's name, a mechanism, a
// result, an enhanced status code): never an address, a domain or free text, so that the
// number of series stays bounded whatever clients send.
//
// Metrics has its own registry, passed to the handler: there is no global state, and two
// servers in one process (the tests) do not share counters.
package metrics

import (
	"regexp"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/spf"
)

// namespace prefixes every metric tern exports.
const namespace = "tern"

// Metrics holds tern's collectors. Its methods are safe for concurrent use.
type Metrics struct {
	// Registry has every collector of Metrics, the Go runtime's and the process's.
	Registry *prometheus.Registry

	connections      *prometheus.CounterVec
	refused          *prometheus.CounterVec
	sessions         *prometheus.GaugeVec
	accepted         *prometheus.CounterVec
	rejected         *prometheus.CounterVec
	commands         *prometheus.CounterVec
	messageSize      prometheus.Histogram
	auth             *prometheus.CounterVec
	spf              *prometheus.CounterVec
	dkim             *prometheus.CounterVec
	dmarc            *prometheus.CounterVec
	attempts         *prometheus.CounterVec
	deliveryTime     *prometheus.HistogramVec
	latency          *prometheus.HistogramVec
	filtered         *prometheus.CounterVec
	deliveryTLS      *prometheus.CounterVec
	rateLimited      *prometheus.CounterVec
	screened         *prometheus.CounterVec
	reports          *prometheus.CounterVec
	queueCollector   *queueCollector
	maildirCollector *maildirCollector

	// listeners caches the children of the per-listener vectors: a lookup by label values
	// hashes them each time, and sessions call these on every message.
	mu        sync.RWMutex
	listeners map[string]*listenerMetrics
}

// listenerMetrics are the collectors of one listener.
type listenerMetrics struct {
	connections, accepted prometheus.Counter
	sessions              prometheus.Gauge
}

// New makes the collectors and registers them, with the Go and process collectors, in a new
// registry.
func New() *Metrics {
	m := &Metrics{
		Registry:    prometheus.NewRegistry(),
		listeners:   make(map[string]*listenerMetrics),
		connections: counterVec("smtp", "connections_total", "Connections accepted by a listener, before any check.", "listener"),
		refused:     counterVec("smtp", "connections_refused_total", "Connections refused before the greeting, by reason (limit, rate, pregreet, tls).", "listener", "reason"),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "smtp",
			Name: "sessions_open", Help: "SMTP sessions in progress."}, []string{"listener"}),
		accepted: counterVec("smtp", "messages_accepted_total", "Messages queued (answered 250).", "listener"),
		rejected: counterVec("smtp", "messages_rejected_total", "Messages refused or deferred after their data, by the reply's code and enhanced code.", "listener", "code"),
		commands: counterVec("smtp", "commands_refused_total", "MAIL and RCPT commands refused or deferred, by command (mail, rcpt) and the reply's code and enhanced code.", "listener", "command", "code"),
		messageSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "smtp",
			Name: "message_size_bytes", Help: "Size of the messages queued.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 9)}), // 1 KiB to 64 MiB
		auth:     counterVec("smtp", "auth_total", "SMTP AUTH exchanges, by mechanism and result (success, failure).", "mechanism", "result"),
		spf:      counterVec("auth", "spf_total", "SPF results of the messages checked.", "result"),
		dkim:     counterVec("auth", "dkim_total", "DKIM results of the signatures checked (none for a message without one).", "result"),
		dmarc:    counterVec("auth", "dmarc_total", "DMARC results of the messages checked.", "result"),
		attempts: counterVec("delivery", "attempts_total", "Delivery attempts per recipient, by transport (maildir, lmtp, remote) and result (delivered, deferred, bounced).", "transport", "result"),
		deliveryTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "delivery",
			Name: "duration_seconds", Help: "Time one delivery call took (a batch of recipients of one destination), by transport.",
			Buckets: []float64{0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300}}, []string{"transport"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "delivery",
			Name: "latency_seconds", Help: "Time from a message's receipt to its delivery to one recipient, by transport.",
			Buckets: []float64{0.1, 1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 5 * 24 * 3600}}, []string{"transport"}),
		filtered:    counterVec("filter", "verdicts_total", "Content filter (milter, rspamd) verdicts that refused, discarded or quarantined, by outcome (reject, tempfail, discard, quarantine).", "outcome"),
		deliveryTLS: counterVec("delivery", "tls_total", "TLS outcomes of remote delivery sessions, by policy (sts, tlsa, no-policy-found) and result (success or the RFC 8460 failure type).", "policy", "result"),
		rateLimited: counterVec("rate", "refusals_total", "Connections, MAIL and RCPT commands refused by a rate limit, by the limit's name.", "limit"),
		reports:     counterVec("reports", "destinations_total", "DMARC and TLS reports to one destination, by kind (dmarc, tlsrpt) and outcome (queued, posted, skipped).", "kind", "outcome"),
		screened:    counterVec("screen", "refusals_total", "Recipients refused by the client screening, by check (dnsbl, rdns, greylist).", "check"),
	}
	m.queueCollector = &queueCollector{}
	m.maildirCollector = &maildirCollector{}
	m.Registry.MustRegister(m.connections, m.refused, m.sessions, m.accepted, m.rejected, m.commands, m.messageSize, m.auth,
		m.spf, m.dkim, m.dmarc, m.attempts, m.deliveryTime, m.latency, m.filtered, m.deliveryTLS, m.rateLimited, m.screened, m.reports, m.queueCollector, m.maildirCollector,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// counterVec makes a counter vector named tern_<subsystem>_<name>.
func counterVec(subsystem, name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}, labels)
}

// listener returns the collectors of the listener named name, made on first use.
func (m *Metrics) listener(name string) *listenerMetrics {
	m.mu.RLock()
	l := m.listeners[name]
	m.mu.RUnlock()
	if l != nil {
		return l
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if l = m.listeners[name]; l == nil {
		l = &listenerMetrics{
			connections: m.connections.WithLabelValues(name),
			accepted:    m.accepted.WithLabelValues(name),
			sessions:    m.sessions.WithLabelValues(name),
		}
		m.listeners[name] = l
	}
	return l
}

// Connected implements smtpserver.Observer.
func (m *Metrics) Connected(listener string) { m.listener(listener).connections.Inc() }

// Refused implements smtpserver.Observer.
func (m *Metrics) Refused(listener, reason string) {
	m.refused.WithLabelValues(listener, reason).Inc()
}

// SessionStarted implements smtpserver.Observer.
func (m *Metrics) SessionStarted(listener string) { m.listener(listener).sessions.Inc() }

// SessionEnded implements smtpserver.Observer.
func (m *Metrics) SessionEnded(listener string) { m.listener(listener).sessions.Dec() }

// Accepted implements smtpserver.Observer.
func (m *Metrics) Accepted(listener string, size int64) {
	m.listener(listener).accepted.Inc()
	m.messageSize.Observe(float64(size))
}

// Rejected implements smtpserver.Observer.
func (m *Metrics) Rejected(listener string, r smtp.Reply) {
	m.rejected.WithLabelValues(listener, ReplyLabel(r)).Inc()
}

// CommandRefused implements smtpserver.Observer.
func (m *Metrics) CommandRefused(listener, command string, r smtp.Reply) {
	m.commands.WithLabelValues(listener, word(command), ReplyLabel(r)).Inc()
}

// Auth implements smtpserver.Observer.
func (m *Metrics) Auth(mech string, ok bool) {
	result := "failure"
	if ok {
		result = "success"
	}
	m.auth.WithLabelValues(mech, result).Inc()
}

// Filtered implements smtpserver.Observer.
func (m *Metrics) Filtered(outcome string) { m.filtered.WithLabelValues(word(outcome)).Inc() }

// RateLimited counts a refusal by the rate limit named limit (policy.RateLimits.Refused).
func (m *Metrics) RateLimited(limit string) { m.rateLimited.WithLabelValues(word(limit)).Inc() }

// Screened counts a recipient refused by the screening's check (policy.Screen.Refused).
func (m *Metrics) Screened(check string) { m.screened.WithLabelValues(word(check)).Inc() }

// ReportSent counts a report to one destination (reports.SenderOptions.Sent).
func (m *Metrics) ReportSent(kind, outcome string) {
	m.reports.WithLabelValues(word(kind), word(outcome)).Inc()
}

// Authenticated implements smtpserver.Observer.
func (m *Metrics) Authenticated(s spf.Result, dk []dkim.Status, dm dmarc.Result) {
	m.spf.WithLabelValues(word(string(s))).Inc()
	if len(dk) == 0 {
		m.dkim.WithLabelValues(string(dkim.None)).Inc()
	}
	for _, st := range dk {
		m.dkim.WithLabelValues(word(string(st))).Inc()
	}
	if dm != "" {
		m.dmarc.WithLabelValues(word(string(dm))).Inc()
	}
}

// resultWord is what a result from a checker looks like (pass, softfail, temperror...).
var resultWord = regexp.MustCompile(`^[a-z-]{1,32}$`)

// word returns s when it looks like a result, "other" when it does not: a label never takes
// an unbounded value, even from a checker that misbehaves.
func word(s string) string {
	if resultWord.MatchString(s) {
		return s
	}
	return "other"
}

// ReplyLabel is the code label of a rejected message: the reply code and its enhanced code,
// "550 5.7.1". A filter may answer with any code: one outside the subjects of RFC 3463 (0 to
// 7) or with a detail past 99 is labelled by its class alone, "5xx", to keep the set small.
func ReplyLabel(r smtp.Reply) string {
	if r.Code < 400 || r.Code > 599 {
		return "other"
	}
	code := strconv.Itoa(r.Code)
	enh := r.Enhanced()
	if enh == "" {
		return code
	}
	if !enhancedCode.MatchString(enh) {
		return code[:1] + "xx"
	}
	return code + " " + enh
}

// enhancedCode matches an enhanced status code of a known subject (RFC 3463 §3).
var enhancedCode = regexp.MustCompile(`^[45]\.[0-7]\.[0-9]{1,2}$`)
