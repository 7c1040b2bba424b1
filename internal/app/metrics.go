package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/delivery/maildir"
	"github.com/tern-mail/tern/internal/delivery/remote"
	"github.com/tern-mail/tern/internal/metrics"
)

// serverMetrics is the metrics endpoint of a server (metrics.listen): its collectors, its
// bound listener and its health checks. A nil *serverMetrics is a server without metrics;
// its methods then do nothing.
type serverMetrics struct {
	m      *metrics.Metrics
	ln     net.Listener
	health *metrics.Health
}

// listenMetrics binds the metrics endpoint when the config asks for one (config.Validate
// has checked that its address is loopback unless allowed otherwise).
func (s *Server) listenMetrics() error {
	addr := s.cfg.Metrics.Listen
	if addr == "" {
		return nil
	}
	ln, err := s.listenHTTP("metrics", addr) // webadmin.go
	if err != nil {
		return err
	}
	s.metrics = &serverMetrics{m: metrics.New(), ln: ln, health: &metrics.Health{}}
	return nil
}

// tls returns the TLS recorder of remote delivery, counting the outcomes it passes to next.
func (sm *serverMetrics) tls(next remote.TLSRecorder) remote.TLSRecorder {
	if sm == nil {
		return next
	}
	return sm.m.TLS(next)
}

// rateLimited is told the limit of each rate-limit refusal; nil without metrics.
func (sm *serverMetrics) rateLimited() func(string) {
	if sm == nil {
		return nil
	}
	return sm.m.RateLimited
}

// screened is told the check of each recipient the screening refuses; nil without metrics.
func (sm *serverMetrics) screened() func(string) {
	if sm == nil {
		return nil
	}
	return sm.m.Screened
}

// reportSent is told the kind and outcome of each report to a destination; nil without metrics.
func (sm *serverMetrics) reportSent() func(kind, outcome string) {
	if sm == nil {
		return nil
	}
	return sm.m.ReportSent
}

// instrument counts what the server and the router do, and sets the readiness checks: the
// listeners are bound (Build did it), the queue answers, the account store answers.
func (sm *serverMetrics) instrument(s *Server, router *delivery.Router, store accounts.Store) {
	if sm == nil {
		return
	}
	m := sm.m
	if router.Mailbox != nil {
		if md, ok := router.Mailbox.(*maildir.Deliverer); ok {
			m.Maildir(md.Stats)
		}
		router.Mailbox = m.One(metrics.TransportMaildir, router.Mailbox)
	}
	if router.LMTP != nil {
		router.LMTP = m.Batch(metrics.TransportLMTP, router.LMTP)
	}
	if router.Remote != nil {
		router.Remote = m.Batch(metrics.TransportRemote, router.Remote)
	}
	q := s.q
	m.Queue(q.Stats)
	postmaster := "postmaster@" + s.cfg.Domains[0]
	sm.health.Checks = []metrics.Check{
		{Name: "listeners", Check: func(context.Context) error {
			s.lnMu.Lock()
			n := len(s.lns)
			s.lnMu.Unlock()
			if n == 0 {
				return errors.New("no listener")
			}
			return nil
		}},
		{Name: "queue", Check: func(context.Context) error { q.Stats(); return nil }}, // its lock is free
		{Name: "accounts", Check: func(ctx context.Context) error { _, err := store.Exists(ctx, postmaster); return err }},
	}
}

// serve serves the endpoint until stop is called; stop is safe to call twice.
func (sm *serverMetrics) serve(s *Server, stdout io.Writer) (stop func()) {
	if sm == nil {
		return func() {}
	}
	// For the eyes, as the listeners' lines.
	_, _ = fmt.Fprintf(stdout, "tern: metrics listening on http://%s/metrics\n", sm.ln.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := metrics.Serve(ctx, sm.ln, metrics.Handler(sm.m, sm.health, s.log), s.log); err != nil {
			s.log.Error("metrics endpoint", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// stopping makes /readyz answer 503: the server is shutting down.
func (sm *serverMetrics) stopping() {
	if sm != nil {
		sm.health.Stopping()
	}
}

// remoteDeliverer is the remote deliverer under the metrics' wrapper, if any.
func remoteDeliverer(d delivery.BatchDeliverer) (*remote.Deliverer, bool) {
	if u, ok := d.(interface {
		Unwrap() delivery.BatchDeliverer
	}); ok {
		d = u.Unwrap()
	}
	rd, ok := d.(*remote.Deliverer)
	return rd, ok
}
