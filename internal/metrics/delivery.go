package metrics

import (
	"context"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/tlsrpt"
)

// Transports, the transport label of the delivery metrics.
const (
	TransportMaildir = "maildir"
	TransportLMTP    = "lmtp"
	TransportRemote  = "remote"
)

// Results of a delivery attempt, the result label.
const (
	ResultDelivered = "delivered"
	ResultDeferred  = "deferred"
	ResultBounced   = "bounced"
)

// result names the outcome of one recipient's attempt.
func result(err error) string {
	switch {
	case err == nil:
		return ResultDelivered
	case delivery.IsPermanent(err):
		return ResultBounced
	}
	return ResultDeferred
}

// deliveryMetrics are the collectors of one transport.
type deliveryMetrics struct {
	delivered, deferred, bounced prometheus.Counter
	duration                     prometheus.Observer
	latency                      prometheus.Observer
}

func (m *Metrics) transport(name string) deliveryMetrics {
	return deliveryMetrics{
		delivered: m.attempts.WithLabelValues(name, ResultDelivered),
		deferred:  m.attempts.WithLabelValues(name, ResultDeferred),
		bounced:   m.attempts.WithLabelValues(name, ResultBounced),
		duration:  m.deliveryTime.WithLabelValues(name),
		latency:   m.latency.WithLabelValues(name),
	}
}

// count counts one recipient's attempt; a delivery also gives the message's time from its
// receipt, at now.
func (d deliveryMetrics) count(env *envelope.Envelope, err error, now time.Time) {
	switch result(err) {
	case ResultDelivered:
		d.delivered.Inc()
		if !env.Received.IsZero() {
			d.latency.Observe(max(now.Sub(env.Received).Seconds(), 0))
		}
	case ResultBounced:
		d.bounced.Inc()
	default:
		d.deferred.Inc()
	}
}

// Batch returns d counting its attempts under transport.
func (m *Metrics) Batch(transport string, d delivery.BatchDeliverer) delivery.BatchDeliverer {
	return batch{d, m.transport(transport)}
}

type batch struct {
	d delivery.BatchDeliverer
	m deliveryMetrics
}

func (b batch) DeliverBatch(ctx context.Context, env *envelope.Envelope, rcpts []int, body delivery.Body) []delivery.Outcome {
	start := time.Now()
	out := b.d.DeliverBatch(ctx, env, rcpts, body)
	now := time.Now()
	b.m.duration.Observe(now.Sub(start).Seconds())
	for _, o := range out {
		b.m.count(env, o.Err, now)
	}
	return out
}

// Unwrap returns the deliverer counted, for the callers that look for its other methods.
func (b batch) Unwrap() delivery.BatchDeliverer { return b.d }

// Destination passes on the remote deliverer's (delivery.Destinations), when it has one.
func (b batch) Destination(domain string) string {
	if ds, ok := b.d.(delivery.Destinations); ok {
		return ds.Destination(domain)
	}
	return "domain:" + domain
}

// One returns d counting its attempts under transport.
func (m *Metrics) One(transport string, d delivery.Deliverer) delivery.Deliverer {
	return one{d, m.transport(transport)}
}

type one struct {
	d delivery.Deliverer
	m deliveryMetrics
}

func (o one) Deliver(ctx context.Context, env *envelope.Envelope, rcpt int, body io.Reader) error {
	start := time.Now()
	err := o.d.Deliver(ctx, env, rcpt, body)
	now := time.Now()
	o.m.duration.Observe(now.Sub(start).Seconds())
	o.m.count(env, err, now)
	return err
}

// TLS returns a recorder of remote delivery's TLS outcomes that counts each and passes it on
// to next (nil: to nobody).
func (m *Metrics) TLS(next interface{ RecordTLS(tlsrpt.Outcome) }) *TLSCounter {
	return &TLSCounter{m: m, next: next}
}

// TLSCounter counts TLS outcomes (remote.TLSRecorder).
type TLSCounter struct {
	m    *Metrics
	next interface{ RecordTLS(tlsrpt.Outcome) }
}

// RecordTLS implements remote.TLSRecorder.
func (t *TLSCounter) RecordTLS(o tlsrpt.Outcome) {
	res := "success"
	if !o.Success {
		res = word(string(o.Failure))
	}
	t.m.deliveryTLS.WithLabelValues(word(string(o.PolicyType)), res).Inc()
	if t.next != nil {
		t.next.RecordTLS(o)
	}
}
