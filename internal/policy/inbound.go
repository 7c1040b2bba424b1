package policy

// Inbound decides which mail tern judges (SPF and DKIM, recorded in an Authentication-Results
// field) and what a temporary DNS failure does. Only mail from unauthenticated clients on the
// smtp (MX) listener: other servers' mail, whose sender's claims are what needs checking. A
// user's submission is not judged: its sender logged in, and its signature is ours to add.
type Inbound struct {
	// Check enables it (inbound.spf_dkim).
	Check bool
	// Defer answers 451 4.4.3 to a message whose SPF or DKIM result is temperror
	// (inbound.temperror = "defer"); else the result is recorded and the message accepted.
	Defer bool
}

// Judges reports whether the mail of c on the listener named listener is checked.
func (p Inbound) Judges(c Client, listener string) bool {
	return p.Check && listener == "smtp" && !c.Authenticated
}

// DeferTempError reports whether a temperror is answered 451.
func (p Inbound) DeferTempError() bool { return p.Defer }
