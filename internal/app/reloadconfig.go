package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/tern-mail/tern/internal/admin"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// Loader reads the configuration again as the server was started with it (the same file,
// environment and flags) and checks it as tern config check does (Check, with the file's
// lines): a reload applies what it returns, or refuses its error.
type Loader func() (config.Config, error)

// reloadConfig reads the configuration with s.load and applies what can change in place to
// the sessions that start from now on; it logs each other change as taking effect after a
// restart. A configuration with problems is refused, logged with them, and changes nothing.
func (s *Server) reloadConfig() error {
	if s.load == nil {
		return nil
	}
	cfg, err := s.load()
	if err != nil {
		s.log.Error("reload refused: the configuration has problems; the one in force stays", "problems", err.Error())
		return err
	}
	opts := s.srv.Options()
	applyLive(&opts, cfg)
	if err := s.reloadState(&opts, cfg); err != nil { // reloadstate.go
		s.log.Error("reload refused: the configuration in force stays", "err", err)
		return err
	}
	s.srv.SetOptions(opts)
	// Against the start's: what needs a restart runs as it was then, however many reloads since.
	restart := restartChanges(s.cfg, cfg)
	for _, name := range restart {
		s.log.Warn(name+" changed: takes effect after a restart", "setting", name)
	}
	if cfg.Hostname != s.cfg.Hostname {
		s.log.Warn("hostname changed: the greeting, EHLO, the fields added to mail and remote delivery take it now; "+
			"delivery reports' Reporting-MTA, the DMARC and TLS reports' sender, LMTP's LHLO, Maildir's file names, "+
			"the self-signed certificate and ACME's names after a restart", "setting", "hostname")
	}
	if cfg.Domains[0] != s.cfg.Domains[0] {
		s.log.Warn("the first of domains changed: logins without a domain, SRS and RCPT TO:<Postmaster> take it now; "+
			"where delivery sends mail for a postmaster that is no account after a restart", "setting", "domains")
	}
	var ls []smtpserver.Listener
	for _, c := range cfg.EffectiveListeners() {
		ls = append(ls, serverListener(c))
	}
	s.srv.SetListeners(ls)
	s.relisten(cfg) // relisten.go
	s.setSelf(cfg)
	s.log.Info("configuration reloaded: new sessions take the new settings", "restart_needed", len(restart))
	return nil
}

// applyLive sets in o the settings a reload changes for new sessions: plain values, no state
// (reloadState does the rest). It mirrors serverOptions field by field.
func applyLive(o *smtpserver.Options, cfg config.Config) {
	l := cfg.Limits
	o.Hostname = cfg.Hostname
	o.PostmasterDomain = cfg.Domains[0]
	o.MaxMessageSize = l.MessageSize
	o.MaxRcpts = l.Recipients
	o.MaxRcptOvershoot = cfg.Derive().RecipientOvershoot
	o.MaxErrors = l.Errors
	o.IdleTimeout = l.IdleTimeout.Duration
	o.DataTimeout = l.DataTimeout.Duration
	o.SessionTimeout = l.SessionTimeout.Duration
	o.Headers = policy.Headers{AddMissing: cfg.Auth.AddMissingHeaders}
	o.Filters = contentFilters(cfg, o.Logger) // stateless: each session connects anew
	if a := o.Authentication; a != nil {
		na := *a // the DNS resolvers and the report recorder stay
		na.Policy = inboundPolicy(cfg.Inbound)
		o.Authentication = &na
	}
}

