package tlsrpt

// PolicyType is the kind of policy that governed a session (RFC 8460 §4.4, policy-type).
type PolicyType string

// The policy types of RFC 8460 §4.4.
const (
	PolicySTS      PolicyType = "sts"             // MTA-STS (RFC 8461)
	PolicyTLSA     PolicyType = "tlsa"            // DANE (RFC 7672)
	PolicyNotFound PolicyType = "no-policy-found" // neither: opportunistic TLS
)

// ResultType is why a session failed (RFC 8460 §4.3).
type ResultType string

// The result types of RFC 8460 §4.3.
const (
	// Negotiation failures (§4.3.1).
	StartTLSNotSupported    ResultType = "starttls-not-supported"
	CertificateHostMismatch ResultType = "certificate-host-mismatch"
	CertificateExpired      ResultType = "certificate-expired"
	CertificateNotTrusted   ResultType = "certificate-not-trusted"
	ValidationFailure       ResultType = "validation-failure"
	// Policy failures: DANE (§4.3.2.1).
	TLSAInvalid   ResultType = "tlsa-invalid"
	DNSSECInvalid ResultType = "dnssec-invalid"
	DANERequired  ResultType = "dane-required"
	// Policy failures: MTA-STS (§4.3.2.2).
	STSPolicyFetchError ResultType = "sts-policy-fetch-error"
	STSPolicyInvalid    ResultType = "sts-policy-invalid"
	STSWebPKIInvalid    ResultType = "sts-webpki-invalid"
)

// Outcome is one outbound SMTP session's TLS result, as remote delivery records it for the
// daily report to PolicyDomain.
type Outcome struct {
	PolicyDomain  string     // the recipient domain whose policy applied
	PolicyType    PolicyType // sts, tlsa or no-policy-found
	PolicyStrings []string   // the MTA-STS policy's lines, or the TLSA records in presentation format
	MXHost        []string   // for sts: the policy's mx patterns
	Success       bool       // a TLS session was set up and passed the policy

	// For a failure (Success false): its type and the session's details (§4.4 failure-details).
	Failure             ResultType
	SendingIP           string
	ReceivingMXHostname string
	ReceivingMXHelo     string
	ReceivingIP         string
	AdditionalInfo      string // free text: the error tern saw
}
