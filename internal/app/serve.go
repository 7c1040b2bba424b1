// Package app is the composition root: from a config.Config it builds the account store, TLS,
// the queue and its deliverers, policy and the SMTP server, runs them, and shuts them down in
// order (listeners, then sessions, then the queue). The subcommands of cmd/tern call into it;
// nothing else imports it.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/admin"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/delivery/lmtp"
	"github.com/tern-mail/tern/internal/delivery/maildir"
	"github.com/tern-mail/tern/internal/delivery/remote"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/queue"
	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/smtpserver"
	"github.com/tern-mail/tern/internal/tlsutil"
	"github.com/tern-mail/tern/internal/webadmin"
)

// ShutdownGrace is how long sessions get to finish after a stop signal.
const ShutdownGrace = 10 * time.Second

// Paths inside the data directory.
func accountsPath(data string) string { return filepath.Join(data, "accounts.db") }
func queuePath(data string) string    { return filepath.Join(data, "queue") }
func mailPath(data string) string     { return filepath.Join(data, "mail") }
func tlsPath(data string) string      { return filepath.Join(data, "tls") }
func adminPath(data string) string    { return filepath.Join(data, "admin.sock") }

// NewLogger returns the slog logger the config asks for, writing to w.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Serve runs the server until ctx is done, then shuts it down gracefully. It prints one line per
// listener and the data directory to stdout once everything is up.
// A reload (SIGHUP, tern reload) reads the configuration again with load (nil: only the
// certificates are reloaded).
func Serve(ctx context.Context, cfg config.Config, load Loader, stdout io.Writer, log *slog.Logger) (err error) {
	defer logCause(log, &err)
	if n, chosen := moreProcs(os.Getenv); chosen {
		log.Debug("scheduler", "gomaxprocs", n)
	}
	s, err := Build(cfg, log)
	if err != nil {
		return err
	}
	s.load = load
	return s.Run(ctx, stdout)
}

// Server is tern's server as Build makes it from a config: its listeners bound, its data
// directory locked, the account store, queue and SMTP server made, nothing running yet. Run
// runs it once; a server that is never run is released with Close.
type Server struct {
	cfg  config.Config // validated
	data string        // the data directory, absolute
	log  *slog.Logger

	// lns are the listeners being served (what Build bound, as reloads changed it), and
	// serveLn starts serving one (set by Run while it serves; nil before and at shutdown).
	lnMu    sync.Mutex
	lns     []*listener
	serveLn func(*listener)
	q       *queue.Queue
	srv     *smtpserver.Server
	reports *serverReports
	rate    *rateLimits
	screen  *screening
	aliases *serverAliases
	relay   *policy.Relay           // the local domains
	remote  *remote.Deliverer       // its hostname and our addresses
	auth    *smtpserver.AuthOptions // AUTH's state, whatever the mechanisms (reloadauth.go)
	certs   *tlsutil.Certs          // served on every listener; reloaded by tlsreload.go
	acme    *acmeCerts              // nil: [acme] off (acme.go)
	reload  []reloadHook            // what SIGHUP reloads, in order (reload.go)
	load    Loader                  // reads the configuration again on reload; nil: not (reloadconfig.go)
	// reloading keeps two reloads (SIGHUP, tern reload) from running at once.
	reloading sync.Mutex
	metrics   *serverMetrics // nil: no metrics endpoint (metrics.go)
	web       *webAdmin      // nil: no admin web interface (webadmin.go)
	activity  *webadmin.Activity

	// release undoes what Build did, in reverse order: the account store, the lock on the
	// data directory, the listeners. The queue has its own Close.
	release []func()
}

