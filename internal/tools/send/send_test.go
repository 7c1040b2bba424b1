package send

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/sasl"
)

// creds serves the seeds' account to the real sasl server halves.
type creds struct{ secrets map[string][]byte }

func (c creds) login(l string) (string, error) {
	if l == seedUser || l == seedAccount {
		return seedAccount, nil
	}
	return "", sasl.ErrAuthFailed
}

func (c creds) CheckPassword(_ context.Context, l, pw string) (string, error) {
	a, err := c.login(l)
	if err != nil || pw != seedPassword {
		return "", sasl.ErrAuthFailed
	}
	return a, nil
}

func (c creds) Secret(_ context.Context, l, kind string) (string, []byte, error) {
	a, err := c.login(l)
	if err != nil || c.secrets[kind] == nil {
		return "", nil, sasl.ErrAuthFailed
	}
	return a, c.secrets[kind], nil
}

const allMechs = "PLAIN LOGIN CRAM-MD5 CRAM-SHA1 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-256-PLUS NTLM"

// serveAuth returns a server that offers every mechanism over implicit TLS, runs AUTH with the
// real server half, and then takes the message.
func serveAuth(t *testing.T, cr creds) func(c *fakeConn) {
	return func(c *fakeConn) {
		c.startTLS()
		c.send("220 mx.example.test ESMTP")
		if l, _ := c.line(); !strings.HasPrefix(l, "EHLO ") {
			t.Errorf("want EHLO, got %q", l)
			return
		}
		c.send(ehloLines("AUTH " + allMechs)...)
		line, _ := c.line()
		mech, ir, hasIR := strings.Cut(strings.TrimPrefix(line, "AUTH "), " ")
		st := c.conn.(*tls.Conn).ConnectionState()
		leaf, err := x509.ParseCertificate(c.d.tlsCfg.Certificates[0].Certificate[0])
		if err != nil {
			t.Error(err)
			return
		}
		srv, err := sasl.NewServer(context.Background(), mech, cr, sasl.ServerOptions{
			Hostname: "mx.example.test", Realms: []string{"example.test"}, TLS: &st, Certificate: leaf,
		})
		if err != nil {
			c.send("504 5.5.4 Unrecognized authentication type")
			return
		}
		var resp []byte
		if hasIR {
			resp, _ = base64.StdEncoding.DecodeString(strings.TrimPrefix(ir, "="))
		}
		for {
			ch, done, err := srv.Next(resp)
			if err != nil {
				c.send("535 5.7.8 Error: authentication failed")
				break
			}
			if done {
				c.send("235 2.7.0 Authentication successful")
				break
			}
			c.send("334 " + base64.StdEncoding.EncodeToString(ch))
			l, _ := c.line()
			if l == "*" {
				c.send("501 5.7.0 cancelled")
				break
			}
			resp, _ = base64.StdEncoding.DecodeString(l)
		}
		for {
			l, ok := c.line()
			switch {
			case !ok:
				return
			case l == "DATA":
				c.send("354 go ahead")
				for l != "." {
					if l, ok = c.line(); !ok {
						return
					}
				}
				c.send("250 2.0.0 queued")
			case l == "QUIT":
				c.send("221 2.0.0 Bye")
				return
			default:
				c.send("250 ok")
			}
		}
	}
}

// passwordForms are the ways a password could leak into a transcript: as it is, and base64 of
// it alone and in PLAIN's message (each with the three alignments base64 can give it).
func passwordForms(user, pw string) []string {
	forms := []string{pw, b64(pw), b64("\x00" + user + "\x00" + pw)}
	for _, pad := range []string{"", "x", "xx"} {
		enc := b64(pad + pw)
		// The middle of the encoding that does not depend on what surrounds the password.
		if n := len(enc); n >= 16 { // shorter pieces could turn up in random base64
			forms = append(forms, enc[4:n-4])
		}
	}
	return forms
}

// With every mechanism, right password and wrong, the transcript never shows the password in
// any form, unless --show-secrets; with it, PLAIN and LOGIN show it.
func TestNoPasswordInTranscript(t *testing.T) {
	t.Parallel()
	secrets, err := sasl.Derive(seedAccount, seedPassword, strings.Fields(allMechs))
	if err != nil {
		t.Fatal(err)
	}
	cr := creds{secrets}
	for _, mech := range append(strings.Fields(allMechs), AuthAuto) {
		for _, pw := range []string{seedPassword, "ImBB1999?"} {
			for _, show := range []bool{false, true} {
				name := mech + "/" + pw
				if show {
					name += "/show-secrets"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					cfg, _ := testTLS(t)
					d := &fakeDialer{t: t, tlsCfg: cfg}
					d.run = serveAuth(t, cr)
					var out bytes.Buffer
					code, err := Run(context.Background(), Options{
						Server: "mx.example.test:465", TLS: true, Insecure: true,
						From: seedAccount, To: []string{seedAccount}, Auth: mech, User: seedUser, Password: pw,
						ShowSecrets: show, Dialer: d, Stdout: &out, Timeout: 10 * time.Second,
					})
					if err != nil {
						t.Fatal(err)
					}
					tr := out.String()
					want := ExitDelivered
					if pw != seedPassword {
						want = ExitPermanent
					}
					if code != want {
						t.Fatalf("exit status %d, want %d:\n%s", code, want, tr)
					}
					if mech == AuthAuto && !strings.Contains(tr, " ~> AUTH SCRAM-SHA-256-PLUS ") {
						t.Fatalf("--auth picked another mechanism than SCRAM-SHA-256-PLUS:\n%s", tr)
					}
					if !show {
						for _, f := range passwordForms(seedUser, pw) {
							if strings.Contains(tr, f) {
								t.Fatalf("password form %q in the transcript:\n%s", f, tr)
							}
						}
					} else if (mech == "PLAIN" || mech == "LOGIN") && !strings.Contains(tr, " ## ") ||
						(mech == "PLAIN" || mech == "LOGIN") && !strings.Contains(tr, pw) {
						t.Fatalf("--show-secrets does not show the password:\n%s", tr)
					}
					// Every line the client sent during AUTH is annotated.
					lines := strings.Split(tr, "\n")
					for i, l := range lines {
						if strings.HasPrefix(l, " ~> AUTH ") {
							for j := i; j < len(lines) && !strings.HasPrefix(lines[j], "<~  235") && !strings.HasPrefix(lines[j], "<~  5"); j++ {
								if strings.HasPrefix(lines[j], " ~> ") && j > i && (j+1 == len(lines) || !strings.HasPrefix(lines[j+1], " ## ")) {
									t.Fatalf("line %q has no annotation:\n%s", lines[j], tr)
								}
							}
							break
						}
					}
				})
			}
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	t.Parallel()
	ok := Options{Server: "mx.example.test:25", From: "a@example.org", To: []string{"b@example.test"}}
	tests := []struct {
		name   string
		change func(o *Options)
		err    string // "" for valid
	}{
		{"valid", func(o *Options) {}, ""},
		{"no port is 25", func(o *Options) { o.Server = "mx.example.test" }, ""},
		{"IPv6", func(o *Options) { o.Server = "[::1]:25" }, ""},
		{"null sender", func(o *Options) { o.From = "<>" }, ""},
		{"postmaster", func(o *Options) { o.To = []string{"Postmaster"} }, ""},
		{"no server", func(o *Options) { o.Server = "" }, "--server"},
		{"bad server", func(o *Options) { o.Server = "mx:" }, "--server"},
		{"no from", func(o *Options) { o.From = "" }, "--from"},
		{"bad from", func(o *Options) { o.From = "a@@b" }, "--from"},
		{"no to", func(o *Options) { o.To = nil }, "--to"},
		{"bad to", func(o *Options) { o.To = []string{"b@example.test>\r\nRSET"} }, "--to"},
		{"both TLS", func(o *Options) { o.StartTLS, o.TLS = true, true }, "exclude"},
		{"insecure and ca", func(o *Options) { o.Insecure, o.CAFile = true, "x.pem" }, "exclude"},
		{"data and body", func(o *Options) { o.DataFile, o.Body = "x", "y" }, "exclude"},
		{"quit-after", func(o *Options) { o.QuitAfter = "data" }, "--quit-after"},
		{"header", func(o *Options) { o.Headers = []string{"No colon"} }, "--header"},
		{"header break", func(o *Options) { o.Headers = []string{"X-A: b\r\nBcc: x"} }, "--header"},
		{"unknown mech", func(o *Options) { o.Auth, o.Password = "KERBEROS_V4", "x" }, "unknown mechanism"},
		{"GSSAPI needs no password", func(o *Options) { o.Auth = "gssapi" }, ""},
		{"GSSAPI with a keytab", func(o *Options) { o.Auth, o.Keytab, o.Principal = "GSSAPI", "k", "alice" }, ""},
		{"keytab without principal", func(o *Options) { o.Auth, o.Keytab = "GSSAPI", "k" }, "go together"},
		{"keytab without GSSAPI", func(o *Options) { o.Auth, o.Password, o.Keytab = "SCRAM-SHA-256", "x", "k" }, "are for --auth GSSAPI"},
		{"PLAIN in clear", func(o *Options) { o.Auth, o.Password = "plain", "x" }, "in the clear"},
		{"PLAIN allowed in clear", func(o *Options) { o.Auth, o.Password, o.AllowCleartext = "PLAIN", "x", true }, ""},
		{"PLAIN over STARTTLS", func(o *Options) { o.Auth, o.Password, o.StartTLS = "PLAIN", "x", true }, ""},
		{"PLUS without TLS", func(o *Options) { o.Auth, o.Password = "SCRAM-SHA-256-PLUS", "x" }, "TLS channel"},
		{"no password", func(o *Options) { o.Auth = "CRAM-MD5" }, "password"},
		{"XOAUTH2", func(o *Options) { o.Auth, o.Password = "XOAUTH2", "token" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := ok
			tt.change(&o)
			err := o.check()
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("check: %v, want %q", err, tt.err)
			}
		})
	}
	// Run reports them as ErrUsage, with exit status 2, before connecting.
	code, err := Run(context.Background(), Options{Server: "x:25", From: "a@example.org"})
	if !errors.Is(err, ErrUsage) || code != ExitUsage {
		t.Fatalf("Run: %d, %v", code, err)
	}
	_, err = Run(context.Background(), Options{Server: "x:25", From: "a@example.org", To: []string{"b@x.y"}, DataFile: "/nonexistent"})
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("missing --data file: %v", err)
	}
}

func TestPickMechanism(t *testing.T) {
	t.Parallel()
	all := strings.Fields(allMechs)
	tests := []struct {
		offered        []string
		tls, cleartext bool
		want           string // "" for an error
	}{
		{all, true, false, "SCRAM-SHA-256-PLUS"},
		{all, false, false, "SCRAM-SHA-256"},
		{[]string{"PLAIN", "LOGIN", "CRAM-MD5"}, false, false, "CRAM-MD5"},
		{[]string{"PLAIN", "LOGIN"}, true, false, "PLAIN"},
		{[]string{"LOGIN"}, true, false, "LOGIN"},
		{[]string{"PLAIN", "LOGIN"}, false, false, ""},
		{[]string{"PLAIN", "LOGIN"}, false, true, "PLAIN"},
		{[]string{"SCRAM-SHA-1-PLUS"}, false, false, ""},
		{[]string{"GSSAPI", "XOAUTH2"}, true, false, ""},
		{nil, true, false, ""},
	}
	for _, tt := range tests {
		got, err := pickMechanism(tt.offered, tt.tls, tt.cleartext)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("pickMechanism(%q, tls %v, cleartext %v) = %q, %v; want %q", tt.offered, tt.tls, tt.cleartext, got, err, tt.want)
		}
	}
}

// TestKnownMechanisms: tern send speaks every mechanism sasl has (the one list), and no other.
func TestKnownMechanisms(t *testing.T) {
	t.Parallel()
	var names []string
	for _, m := range sasl.Mechanisms() {
		names = append(names, m.Name)
		if !knownMechanism(m.Name) {
			t.Errorf("tern send does not speak %s", m.Name)
		}
	}
	for _, m := range append(append(slices.Clone(mechanisms), tokenMechanisms...), sasl.GSSAPI) {
		if !slices.Contains(names, m) {
			t.Errorf("tern send has %s, which sasl does not", m)
		}
	}
	if NeedsPassword(sasl.GSSAPI) || NeedsPassword("gssapi") || !NeedsPassword(AuthAuto) || !NeedsPassword("xoauth2") {
		t.Error("NeedsPassword: only GSSAPI takes none")
	}
}

