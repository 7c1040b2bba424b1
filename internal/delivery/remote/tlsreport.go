package remote

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/mtasts"
	"github.com/tern-mail/tern/internal/smtpclient"
	"github.com/tern-mail/tern/internal/tlsrpt"
)

// TLS reports (RFC 8460): each session with an MX host of a recipient domain where TLS was
// tried or a policy called for it gives one tlsrpt.Outcome to Options.TLSReports, for the
// daily report to that domain. Nothing is recorded for the relayhost or an address literal:
// there is no policy domain to report to (the relayhost is the admin's own). A session without
// STARTTLS under no policy (plain SMTP, as the domain allows) is no TLS session and is not
// recorded either, nor is the plaintext retry after a failed handshake (the failure was). A
// failed fetch of the MTA-STS policy is recorded once per delivery to the domain, and a host
// that the policy rules out before any connection (an MX the enforced MTA-STS policy does not
// list, a TLSA lookup that failed) once per host.

// sessionTLS is what one session's TLS came to: the facts sessionResult judges.
type sessionTLS struct {
	policy      tlsrpt.PolicyType
	required    bool // the plan requires TLS (DANE, enforced MTA-STS, the operator, REQUIRETLS)
	tlsaInvalid bool // TLSA records, none usable (RFC 7672 §2.2)
	stsTesting  bool // an MTA-STS policy in mode testing: judged as if enforced, not applied
	stsMiss     bool // that policy does not list the host
	noTLS       bool // the plaintext retry after a failed handshake
	offered     bool // the server offered STARTTLS
	err         error
	verified    bool  // the certificate passed the plan's check (PKIX when the plan takes any)
	verifyErr   error // why it did not
}

// sessionResult judges a session for the report: record false when it is no TLS session
// worth reporting; else success, or the failure's result type (RFC 8460 §4.3) and why.
func sessionResult(s sessionTLS) (record, success bool, failure tlsrpt.ResultType, why string) {
	var ce *smtpclient.Error
	switch {
	case s.noTLS:
		return false, false, "", ""
	case !s.offered:
		if !s.required && s.policy == tlsrpt.PolicyNotFound && !s.stsTesting {
			return false, false, "", ""
		}
		return true, false, tlsrpt.StartTLSNotSupported, "the server does not offer STARTTLS"
	case s.err != nil && errors.As(s.err, &ce) && ce.Code != 0:
		return true, false, tlsrpt.StartTLSNotSupported, "STARTTLS refused: " + ce.Error()
	case s.err != nil && lostConnection(s.err):
		return false, false, "", "" // the connection failed, not TLS
	case s.err != nil:
		return true, false, classifyTLSError(s.err), s.err.Error()
	case s.tlsaInvalid:
		return true, false, tlsrpt.TLSAInvalid, "no usable TLSA record (RFC 7672 §2.2: PKIX-TA and PKIX-EE are unusable for SMTP)"
	case s.stsTesting && s.stsMiss:
		return true, false, tlsrpt.ValidationFailure, errNotInSTSList.Error()
	case s.stsTesting && !s.verified:
		why := "the certificate did not verify"
		if s.verifyErr != nil {
			why = s.verifyErr.Error()
		}
		return true, false, classifyTLSError(s.verifyErr), why
	}
	return true, true, "", ""
}

// classifyTLSError is the RFC 8460 §4.3 result type of a failed handshake or certificate
// check. The x509 findings come first: a DANE-TA record that matched a CA whose chain then
// failed for the name is a name mismatch, not a TLSA problem.
func classifyTLSError(err error) tlsrpt.ResultType {
	var (
		he x509.HostnameError
		ci x509.CertificateInvalidError
		ua x509.UnknownAuthorityError
	)
	switch {
	case err == nil:
		return tlsrpt.ValidationFailure
	case errors.As(err, &he):
		return tlsrpt.CertificateHostMismatch
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return tlsrpt.CertificateExpired // Go's Expired covers "not yet valid" too
	case errors.As(err, &ua):
		return tlsrpt.CertificateNotTrusted
	case errors.Is(err, errNoTLSAMatch):
		return tlsrpt.TLSAInvalid
	}
	return tlsrpt.ValidationFailure
}

// classifySTSFetch is the result type of a failed policy fetch: the policy host's certificate,
// a policy that is there but invalid, or no policy to be had.
func classifySTSFetch(err error) tlsrpt.ResultType {
	switch {
	case mtasts.IsCertificateError(err):
		return tlsrpt.STSWebPKIInvalid
	case errors.Is(err, mtasts.ErrPolicy):
		return tlsrpt.STSPolicyInvalid
	}
	return tlsrpt.STSPolicyFetchError
}