// Build makes the server cfg describes, without running it. Whatever is wrong with the
// config, the addresses or the data directory is found here; on error nothing is left open.
func Build(cfg config.Config, log *slog.Logger) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	data, err := filepath.Abs(cfg.Data)
	if err != nil {
		return nil, err
	}
	// The admin web interface follows the server through its log (webadmin.go).
	log, activity := watchLog(cfg, log)
	s := &Server{cfg: cfg, data: data, log: log, activity: activity}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	derived := cfg.Derive()
	// The files the settings name, as tern config check reads them (check.go).
	gss, err := preflight(cfg, true, log)
	if err != nil {
		return nil, err
	}

	// Listen first, before anything is written: an address in use or a port we may not bind is
	// found before the data directory, the database or the certificate is made. Remote delivery
	// needs our addresses too, to refuse mail that would loop back.
	local, err := s.listen()
	if err != nil {
		return nil, err
	}
	if err := s.listenMetrics(); err != nil {
		return nil, err
	}
	if err := s.listenWebAdmin(); err != nil {
		return nil, err
	}

	// What can be checked without writing is checked before the data directory is touched.
	dkimKeys := &storeKeys{} // its store is set once opened, below, before any delivery
	tlsOut := &tlsOutcomes{} // its recorder is set below, before any delivery
	rd, err := newRemote(cfg, derived, local, dkimKeys.signer(time.Now), s.metrics.tls(tlsOut), log)
	if err != nil {
		return nil, err
	}

	if err := safeio.MkdirAll(data, 0o700); err != nil {
		return nil, explainData(data, "cannot create the data directory", err)
	}
	unlock, err := lockData(data)
	if err != nil {
		return nil, err
	}
	s.release = append(s.release, unlock)

	store, err := openStore(cfg, data, true) // accountstore.go
	if err != nil {
		return nil, err
	}
	s.release = append(s.release, func() { _ = store.Close() }) // best effort: the queue, which holds the mail, is closed first
	dkimKeys.store = store

	err = s.loadCerts() // tlsreload.go
	if err != nil {
		return nil, dataError(data, "cannot load the TLS certificate", err)
	}

	relay, aliases := newServerRelay(cfg, data, store) // aliases.go
	s.relay, s.aliases, s.remote = relay, aliases, rd
	router := newRouter(cfg, data, store, relay, rd, log)
	routeAliases(router, aliases)
	if s.rate, err = newRateLimits(cfg, relay.IsLocal, s.metrics.rateLimited(), log); err != nil {
		return nil, err
	}
	s.rate.shareLimits(store, log) // ratenodes.go
	qopts := queueOptions(cfg, derived, router, log)
	qopts.Throttle = s.rate.throttle
	s.q, err = queue.Open(queuePath(data), qopts)
	if err != nil {
		return nil, dataError(data, "cannot open the queue", err)
	}
	if s.reports, err = newReports(cfg, store, s.q, s.metrics.reportSent(), log); err != nil {
		return nil, err
	}
	tlsOut.set(s.reports.Recorder)
	opts := serverOptions(cfg, derived, s.serverTLS(), store, gss, relay, s.q, log)
	// What a reload hands new sessions, AUTH on or off (reloadauth.go).
	if s.auth = opts.Auth; s.auth == nil {
		s.auth = authState(cfg, store, gss, log)
	}
	withAliases(&opts, aliases)
	if opts.Authentication, err = inboundAuth(cfg); err != nil {
		return nil, err
	}
	opts.Authentication.Record = s.reports.Recorder.RecordDMARC
	s.screen = newScreening(data, s.metrics.screened(), log) // screen.go
	if opts.Screen, err = s.screen.options(cfg); err != nil {
		return nil, err
	}
	s.release = append(s.release, s.screen.save) // run at Close, after the sessions ended
	opts.Rate = s.rate.policy
	if s.metrics != nil {
		opts.Observer = s.metrics.m
		s.metrics.instrument(s, router, store)
	}
	s.srv = smtpserver.New(opts)
	if err := s.buildWebAdmin(store); err != nil {
		return nil, err
	}
	return s, nil
}

// queueOptions configures the queue from cfg; router delivers.
func queueOptions(cfg config.Config, derived config.Derived, router *delivery.Router, log *slog.Logger) queue.Options {
	return queue.Options{
		Batch:                  router,
		Hostname:               cfg.Hostname,
		Workers:                cfg.Queue.Workers,
		MinBackoff:             cfg.Queue.MinBackoff.Duration,
		MaxBackoff:             cfg.Queue.MaxBackoff.Duration,
		RetrySchedule:          derived.RetrySchedule,
		MaxAge:                 cfg.Queue.MaxAge.Duration,
		BounceMaxAge:           cfg.Queue.BounceMaxAge.Duration,
		DelayWarning:           derived.DelayWarning,
		Logger:                 log,
		Destination:            router.Destination,
		DestinationConcurrency: cfg.Queue.Destination,
		OnFlush: func(domain string, subdomains bool) {
			if rd, ok := remoteDeliverer(router.Remote); ok {
				if n := rd.ForgetDeadHosts(domain, subdomains); n > 0 {
					log.Info("flush: servers found down are tried again", "domain", domain, "subdomains", subdomains, "addresses", n)
				}
			}
		},
	}
}

