package smtpserver

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/filter"
)

// benchFilter reads each message and answers with edits (none: it only looks).
type benchFilter struct{ edits []filter.Edit }

func (f benchFilter) Open(context.Context, FilterConn) FilterSession { return f }
func (benchFilter) Connect(context.Context, FilterState) filter.Verdict {
	return filter.Verdict{}
}
func (benchFilter) Helo(context.Context, FilterState) filter.Verdict { return filter.Verdict{} }
func (benchFilter) Mail(context.Context, FilterState) filter.Verdict { return filter.Verdict{} }
func (benchFilter) Rcpt(context.Context, FilterState, string, string) filter.Verdict {
	return filter.Verdict{}
}
func (f benchFilter) Message(_ context.Context, _ FilterState, _ filter.Header, body io.Reader) filter.Verdict {
	if _, err := io.Copy(io.Discard, body); err != nil {
		panic(err)
	}
	return filter.Verdict{Edits: f.edits}
}
func (benchFilter) Abort(context.Context) {}
func (benchFilter) Close()                {}

// What a content filter costs the session per 5 KB message, the filter itself answering at
// once: none; one that reads the message back from the spool (what every filter costs); one
// that adds a header field (the message written again to a new spool message).
func BenchmarkFilter5KB(b *testing.B) {
	body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 70)+"\r\n", 70)
	group := "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT " + strconv.Itoa(len(body)) + " LAST\r\n" + body
	with := func(fs ...Filter) func(*Options) { return func(o *Options) { o.Filters = fs } }
	b.Run("none", func(b *testing.B) { benchmarkPipelinedWith(b, nil, group, 3) })
	b.Run("reads", func(b *testing.B) { benchmarkPipelinedWith(b, with(benchFilter{}), group, 3) })
	b.Run("adds-a-field", func(b *testing.B) {
		ts := benchmarkPipelinedWith(b, with(benchFilter{edits: []filter.Edit{{Kind: filter.AddHeader, Name: "X-Spam-Status", Value: "No"}}}), group, 3)
		if msgs := ts.spool.messages(); !strings.Contains(msgs[len(msgs)-1].body.String(), "X-Spam-Status: No\r\n") {
			b.Fatal("the field was not added")
		}
	})
}
