package policy

import (
	"testing"

	"github.com/tern-mail/tern/internal/dmarc"
)

func TestInboundDMARC(t *testing.T) {
	p := Inbound{DMARCDefault: DMARCEnforce, DMARCDomains: map[string]DMARCMode{
		"lists.example": DMARCNone, "soft.example": DMARCQuarantine,
	}}
	fail := func(req dmarc.Policy, override string) dmarc.Evaluation {
		return dmarc.Evaluation{Result: dmarc.Fail, Requested: req, Disposition: req, Override: override}
	}
	tests := []struct {
		name     string
		p        Inbound
		e        dmarc.Evaluation
		rcpts    []string
		want     dmarc.Policy
		override string
	}{
		{"enforce reject", p, fail(dmarc.PolicyReject, ""), []string{"example.org"}, dmarc.PolicyReject, ""},
		{"enforce quarantine", p, fail(dmarc.PolicyQuarantine, ""), []string{"example.org"}, dmarc.PolicyQuarantine, ""},
		{"sampled out stays", p, fail(dmarc.PolicyQuarantine, "sampled_out"), []string{"example.org"}, dmarc.PolicyQuarantine, "sampled_out"},
		{"domain none", p, fail(dmarc.PolicyReject, ""), []string{"Lists.Example."}, dmarc.PolicyNone, "local_policy"},
		{"domain quarantine", p, fail(dmarc.PolicyReject, ""), []string{"soft.example"}, dmarc.PolicyQuarantine, "local_policy"},
		{"domain quarantine keeps none", p, fail(dmarc.PolicyNone, ""), []string{"soft.example"}, dmarc.PolicyNone, ""},
		{"most lenient recipient wins", p, fail(dmarc.PolicyReject, ""), []string{"example.org", "soft.example", "lists.example"}, dmarc.PolicyNone, "local_policy"},
		{"global quarantine", Inbound{DMARCDefault: DMARCQuarantine}, fail(dmarc.PolicyReject, ""), []string{"example.org"}, dmarc.PolicyQuarantine, "local_policy"},
		{"global none", Inbound{DMARCDefault: DMARCNone}, fail(dmarc.PolicyQuarantine, ""), []string{"example.org"}, dmarc.PolicyNone, "local_policy"},
		{"zero value enforces", Inbound{}, fail(dmarc.PolicyReject, ""), nil, dmarc.PolicyReject, ""},
		{"pass untouched", Inbound{DMARCDefault: DMARCNone}, dmarc.Evaluation{Result: dmarc.Pass, Requested: dmarc.PolicyNone, Disposition: dmarc.PolicyNone}, []string{"x"}, dmarc.PolicyNone, ""},
	}
	for _, tc := range tests {
		got := tc.p.DMARC(tc.e, tc.rcpts)
		if got.Disposition != tc.want || got.Override != tc.override || got.Requested != tc.e.Requested {
			t.Errorf("%s: disposition %s override %q requested %s; want %s %q %s", tc.name, got.Disposition, got.Override, got.Requested, tc.want, tc.override, tc.e.Requested)
		}
	}
}
