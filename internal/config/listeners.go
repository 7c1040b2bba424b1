package config

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Listener is one [[listener]] table: an address with its role and the settings that may
// differ between listeners. Zero fields take the server-wide value ([limits], [auth]).
type Listener struct {
	Name          string   `toml:"name"`
	Address       string   `toml:"address"`
	Role          string   `toml:"role"`
	TLS           string   `toml:"tls"`
	AuthRequired  *bool    `toml:"auth_required"`
	Mechanisms    []string `toml:"mechanisms"`
	MessageSize   int64    `toml:"message_size"`
	Recipients    int      `toml:"recipients"`
	IdleTimeout   Duration `toml:"idle_timeout"`
	DataTimeout   Duration `toml:"data_timeout"`
	ProxyProtocol bool     `toml:"proxy_protocol"`
	ProxyFrom     []string `toml:"proxy_from"`
}

// The roles and TLS modes of a listener.
const (
	RoleMX          = "mx"
	RoleSubmission  = "submission"
	RoleSubmissions = "submissions"

	TLSStartTLS = "starttls" // STARTTLS offered
	TLSRequired = "required" // STARTTLS offered, and needed before AUTH and MAIL
	TLSImplicit = "implicit" // TLS from the first octet (RFC 8314); the submissions role
	TLSNone     = "none"     // no TLS at all
)

const listenerDoc = `Listeners, one [[listener]] table each, instead of [listen] (a file with both is refused, and so are --smtp, --submission and --submissions with [[listener]]): name (unique; in the log and in the listeners of [[milter]] and [rspamd]; required); address (HOST:PORT; required); role ("mx": mail from other servers, screened, SPF/DKIM/DMARC checked; "submission" or "submissions": mail from users; required); tls ("starttls": offered, the default of mx and submission; "required": STARTTLS needed before AUTH and MAIL (530 5.7.0); "implicit": TLS from the first octet, the only mode of submissions; "none": no TLS); auth_required (AUTH needed before MAIL: default true for submission and submissions, false for mx, where it must stay false for mail from other servers to arrive); mechanisms (the SASL mechanisms offered there, a subset of auth.mechanisms; default: auth.mechanisms; [] with auth_required false: no AUTH); message_size, recipients, idle_timeout, data_timeout (as in [limits]; 0: the [limits] value); proxy_protocol (true: every connection starts with a PROXY protocol v1 or v2 header, as HAProxy's send-proxy and send-proxy-v2 write it, and its client address is used for everything: log, Received, policy, rate limits, SPF; default false); proxy_from (the addresses or CIDR prefixes of the proxies allowed to connect when proxy_protocol is on, e.g. ["10.0.0.0/8"]; a connection from elsewhere is closed at once and logged; required with proxy_protocol). Without [[listener]], [listen] makes the listeners named smtp (role mx), submission and submissions. Default: none (the [listen] ones).`

// EffectiveListeners returns the listeners to open: the [[listener]] tables with their defaults
// filled in, or, without any, those [listen] names (smtp, submission, submissions: today's
// behaviour). Call it after Validate.
func (c *Config) EffectiveListeners() []Listener {
	if len(c.Listeners) == 0 {
		var ls []Listener
		for _, l := range []struct{ name, addr, role, tls string }{
			{"smtp", c.Listen.SMTP, RoleMX, TLSStartTLS},
			{"submission", c.Listen.Submission, RoleSubmission, TLSStartTLS},
			{"submissions", c.Listen.Submissions, RoleSubmissions, TLSImplicit},
		} {
			if l.addr != "" {
				ls = append(ls, c.withListenerDefaults(Listener{Name: l.name, Address: l.addr, Role: l.role, TLS: l.tls}))
			}
		}
		return ls
	}
	ls := make([]Listener, len(c.Listeners))
	for i, l := range c.Listeners {
		ls[i] = c.withListenerDefaults(l)
	}
	return ls
}

// withListenerDefaults fills in what l leaves to the server-wide settings.
func (c *Config) withListenerDefaults(l Listener) Listener {
	if l.TLS == "" {
		l.TLS = TLSStartTLS
		if l.Role == RoleSubmissions {
			l.TLS = TLSImplicit
		}
	}
	if l.AuthRequired == nil {
		req := l.Role != RoleMX
		l.AuthRequired = &req
	}
	if l.Mechanisms == nil {
		l.Mechanisms = slices.Clone(c.Auth.Mechanisms)
	} else if m, err := ParseMechanisms(l.Mechanisms); err == nil { // else refused by Validate
		l.Mechanisms = m
	}
	if l.MessageSize == 0 {
		l.MessageSize = c.Limits.MessageSize
	}
	if l.Recipients == 0 {
		l.Recipients = c.Limits.Recipients
	}
	if l.IdleTimeout.Duration == 0 {
		l.IdleTimeout = c.Limits.IdleTimeout
	}
	if l.DataTimeout.Duration == 0 {
		l.DataTimeout = c.Limits.DataTimeout
	}
	return l
}

