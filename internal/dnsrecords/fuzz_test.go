package dnsrecords

import (
	"context"
	"testing"
)

// FuzzCheckTXT: whatever TXT records DNS serves, every kind of record gets a status, and never
// a crash.
func FuzzCheckTXT(f *testing.F) {
	for _, s := range []string{"v=spf1", "v=spf1 +mx -all", "v=DMARC1; p", "v=DKIM1; p=;;=", "v=STSv1;id", "v=TLSRPTv1; rua=mailto:", "", ";", "="} {
		f.Add(s, s)
	}
	s := testSet()
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, rec := range s.Records {
			if rec.Text == "" {
				continue
			}
			switch st, _ := checkTXT(context.Background(), rec, []string{a, b}, s.Params, nil); st {
			case OK, Missing, Differs, Failed:
			default:
				t.Fatalf("%s: status %q", rec.Kind, st)
			}
		}
	})
}
