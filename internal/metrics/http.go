package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness check: nil when that part of the server is ready.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Health answers /healthz and /readyz.
type Health struct {
	// Checks are asked by /readyz, in order; the first that fails makes it 503.
	Checks []Check
	// Timeout bounds each check. Default: 2s.
	Timeout time.Duration

	stopping atomic.Bool
}

// Stopping makes /readyz answer 503 from now on: the server is shutting down, and a load
// balancer should send new clients elsewhere.
func (h *Health) Stopping() { h.stopping.Store(true) }

func (h *Health) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintln(w, "ok") // a client that hung up has its answer
}

func (h *Health) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if h.stopping.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, "not ready: shutting down") // as above
		return
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	for _, c := range h.Checks {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		err := c.Check(ctx)
		cancel()
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			// The check's name only: the error may carry paths or SQL, and this port may be
			// reachable from further than the logs.
			_, _ = fmt.Fprintf(w, "not ready: %s\n", c.Name) // as above
			return
		}
	}
	_, _ = fmt.Fprintln(w, "ready") // as above
}

// Handler serves /metrics from m's registry, and /healthz and /readyz from h.
func Handler(m *Metrics, h *Health, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.Registry, // promhttp_metric_handler_errors_total
	}))
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("GET /readyz", h.readyz)
	return mux
}

// Serve serves the metrics endpoint on ln until ctx is done. It returns once the server has
// stopped.
func Serve(ctx context.Context, ln net.Listener, handler http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // a scrape cut short is retried by Prometheus
	}()
	err := srv.Serve(ln)
	cancel() // when Serve failed on its own
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
