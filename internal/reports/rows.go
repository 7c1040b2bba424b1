package reports

import (
	"encoding/json"
	"strings"

	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/tlsrpt"
)

// dmarcRow is what a DMARC aggregate report counts messages by (RFC 7489 Appendix C: row,
// identifiers, auth_results). It is stored as JSON, the store's opaque row key: the fields are
// in a fixed order, so equal rows encode equally.
type dmarcRow struct {
	SourceIP     string             `json:"ip"`
	HeaderFrom   string             `json:"hfrom"`
	EnvelopeFrom string             `json:"efrom"`
	Disposition  dmarc.Policy       `json:"disp"`
	DKIMAligned  bool               `json:"dkim,omitempty"`
	SPFAligned   bool               `json:"spf,omitempty"`
	Override     string             `json:"override,omitempty"`
	SPF          dmarc.AuthResult   `json:"spfr"`
	DKIM         []dmarc.AuthResult `json:"dkimr,omitempty"`
}

func (r dmarcRow) key() string {
	s, _ := encodeJSON(r) // strings and bools only: it cannot fail
	return s
}

// newDMARCRow is the row of an evaluation.
func newDMARCRow(ev dmarc.Evaluation) dmarcRow {
	return dmarcRow{
		SourceIP:     ev.SourceIP,
		HeaderFrom:   strings.ToLower(ev.FromDomain),
		EnvelopeFrom: strings.ToLower(ev.EnvelopeFrom),
		Disposition:  ev.Disposition,
		DKIMAligned:  ev.DKIMAligned,
		SPFAligned:   ev.SPFAligned,
		Override:     ev.Override,
		SPF:          ev.SPF,
		DKIM:         ev.DKIM,
	}
}

// tlsRow is what a TLS report counts sessions by: the outcome without Success, and for a
// success without the failure details (a success is counted per policy only).
func tlsRow(o tlsrpt.Outcome) tlsrpt.Outcome {
	o.Success = false
	o.PolicyDomain = strings.ToLower(o.PolicyDomain)
	return o
}

func successRow(o tlsrpt.Outcome) tlsrpt.Outcome {
	return tlsrpt.Outcome{PolicyDomain: strings.ToLower(o.PolicyDomain), PolicyType: o.PolicyType,
		PolicyStrings: o.PolicyStrings, MXHost: o.MXHost}
}

func encodeJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
