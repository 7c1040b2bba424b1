package config

import (
	"fmt"
	"strings"
)

// Addresses configure how a recipient in a local domain finds its mailbox besides its account:
// aliases (kept in the account store, `tern alias`) and subaddressing.
type Addresses struct {
	SubaddressSeparator string `toml:"subaddress_separator" doc:"The character that starts the detail of a subaddress: mail for user+detail@domain goes to user@domain (its account or alias) when no account or alias is named user+detail, and the address as sent stays in the envelope as its original recipient (ORCPT, which delivery status notifications show). One character out of + - _ = or empty: no subaddressing."`
	AliasDepth          int    `toml:"alias_depth" doc:"How many aliases deep an expansion may go (an alias whose target is an alias, and so on), as Postfix's virtual_alias_recursion_limit; a deeper branch is dropped like a loop, and an address that only leads to loops or too deep is refused at RCPT with 550 5.1.1."`
	SRSDomain           string `toml:"srs_domain" doc:"The domain of the SRS addresses (Sender Rewriting Scheme) that mail forwarded to an external alias target is sent from (SRS0=hash=stamp=domain=local@srs_domain), so that SPF at the destination checks this server: its SPF record must allow this server. Bounces to such an address, at any local domain, go back to the original sender; one whose hash does not match or that is older than srs_max_age is refused at RCPT with 550 5.1.1. The secret is <data>/srs.secret, made (mode 0600) on first use; its lines are secrets, the first signs, all verify (the format of postsrsd's secret file); a reload reads it again, so that a secret put on top signs from then on while those below still verify. Empty: the first of domains."`
	SRSMaxAge           int    `toml:"srs_max_age" doc:"How many days an SRS address stays valid for bounces (libsrs2 and postsrsd: 21)."`
}

// DefaultAddresses are the defaults of Addresses.
func DefaultAddresses() Addresses {
	return Addresses{SubaddressSeparator: "+", AliasDepth: 10, SRSMaxAge: 21}
}

func (a Addresses) validate() []error {
	var errs []error
	if a.SubaddressSeparator != "" && (len(a.SubaddressSeparator) != 1 || !strings.Contains("+-_=", a.SubaddressSeparator)) {
		errs = append(errs, fmt.Errorf("addresses.subaddress_separator %q: want one of + - _ = or empty", a.SubaddressSeparator))
	}
	if a.AliasDepth <= 0 || a.AliasDepth > 100 {
		errs = append(errs, fmt.Errorf("addresses.alias_depth %d: want 1 to 100", a.AliasDepth))
	}
	if a.SRSMaxAge <= 0 || a.SRSMaxAge > 1000 {
		errs = append(errs, fmt.Errorf("addresses.srs_max_age %d: want 1 to 1000 (days)", a.SRSMaxAge))
	}
	if a.SRSDomain != "" {
		if _, err := parseDomain(a.SRSDomain); err != nil {
			errs = append(errs, fmt.Errorf("addresses.srs_domain %q: %w", a.SRSDomain, err))
		}
	}
	return errs
}
