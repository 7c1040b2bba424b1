package dmarc

// Result is the DMARC verdict, spelled as the dmarc method of Authentication-Results
// (RFC 7489 §11.2, RFC 8601).
type Result string

// The results of RFC 7489 §11.2.
const (
	None      Result = "none"      // no DMARC record for the From domain or its organisational domain
	Pass      Result = "pass"      // SPF or DKIM passed for an aligned domain
	Fail      Result = "fail"      // neither did
	TempError Result = "temperror" // the record could not be fetched for now
	PermError Result = "permerror" // no usable From domain (none, several), or a broken record
)

// Policy is a requested (p=, sp=) or applied handling of a failing message.
type Policy string

// The policies of RFC 7489 §6.3.
const (
	PolicyNone       Policy = "none"
	PolicyQuarantine Policy = "quarantine"
	PolicyReject     Policy = "reject"
)

// Published is the record that governed a message, as the policy_published element of an
// aggregate report shows it (RFC 7489 Appendix C), and where its reports go.
type Published struct {
	Domain string // where the record was found: the From domain or its organisational domain
	ADKIM  string // "r" or "s"
	ASPF   string // "r" or "s"
	P      Policy
	SP     Policy
	Pct    int
	FO     string
	RUA    []string // the rua= URIs as published (mailto: ones are the only ones tern uses)
}

// AuthResult is one underlying result as an aggregate report lists it (auth_results).
type AuthResult struct {
	Domain   string // d= for DKIM; the MAIL FROM or HELO domain for SPF
	Selector string // DKIM only
	Scope    string // SPF only: "mfrom" or "helo"
	Result   string // the SPF or DKIM result as Authentication-Results spells it
}

// Evaluation is the outcome for one message: the verdict, what the policy asks for and what
// tern did, and what an aggregate report records of it.
type Evaluation struct {
	Result     Result
	FromDomain string     // the RFC5322.From domain, lower case (empty when there was none usable)
	Published  *Published // nil when no record applies (Result None, TempError, some PermErrors)
	Reason     string     // why Result, in plain words, for logs and replies (added for tern's own use)

	// Requested is the policy that applies to the From domain (sp= for a subdomain of the
	// organisational domain that published it), after pct= sampling; PolicyNone for a pass.
	Requested Policy
	// Disposition is what tern did: Requested, unless local policy (a configured override, a
	// message from an authenticated client) says otherwise; Override then names why in the
	// words of the report's PolicyOverrideType ("local_policy", "sampled_out", "forwarded",
	// "trusted_forwarder", "mailing_list", "other").
	Disposition Policy
	Override    string

	SPFAligned  bool // SPF passed for a domain aligned with FromDomain
	DKIMAligned bool // a DKIM signature passed for a domain aligned with FromDomain

	SourceIP     string       // the client's address
	EnvelopeFrom string       // the MAIL FROM domain (the HELO name for the null sender)
	SPF          AuthResult   // the SPF result, Scope "mfrom" or "helo"
	DKIM         []AuthResult // each DKIM signature's result
}
