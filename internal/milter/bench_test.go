package milter

import (
	"bufio"
	"context"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/filter"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// A whole milter session per message (connect, HELO, MAIL, RCPT, a 5 KB message, QUIT) against
// a go-milter milter on loopback that accepts everything: what one milter costs a message
// besides its own work.
func BenchmarkMilterSession5KB(b *testing.B) {
	addr, _ := startMilter(b, nil)
	f := testFilter(addr, true)
	msg := "Subject: bench\r\nFrom: a@example.org\r\n\r\n" + strings.Repeat(strings.Repeat("x", 70)+"\r\n", 70)
	ctx := context.Background()
	st := smtpserver.FilterState{Helo: "c", From: "a@example.org", Rcpts: []string{"b@example.test"}, QueueID: "Q"}
	b.ResetTimer()
	for range b.N {
		fs := f.Open(ctx, testConn)
		fs.Connect(ctx, st)
		fs.Helo(ctx, st)
		fs.Mail(ctx, st)
		fs.Rcpt(ctx, st, "b@example.test", "")
		h, body, _ := filter.ReadHeader(bufio.NewReader(strings.NewReader(msg)))
		if v := fs.Message(ctx, st, h, body); v.Refused() {
			b.Fatal("refused")
		}
		fs.Close()
	}
}
