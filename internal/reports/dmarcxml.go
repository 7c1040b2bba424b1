package reports

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"net/netip"
	"slices"
	"time"

	"github.com/tern-mail/tern/internal/dmarc"
)

// feedback is a DMARC aggregate report, RFC 7489 Appendix C; the elements are in the schema's
// order (its sequences need it).
type feedback struct {
	XMLName   xml.Name        `xml:"feedback"`
	Version   string          `xml:"version"`
	Metadata  reportMetadata  `xml:"report_metadata"`
	Published policyPublished `xml:"policy_published"`
	Records   []record        `xml:"record"`
}

type reportMetadata struct {
	OrgName  string    `xml:"org_name"`
	Email    string    `xml:"email"`
	ReportID string    `xml:"report_id"`
	Range    dateRange `xml:"date_range"`
}

type dateRange struct {
	Begin int64 `xml:"begin"`
	End   int64 `xml:"end"`
}

type policyPublished struct {
	Domain string       `xml:"domain"`
	ADKIM  string       `xml:"adkim"`
	ASPF   string       `xml:"aspf"`
	P      dmarc.Policy `xml:"p"`
	SP     dmarc.Policy `xml:"sp"`
	Pct    int          `xml:"pct"`
	FO     string       `xml:"fo"`
}

type record struct {
	Row         row         `xml:"row"`
	Identifiers identifiers `xml:"identifiers"`
	AuthResults authResults `xml:"auth_results"`
}

type row struct {
	SourceIP  string          `xml:"source_ip"`
	Count     int64           `xml:"count"`
	Evaluated policyEvaluated `xml:"policy_evaluated"`
}

type policyEvaluated struct {
	Disposition dmarc.Policy `xml:"disposition"`
	DKIM        string       `xml:"dkim"`
	SPF         string       `xml:"spf"`
	Reasons     []reason     `xml:"reason"`
}

type reason struct {
	Type string `xml:"type"`
}

type identifiers struct {
	EnvelopeFrom string `xml:"envelope_from"`
	HeaderFrom   string `xml:"header_from"`
}

type authResults struct {
	DKIM []dkimResult `xml:"dkim"`
	SPF  []spfResult  `xml:"spf"`
}

type dkimResult struct {
	Domain   string `xml:"domain"`
	Selector string `xml:"selector,omitempty"`
	Result   string `xml:"result"`
}

type spfResult struct {
	Domain string `xml:"domain"`
	Scope  string `xml:"scope"`
	Result string `xml:"result"`
}

// reportMeta is what a report says of its sender and period, DMARC and TLS alike.
type reportMeta struct {
	OrgName    string // the receiver: tern's hostname
	Email      string // the contact address: the reports' From
	ReportID   string
	Begin, End time.Time
}

// dmarcCount is one DMARC row with its count.
type dmarcCount struct {
	Row   dmarcRow
	Count int64
}

// dmarcXML builds the aggregate report of the rows counted for the policy pub; rows are sorted
// so that the same counts give the same document.
func dmarcXML(m reportMeta, pub dmarc.Published, counts []dmarcCount) ([]byte, error) {
	fb := feedback{
		Version: "1.0",
		Metadata: reportMetadata{OrgName: m.OrgName, Email: m.Email, ReportID: m.ReportID,
			Range: dateRange{Begin: m.Begin.Unix(), End: m.End.Unix()}},
		Published: publishedElement(pub),
	}
	slices.SortFunc(counts, func(a, b dmarcCount) int { return cmp.Compare(a.Row.key(), b.Row.key()) })
	for _, c := range counts {
		r := c.Row
		rec := record{
			Row: row{SourceIP: reportIP(r.SourceIP), Count: c.Count, Evaluated: policyEvaluated{
				Disposition: cmp.Or(r.Disposition, dmarc.PolicyNone), DKIM: passFail(r.DKIMAligned), SPF: passFail(r.SPFAligned)}},
			Identifiers: identifiers{EnvelopeFrom: r.EnvelopeFrom, HeaderFrom: r.HeaderFrom},
		}
		if r.Override != "" {
			rec.Row.Evaluated.Reasons = []reason{{Type: r.Override}}
		}
		for _, d := range r.DKIM {
			rec.AuthResults.DKIM = append(rec.AuthResults.DKIM, dkimResult{Domain: d.Domain, Selector: d.Selector, Result: d.Result})
		}
		// The schema wants one SPF result at least; a message judged without one (none
		// recorded) says none for the envelope domain.
		spf := spfResult{Domain: cmp.Or(r.SPF.Domain, r.EnvelopeFrom), Scope: cmp.Or(r.SPF.Scope, "mfrom"), Result: cmp.Or(r.SPF.Result, "none")}
		rec.AuthResults.SPF = []spfResult{spf}
		fb.Records = append(fb.Records, rec)
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(fb); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// publishedElement is policy_published with the record's defaults filled in (RFC 7489 §6.3:
// adkim and aspf r, sp p, pct 100, fo 0), since the schema requires sp, pct and fo.
func publishedElement(p dmarc.Published) policyPublished {
	pct := p.Pct
	if pct <= 0 || pct > 100 {
		pct = 100
	}
	return policyPublished{Domain: p.Domain, ADKIM: cmp.Or(p.ADKIM, "r"), ASPF: cmp.Or(p.ASPF, "r"),
		P: cmp.Or(p.P, dmarc.PolicyNone), SP: cmp.Or(p.SP, p.P, dmarc.PolicyNone), Pct: pct, FO: cmp.Or(p.FO, "0")}
}

// reportIP writes an address as Appendix C's IPAddress pattern takes it: IPv4 dotted, IPv6 in
// its full eight groups (the pattern has no "::").
func reportIP(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	return a.StringExpanded()
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "fail"
}
