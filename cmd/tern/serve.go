package main

import (
	"context"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tern-mail/tern/internal/app"
	"github.com/tern-mail/tern/internal/config"
)

func newServeCmd(std stdio) *cobra.Command {
	c := common{creates: true}
	var smtpAddr, subAddr, subsAddr, hostname, logLevel, logFormat, resolver, relayhost, retrySchedule string
	var remotePort int
	var metricsAddr, adminAddr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "run the SMTP server",
		Long: `Runs the server until SIGINT or SIGTERM (Ctrl-C, kill PID), then shuts down gracefully: idle
sessions get 421 4.3.2, messages being received are finished. It makes the data directory,
the account database and a self-signed certificate when they are missing, after checking the
settings and opening every listener. SIGHUP (or tern reload) reads the configuration again and
reloads the certificate files without dropping sessions; see tern reload.`,
		Example: `  tern serve
  tern serve --domain example.test --config /etc/tern/tern.toml
  tern serve --smtp 0.0.0.0:25 --submission 0.0.0.0:587 --submissions ""   (no port 465)`,
		Args: nargs(0, 0),
	}
	fs := cmd.Flags()
	c.register(fs)
	c.registerAccounts(fs)
	c.registerDomains(fs)
	c.registerMechs(fs)
	fs.StringVar(&smtpAddr, "smtp", "", "MX listener `HOST:PORT` (default 127.0.0.1:2525; empty disables)")
	fs.StringVar(&subAddr, "submission", "", "submission (STARTTLS) listener `HOST:PORT` (default 127.0.0.1:2587; empty disables)")
	fs.StringVar(&subsAddr, "submissions", "", "submissions (implicit TLS) listener `HOST:PORT` (default 127.0.0.1:2465; empty disables)")
	fs.StringVar(&hostname, "hostname", "", "`NAME` for the greeting and Received headers (default: the machine's)")
	fs.StringVar(&logLevel, "log-level", "", "`LEVEL`: debug, info, warn or error (default info)")
	fs.StringVar(&logFormat, "log-format", "", "`FORMAT` of the log on standard error: text (key=value) or json (default text)")
	fs.StringVar(&resolver, "resolver", "", "DNS server `HOST:PORT` for MX lookups instead of the system's")
	fs.IntVar(&remotePort, "remote-port", 0, "`PORT` of the MX hosts mail is delivered to (default 25)")
	fs.StringVar(&relayhost, "relayhost", "", "smarthost `HOST:PORT` that takes all remote mail instead of MX lookup")
	fs.StringVar(&metricsAddr, "metrics", "", "serve Prometheus /metrics, /healthz and /readyz on `HOST:PORT` (loopback unless metrics.allow_public; default none)")
	fs.StringVar(&adminAddr, "admin", "", "serve the admin web interface on `HOST:PORT` (loopback unless admin.tls; logins: tern admin add; default none)")
	fs.StringVar(&retrySchedule, "retry-schedule", "", "fixed `WAITS` between delivery attempts, e.g. 1s,2s,4s (default: 1m doubling to 1h)")
	// load reads the configuration as serve starts with it, and again on each reload: the file,
	// then the flags given explicitly, checked with check (app.Check, as tern config check does;
	// app.CheckReload on a reload).
	load := func(check func(config.Config) error) (config.Config, error) {
		cfg, err := c.load()
		if err != nil {
			return cfg, err
		}
		// Flags given explicitly win, even when empty (an empty address disables a listener).
		set := func(name string, dst *string, v string) {
			if fs.Changed(name) {
				*dst = v
			}
		}
		set("smtp", &cfg.Listen.SMTP, smtpAddr)
		set("submission", &cfg.Listen.Submission, subAddr)
		set("submissions", &cfg.Listen.Submissions, subsAddr)
		set("hostname", &cfg.Hostname, hostname)
		set("log-level", &cfg.Log.Level, logLevel)
		set("log-format", &cfg.Log.Format, logFormat)
		set("resolver", &cfg.Delivery.Resolver, resolver)
		set("relayhost", &cfg.Delivery.Relayhost, relayhost)
		set("metrics", &cfg.Metrics.Listen, metricsAddr)
		set("admin", &cfg.Admin.Listen, adminAddr)
		if fs.Changed("remote-port") {
			cfg.Delivery.RemotePort = remotePort
		}
		if retrySchedule != "" {
			cfg.Queue.RetrySchedule = nil
			for _, f := range strings.Split(retrySchedule, ",") {
				d, err := time.ParseDuration(strings.TrimSpace(f))
				if err != nil || d <= 0 {
					return cfg, fmt.Errorf("%w: --retry-schedule %q: want durations like 1s,2s,4s", errUsage, retrySchedule)
				}
				cfg.Queue.RetrySchedule = append(cfg.Queue.RetrySchedule, config.Duration{Duration: d})
			}
		}
		// What tern config check finds, in its words and with its lines (configcheck.go).
		return cfg, config.Located(c.configPath, check(cfg))
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := load(app.Check)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return app.Serve(ctx, cfg, func() (config.Config, error) { return load(app.CheckReload) }, std.out, app.NewLogger(cfg.Log, std.err))
	}
	return cmd
}