// serverOptions configures the SMTP server from cfg: q is the spool and serves ETRN.
func serverOptions(cfg config.Config, derived config.Derived, tlsCfg *tls.Config, store accounts.Store,
	gss *sasl.GSSAPIAcceptor, relay *policy.Relay, q *queue.Queue, log *slog.Logger) smtpserver.Options {
	return smtpserver.Options{
		Auth:             authOptions(cfg, store, gss, log),
		Hostname:         cfg.Hostname,
		PostmasterDomain: cfg.Domains[0],
		MaxMessageSize:   cfg.Limits.MessageSize,
		MaxRcpts:         cfg.Limits.Recipients,
		MaxRcptOvershoot: derived.RecipientOvershoot,
		MaxErrors:        cfg.Limits.Errors,
		IdleTimeout:      cfg.Limits.IdleTimeout.Duration,
		DataTimeout:      cfg.Limits.DataTimeout.Duration,
		SessionTimeout:   cfg.Limits.SessionTimeout.Duration,
		TLS:              tlsCfg,
		Spool:            spool{q},
		Rcpts:            relay,
		Flusher:          q,
		ETRN:             policy.NewETRN(relay.IsLocal, policy.ETRNLimits{}),
		Headers:          policy.Headers{AddMissing: cfg.Auth.AddMissingHeaders},
		Limiter:          connLimiter(cfg.Limits, derived, log),
		Filters:          contentFilters(cfg, log),
		Logger:           log,
	}
}

// Close releases what Build made: the queue, the account store, the lock on the data
// directory and the listeners. Run does it itself when it returns.
func (s *Server) Close() {
	if s.reports != nil && s.reports.stopSender != nil {
		s.reports.stopSender() // what it takes from the store it queues: before the queue closes
	}
	if s.q != nil {
		if err := s.q.Close(); err != nil {
			s.log.Error("closing queue", "err", err)
		}
		s.q = nil
	}
	if s.reports != nil && s.reports.stopRecorder != nil {
		s.reports.stopRecorder() // its last flush: after the last deliveries, before the store closes
	}
	for i := len(s.release) - 1; i >= 0; i-- {
		s.release[i]()
	}
	s.release = nil
}

// Run runs the server until ctx is done or a listener fails, then shuts it down gracefully
// (listeners, then sessions, then the queue) and releases it. It prints one line per listener
// and the data directory to stdout once everything is up.
func (s *Server) Run(ctx context.Context, stdout io.Writer) error {
	defer s.Close()
	log, q, srv := s.log, s.q, s.srv
	runCtx, stopQueue := context.WithCancel(context.Background())
	defer stopQueue()
	q.Run(runCtx)
	s.reports.run()

	stopAdmin := s.serveAdmin()
	defer stopAdmin()
	sd := newSDNotifier(log)        // sdnotify.go
	stopReload := s.serveReload(sd) // reload.go
	defer stopReload()
	stopMetrics := s.metrics.serve(s, stdout)
	defer stopMetrics()
	stopWeb := s.web.serve(s, stdout) // webadmin.go
	defer stopWeb()

	// One accept loop per listener, owned here: each ends when Shutdown closes its listener, or
	// a reload does (Serve recovers its own panics), and Run waits for them before the queue
	// closes. The first failure of a listener no reload closed ends Run.
	serveErr := make(chan error, 1)
	var serving sync.WaitGroup
	s.lnMu.Lock()
	s.serveLn = func(l *listener) {
		serving.Add(1)
		go func() {
			defer serving.Done()
			err := srv.ServeListener(l.ln, l.l)
			if l.retired.Load() {
				return
			}
			select {
			case serveErr <- err:
			default: // one failure is enough
			}
		}()
	}
	for _, l := range s.lns {
		// For the eyes: a server whose stdout is gone (a closed terminal) serves all the same.
		_, _ = fmt.Fprintf(stdout, "tern: %s listening on %s\n", l.desc, l.ln.Addr())
		s.serveLn(l)
	}
	s.lnMu.Unlock()
	_, _ = fmt.Fprintf(stdout, "tern: data directory %s\n", s.data) // as above
	log.Info("started", "hostname", s.cfg.Hostname, "domains", s.cfg.Domains, "queued", q.Len())
	sd.notify("READY=1")

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
	}
	log.Info("shutting down")
	s.lnMu.Lock()
	s.serveLn = nil // a reload from now on opens nothing; Shutdown closes what is served
	s.lnMu.Unlock()
	sd.notify("STOPPING=1")
	s.metrics.stopping()
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Sessions still busy after the grace were cut off (their clients retry); those stuck
		// past the server's own wait were logged one by one.
		log.Warn("shutdown grace period over: closed the sessions still open", "grace", ShutdownGrace, "err", err)
	}
	serving.Wait()
	stopAdmin() // idempotent: the deferred call then returns at once
	stopWeb()
	stopQueue()
	stopMetrics()
	s.Close()
	log.Info("stopped")
	return runErr
}

