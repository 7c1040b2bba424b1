package smtpserver

import (
	"strconv"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/metrics"
)

// The cost of the metrics per message: a 5 KB message in one pipelined group, without an
// Observer and with the Prometheus one (package metrics).
func BenchmarkMessageMetrics(b *testing.B) {
	body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 70)+"\r\n", 70)
	group := "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT " + strconv.Itoa(len(body)) + " LAST\r\n" + body
	b.Run("off", func(b *testing.B) { benchmarkPipelinedWith(b, nil, group, 3) })
	b.Run("on", func(b *testing.B) {
		m := metrics.New()
		benchmarkPipelinedWith(b, func(o *Options) { o.Observer = m }, group, 3)
	})
}
