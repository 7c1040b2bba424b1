package policy

import (
	"strings"

	"github.com/tern-mail/tern/internal/dmarc"
)

// Inbound decides which mail tern judges (SPF, DKIM and DMARC, recorded in an
// Authentication-Results field), what a temporary DNS failure does, and what a DMARC failure
// does. Only mail from unauthenticated clients on the smtp (MX) listener is judged: other
// servers' mail, whose sender's claims are what needs checking. A user's submission is not
// judged: its sender logged in, and its signature is ours to add.
type Inbound struct {
	// Check enables it (inbound.spf_dkim).
	Check bool
	// Defer answers 451 4.4.3 to a message whose SPF, DKIM or DMARC result is temperror
	// (inbound.temperror = "defer"); else the result is recorded and the message accepted.
	Defer bool
	// DMARCDefault is what a DMARC failure does (inbound.dmarc); the zero value is DMARCEnforce.
	DMARCDefault DMARCMode
	// DMARCDomains overrides DMARC for the recipients in a domain (lower case, no final dot;
	// inbound.dmarc_domains).
	DMARCDomains map[string]DMARCMode
}

// DMARCMode is how much of a DMARC policy tern applies.
type DMARCMode string

// The DMARC modes, from the strictest.
const (
	// DMARCEnforce applies what the From domain publishes: reject, quarantine or none.
	DMARCEnforce DMARCMode = "enforce"
	// DMARCQuarantine never rejects: a reject becomes a quarantine.
	DMARCQuarantine DMARCMode = "quarantine"
	// DMARCNone records the result and delivers as usual.
	DMARCNone DMARCMode = "none"
)

// leniency orders the modes: the higher, the less is applied.
func (m DMARCMode) leniency() int {
	switch m {
	case DMARCNone:
		return 2
	case DMARCQuarantine:
		return 1
	}
	return 0
}

// Judges reports whether the mail of c on the listener named listener is checked.
func (p Inbound) Judges(c Client, listener string) bool {
	return p.Check && listener == "smtp" && !c.Authenticated
}

// DeferTempError reports whether a temperror is answered 451.
func (p Inbound) DeferTempError() bool { return p.Defer }

// DMARC decides what tern does with a message of DMARC evaluation e addressed to recipients in
// rcptDomains: e with its Disposition (and Override, "local_policy", when it differs from
// what the policy requests). One message has one fate, so when its recipients' domains are
// configured differently the most lenient mode wins: a domain that asked for its mail to be
// delivered gets it, and the others get it no worse than their own mode would mark it.
func (p Inbound) DMARC(e dmarc.Evaluation, rcptDomains []string) dmarc.Evaluation {
	if e.Result != dmarc.Fail {
		return e
	}
	mode := DMARCEnforce
	for i, d := range rcptDomains {
		m, ok := p.DMARCDomains[strings.ToLower(strings.TrimSuffix(d, "."))]
		if !ok {
			m = p.DMARCDefault
		}
		if i == 0 || m.leniency() > mode.leniency() {
			mode = m
		}
	}
	if len(rcptDomains) == 0 {
		mode = p.DMARCDefault
	}
	d := e.Disposition
	switch {
	case mode == DMARCNone:
		d = dmarc.PolicyNone
	case mode == DMARCQuarantine && d == dmarc.PolicyReject:
		d = dmarc.PolicyQuarantine
	}
	if d != e.Disposition {
		e.Disposition, e.Override = d, "local_policy"
	}
	return e
}
