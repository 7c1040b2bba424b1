package config

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Screen configures the checks of clients on the smtp listener before DATA (policy.Screen):
// DNS lists, the pregreet test, reverse DNS and greylisting, all off by default, as Postfix
// has them off without postscreen and smtpd restrictions. Authenticated clients are never
// screened, nor any client of the submission listeners.
type Screen struct {
	DNSBLSites              []string `toml:"dnsbl_sites" doc:"DNS lists to look each client up in at connect (through delivery.resolver, in parallel, answers cached for their TTL), in Postfix's postscreen_dnsbl_sites syntax: \"zone[=filter][*weight]\", e.g. \"zen.spamhaus.org*3\", \"b.barracudacentral.org=127.0.0.[2..11]*2\", \"list.dnswl.org=127.0.[0..255].[1..3]*-2\". A filter has four octets, each a number or a bracketed list of numbers and ranges ([2..11], [2;4..5]); without one any answer counts, except 127.255.255.x (the lists' error codes). The weight (default 1) is added to the client's score for each site that lists it; allow lists (DNSWL) take negative weights. A failed lookup counts for nothing (logged). Empty: no lists."`
	DNSBLThreshold          int      `toml:"dnsbl_threshold" doc:"Score at which a client is refused: every RCPT gets 554 5.7.1 \"Service unavailable; client [IP] blocked using ZONE\" (as Postfix's reject_rbl_client, after the greeting and at RCPT so that the log shows sender and recipients). Must be positive."`
	DNSBLAllowlistThreshold int      `toml:"dnsbl_allowlist_threshold" doc:"Score at or below which a client is allow-listed (postscreen_dnsbl_allowlist_threshold): never refused for its name, never greylisted. Negative; 0: nobody is."`
	PregreetWait            Duration `toml:"pregreet_wait" doc:"Hold the greeting of the smtp listener back this long and refuse a client that talks before it with 554 5.5.1 \"Protocol error\", disconnected (postscreen's pregreet test: spam software that does not wait for the greeting). Clients that wait (every real MTA) only see the greeting that much later; postscreen's postscreen_greet_wait is 6s, 1s to 3s catches most talkers. 0: greet at once."`
	ReverseDNS              bool     `toml:"reverse_dns" doc:"Look up the client's reverse DNS name at connect, forward-confirmed (its PTR names, then their A or AAAA records must hold its address), through delivery.resolver, cached; the Received header then shows \"from HELO (NAME [IP])\", or \"(unknown [IP])\" as Postfix does. false: no lookup, the header shows the address alone."`
	RejectUnknownClient     bool     `toml:"reject_unknown_client" doc:"Refuse at RCPT a client without a forward-confirmed name (Postfix's reject_unknown_client_hostname): 550 5.7.25 when there is none, 450 4.7.25 when a lookup failed (RFC 7372). Implies reverse_dns. Many small legitimate servers lack one: use with care."`
	Greylist                bool     `toml:"greylist" doc:"Greylist (RFC 6647): the first RCPT of a new triplet (client IPv4 /24 or IPv6 /64, sender, recipient) gets 450 4.7.1 \"Greylisted, try again in N seconds\"; a retry after greylist_delay passes, and the triplet then passes at once while it is seen within greylist_expire. Allow-listed clients (dnsbl_allowlist_threshold) and exempt networks are never greylisted. Triplets are kept in memory, per node, and saved to <data>/greylist.json at shutdown (a crash, or a retry that reaches another MX node, costs a sender one more delay)."`
	GreylistDelay           Duration `toml:"greylist_delay" doc:"How long after the first attempt a retry of a greylisted triplet is accepted."`
	GreylistRetryWindow     Duration `toml:"greylist_retry_window" doc:"How long a first attempt waits for its retry before it is forgotten."`
	GreylistExpire          Duration `toml:"greylist_expire" doc:"How long a triplet that passed stays allowed after it was last seen."`
	Exempt                  []string `toml:"exempt" doc:"Client networks (CIDR, or single addresses) that no check of this section refuses: not looked up in the DNS lists, never greylisted nor refused for their name (which is still looked up for the Received header). Your backup MX, partners, a large sender that does not retry from the same /24. The pregreet test still applies (real servers pass it)."`
	GreylistMaxEntries      int      `toml:"greylist_max_entries" doc:"Most triplets kept in memory; past it, expired ones and then pending ones are dropped."`
}

func defaultScreen() Screen {
	return Screen{
		DNSBLSites:              []string{},
		DNSBLThreshold:          1,
		DNSBLAllowlistThreshold: -1,
		GreylistDelay:           Duration{5 * time.Minute},
		GreylistRetryWindow:     Duration{48 * time.Hour},
		GreylistExpire:          Duration{30 * 24 * time.Hour},
		Exempt:                  []string{},
		GreylistMaxEntries:      100000,
	}
}

// ExemptPrefixes is exempt as networks (validated by Validate).
func (s Screen) ExemptPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, n := range s.Exempt {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			a, aerr := netip.ParseAddr(n)
			if aerr != nil {
				return nil, fmt.Errorf("screen.exempt %q: want a network (192.0.2.0/24, 2001:db8::/32) or an address", n)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// validate checks the section; the site syntax is checked where the lists are built (app).
func (s Screen) validate() []error {
	var errs []error
	if s.DNSBLThreshold <= 0 {
		errs = append(errs, errors.New("screen.dnsbl_threshold must be positive"))
	}
	if s.DNSBLAllowlistThreshold > 0 {
		errs = append(errs, errors.New("screen.dnsbl_allowlist_threshold must be negative (or 0: none)"))
	}
	if s.PregreetWait.Duration < 0 || s.PregreetWait.Duration > time.Minute {
		errs = append(errs, errors.New("screen.pregreet_wait must be between 0 and 1m"))
	}
	if s.GreylistDelay.Duration <= 0 || s.GreylistRetryWindow.Duration <= s.GreylistDelay.Duration || s.GreylistExpire.Duration <= 0 {
		errs = append(errs, errors.New("screen.greylist_delay and greylist_expire must be positive, greylist_retry_window longer than greylist_delay"))
	}
	if s.GreylistMaxEntries <= 0 {
		errs = append(errs, errors.New("screen.greylist_max_entries must be positive"))
	}
	if _, err := s.ExemptPrefixes(); err != nil {
		errs = append(errs, err)
	}
	return errs
}
