package reports

import (
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/dmarc"
	"github.com/tern-mail/tern/internal/testutil"
)

var samplePub = dmarc.Published{Domain: "b.test", ADKIM: "r", ASPF: "s", P: dmarc.PolicyReject, Pct: 100,
	RUA: []string{"mailto:dmarc@b.test"}}

func sampleCounts() []dmarcCount {
	return []dmarcCount{
		{Count: 12, Row: dmarcRow{SourceIP: "192.0.2.1", HeaderFrom: "b.test", EnvelopeFrom: "b.test",
			Disposition: dmarc.PolicyNone, DKIMAligned: true, SPFAligned: true,
			SPF:  dmarc.AuthResult{Domain: "b.test", Scope: "mfrom", Result: "pass"},
			DKIM: []dmarc.AuthResult{{Domain: "b.test", Selector: "s1", Result: "pass"}, {Domain: "esp.test", Selector: "x", Result: "fail"}}}},
		{Count: 3, Row: dmarcRow{SourceIP: "2001:db8::25", HeaderFrom: "b.test", EnvelopeFrom: "spam.test",
			Disposition: dmarc.PolicyReject,
			SPF:         dmarc.AuthResult{Domain: "spam.test", Scope: "mfrom", Result: "softfail"}}},
		{Count: 1, Row: dmarcRow{SourceIP: "198.51.100.7", HeaderFrom: "sub.b.test", EnvelopeFrom: "mx.sub.b.test",
			Disposition: dmarc.PolicyNone, Override: "sampled_out",
			SPF: dmarc.AuthResult{Domain: "mx.sub.b.test", Scope: "helo", Result: "none"}}},
	}
}

// TestDMARCXML: the aggregate report of RFC 7489 Appendix C, as a golden file, valid by the
// RFC's schema (xmllint); IPv6 sources expanded for the schema's pattern; defaults filled in.
func TestDMARCXML(t *testing.T) {
	m := reportMeta{OrgName: "mx.a.test", Email: "postmaster@a.test", ReportID: "20261204.0a1b2c3d4e",
		Begin: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)}
	doc, err := dmarcXML(m, samplePub, sampleCounts())
	if err != nil {
		t.Fatal(err)
	}
	testutil.Golden(t, *update, "dmarc.xml", string(doc))
	validateXML(t, doc)
	if !strings.Contains(string(doc), "<source_ip>2001:0db8:0000:0000:0000:0000:0000:0025</source_ip>") ||
		!strings.Contains(string(doc), "<sp>reject</sp>") || !strings.Contains(string(doc), "<fo>0</fo>") {
		t.Errorf("IPv6 not expanded or defaults missing:\n%s", doc)
	}
}

// TestDMARCSchemaRefuses: the schema check is not a rubber stamp.
func TestDMARCSchemaRefuses(t *testing.T) {
	m := reportMeta{OrgName: "mx.a.test", Email: "postmaster@a.test", ReportID: "x", Begin: time.Unix(0, 0), End: time.Unix(86400, 0)}
	doc, err := dmarcXML(m, samplePub, sampleCounts()[:1])
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(doc), "<disposition>none</disposition>", "<disposition>junk</disposition>", 1)
	if err := schemaCheck(t, []byte(bad)); err == nil || !strings.Contains(err.Error(), "junk") {
		t.Errorf("a bad disposition passes the schema: %v", err)
	}
}