// ListenerNames returns the names of the listeners to open.
func (c *Config) ListenerNames() []string {
	var names []string
	for _, l := range c.EffectiveListeners() {
		names = append(names, l.Name)
	}
	return names
}

// ProxyPrefixes parses proxy_from.
func (l Listener) ProxyPrefixes() ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, s := range l.ProxyFrom {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("proxy_from %q: want an address or a CIDR prefix such as 10.0.0.0/8", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}

// validateListeners checks the listeners; auth.mechanisms must be parsed already.
func (c *Config) validateListeners() []error {
	var errs []error
	if len(c.Listeners) > 0 && (c.Listen != Listen{}) {
		errs = append(errs, errors.New("[[listener]] and [listen] (or --smtp, --submission, --submissions) cannot be mixed: name every listener in a [[listener]] table"))
	}
	seen := map[string]bool{}
	for i, l := range c.Listeners {
		what := fmt.Sprintf("listener %d", i+1)
		if l.Name != "" {
			what = fmt.Sprintf("listener %q", l.Name)
		}
		switch {
		case l.Name == "":
			errs = append(errs, fmt.Errorf("%s: name is missing", what))
		case seen[l.Name]:
			errs = append(errs, fmt.Errorf("%s: a second listener with that name", what))
		}
		seen[l.Name] = true
		if l.Address == "" {
			errs = append(errs, fmt.Errorf("%s: address is missing", what))
		} else if err := checkListen(l.Address); err != nil {
			errs = append(errs, fmt.Errorf("%s: address %q: %w", what, l.Address, err))
		}
		errs = append(errs, c.checkListener(what, c.withListenerDefaults(l))...)
	}
	return errs
}

// checkListener checks one listener with its defaults filled in.
func (c *Config) checkListener(what string, l Listener) []error {
	var errs []error
	switch l.Role {
	case RoleMX, RoleSubmission, RoleSubmissions:
	default:
		errs = append(errs, fmt.Errorf("%s: role %q: want mx, submission or submissions", what, l.Role))
	}
	switch {
	case !slices.Contains([]string{TLSStartTLS, TLSRequired, TLSImplicit, TLSNone}, l.TLS):
		errs = append(errs, fmt.Errorf("%s: tls %q: want starttls, required, implicit or none", what, l.TLS))
	case (l.Role == RoleSubmissions) != (l.TLS == TLSImplicit):
		errs = append(errs, fmt.Errorf("%s: tls %q with role %q: implicit TLS is the submissions role, and the submissions role is implicit TLS", what, l.TLS, l.Role))
	}
	if m, err := ParseMechanisms(l.Mechanisms); err != nil {
		errs = append(errs, fmt.Errorf("%s: mechanisms: %w", what, err))
	} else {
		for _, x := range m {
			if !slices.Contains(c.Auth.Mechanisms, x) {
				errs = append(errs, fmt.Errorf("%s: mechanism %s is not in auth.mechanisms (%s), which decides what secrets are stored", what, x, strings.Join(c.Auth.Mechanisms, " ")))
			}
		}
		if *l.AuthRequired && len(m) == 0 {
			errs = append(errs, fmt.Errorf("%s: auth_required with no mechanism", what))
		}
	}
	if l.MessageSize < 0 || l.Recipients < 0 || l.IdleTimeout.Duration < 0 || l.DataTimeout.Duration < 0 {
		errs = append(errs, fmt.Errorf("%s: message_size, recipients, idle_timeout and data_timeout must not be negative", what))
	}
	if l.Recipients > 0 && l.Recipients < 100 {
		errs = append(errs, fmt.Errorf("%s: recipients must be at least 100 (RFC 5321 §4.5.3.1.8)", what))
	}
	if _, err := l.ProxyPrefixes(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", what, err))
	}
	switch {
	case l.ProxyProtocol && len(l.ProxyFrom) == 0:
		errs = append(errs, fmt.Errorf("%s: proxy_protocol needs proxy_from, the addresses of the proxies to trust", what))
	case !l.ProxyProtocol && len(l.ProxyFrom) > 0:
		errs = append(errs, fmt.Errorf("%s: proxy_from without proxy_protocol = true", what))
	}
	return errs
}