// live are the settings a reload applies (applyLive, reloadState), by their names in the file:
// a table's name stands for all its keys.
var live = map[string]bool{
	"hostname": true, "domains": true, "screen": true, "addresses": true,
	"limits.message_size": true, "limits.recipients": true, "limits.recipient_overshoot": true,
	"limits.errors": true, "limits.idle_timeout": true, "limits.data_timeout": true,
	"limits.session_timeout": true, "limits.connections": true, "limits.connections_per_ip": true,
	"limits.connections_reserved_percent": true, "limits.connections_per_ip_busy": true,
	"auth.allow_cleartext": true, "auth.loopback_is_secure": true, "auth.sender_must_own": true,
	"auth.allow_authzid": true, "auth.add_missing_headers": true, "auth.ntlm_v1": true,
	"auth.mechanisms": true, "auth.max_failures": true, "auth.failure_window": true, "auth.block_time": true,
	"inbound.spf_dkim": true, "inbound.temperror": true, "inbound.dmarc": true, "inbound.dmarc_domains": true,
	"milter": true, "rspamd.url": true, "rspamd.password": true, "rspamd.listeners": true,
	"rspamd.timeout": true, "rspamd.default_action": true,
	"rate.client_window": true, "rate.client_connections": true, "rate.client_messages": true,
	"rate.client_recipients": true, "rate.exempt": true, "rate.account_window": true,
	"rate.account_messages": true, "rate.account_recipients": true, "rate.account_day_window": true,
	"rate.account_day_messages": true, "rate.account_day_recipients": true, "rate.exempt_accounts": true,
	"rate.outbound": true, "rate.outbound_window": true, "rate.outbound_domains": true,
}

// restartChanges names the settings that differ between old and cfg and that a reload does
// not apply: a table's keys one by one, other settings (lists of tables) as a whole.
func restartChanges(old, cfg config.Config) []string {
	var names []string
	// The listeners' own settings apply in place (SetListeners), their sockets by relisten.
	old.Listen, cfg.Listen = config.Listen{}, config.Listen{}
	old.Listeners, cfg.Listeners = nil, nil
	ov, nv := reflect.ValueOf(old), reflect.ValueOf(cfg)
	t := ov.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := tomlName(f)
		if f.Type.Kind() != reflect.Struct || f.Type == reflect.TypeFor[config.Duration]() {
			if !live[name] && !reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
				names = append(names, name)
			}
			continue
		}
		if f.Type == reflect.TypeFor[config.Listen]() || live[name] {
			continue // compared as sockets, or applied as a whole
		}
		for j := range f.Type.NumField() {
			sub := name + "." + tomlName(f.Type.Field(j))
			if live[sub] {
				continue
			}
			if !reflect.DeepEqual(ov.Field(i).Field(j).Interface(), nv.Field(i).Field(j).Interface()) {
				names = append(names, sub)
			}
		}
	}
	return names
}

// socket is what a listener's socket is made of: what a reload changes by binding anew.
type socket struct {
	name, address, role string
	proxy               bool
	proxyFrom           string
}

// socketOf is the socket of the listener c.
func socketOf(c config.Listener) socket {
	return socket{c.Name, c.Address, c.Role, c.ProxyProtocol, strings.Join(c.ProxyFrom, " ")}
}

// tomlName is the name of f in the file.
func tomlName(f reflect.StructField) string {
	if n, _, _ := strings.Cut(f.Tag.Get("toml"), ","); n != "" {
		return n
	}
	return strings.ToLower(f.Name)
}

// ErrReloadRefused is ReloadCommand's error once it has printed why the server refused the
// configuration.
var ErrReloadRefused = errors.New("the running server refused the configuration")

// ReloadCommand asks the server running on cfg's data directory to reload (tern reload), and
// prints the outcome to w: "reloaded", or the problems of the configuration refused, one per line.
func ReloadCommand(ctx context.Context, cfg config.Config, w io.Writer) error {
	rep, err := callRunning(ctx, cfg, admin.Request{Op: admin.OpReload})
	switch {
	case rep.Error != "":
		_, err := fmt.Fprintln(w, rep.Error)
		return errors.Join(ErrReloadRefused, err)
	case err != nil:
		return err
	}
	_, err = fmt.Fprintln(w, "reloaded")
	return err
}
