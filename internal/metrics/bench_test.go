package metrics

import (
	"testing"

	"github.com/tern-mail/tern/internal/smtp"
)

// What the metrics add to a session that sends one message: its connection, session and
// acceptance (smtpserver's BenchmarkMessageMetrics measures it inside a real session).
func BenchmarkSessionEvents(b *testing.B) {
	m := New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Connected("smtp")
			m.SessionStarted("smtp")
			m.Accepted("smtp", 5000)
			m.SessionEnded("smtp")
		}
	})
}

// A rejection looks its series up by label values each time.
func BenchmarkRejected(b *testing.B) {
	m := New()
	r := smtp.R(550, "7.1", "no")
	b.ReportAllocs()
	for b.Loop() {
		m.Rejected("smtp", r)
	}
}
