package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Rate configures the rate limits (policy.Rate, Postfix's anvil): per client address and per
// authenticated account inbound, per destination domain outbound. A count of 0 turns its limit
// off. Each limit lets its count through at once, then one more every window/count.
type Rate struct {
	ClientWindow      Duration `toml:"client_window" doc:"The window of the client_* limits. Default: 1m, as Postfix's anvil_rate_time_unit."`
	ClientConnections int      `toml:"client_connections" doc:"New connections per client_window from one client (IPv4 address or IPv6 /64), on every listener; past it the connection is answered 421 4.7.0 and closed before the greeting, as Postfix's smtpd_client_connection_rate_limit. 0: no limit (the default, as Postfix's)."`
	ClientMessages    int      `toml:"client_messages" doc:"Messages (MAIL commands) per client_window from one client; past it MAIL is answered 450 4.7.1, as Postfix's smtpd_client_message_rate_limit. 0: no limit (the default)."`
	ClientRecipients  int      `toml:"client_recipients" doc:"Recipients (RCPT commands, accepted or not) per client_window from one client; past it RCPT is answered 450 4.7.1 (a policy refusal, RFC 3463 X.7.1, so that the client queues the rest rather than retrying at once as it would on 452 4.5.3), as Postfix's smtpd_client_recipient_rate_limit. 0: no limit (the default)."`
	Exempt            []string `toml:"exempt" doc:"Client addresses and networks (\"192.0.2.7\", \"2001:db8::/32\") that no client_* limit applies to, as Postfix exempts mynetworks (smtpd_client_event_limit_exceptions). The account_* limits apply to them all the same: a stolen password is used from anywhere. Default: loopback, [\"127.0.0.0/8\", \"::1\"]."`

	AccountWindow        Duration `toml:"account_window" doc:"The window of account_messages and account_recipients. Default: 1h."`
	AccountMessages      int      `toml:"account_messages" doc:"Messages per account_window from one authenticated account, from any client; past it MAIL is answered 450 4.7.1 naming the limit, and the refusal is logged (\"rate limit\" with the account). It stops a stolen password from sending a flood. 0: no limit. Default: 1000."`
	AccountRecipients    int      `toml:"account_recipients" doc:"Recipients per account_window from one authenticated account; past it RCPT is answered 450 4.7.1 naming the limit. 0: no limit. Default: 5000."`
	AccountDayWindow     Duration `toml:"account_day_window" doc:"The window of account_day_messages and account_day_recipients. Default: 24h."`
	AccountDayMessages   int      `toml:"account_day_messages" doc:"Messages per account_day_window from one authenticated account (450 4.7.1). 0: no limit. Default: 5000."`
	AccountDayRecipients int      `toml:"account_day_recipients" doc:"Recipients per account_day_window from one authenticated account (450 4.7.1). 0: no limit. Default: 20000."`
	ExemptAccounts       []string `toml:"exempt_accounts" doc:"Accounts (as they log in, e.g. \"newsletter@example.com\") that no account_* limit applies to. Default: none."`

	OutboundWindow  Duration `toml:"outbound_window" doc:"The window of outbound and outbound_domains. Default: 1m."`
	Outbound        int      `toml:"outbound" doc:"Messages per outbound_window delivered to one remote domain (by MX or through the relayhost), for the large providers' throttles; past it a message waits in the queue until it fits (not an attempt: no backoff, no bounce), logged once per domain until the domain's deliveries go through again. It adds to queue.destination_concurrency. Only a message whose pending recipients are all in one remote domain is counted (as destination_concurrency does). 0: no limit (the default)."`
	OutboundDomains []string `toml:"outbound_domains" doc:"Per-domain overrides of outbound, as \"domain=N\" entries (N messages per outbound_window; 0: no limit for that domain), e.g. [\"gmail.com=600\", \"outlook.com=300\"]. Default: none."`
}

// DefaultRate returns the defaults of [rate].
func DefaultRate() Rate {
	return Rate{
		ClientWindow:         Duration{time.Minute},
		Exempt:               []string{"127.0.0.0/8", "::1"},
		AccountWindow:        Duration{time.Hour},
		AccountMessages:      1000,
		AccountRecipients:    5000,
		AccountDayWindow:     Duration{24 * time.Hour},
		AccountDayMessages:   5000,
		AccountDayRecipients: 20000,
		ExemptAccounts:       []string{},
		OutboundWindow:       Duration{time.Minute},
		OutboundDomains:      []string{},
	}
}

// ExemptPrefixes returns rate.exempt as networks (an address is a /32 or /128).
func (r Rate) ExemptPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range r.Exempt {
		e = strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(e); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("rate.exempt %q: want an address or a network (address/bits)", e)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// OutboundPerDomain returns rate.outbound_domains as domain (lower case, no final dot) → count.
func (r Rate) OutboundPerDomain() (map[string]int, error) {
	m := map[string]int{}
	for _, e := range r.OutboundDomains {
		d, n, ok := strings.Cut(e, "=")
		v, err := strconv.Atoi(strings.TrimSpace(n))
		if !ok || err != nil || v < 0 {
			return nil, fmt.Errorf("rate.outbound_domains %q: want \"domain=N\", N a count", e)
		}
		norm, err := parseDomain(strings.TrimSpace(d))
		if err != nil {
			return nil, fmt.Errorf("rate.outbound_domains %q: %w", e, err)
		}
		m[norm] = v
	}
	return m, nil
}

// validate checks [rate].
func (r Rate) validate() []error {
	var errs []error
	for _, w := range []struct {
		name string
		d    Duration
	}{{"client_window", r.ClientWindow}, {"account_window", r.AccountWindow}, {"account_day_window", r.AccountDayWindow}, {"outbound_window", r.OutboundWindow}} {
		if w.d.Duration <= 0 {
			errs = append(errs, fmt.Errorf("rate.%s must be positive", w.name))
		}
	}
	if r.ClientConnections < 0 || r.ClientMessages < 0 || r.ClientRecipients < 0 || r.AccountMessages < 0 ||
		r.AccountRecipients < 0 || r.AccountDayMessages < 0 || r.AccountDayRecipients < 0 || r.Outbound < 0 {
		errs = append(errs, errors.New("rate: counts must not be negative (0 turns a limit off)"))
	}
	if _, err := r.ExemptPrefixes(); err != nil {
		errs = append(errs, err)
	}
	if _, err := r.OutboundPerDomain(); err != nil {
		errs = append(errs, err)
	}
	return errs
}
