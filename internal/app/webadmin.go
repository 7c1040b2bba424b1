package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/metrics"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/webadmin"
)

// webAdmin is the admin web interface of a server (admin.listen): its bound listener and its
// handler. A nil *webAdmin is a server without it; its methods then do nothing.
type webAdmin struct {
	ln      net.Listener
	handler *webadmin.Handler
}

// listenWebAdmin binds the admin web interface's address when the config asks for one
// (config.Validate has checked that it is loopback unless served over TLS).
func (s *Server) listenWebAdmin() error {
	addr := s.cfg.Admin.Listen
	if addr == "" {
		return nil
	}
	ln, err := s.listenHTTP("admin web interface", addr)
	if err != nil {
		return err
	}
	s.web = &webAdmin{ln: ln}
	return nil
}

// listenHTTP binds addr for one of the server's HTTP endpoints (what names it in errors); the
// listener is closed when the server is released.
func (s *Server) listenHTTP(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, listenError(what, addr, err)
	}
	s.release = append(s.release, func() { _ = ln.Close() }) // best effort: Serve has closed it when the server ran
	return ln, nil
}

// buildWebAdmin makes the handler over the server's queue and store. Its logins are throttled
// as AUTH is (auth.max_failures, failure_window, block_time), by a limiter of its own.
func (s *Server) buildWebAdmin(store accounts.Store) error {
	if s.web == nil {
		return nil
	}
	a := s.cfg.Auth
	h, err := webadmin.New(webadmin.Options{
		Admins:   store,
		Queue:    s.q,
		Accounts: webAccounts{cfg: s.cfg, store: store},
		Status:   func() webadmin.Status { return webadmin.Status{Sessions: s.srv.Sessions()} },
		Activity: s.activity,
		Domains:  webDomains{cfg: s.cfg, store: store},
		Limiter: policy.NewAuthLimiter(policy.AuthLimits{MaxFailures: a.MaxFailures, Window: a.FailureWindow.Duration,
			Block: a.BlockTime.Duration, Logger: s.log}),
		Secure:         s.cfg.Admin.TLS,
		SessionTimeout: s.cfg.Admin.SessionTimeout.Duration,
		Logger:         s.log,
	})
	s.web.handler = h
	return err
}

// watchLog puts a webadmin.Activity in front of log's handler when the admin web interface is
// on (the overview's graphs, the live sessions, the recent lines), and returns the new logger.
func watchLog(cfg config.Config, log *slog.Logger) (*slog.Logger, *webadmin.Activity) {
	if cfg.Admin.Listen == "" {
		return log, nil
	}
	a := webadmin.NewActivity(nil)
	return slog.New(a.Handler(log.Handler())), a
}

// serve serves the admin web interface until stop is called; it is stopped before the queue
// closes, since an action may be a bounce.
func (w *webAdmin) serve(s *Server, stdout io.Writer) (stop func()) {
	if w == nil {
		return func() {}
	}
	ln, scheme := w.ln, "http"
	if s.cfg.Admin.TLS {
		c := s.serverTLS().Clone()
		c.NextProtos = []string{"http/1.1"}
		ln, scheme = tls.NewListener(ln, c), "https"
	}
	// For the eyes, as the listeners' lines.
	_, _ = fmt.Fprintf(stdout, "tern: admin web interface on %s://%s/\n", scheme, w.ln.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := metrics.Serve(ctx, ln, w.handler, s.log); err != nil {
			s.log.Error("admin web interface", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// webAccounts is the accounts page's view of the store: what tern user and tern alias do, with
// the secrets of the configured mechanisms, and their errors in their words.
type webAccounts struct {
	cfg   config.Config
	store accounts.Store
}

func (a webAccounts) List(ctx context.Context) ([]webadmin.Account, error) {
	list, err := a.store.List(ctx)
	if err != nil {
		return nil, userError(a.cfg, "", err)
	}
	out := make([]webadmin.Account, 0, len(list))
	for _, addr := range list {
		acct := webadmin.Account{Addr: addr}
		var err error
		// A disabled account's secrets are out of reach: it logs in with nothing.
		if acct.Disabled, err = a.store.IsDisabled(ctx, addr); err == nil && !acct.Disabled {
			acct.Mechanisms, acct.Missing, err = accountMechs(ctx, a.cfg, a.store, addr)
		}
		if err != nil {
			return nil, userError(a.cfg, addr, err)
		}
		out = append(out, acct)
	}
	return out, nil
}

func (a webAccounts) Add(ctx context.Context, addr, password string) error {
	return a.set(ctx, addr, password, a.store.Add)
}

func (a webAccounts) SetPassword(ctx context.Context, addr, password string) error {
	return a.set(ctx, addr, password, a.store.SetPassword)
}

// set stores password with the secrets of the configured mechanisms through write.
func (a webAccounts) set(ctx context.Context, addr, password string, write func(context.Context, string, string, ...accounts.Secret) error) error {
	norm, _, secrets, err := deriveSecrets(a.cfg, addr, password)
	if err == nil {
		err = write(ctx, norm, password, secrets...)
	}
	return userError(a.cfg, addr, err)
}

func (a webAccounts) Delete(ctx context.Context, addr string) error {
	return userError(a.cfg, addr, a.store.Delete(ctx, addr))
}

func (a webAccounts) SetDisabled(ctx context.Context, addr string, disabled bool) error {
	return userError(a.cfg, addr, a.store.SetDisabled(ctx, addr, disabled))
}

func (a webAccounts) Aliases(ctx context.Context) ([]accounts.Alias, error) {
	list, err := a.store.Aliases(ctx, "")
	return list, userError(a.cfg, "", err)
}

func (a webAccounts) AddAlias(ctx context.Context, addr string, targets []string) error {
	return userError(a.cfg, addr, aliasError(addr, a.store.AddAlias(ctx, addr, targets...)))
}

func (a webAccounts) DeleteAlias(ctx context.Context, addr string, targets []string) error {
	return userError(a.cfg, addr, aliasError(addr, a.store.DeleteAlias(ctx, addr, targets...)))
}

// webDomains is the domains page's view: the configured domains, the store's DKIM keys, and the
// records of tern dns records [--check].
type webDomains struct {
	cfg   config.Config
	store accounts.Store
}

func (d webDomains) List() []string { return d.cfg.Domains }

func (d webDomains) DKIMKeys(ctx context.Context) ([]webadmin.DKIMKey, error) {
	keys, err := d.store.DKIMKeys(ctx, "")
	if err != nil {
		return nil, userError(d.cfg, "", err)
	}
	out := make([]webadmin.DKIMKey, len(keys))
	for i, k := range keys {
		out[i] = webadmin.DKIMKey{Domain: k.Domain, Selector: k.Selector, Algorithm: k.Algorithm, State: string(k.State), Created: k.Created}
	}
	return out, nil
}

func (d webDomains) Records(ctx context.Context, domain string, check bool) (string, bool, error) {
	var b strings.Builder
	ok, err := DNSRecords(ctx, d.cfg, DNSRecordsRequest{Domain: domain, Check: check}, &b)
	return b.String(), ok, err
}