// reportSession records the outcome of one session's STARTTLS (see sessionResult); offered
// and tlsErr are from startTLS.
func (d *Deliverer) reportSession(a *attempt, c *smtpclient.Client, check *tlsCheck, offered bool, tlsErr error) {
	if d.opts.TLSReports == nil || a.rt.relay || a.rt.literal {
		return
	}
	verified, verr := check.result()
	s := sessionTLS{
		policy:      policyType(a.plan),
		required:    a.plan.level >= levelEncrypt,
		tlsaInvalid: len(a.plan.tlsaAll) > 0 && len(a.plan.tlsa) == 0,
		stsTesting:  a.plan.testing != nil && len(a.plan.tlsaAll) == 0,
		stsMiss:     a.plan.stsMiss,
		noTLS:       a.noTLS,
		offered:     offered,
		err:         tlsErr,
		verified:    verified,
		verifyErr:   verr,
	}
	record, success, failure, why := sessionResult(s)
	if !record {
		return
	}
	o := policyOutcome(a.rt.domain, a.plan)
	o.Success = success
	if !success {
		o.Failure, o.AdditionalInfo = failure, why
		o.ReceivingMXHostname, o.ReceivingIP = a.h.name, a.addr.String()
		if f := strings.Fields(c.Greeting().Text); len(f) > 0 {
			o.ReceivingMXHelo = f[0]
		}
		if ta, ok := c.LocalAddr().(*net.TCPAddr); ok {
			o.SendingIP = ta.IP.String()
		}
	}
	d.opts.TLSReports.RecordTLS(o)
}

// reportPlanFailure records a host ruled out before any connection: an MX the enforced
// MTA-STS policy does not list, or whose TLSA lookup failed under a validated route (RFC 7672
// §2.2.3; RFC 8460's dnssec-invalid: no valid records came back).
func (d *Deliverer) reportPlanFailure(rt *route, h *host, sts *mtasts.Policy, err *delivery.Error) {
	if d.opts.TLSReports == nil || rt.relay || rt.literal {
		return
	}
	var o tlsrpt.Outcome
	switch {
	case errors.Is(err.Err, errNotInSTSList):
		o = policyOutcome(rt.domain, &tlsPlan{sts: sts})
		o.Failure = tlsrpt.ValidationFailure
	case errors.Is(err.Err, errTLSALookup):
		o = tlsrpt.Outcome{PolicyDomain: rt.domain, PolicyType: tlsrpt.PolicyTLSA, Failure: tlsrpt.DNSSECInvalid}
	default:
		return
	}
	o.ReceivingMXHostname, o.AdditionalInfo = h.name, err.Error()
	d.opts.TLSReports.RecordTLS(o)
}

// reportSTSFetch records a failed fetch of domain's MTA-STS policy; cached is the policy still
// in force, if any.
func (d *Deliverer) reportSTSFetch(domain string, cached *mtasts.Policy, err error) {
	if d.opts.TLSReports == nil {
		return
	}
	o := policyOutcome(domain, &tlsPlan{sts: cached})
	o.PolicyType = tlsrpt.PolicySTS
	o.Failure = classifySTSFetch(err)
	o.AdditionalInfo = mtasts.URL(domain) + ": " + err.Error()
	d.opts.TLSReports.RecordTLS(o)
}

// policyType is the RFC 8460 policy type of a plan: DANE when a validated TLSA RRset decides
// (RFC 8461 §2: it takes precedence over MTA-STS), else MTA-STS when a policy is in force.
func policyType(p *tlsPlan) tlsrpt.PolicyType {
	switch {
	case len(p.tlsaAll) > 0:
		return tlsrpt.PolicyTLSA
	case p.sts != nil:
		return tlsrpt.PolicySTS
	}
	return tlsrpt.PolicyNotFound
}

// policyOutcome is an Outcome for domain with the plan's policy filled in.
func policyOutcome(domain string, p *tlsPlan) tlsrpt.Outcome {
	o := tlsrpt.Outcome{PolicyDomain: domain, PolicyType: policyType(p)}
	switch o.PolicyType {
	case tlsrpt.PolicyTLSA:
		for _, t := range p.tlsaAll {
			o.PolicyStrings = append(o.PolicyStrings, tlsaString(t))
		}
	case tlsrpt.PolicySTS:
		o.PolicyStrings = append([]string(nil), p.sts.Lines...)
		o.MXHost = append([]string(nil), p.sts.MX...)
	}
	return o
}

// tlsaString is a TLSA record in presentation format, without its TTL, which shrinks in
// caches and would split one policy into several in the report.
func tlsaString(t *dns.TLSA) string {
	return fmt.Sprintf("%s IN TLSA %d %d %d %s", t.Hdr.Name, t.Usage, t.Selector, t.MatchingType, t.Certificate)
}
