package app

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// reloadHook is one thing SIGHUP reloads. Each part of the server that can be reloaded in place
// adds its hook in Build; a failing hook is logged and leaves that part as it was, the others
// still reload.
type reloadHook struct {
	what string
	fn   func() error
}

// onReload adds a hook run on SIGHUP, after those added before it.
func (s *Server) onReload(what string, fn func() error) {
	s.reload = append(s.reload, reloadHook{what, fn})
}

// Reload runs every reload hook, as SIGHUP does. Sessions in progress are not disturbed.
func (s *Server) Reload() {
	for _, h := range s.reload {
		if err := h.fn(); err != nil {
			s.log.Error("reload failed: the previous one stays in force", "what", h.what, "err", err)
		}
	}
}

// serveReload reloads on SIGHUP and runs the background work of certificates (the files'
// watcher, ACME) until
// the returned stop is called (safe to call twice).
func (s *Server) serveReload() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{}, 3)
	go func() {
		defer func() { done <- struct{}{} }()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				s.log.Info("SIGHUP: reloading")
				s.Reload()
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		s.certs.Watch(ctx, s.cfg.TLS.Reload.Duration)
	}()
	if s.acme != nil {
		go func() {
			defer func() { done <- struct{}{} }()
			s.acme.run(ctx)
		}()
	} else {
		done <- struct{}{}
	}
	stopped := false
	return func() {
		if stopped {
			return
		}
		stopped = true
		signal.Stop(hup)
		cancel()
		<-done
		<-done
		<-done
	}
}
