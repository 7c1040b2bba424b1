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
}

// DefaultAddresses are the defaults of Addresses.
func DefaultAddresses() Addresses {
	return Addresses{SubaddressSeparator: "+", AliasDepth: 10}
}

func (a Addresses) validate() []error {
	var errs []error
	if a.SubaddressSeparator != "" && (len(a.SubaddressSeparator) != 1 || !strings.Contains("+-_=", a.SubaddressSeparator)) {
		errs = append(errs, fmt.Errorf("addresses.subaddress_separator %q: want one of + - _ = or empty", a.SubaddressSeparator))
	}
	if a.AliasDepth <= 0 || a.AliasDepth > 100 {
		errs = append(errs, fmt.Errorf("addresses.alias_depth %d: want 1 to 100", a.AliasDepth))
	}
	return errs
}
