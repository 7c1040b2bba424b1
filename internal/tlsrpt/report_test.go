package tlsrpt

import (
	"encoding/json"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func sampleReport() Report {
	sts := Outcome{PolicyDomain: "b.test", PolicyType: PolicySTS,
		PolicyStrings: []string{"version: STSv1", "mode: enforce", "mx: mx.b.test", "max_age: 86400"}, MXHost: []string{"mx.b.test"}}
	fail := sts
	fail.Failure, fail.SendingIP, fail.ReceivingMXHostname, fail.ReceivingIP = CertificateExpired, "192.0.2.1", "mx.b.test", "192.0.2.25"
	fail.AdditionalInfo = "x509: certificate has expired"
	none := Outcome{PolicyDomain: "b.test", PolicyType: PolicyNotFound}
	starttls := none
	starttls.Failure, starttls.ReceivingMXHostname, starttls.ReceivingIP = StartTLSNotSupported, "mx2.b.test", "192.0.2.26"
	return NewReport(Meta{
		OrganizationName: "mx.a.test", ContactInfo: "postmaster@mx.a.test", ReportID: "20261204.b.test.1",
		Start: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC),
	}, []Counted{
		{Outcome: sts, Success: 10},
		{Outcome: fail, Failure: 2},
		{Outcome: none, Success: 3},
		{Outcome: fail, Failure: 1},
		{Outcome: starttls, Failure: 4},
	})
}

func TestReportGolden(t *testing.T) {
	b, err := sampleReport().JSON()
	if err != nil {
		t.Fatal(err)
	}
	testutil.Golden(t, *update, "report.json", string(b)+"\n")
	if err := CheckReport(b); err != nil {
		t.Error(err)
	}
}

// TestCheckReport: the checker finds what RFC 8460 §4.4 requires missing or mistyped.
func TestCheckReport(t *testing.T) {
	good, err := sampleReport().JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		change func(m map[string]any)
	}{
		{"no organization-name", func(m map[string]any) { delete(m, "organization-name") }},
		{"report-id a number", func(m map[string]any) { m["report-id"] = 1 }},
		{"bad start-datetime", func(m map[string]any) { m["date-range"].(map[string]any)["start-datetime"] = "yesterday" }},
		{"no policies", func(m map[string]any) { delete(m, "policies") }},
		{"no summary", func(m map[string]any) { delete(m["policies"].([]any)[0].(map[string]any), "summary") }},
		{"bad policy-type", func(m map[string]any) {
			m["policies"].([]any)[0].(map[string]any)["policy"].(map[string]any)["policy-type"] = "dane"
		}},
		{"count a string", func(m map[string]any) {
			m["policies"].([]any)[0].(map[string]any)["summary"].(map[string]any)["total-failure-session-count"] = "3"
		}},
		{"no result-type", func(m map[string]any) {
			delete(m["policies"].([]any)[0].(map[string]any)["failure-details"].([]any)[0].(map[string]any), "result-type")
		}},
	} {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		c.change(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckReport(b); err == nil {
			t.Errorf("%s: passes", c.name)
		}
	}
}

func ExampleNewReport() {
	r := sampleReport()
	for _, p := range r.Policies {
		fmt.Println(p.Policy.Type, p.Summary.Successful, p.Summary.Failed, len(p.FailureDetails))
	}
	// Output:
	// no-policy-found 3 4 1
	// sts 10 3 1
}
