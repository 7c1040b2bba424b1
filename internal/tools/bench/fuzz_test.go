package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/smtpclient"
)

// FuzzTrace feeds the command timer whatever a server (or the client) could send, in any
// order: it never panics, and it keeps no more pending commands than were sent.
func FuzzTrace(f *testing.F) {
	for _, seed := range []string{
		"<220 mx ESMTP\n>EHLO bench.invalid\n<250-mx\n<250 PIPELINING\n>MAIL FROM:<a@b>\n>RCPT TO:<c@d>\n>DATA\n<250 ok\n<250 ok\n<354 go\n<250 queued\n>QUIT\n<221 bye",
		">AUTH PLAIN\n<334 \n>***\n<235 ok",
		">DATA\n<354 go\n>.\n<250 ok\n<250 extra\n<",
		"<\n<-\n<2\n<250-\n>\n>.\n>.",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, script string) {
		r := &run{o: Options{Now: time.Now}, cmdLat: map[string]*Histogram{}}
		for _, c := range commandNames {
			r.cmdLat[c] = &Histogram{}
		}
		s := &session{r: r}
		sent := 0
		for _, line := range strings.Split(script, "\n") {
			if line == "" {
				continue
			}
			dir := smtpclient.Received
			if line[0] == '>' {
				dir = smtpclient.Sent
				sent++
			}
			s.trace(dir, false, line[1:])
			if len(s.pending) > sent+1 { // +1: the end of the data, pushed at a 354
				t.Fatalf("%d pending after %d sent", len(s.pending), sent)
			}
		}
	})
}
