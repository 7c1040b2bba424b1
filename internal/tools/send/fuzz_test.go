package send

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/smtpclient"
)

// FuzzTranscript feeds the transcript whatever lines a session may have (the server's are the
// hostile ones: challenges it makes up, NTLM messages with bad offsets): it never panics, and
// without --show-secrets the password never appears.
func FuzzTranscript(f *testing.F) {
	for _, s := range []string{
		"AUTH LOGIN\n<334 VXNlcm5hbWU6\na2VubmV0aC5idXJnZW5lcg==\n<334 UGFzc3dvcmQ6\nSW1CQjE5OTkh\n<235 ok",
		"AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh\n<235 ok",
		"AUTH PLAIN\n<334 \nAGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh\n<535 no",
		"AUTH NTLM\n<334 \nTlRMTVNTUAABAAAAB4IIAAAAAAAgAAAAAAAAACAAAAA=\n<334 TlRMTVNTUAACAAAA\nTlRMTVNTUAADAAAAGAAYAEAAAAA=\n<235 ok",
		"AUTH X\n<334 !!!\n*\n<501 cancelled",
		"MAIL FROM:<a@b>\n<250 ok",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, script string) {
		var out bytes.Buffer
		tr := &transcript{w: &out, password: seedPassword}
		for i, line := range strings.Split(script, "\n") {
			if l, ok := strings.CutPrefix(line, "<"); ok {
				tr.trace(smtpclient.Received, i%2 == 0, l)
			} else {
				tr.trace(smtpclient.Sent, i%2 == 0, line)
			}
		}
		// No annotation shows the password, whatever it decodes. (Raw lines are the client's
		// own, masked during AUTH: TestNoPasswordInTranscript checks them on real exchanges.)
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, prefixAnnot) && strings.Contains(l, seedPassword) {
				t.Fatalf("the password in %q", l)
			}
		}
	})
}
