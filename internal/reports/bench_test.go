package reports

import (
	"testing"

	"github.com/tern-mail/tern/internal/tlsrpt"
)

// BenchmarkRecordDMARC is the cost recording adds to each judged message (a row key and a map
// update under the lock; the store is not touched).
func BenchmarkRecordDMARC(b *testing.B) {
	r := NewRecorder(RecorderOptions{Store: nil})
	ev := evaluation("192.0.2.1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.RecordDMARC(ev)
		}
	})
}

// BenchmarkRecordTLS is the cost recording adds to each outbound TLS session.
func BenchmarkRecordTLS(b *testing.B) {
	r := NewRecorder(RecorderOptions{Store: nil})
	o := tlsrpt.Outcome{PolicyDomain: "b.test", PolicyType: tlsrpt.PolicySTS, Success: true,
		PolicyStrings: []string{"version: STSv1", "mode: enforce", "mx: mx.b.test", "max_age: 86400"}, MXHost: []string{"mx.b.test"}}
	b.ReportAllocs()
	for b.Loop() {
		r.RecordTLS(o)
	}
}
