package dmarc

import (
	"reflect"
	"testing"
)

func TestParseRecord(t *testing.T) {
	def := func(f func(p *Published)) Published {
		p := Published{ADKIM: "r", ASPF: "r", Pct: 100, FO: "0", P: PolicyNone, SP: PolicyNone}
		f(&p)
		return p
	}
	tests := []struct {
		name, txt string
		want      Published
		err       error
	}{
		// RFC 7489 Appendix B.2.1.
		{"B.2.1", "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com",
			def(func(p *Published) { p.RUA = []string{"mailto:dmarc-feedback@example.com"} }), nil},
		// B.2.4: quarantine of 5 percent.
		{"B.2.4", "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,mailto:tld-test@thirdparty.example.net!10m; pct=5",
			def(func(p *Published) {
				p.P, p.SP, p.Pct = PolicyQuarantine, PolicyQuarantine, 5
				p.RUA = []string{"mailto:dmarc-feedback@example.com", "mailto:tld-test@thirdparty.example.net!10m"}
			}), nil},
		{"sp and strict", "v=DMARC1;p=reject;sp=none;adkim=s;aspf=s;fo=1:d",
			def(func(p *Published) { p.P, p.ADKIM, p.ASPF, p.FO = PolicyReject, "s", "s", "1:d" }), nil},
		{"spaces and case", "  v = DMARC1 ;  P = Reject ; ",
			def(func(p *Published) { p.P, p.SP = PolicyReject, PolicyReject }), nil},
		{"unknown tags ignored", "v=DMARC1; p=reject; x-foo=bar; np=none",
			def(func(p *Published) { p.P, p.SP = PolicyReject, PolicyReject }), nil},
		{"bad values take defaults", "v=DMARC1; p=reject; pct=200; adkim=x; aspf=; fo=9; ri=-1; rf=xml",
			def(func(p *Published) { p.P, p.SP = PolicyReject, PolicyReject }), nil},
		{"negative pct", "v=DMARC1; p=quarantine; pct=-5",
			def(func(p *Published) { p.P, p.SP = PolicyQuarantine, PolicyQuarantine }), nil},
		{"pct 0", "v=DMARC1; p=quarantine; pct=0",
			def(func(p *Published) { p.P, p.SP, p.Pct = PolicyQuarantine, PolicyQuarantine, 0 }), nil},
		{"first tag wins", "v=DMARC1; p=reject; p=none",
			def(func(p *Published) { p.P, p.SP = PolicyReject, PolicyReject }), nil},
		// §6.6.3 step 6: no valid p= but a valid rua= reads as p=none.
		{"no p with rua", "v=DMARC1; rua=mailto:r@example.com",
			def(func(p *Published) { p.RUA = []string{"mailto:r@example.com"} }), nil},
		{"bad p with rua", "v=DMARC1; p=bogus; rua=mailto:r@example.com",
			def(func(p *Published) { p.RUA = []string{"mailto:r@example.com"} }), nil},
		{"bad sp with rua", "v=DMARC1; p=reject; sp=bogus; rua=mailto:r@example.com",
			def(func(p *Published) { p.RUA = []string{"mailto:r@example.com"} }), nil},
		{"no p no rua", "v=DMARC1; pct=50", Published{}, ErrNoPolicy},
		{"bad p bad rua", "v=DMARC1; p=bogus; rua=not a uri", Published{}, ErrNoPolicy},
		{"bad sp no rua", "v=DMARC1; p=reject; sp=bogus", Published{}, ErrNoPolicy},
		{"v not first", "p=reject; v=DMARC1", Published{}, ErrNotDMARC},
		{"other version", "v=DMARC2; p=reject", Published{}, ErrNotDMARC},
		{"lower-case version", "v=dmarc1; p=reject", Published{}, ErrNotDMARC},
		{"spf record", "v=spf1 -all", Published{}, ErrNotDMARC},
		{"empty", "", Published{}, ErrNotDMARC},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRecord(tc.txt)
			if err != tc.err {
				t.Fatalf("ParseRecord(%q) error %v, want %v", tc.txt, err, tc.err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseRecord(%q)\n got %+v\nwant %+v", tc.txt, got, tc.want)
			}
		})
	}
}

// FuzzParseRecord: any text gives a record with valid values or an error, never a panic.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com",
		"v=DMARC1;p=reject;sp=quarantine;pct=5;adkim=s;aspf=r;fo=1:d:s;rua=mailto:a@b!10m,https://x/",
		"v=DMARC1; rua=mailto:r@example.com; p=bogus",
		"v=DMARC1", "v=DMARC1;;;=;==;p", ";", "v=spf1 -all",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		p, err := ParseRecord(txt)
		if err != nil {
			return
		}
		for _, pol := range []Policy{p.P, p.SP} {
			if pol != PolicyNone && pol != PolicyQuarantine && pol != PolicyReject {
				t.Fatalf("ParseRecord(%q): policy %q", txt, pol)
			}
		}
		if p.Pct < 0 || p.Pct > 100 || (p.ADKIM != "r" && p.ADKIM != "s") || (p.ASPF != "r" && p.ASPF != "s") {
			t.Fatalf("ParseRecord(%q): out of range: %+v", txt, p)
		}
	})
}
