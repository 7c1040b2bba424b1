package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Milter is one [[milter]] table: a mail filter speaking the Sendmail milter protocol
// (version 6), asked at connect, HELO, MAIL, RCPT and at the end of each message.
type Milter struct {
	Name           string   `toml:"name"`
	Address        string   `toml:"address"`
	Listeners      []string `toml:"listeners"`
	ConnectTimeout Duration `toml:"connect_timeout"`
	CommandTimeout Duration `toml:"command_timeout"`
	EOMTimeout     Duration `toml:"eom_timeout"`
	DefaultAction  string   `toml:"default_action"`
}

// The milter and rspamd defaults (Postfix's milter_connect_timeout, milter_command_timeout,
// milter_content_timeout and milter_default_action).
const (
	DefaultFilterConnectTimeout = 30 * time.Second
	DefaultFilterCommandTimeout = 30 * time.Second
	DefaultFilterEOMTimeout     = 300 * time.Second
	DefaultFilterAction         = "tempfail"
)

// milterDoc documents [[milter]], whose keys the example cannot show one by one (it is a list
// of tables, empty by default).
const milterDoc = `Milters (Sendmail's mail filter protocol, version 6; e.g. OpenDKIM, rspamd's proxy worker, ClamAV's clamav-milter), one [[milter]] table each, asked in the order given: name (for the log; default: the address); address ("unix:/path" or "inet:host:port"); listeners (the listeners it filters, among "smtp", "submission", "submissions"; default: all); connect_timeout (default 30s), command_timeout (each reply before the end of the message, default 30s), eom_timeout (its reply at the end of the message, default 5m); default_action ("tempfail": 451 4.7.1 while it is down or does not answer in time, the default, as Postfix's milter_default_action; "accept": go on without it). Each session gets its own connection; the macros are Postfix's (j, _, v, {daemon_name} = the listener's name, {daemon_addr}, {client_addr}, {client_port}, {client_name} and {client_ptr} (the names screen.reverse_dns found, waited for at connect; "unknown" without it), {tls_version}, {cipher}, {cipher_bits}, {auth_type}, {auth_authen}, {mail_addr}, {rcpt_addr}, i). Default: none.`

// Rspamd configures rspamd's HTTP protocol (POST /checkv2 to its normal worker).
type Rspamd struct {
	URL           string   `toml:"url" doc:"rspamd's normal worker, e.g. \"http://127.0.0.1:11333\": every message is sent to its /checkv2 at the end of DATA (after the milters) and its action applied: reject 554 5.7.1, soft reject and greylist 451 4.7.1, add header and rewrite subject X-Spam: Yes (and the subject rspamd gives), no action delivers; its milter.add_headers/remove_headers are applied, and X-Spam-Status, X-Spam-Score and X-Spamd-Result added to every message it checked where rspamd did not set its own. Empty: rspamd is not asked."`
	Password      string   `toml:"password" doc:"rspamd's controller password, sent as the Password header; empty: none (the normal worker needs none)."`
	Listeners     []string `toml:"listeners" doc:"The listeners whose messages rspamd checks, among \"smtp\", \"submission\", \"submissions\"."`
	Timeout       Duration `toml:"timeout" doc:"The longest wait for rspamd's answer about one message."`
	DefaultAction string   `toml:"default_action" doc:"What happens when rspamd is down or does not answer in time: \"tempfail\" answers 451 4.7.1; \"accept\" delivers the message unchecked."`
}

func defaultRspamd() Rspamd {
	return Rspamd{
		Listeners:     []string{"smtp", "submission", "submissions"},
		Timeout:       Duration{15 * time.Second},
		DefaultAction: DefaultFilterAction,
	}
}

var listenerNames = []string{"smtp", "submission", "submissions"}

// validateFilters checks the milters and rspamd, and fills in the milters' defaults.
func (c *Config) validateFilters() []error {
	var errs []error
	known := append(slices.Clone(listenerNames), c.ListenerNames()...)
	for i := range c.Milters {
		m := &c.Milters[i]
		if m.Name == "" {
			m.Name = m.Address
		}
		if err := checkMilterAddress(m.Address); err != nil {
			errs = append(errs, fmt.Errorf("milter %q: address %q: %w", m.Name, m.Address, err))
		}
		if len(m.Listeners) == 0 {
			m.Listeners = slices.Clone(listenerNames)
		}
		for _, d := range []*Duration{&m.ConnectTimeout, &m.CommandTimeout, &m.EOMTimeout} {
			if d.Duration < 0 {
				errs = append(errs, fmt.Errorf("milter %q: negative timeout", m.Name))
			}
		}
		m.ConnectTimeout.Duration = cmpOr(m.ConnectTimeout.Duration, DefaultFilterConnectTimeout)
		m.CommandTimeout.Duration = cmpOr(m.CommandTimeout.Duration, DefaultFilterCommandTimeout)
		m.EOMTimeout.Duration = cmpOr(m.EOMTimeout.Duration, DefaultFilterEOMTimeout)
		if m.DefaultAction == "" {
			m.DefaultAction = DefaultFilterAction
		}
		errs = append(errs, checkFilterCommon("milter "+strconvQuote(m.Name), known, m.Listeners, m.DefaultAction)...)
	}
	if r := c.Rspamd; r.URL != "" {
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("rspamd.url %q: want http://host:port", r.URL))
		}
		if r.Timeout.Duration <= 0 {
			errs = append(errs, errors.New("rspamd.timeout must be positive"))
		}
		errs = append(errs, checkFilterCommon("rspamd", known, r.Listeners, r.DefaultAction)...)
	}
	return errs
}

// checkFilterCommon checks what milters and rspamd share. A listener entry is a listener's name,
// or smtp, submission or submissions, which also name every listener of that role ([[listener]]).
func checkFilterCommon(what string, known, listeners []string, action string) []error {
	var errs []error
	for _, l := range listeners {
		if !slices.Contains(known, l) {
			errs = append(errs, fmt.Errorf("%s: listener %q: want one of %s", what, l, strings.Join(slices.Compact(known), ", ")))
		}
	}
	if action != "tempfail" && action != "accept" {
		errs = append(errs, fmt.Errorf("%s: default_action %q: want \"tempfail\" or \"accept\"", what, action))
	}
	return errs
}

// checkMilterAddress checks a milter address in Postfix's form: unix:/path or inet:host:port.
func checkMilterAddress(a string) error {
	switch {
	case strings.HasPrefix(a, "unix:/"):
		return nil
	case strings.HasPrefix(a, "inet:"):
		return checkListen(strings.TrimPrefix(a, "inet:"))
	}
	return errors.New(`want "unix:/path" or "inet:host:port"`)
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }
