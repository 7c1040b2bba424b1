package smtpserver

import (
	"regexp"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/policy"
)

// loginRcptGiven is a session of an authenticated client up to an accepted recipient.
const loginRcptGiven = `
			S: 220
			C: EHLO c
			S: 250
			C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
			S: 235
			C: MAIL FROM:<kenneth.burgener@example.test>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250`

// Messages of authenticated clients get a missing Date and Message-ID at the end of their
// header section (RFC 6409 §8.2, §8.3), through DATA and BDAT; other messages are stored as
// sent.
func TestAddMissingHeaders(t *testing.T) {
	const (
		login = loginRcptGiven
		date  = `Date: [A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(.+\)\r\n`
		msgID = `Message-ID: <\d{14}\.ABCDEF\d+\.[A-Z2-7]{16}@mx\.example\.test>\r\n`
	)
	for _, tc := range []struct {
		name, transcript string
		want             string // the stored message after the Received header
	}{
		{"data-both-missing", login + `
			C: DATA
			S: 354
			C: Subject: no date
			C: From: <kenneth.burgener@example.test>
			C:
			C: Date: in the body does not count
			C: .
			S: 250 2.0.0 Ok: queued`,
			`Subject: no date\r\nFrom: <kenneth.burgener@example.test>\r\n` + date + msgID + `\r\nDate: in the body does not count\r\n$`},
		{"data-date-present", login + `
			C: DATA
			S: 354
			C: DATE: Sat, 5 Dec 2026 03:34:51 +0000
			C: Subject: folded
			C:  Message-ID: <not@a.field>
			C:
			C: body
			C: .
			S: 250 2.0.0 Ok: queued`,
			`DATE: Sat, 5 Dec 2026 03:34:51 \+0000\r\nSubject: folded\r\n Message-ID: <not@a\.field>\r\n` + msgID + `\r\nbody\r\n$`},
		{"data-both-present", login + `
			C: DATA
			S: 354
			C: Message-Id: <x@y>
			C: Date: Sat, 5 Dec 2026 03:34:51 +0000
			C:
			C: .
			S: 250 2.0.0 Ok: queued`,
			`Message-Id: <x@y>\r\nDate: Sat, 5 Dec 2026 03:34:51 \+0000\r\n\r\n$`},
		{"bdat-no-body-unterminated", login + `
			W: BDAT 10\r\nSubject: a
			S: 250 2.0.0 Ok: 10 octets
			W: BDAT 3 LAST\r\nbcd
			S: 250 2.0.0 Ok: queued`,
			`Subject: abcd\r\n` + date + msgID + `$`},
		{"bdat-header-section-across-chunks", login + `
			W: BDAT 5\r\nX-A: 
			S: 250
			W: BDAT 6\r\nb\r\nDat
			S: 250
			W: BDAT 14 LAST\r\ne: d\r\n\r\nbody\r\n
			S: 250 2.0.0 Ok: queued`,
			`X-A: b\r\nDate: d\r\n` + msgID + `\r\nbody\r\n$`},
		{"mx-anonymous", rcptGiven + `
			C: DATA
			S: 354
			C: Subject: from another server
			C:
			C: body
			C: .
			S: 250 2.0.0 Ok: queued`,
			`Subject: from another server\r\n\r\nbody\r\n$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, func(o *Options) {
				withAuth(nil)(o)
				o.Headers = policy.Headers{AddMissing: true}
			})
			ts.dial(t, RoleMX).run(tc.transcript)
			m := lastMessage(t, ts, 1)
			stored := m.body.String()
			_, after, ok := strings.Cut(stored, "; ")
			_, after, ok2 := strings.Cut(after, "\r\n") // the end of the Received header
			if !ok || !ok2 || !regexp.MustCompile(`^`+tc.want).MatchString(after) {
				t.Fatalf("stored message:\n%q\ndoes not match\n%q", stored, tc.want)
			}
			if m.env.Size != int64(len(stored)) {
				t.Errorf("envelope size %d, stored %d octets", m.env.Size, len(stored))
			}
		})
	}
	t.Run("disabled", func(t *testing.T) {
		ts := newTestServer(t, func(o *Options) {
			withAuth(nil)(o)
			o.Headers = policy.Headers{AddMissing: false}
		})
		ts.dial(t, RoleMX).run(login + `
			C: DATA
			S: 354
			C: Subject: as sent
			C: .
			S: 250 2.0.0 Ok: queued`)
		if stored := lastMessage(t, ts, 1).body.String(); !strings.HasSuffix(stored, "\r\nSubject: as sent\r\n") || strings.Contains(stored, "Message-ID") {
			t.Fatalf("stored message %q", stored)
		}
	})
}
