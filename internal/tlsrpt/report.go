package tlsrpt

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Report is the JSON report of RFC 8460 §4.4, with the field names and types it gives.
type Report struct {
	OrganizationName string          `json:"organization-name"`
	DateRange        DateRange       `json:"date-range"`
	ContactInfo      string          `json:"contact-info"`
	ReportID         string          `json:"report-id"`
	Policies         []PolicyResults `json:"policies"`
}

// DateRange is the period a report covers, in RFC 3339 date-times.
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// PolicyResults is what happened under one policy.
type PolicyResults struct {
	Policy         Policy           `json:"policy"`
	Summary        Summary          `json:"summary"`
	FailureDetails []FailureDetails `json:"failure-details,omitempty"`
}

// Policy is the policy that applied (§4.4: policy-type, policy-string, policy-domain, mx-host).
type Policy struct {
	Type   PolicyType `json:"policy-type"`
	String []string   `json:"policy-string,omitempty"`
	Domain string     `json:"policy-domain"`
	MXHost []string   `json:"mx-host,omitempty"`
}

// Summary counts the sessions under a policy.
type Summary struct {
	Successful int64 `json:"total-successful-session-count"`
	Failed     int64 `json:"total-failure-session-count"`
}

// FailureDetails counts the sessions that failed in one way.
type FailureDetails struct {
	ResultType          ResultType `json:"result-type"`
	SendingMTAIP        string     `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname string     `json:"receiving-mx-hostname,omitempty"`
	ReceivingMXHelo     string     `json:"receiving-mx-helo,omitempty"`
	ReceivingIP         string     `json:"receiving-ip,omitempty"`
	FailedSessionCount  int64      `json:"failed-session-count"`
	// AdditionalInfo is a URI to more information (§4.4): tern has none to give.
	AdditionalInfo string `json:"additional-information,omitempty"`
	// FailureReasonCode is "a TLS-related error code or error message" (§4.4): tern puts the
	// error it saw here (Outcome.AdditionalInfo).
	FailureReasonCode string `json:"failure-reason-code,omitempty"`
}

// Counted is an outcome seen Success plus Failure times: for a success, only the policy fields
// of Outcome count; for a failure, its details too.
type Counted struct {
	Outcome          Outcome
	Success, Failure int64
}

// Meta is what a report says of its sender and period.
type Meta struct {
	OrganizationName string
	ContactInfo      string
	ReportID         string
	Start, End       time.Time
}

// NewReport builds the report of the outcomes counted for one policy domain: one entry per
// policy, failures grouped by their details. The order is stable (by policy, then by failure),
// so that the same counts give the same report.
func NewReport(m Meta, counts []Counted) Report {
	r := Report{
		OrganizationName: m.OrganizationName,
		DateRange:        DateRange{Start: m.Start.UTC(), End: m.End.UTC()},
		ContactInfo:      m.ContactInfo,
		ReportID:         m.ReportID,
		Policies:         []PolicyResults{},
	}
	byPolicy := map[string]*PolicyResults{}
	var keys []string
	for _, c := range counts {
		o := c.Outcome
		p := Policy{Type: o.PolicyType, String: o.PolicyStrings, Domain: o.PolicyDomain, MXHost: o.MXHost}
		k := policyKey(p)
		pr := byPolicy[k]
		if pr == nil {
			pr = &PolicyResults{Policy: p}
			byPolicy[k] = pr
			keys = append(keys, k)
		}
		pr.Summary.Successful += c.Success
		pr.Summary.Failed += c.Failure
		if c.Failure == 0 {
			continue
		}
		fd := FailureDetails{ResultType: o.Failure, SendingMTAIP: o.SendingIP, ReceivingMXHostname: o.ReceivingMXHostname,
			ReceivingMXHelo: o.ReceivingMXHelo, ReceivingIP: o.ReceivingIP, FailureReasonCode: o.AdditionalInfo}
		if i := slices.IndexFunc(pr.FailureDetails, func(d FailureDetails) bool {
			d.FailedSessionCount = 0
			return d == fd
		}); i >= 0 {
			pr.FailureDetails[i].FailedSessionCount += c.Failure
		} else {
			fd.FailedSessionCount = c.Failure
			pr.FailureDetails = append(pr.FailureDetails, fd)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		pr := byPolicy[k]
		slices.SortFunc(pr.FailureDetails, func(a, b FailureDetails) int {
			return cmp.Or(cmp.Compare(a.ResultType, b.ResultType), cmp.Compare(a.ReceivingMXHostname, b.ReceivingMXHostname),
				cmp.Compare(a.ReceivingIP, b.ReceivingIP), cmp.Compare(a.SendingMTAIP, b.SendingMTAIP),
				cmp.Compare(a.ReceivingMXHelo, b.ReceivingMXHelo), cmp.Compare(a.FailureReasonCode, b.FailureReasonCode))
		})
		r.Policies = append(r.Policies, *pr)
	}
	return r
}

// policyKey tells policies apart: every field, joined with separators no DNS name or policy
// line holds.
func policyKey(p Policy) string {
	return strings.Join([]string{p.Domain, string(p.Type), strings.Join(p.String, "\n"), strings.Join(p.MXHost, "\n")}, "\x00")
}

// JSON is the report as sent (RFC 8460 §4.4), indented for the human who opens it.
func (r Report) JSON() ([]byte, error) {
	return json.MarshalIndent(r, "", "  ")
}