func TestSetHeaders(t *testing.T) {
	t.Parallel()
	msg := "Subject: old\r\n folded\r\nFrom: a@b\r\n\r\nbody\r\n"
	tests := []struct {
		name    string
		msg     string
		headers []string
		want    string
	}{
		{"replace folded", msg, []string{"subject: new"}, "subject: new\r\nFrom: a@b\r\n\r\nbody\r\n"},
		{"add", msg, []string{"X-A: 1"}, "Subject: old\r\n folded\r\nFrom: a@b\r\nX-A: 1\r\n\r\nbody\r\n"},
		{"no header", "\r\nbody\r\n", []string{"X-A: 1"}, "X-A: 1\r\n\r\nbody\r\n"},
		{"no body", "Subject: s\r\n", []string{"X-A: 1"}, "Subject: s\r\nX-A: 1\r\n\r\n"},
		{"none", msg, nil, msg},
	}
	for _, tt := range tests {
		got, err := setHeaders([]byte(tt.msg), tt.headers)
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestReadData(t *testing.T) {
	t.Parallel()
	m, err := readData(strings.NewReader("Subject: x\n\nline\r\nbare CR\rend"), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Subject: x\r\n\r\nline\r\nbare CR\r\nend\r\n"; string(m.text) != want || m.eightBit {
		t.Fatalf("readData: %q %v, want %q", m.text, m.eightBit, want)
	}
	if m, _ := readData(strings.NewReader("Grüße\n"), 1000); !m.eightBit {
		t.Fatal("8-bit text not noticed")
	}
	if _, err := readData(strings.NewReader(strings.Repeat("x", 11)), 10); err == nil {
		t.Fatal("a message over the limit was read")
	}
}

// --data with bare LFs and stuffing, over a scripted server: what arrives is CRLF throughout.
func TestDataFile(t *testing.T) {
	t.Parallel()
	msg := "Subject: bare LF\n\n.leading dot\n..two\nGrüße\n.\nend"
	out, code, d := runScript(t, Options{From: "a@example.org", To: []string{"b@example.test"}, DataFile: "-",
		Stdin: strings.NewReader(msg), Headers: []string{"Subject: replaced"}},
		s("", "220 mx"),
		s("EHLO client.example.com", ehloLines("8BITMIME")...),
		s("MAIL FROM:<a@example.org> BODY=8BITMIME", "250 ok"),
		s("RCPT TO:<b@example.test>", "250 ok"),
		s("DATA", "354 go"),
		s("<data>", "250 ok"),
		s("QUIT", "221 bye"))
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	want := "Subject: replaced\r\n\r\n..leading dot\r\n...two\r\nGrüße\r\n..\r\nend\r\n"
	if !slices.Equal(d.data, []string{want}) {
		t.Fatalf("server got %q, want %q", d.data, want)
	}
}

// Each --quit-after stage ends the session there, with QUIT and status 0.
func TestQuitAfter(t *testing.T) {
	t.Parallel()
	full := []step{
		s("", "220 mx"),
		s("EHLO client.example.com", ehloLines("STARTTLS", "PIPELINING")...),
		s("STARTTLS", "220 go"),
		s("<tls>"),
		s("EHLO client.example.com", ehloLines("AUTH PLAIN", "PIPELINING")...),
		s("AUTH PLAIN "+b64("\x00"+seedUser+"\x00"+seedPassword), "235 ok"),
		s("MAIL FROM:<a@example.org>", "250 ok"),
		s("RCPT TO:<b@example.test>", "250 ok"),
	}
	for _, stage := range stages {
		n := map[string]int{"connect": 1, "ehlo": 2, "tls": 5, "auth": 6, "mail": 7, "rcpt": 8}[stage]
		t.Run(stage, func(t *testing.T) {
			t.Parallel()
			script := append(slices.Clone(full[:n]), s("QUIT", "221 bye"))
			out, code, _ := runScript(t, Options{From: "a@example.org", To: []string{"b@example.test"}, StartTLS: true,
				CAFile: "ca.pem", Auth: "PLAIN", User: seedUser, Password: seedPassword, QuitAfter: stage}, script...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
		})
	}
}

// XOAUTH2 and OAUTHBEARER carry a token where others carry a password: it is masked the same
// way, in the line and in its annotation.
func TestTokenMechanisms(t *testing.T) {
	t.Parallel()
	const token = "ya29.a0AfH6SMBx-token_123"
	for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			out, code, _ := runScript(t, Options{Server: "smtp.example.com:465", TLS: true, Insecure: true,
				From: "user@example.com", To: []string{"b@example.test"}, Auth: mech, Password: token, QuitAfter: "auth"},
				s("<tls>", "220 smtp.example.com ESMTP"),
				s("EHLO client.example.com", ehloLines("AUTH XOAUTH2 OAUTHBEARER")...),
				s("AUTH "+mech+" *", "235 2.7.0 Accepted"),
				s("QUIT", "221 bye"))
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			if strings.Contains(out, token) || !strings.Contains(out, " ~> AUTH "+mech+" ********\n") ||
				!strings.Contains(out, "auth=Bearer ********") || !strings.Contains(out, "user@example.com") {
				t.Fatalf("transcript:\n%s", out)
			}
		})
	}
}
