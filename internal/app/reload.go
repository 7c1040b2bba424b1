package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
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

// Reload reads the configuration again and applies what can change in place
// (reloadconfig.go), then runs every reload hook, as SIGHUP does. Sessions in progress are not
// disturbed. A configuration with problems is refused (its error returned) and the hooks do not
// run; a failing hook is logged, and its error returned after the others ran.
func (s *Server) Reload() error {
	s.reloading.Lock()
	defer s.reloading.Unlock()
	if err := s.reloadConfig(); err != nil {
		return err
	}
	var errs []error
	for _, h := range s.reload {
		if err := h.fn(); err != nil {
			s.log.Error("reload failed: the previous one stays in force", "what", h.what, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", h.what, err))
		}
	}
	return errors.Join(errs...)
}

// serveReload reloads on SIGHUP (telling systemd, sd_notify(3): RELOADING=1, then READY=1 once
// done) and runs the background work of certificates (the files' watcher, ACME) until the
// returned stop is called (safe to call twice).
func (s *Server) serveReload(sd sdNotifier) (stop func()) {
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
				sd.notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
				_ = s.Reload() // logged by Reload
				sd.notify("READY=1")
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

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants beside RELOADING=1.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}