// serveAdmin starts the control socket for tern queue and tern status, and returns what stops
// it (safe to call twice). Without it (a data path too long for a socket name) the server
// still runs, and tern queue works on the spool while the server is stopped. It is stopped
// before the queue is closed: a request in progress may be a bounce.
func (s *Server) serveAdmin() (stop func()) {
	adminLn, err := admin.Listen(adminPath(s.data))
	if err != nil {
		s.log.Warn("no admin socket: tern queue needs the server stopped", "err", err)
		return func() {}
	}
	actx, cancel := context.WithCancel(context.Background())
	adminDone := make(chan struct{})
	go func() {
		defer close(adminDone)
		if err := admin.Serve(actx, adminLn, admin.Options{Queue: s.q, Sessions: s.srv.Sessions, Logger: s.log,
			SendReports: s.reports.sendFunc(), Limits: s.rate.usage,
			Snapshot: s.takeSnapshot, Reload: s.Reload}); err != nil { // backup.go
			s.log.Error("admin socket", "err", err)
		}
	}()
	return func() { cancel(); <-adminDone }
}

// newRouter builds delivery: local accounts to Maildir (or LMTP), other domains by MX or
// through the relayhost (rd, from newRemote).
func newRouter(cfg config.Config, data string, store accounts.Store, relay *policy.Relay, rd *remote.Deliverer, log *slog.Logger) *delivery.Router {
	r := &delivery.Router{
		IsLocal:      relay.IsLocal,
		Exists:       store.Exists,
		IsBadAddress: func(err error) bool { return errors.Is(err, accounts.ErrBadAddress) },
		Mailbox:      maildir.New(maildir.Options{Root: mailPath(data), Hostname: cfg.Hostname, Logger: log, EachFileSync: !cfg.Delivery.MaildirSyncFS}),
		Postmaster:   "postmaster@" + cfg.Domains[0],
		Remote:       rd,
	}
	if cfg.Delivery.LMTP != "" { // checked by config.Validate
		r.LMTP = lmtp.New(lmtp.Options{Addr: cfg.Delivery.LMTP, LocalName: cfg.Hostname, Logger: log})
	}
	return r
}

// newRemote builds remote delivery (by MX, or through the relayhost); it writes nothing, so
// Build makes it before touching the data directory.
func newRemote(cfg config.Config, derived config.Derived, local []netip.AddrPort, signer remote.Signer, tlsOut remote.TLSRecorder, log *slog.Logger) (*remote.Deliverer, error) {
	d := cfg.Delivery
	opts := remote.Options{
		Hostname:   cfg.Hostname,
		Resolver:   d.Resolver,
		Port:       d.RemotePort,
		PolicyPort: d.MTASTSPort,
		Relayhost:  d.Relayhost,
		LocalAddrs: local,
		DKIM:       signer,
		TLSReports: tlsOut,
		Logger:     log,
		// At most what the retry schedule allows (see config.Derived).
		DeadHostTTL:      min(remote.DefaultDeadHostTTL, derived.DeadHostTTL),
		RelayImplicitTLS: derived.RelayImplicitTLS,
	}
	if d.RelayUser != "" {
		opts.RelayAuth = &remote.RelayAuth{User: d.RelayUser, Password: d.RelayPassword}
	}
	if len(d.TLSPolicy) > 0 {
		opts.TLSPolicy = make(map[string]remote.TLSMode, len(d.TLSPolicy))
		for dom, m := range d.TLSPolicy {
			opts.TLSPolicy[dom] = remote.TLSMode(m)
		}
	}
	rd, err := remote.New(opts)
	if err != nil {
		return nil, fmt.Errorf("remote delivery: %w", err)
	}
	return rd, nil
}

