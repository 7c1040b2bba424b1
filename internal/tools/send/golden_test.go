package send

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata")

// The seeds' account and password.
const (
	seedUser     = "kenneth.burgener"
	seedAccount  = "kenneth.burgener@example.test"
	seedPassword = "ImBB1999!"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// seedTime is the Date of the seeds' message.
var seedTime = time.Date(2010, 4, 12, 14, 21, 26, 0, time.FixedZone("", -4*3600))

// zeros is a reader of zero octets, for a reproducible Message-Id.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// runScript runs tern send with o against a scripted server and returns the transcript and the
// exit status.
func runScript(t *testing.T, o Options, script ...step) (string, int, *fakeDialer) {
	t.Helper()
	cfg, caFile := testTLS(t)
	d := &fakeDialer{t: t, script: script, tlsCfg: cfg}
	var out bytes.Buffer
	if o.Server == "" {
		o.Server = "mx.example.test:587"
	}
	if o.CAFile == "ca.pem" {
		o.CAFile = caFile
	}
	o.Dialer, o.Stdout = d, &out
	o.Now, o.Rand, o.Hostname = func() time.Time { return seedTime }, zeros{}, "client.example.com"
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	code, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return strings.ReplaceAll(out.String(), caFile, "ca.pem"), code, d
}

// golden compares a transcript (and its exit status) with testdata/name.golden.
func golden(t *testing.T, name, transcript string, code int) {
	t.Helper()
	testutil.Golden(t, *update, name, fmt.Sprintf("%s[exit %d]\n", transcript, code))
}

var ehloTLS = ehloLines("PIPELINING", "SIZE 10240000", "STARTTLS", "ENHANCEDSTATUSCODES", "8BITMIME")

// The transcript format, end to end, against scripted servers.
func TestGolden(t *testing.T) {
	t.Parallel()
	greeting := s("", "220 mx.example.test ESMTP tern")
	quit := s("QUIT", "221 2.0.0 Bye")
	tests := []struct {
		name   string
		opts   Options
		script []step
		code   int
		data   []string // the messages the server must receive
	}{
		{
			// The seeds' AUTH LOGIN session, over STARTTLS with --ca, pipelined.
			name: "01-starttls-login-pipeline",
			opts: Options{From: seedAccount, To: []string{"kenneth@oeey.com"}, StartTLS: true, CAFile: "ca.pem",
				Auth: "LOGIN", User: seedUser, Password: seedPassword, Pipeline: true,
				Headers: []string{"Subject: This is a test"}},
			script: []step{greeting,
				s("EHLO client.example.com", ehloTLS...),
				s("STARTTLS", "220 2.0.0 Ready to start TLS"),
				s("<tls>"),
				s("EHLO client.example.com", ehloLines("PIPELINING", "SIZE 10240000", "AUTH PLAIN LOGIN CRAM-MD5", "ENHANCEDSTATUSCODES", "8BITMIME")...),
				s("AUTH LOGIN", "334 VXNlcm5hbWU6"),
				s(b64(seedUser), "334 UGFzc3dvcmQ6"),
				s(b64(seedPassword), "235 2.7.0 Authentication successful"),
				s("MAIL FROM:<kenneth.burgener@example.test> SIZE=*"),
				s("RCPT TO:<kenneth@oeey.com>"),
				s("DATA", "250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"),
				s("<data>", "250 2.0.0 Ok: queued as 8E2FD52095"),
				quit,
			},
		},
		{
			// AUTH PLAIN over implicit TLS, not verified: the password masked in both lines.
			name: "02-tls-plain-insecure",
			opts: Options{Server: "mx.example.test:465", From: seedAccount, To: []string{seedAccount}, TLS: true, Insecure: true,
				Auth: "PLAIN", User: seedUser, Password: seedPassword, Body: "Hi there!\nHave a good day!"},
			script: []step{s("<tls>", "220 mx.example.test ESMTP tern"),
				s("EHLO client.example.com", ehloLines("AUTH PLAIN LOGIN", "8BITMIME")...),
				s("AUTH PLAIN "+b64("\x00"+seedUser+"\x00"+seedPassword), "235 2.7.0 Authentication successful"),
				s("MAIL FROM:<kenneth.burgener@example.test>", "250 2.1.0 Ok"),
				s("RCPT TO:<kenneth.burgener@example.test>", "250 2.1.5 Ok"),
				s("DATA", "354 End data with <CR><LF>.<CR><LF>"),
				s("<data>", "250 2.0.0 Ok: queued as 660F486E8652F"),
				quit,
			},
		},
		{
			// One recipient refused, pipelined: the message goes to the other; exit 5.
			name: "03-rcpt-refused",
			opts: Options{Server: "mx.example.test:25", From: "alice@geek.com", To: []string{"bob@example.test", "nobody@example.test"}, Pipeline: true},
			script: []step{greeting,
				s("EHLO client.example.com", ehloLines("PIPELINING", "ENHANCEDSTATUSCODES")...),
				s("MAIL FROM:<alice@geek.com>"), s("RCPT TO:<bob@example.test>"), s("RCPT TO:<nobody@example.test>"),
				s("DATA", "250 2.1.0 Ok", "250 2.1.5 Ok",
					"550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown",
					"354 End data with <CR><LF>.<CR><LF>"),
				s("<data>", "250 2.0.0 Ok: queued as 4F2A"),
				quit,
			},
			code: ExitPermanent,
		},
		{
			// A temporary refusal of MAIL: exit 4, and no RCPT.
			name: "04-mail-tempfail",
			opts: Options{Server: "mx.example.test:25", From: "alice@geek.com", To: []string{"bob@example.test"}},
			script: []step{greeting,
				s("EHLO client.example.com", ehloLines("ENHANCEDSTATUSCODES")...),
				s("MAIL FROM:<alice@geek.com>", "451 4.3.0 Error: queue file write error"),
				quit,
			},
			code: ExitTemporary,
		},
		{
			// A wrong password with CRAM-MD5 (the seeds' challenge): 535, exit 5.
			name: "05-cram-md5-failed",
			opts: Options{From: seedAccount, To: []string{seedAccount}, Auth: "CRAM-MD5", User: seedUser, Password: "ImBB1999?"},
			script: []step{greeting,
				s("EHLO client.example.com", ehloLines("AUTH CRAM-MD5 PLAIN")...),
				s("AUTH CRAM-MD5", "334 PDIwMTM3LjEyNjc1ODUxMDBAaW5kaW1haWwub3JnPg=="),
				s("*", "535 5.7.8 Error: authentication failed"),
				quit,
			},
			code: ExitPermanent,
		},
		{
			// A greeting that refuses service: exit 5, no QUIT.
			name:   "06-greeting-554",
			opts:   Options{From: "a@example.org", To: []string{"b@example.test"}},
			script: []step{s("", "554 5.3.2 mx.example.test: no service for you")},
			code:   ExitPermanent,
		},
		{
			// --quit-after rcpt: the envelope only, pipelined, then QUIT.
			name: "07-quit-after-rcpt",
			opts: Options{From: "a@example.org", To: []string{"b@example.test", "c@example.test"}, Pipeline: true, QuitAfter: "rcpt"},
			script: []step{greeting,
				s("EHLO client.example.com", ehloLines("PIPELINING", "SIZE 1000000")...),
				s("MAIL FROM:<a@example.org> SIZE=*"), s("RCPT TO:<b@example.test>"),
				s("RCPT TO:<c@example.test>", "250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok"),
				quit,
			},
		},
		{
			// A UTF-8 body and Subject for a server without 8BITMIME: quoted-printable and an
			// encoded word, no BODY=.
			name: "08-utf8-quoted-printable",
			opts: Options{From: "a@example.org", To: []string{"b@example.test"}, Body: "Grüße aus Köln.\n.\nEnde.",
				Headers: []string{"Subject: Grüße", "X-Test: yes"}},
			script: []step{greeting,
				s("EHLO client.example.com", ehloLines("SIZE")...),
				s("MAIL FROM:<a@example.org> SIZE=*", "250 ok"),
				s("RCPT TO:<b@example.test>", "250 ok"),
				s("DATA", "354 go ahead"),
				s("<data>", "250 ok"),
				quit,
			},
		},
		{
			// The same body with 8BITMIME: sent 8bit with BODY=8BITMIME.
			name: "09-utf8-8bitmime",
			opts: Options{From: "a@example.org", To: []string{"b@example.test"}, Body: "Grüße aus Köln."},
			script: []step{greeting,
				s("EHLO client.example.com", ehloLines("8BITMIME")...),
				s("MAIL FROM:<a@example.org> BODY=8BITMIME", "250 ok"),
				s("RCPT TO:<b@example.test>", "250 ok"),
				s("DATA", "354 go ahead"),
				s("<data>", "250 ok"),
				quit,
			},
		},
		{
			// An untrusted certificate: exit 3, and no QUIT over a failed handshake.
			name: "10-untrusted-certificate",
			opts: Options{From: "a@example.org", To: []string{"b@example.test"}, StartTLS: true},
			script: []step{greeting,
				s("EHLO client.example.com", ehloTLS...),
				s("STARTTLS", "220 2.0.0 Ready to start TLS"),
				s("<tls>"),
			},
			code: ExitFailed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, code, _ := runScript(t, tt.opts, tt.script...)
			if code != tt.code {
				t.Errorf("exit status %d, want %d", code, tt.code)
			}
			if !tt.opts.ShowSecrets && strings.Contains(out, seedPassword) || strings.Contains(out, b64(seedPassword)) {
				t.Errorf("the password is in the transcript:\n%s", out)
			}
			golden(t, tt.name, out, code)
		})
	}
}