// authOptions configures SMTP AUTH from cfg; nil (no AUTH) when no mechanism is enabled. gss
// is GSSAPI's acceptor (nil: no GSSAPI), read by Build before it touches the data directory.
func authOptions(cfg config.Config, store accounts.Store, gss *sasl.GSSAPIAcceptor, log *slog.Logger) *smtpserver.AuthOptions {
	if len(cfg.Auth.Mechanisms) == 0 {
		return nil
	}
	return authState(cfg, store, gss, log)
}

// authState is the AUTH of cfg with what it keeps for the server's life: the credentials, the
// failure limiter and GSSAPI's acceptor; a reload gives it another configuration (liveAuth).
func authState(cfg config.Config, store accounts.Store, gss *sasl.GSSAPIAcceptor, log *slog.Logger) *smtpserver.AuthOptions {
	creds := newCredentials(store, cfg.Domains[0])
	limits := authLimits(cfg.Auth)
	// Failures count for the account the login names, as the credentials resolve it.
	limits.Account = creds.limiterAccount
	limits.Logger = log
	// Several nodes on one PostgreSQL share their blocks (ratenodes.go).
	limits.Shared = sharedAuthCounter(store, log)
	a := &smtpserver.AuthOptions{
		GSSAPI:      gss,
		Credentials: creds,
		Limiter:     policy.NewAuthLimiter(limits),
	}
	setAuth(a, cfg)
	return a
}

// authLimits are the limits of failed AUTH of a.
func authLimits(a config.Auth) policy.AuthLimits {
	return policy.AuthLimits{MaxFailures: a.MaxFailures, Window: a.FailureWindow.Duration, Block: a.BlockTime.Duration}
}

// setAuth sets in a what cfg says of AUTH, plain values that a reload changes as they are.
func setAuth(a *smtpserver.AuthOptions, cfg config.Config) {
	a.Mechanisms = slices.Clone(cfg.Auth.Mechanisms)
	a.NewServer = saslServer(cfg.Auth)
	a.Realms = slices.Clone(cfg.Domains)
	a.AllowCleartext = cfg.Auth.AllowCleartext
	a.LoopbackIsSecure = cfg.Auth.LoopbackIsSecure
	a.SenderMustOwn = cfg.Auth.SenderMustOwn
	a.AllowAuthzID = cfg.Auth.AllowAuthzID
}

// saslServer starts the server half of a mechanism with what auth adds to the connection's
// options: NTLMv1, which is off unless the admin asks for it (auth.ntlm_v1).
func saslServer(auth config.Auth) func(context.Context, string, sasl.Credentials, sasl.ServerOptions) (sasl.Server, error) {
	return func(ctx context.Context, mech string, creds sasl.Credentials, opts sasl.ServerOptions) (sasl.Server, error) {
		opts.NTLMv1 = auth.NTLMv1
		return sasl.NewServer(ctx, mech, creds, opts)
	}
}

// connLimiter builds the connection limits from cfg.
func connLimiter(l config.Limits, derived config.Derived, log *slog.Logger) *policy.ConnLimiter {
	lim := connLimits(l, derived)
	lim.Logger = log
	return policy.NewConnLimiter(lim)
}

// connLimits are the connection limits of cfg (a reload sets them again).
func connLimits(l config.Limits, derived config.Derived) policy.ConnLimits {
	return policy.ConnLimits{
		Max:       l.Connections,
		PerIP:     l.ConnectionsPerIP,
		Reserved:  derived.ReservedConnections,
		BusyPerIP: l.ConnectionsPerIPBusy,
	}
}

// spool adapts the queue to the server's Spool interface.
type spool struct{ q *queue.Queue }

func (s spool) NewMessage() (smtpserver.Message, error) {
	w, err := s.q.NewMessage()
	if err != nil {
		return nil, err
	}
	return w, nil
}

// lockData takes an exclusive lock on the data directory, so that two servers never share
// one queue.
func lockData(data string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(data, "tern.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, explainData(data, "cannot lock the data directory", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close() // never written: the failed lock is the error to report
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is in use by another tern serve", data)
		}
		return nil, errorf(err, "cannot lock the data directory %s: %v", data, err)
	}
	// Never written: closing it only releases the lock, which the kernel does even on error.
	return func() { _ = f.Close() }, nil
}
