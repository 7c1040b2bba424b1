package test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dialog is a raw SMTP conversation on loopback that reads like a transcript: send a line,
// expect a reply matching a pattern. Every line both ways is logged (shown on failure).
type dialog struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	// TLS is the connection state once TLS is up.
	TLS *tls.ConnectionState
}

// replyTimeout bounds each wait for a reply.
const replyTimeout = 10 * time.Second

// insecureTLS trusts the server's self-signed certificate; the tests check TLS happened, not
// who signed the certificate.
func insecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: testHostname}
}

// dial connects to addr; the connection is closed when the test ends.
func dial(t testing.TB, addr string) *dialog {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &dialog{t: t, conn: c, r: bufio.NewReader(c)}
}

// dialTLS connects to an implicit-TLS port.
func dialTLS(t testing.TB, addr string) *dialog {
	t.Helper()
	d := dial(t, addr)
	tc := tls.Client(d.conn, insecureTLS())
	tc.SetDeadline(time.Now().Add(replyTimeout))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	tc.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	d.conn, d.r, d.TLS = tc, bufio.NewReader(tc), &cs
	return d
}

// greeted dials addr (implicit TLS when tlsOn) and reads the 220 greeting.
func greeted(t testing.TB, addr string, tlsOn bool) *dialog {
	t.Helper()
	var d *dialog
	if tlsOn {
		d = dialTLS(t, addr)
	} else {
		d = dial(t, addr)
	}
	d.expect(`220 mx\.example\.test ESMTP tern`)
	return d
}

// ehlod is greeted plus a successful EHLO.
func ehlod(t testing.TB, addr string, tlsOn bool) *dialog {
	t.Helper()
	d := greeted(t, addr, tlsOn)
	d.ehlo("client.example.com")
	return d
}

// write sends raw octets.
func (d *dialog) write(s string) {
	d.t.Helper()
	if len(s) > 300 {
		d.t.Logf("C: %q... (%d octets)", s[:300], len(s))
	} else {
		d.t.Logf("C: %q", s)
	}
	d.conn.SetWriteDeadline(time.Now().Add(replyTimeout))
	if _, err := io.WriteString(d.conn, s); err != nil {
		d.t.Fatalf("write: %v", err)
	}
}

// send sends one command line (CRLF added).
func (d *dialog) send(line string) {
	d.t.Helper()
	d.write(line + "\r\n")
}

// reply reads one whole (possibly multi-line) reply and returns its lines without CRLF.
func (d *dialog) reply() ([]string, error) {
	d.t.Helper()
	d.conn.SetReadDeadline(time.Now().Add(replyTimeout))
	var lines []string
	for {
		l, err := d.r.ReadString('\n')
		if err != nil {
			if l != "" {
				lines = append(lines, l)
			}
			return lines, err
		}
		if !strings.HasSuffix(l, "\r\n") {
			return append(lines, l), errors.New("reply line without CRLF")
		}
		l = strings.TrimSuffix(l, "\r\n")
		d.t.Logf("S: %s", l)
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return lines, nil
		}
	}
}

// expect reads one reply and fails unless its text (lines joined by "\n") matches re entirely.
func (d *dialog) expect(re string) string {
	d.t.Helper()
	lines, err := d.reply()
	text := strings.Join(lines, "\n")
	if err != nil {
		d.t.Fatalf("reading reply (want %q): %v; got %q", re, err, text)
	}
	if !regexp.MustCompile(`^(?:` + re + `)$`).MatchString(text) {
		d.t.Fatalf("reply %q does not match %q", text, re)
	}
	return text
}

// cmd sends a line and expects a reply matching re.
func (d *dialog) cmd(line, re string) string {
	d.t.Helper()
	d.send(line)
	return d.expect(re)
}

// ehlo sends EHLO and returns the extension keywords (lines after the first).
func (d *dialog) ehlo(name string) []string {
	d.t.Helper()
	d.send("EHLO " + name)
	lines, err := d.reply()
	if err != nil || len(lines) == 0 {
		d.t.Fatalf("EHLO: %v %q", err, lines)
	}
	for i, l := range lines {
		want := "250-"
		if i == len(lines)-1 {
			want = "250 "
		}
		if !strings.HasPrefix(l, want) {
			d.t.Fatalf("EHLO reply line %d %q does not start with %q", i, l, want)
		}
		lines[i] = l[4:]
	}
	if lines[0] != testHostname {
		d.t.Fatalf("EHLO greets as %q, want %q", lines[0], testHostname)
	}
	return lines[1:]
}

// startTLS runs STARTTLS and the handshake; the caller must EHLO again.
func (d *dialog) startTLS() {
	d.t.Helper()
	d.cmd("STARTTLS", `220 2\.0\.0 Ready to start TLS`)
	d.handshake()
}

func (d *dialog) handshake() {
	d.t.Helper()
	if d.r.Buffered() > 0 {
		d.t.Fatalf("server sent %d octets after its 220 to STARTTLS", d.r.Buffered())
	}
	tc := tls.Client(d.conn, insecureTLS())
	tc.SetDeadline(time.Now().Add(replyTimeout))
	if err := tc.Handshake(); err != nil {
		d.t.Fatalf("TLS handshake after STARTTLS: %v", err)
	}
	tc.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	d.conn, d.r, d.TLS = tc, bufio.NewReader(tc), &cs
	d.t.Logf("-- TLS up: version %s, cipher %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
}

// peerCert is the server's leaf certificate (TLS must be up).
func (d *dialog) peerCert() *x509.Certificate {
	d.t.Helper()
	if d.TLS == nil || len(d.TLS.PeerCertificates) == 0 {
		d.t.Fatal("no TLS peer certificate")
	}
	return d.TLS.PeerCertificates[0]
}

// expectClosed fails unless the server closes the connection without sending anything more.
func (d *dialog) expectClosed() {
	d.t.Helper()
	d.conn.SetReadDeadline(time.Now().Add(replyTimeout))
	b, err := d.r.ReadByte()
	if err == nil {
		rest, _ := d.r.Peek(d.r.Buffered())
		d.t.Fatalf("server sent %q, want the connection closed", string(b)+string(rest))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		d.t.Fatalf("server did not close the connection within %v", replyTimeout)
	}
	d.t.Logf("-- closed by server (%v)", err)
}

// sendMessage runs MAIL, RCPT, DATA with the given message text (CRLF line ends, no final
// dot) and returns the queued-as reply.
func (d *dialog) sendMessage(from, to, text string) string {
	d.t.Helper()
	d.cmd("MAIL FROM:<"+from+">", `250 2\.1\.0 Ok`)
	d.cmd("RCPT TO:<"+to+">", `250 2\.1\.5 Ok`)
	d.cmd("DATA", `354 End data with <CR><LF>\.<CR><LF>`)
	d.write(text + ".\r\n")
	return d.expect(queuedRE)
}

// bdat is a BDAT command with its chunk.
func bdat(chunk string, last bool) string {
	cmd := "BDAT " + strconv.Itoa(len(chunk))
	if last {
		cmd += " LAST"
	}
	return cmd + "\r\n" + chunk
}

// queueID extracts the id from a "queued as" reply.
func queueID(t testing.TB, reply string) string {
	t.Helper()
	return mustMatch(t, "queued reply", reply, `queued as ([0-9A-F]+)`)[1]
}

// defaultMechs are the SASL mechanisms tern offers by default, in its order; the -PLUS ones
// (channel binding) only once TLS is up.
const defaultMechs = "PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-1 SCRAM-SHA-1-PLUS"

// allMechs are those `--auth-mechanisms all` offers.
const allMechs = defaultMechs + " CRAM-MD5 CRAM-SHA1 DIGEST-MD5 NTLM"

// withoutPlus drops the -PLUS mechanisms from a space-separated list, as tern does without TLS.
func withoutPlus(mechs string) string {
	var out []string
	for _, m := range strings.Fields(mechs) {
		if !strings.HasSuffix(m, "-PLUS") {
			out = append(out, m)
		}
	}
	return strings.Join(out, " ")
}

// ehloKeywordsFor is what tern offers (with the default limits) to a loopback client:
// STARTTLS until TLS is up, and AUTH, in both spellings, with mechs (space-separated, in tern's
// order; "" when AUTH is not offered: after AUTH, or where the connection is not secure enough).
// Loopback counts as secure enough for AUTH by default; the -PLUS mechanisms need TLS.
func ehloKeywordsFor(tlsOn bool, mechs string) []string {
	kw := []string{"PIPELINING", "SIZE 10240000", "VRFY", "ETRN"}
	if !tlsOn {
		kw = append(kw, "STARTTLS")
		mechs = withoutPlus(mechs)
	}
	if mechs != "" {
		kw = append(kw, "AUTH "+mechs, "AUTH="+mechs)
	}
	if tlsOn {
		kw = append(kw, "REQUIRETLS") // RFC 8689: only once TLS is up
	}
	return append(kw, "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING", "BINARYMIME", "LIMITS RCPTMAX=1000")
}

// plainIR is the base64 initial response of AUTH PLAIN (RFC 4616) with an empty authzid.
func plainIR(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
}

// authPlain authenticates with AUTH PLAIN and its initial response.
func (d *dialog) authPlain(user, password string) {
	d.t.Helper()
	d.cmd("AUTH PLAIN "+plainIR(user, password), `235 2\.7\.0 Authentication successful`)
}

func sameList(t testing.TB, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// TestDialogs runs the raw-socket dialogues: what no real client does by itself.
func TestDialogs(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{})
	for _, u := range []string{"bob", "carol", "dave", "erin"} {
		tn.AddUser(u+"@example.test", "pw-"+u)
	}

	t.Run("EHLO keywords", func(t *testing.T) {
		sameList(t, "smtp", ehlod(t, tn.SMTP, false).ehlo("a.example.com"), ehloKeywordsFor(false, defaultMechs))
		sameList(t, "submission", ehlod(t, tn.Submission, false).ehlo("a.example.com"), ehloKeywordsFor(false, defaultMechs))
		sameList(t, "submissions (implicit TLS)", greeted(t, tn.Submissions, true).ehlo("a.example.com"), ehloKeywordsFor(true, defaultMechs))
		for _, addr := range []string{tn.SMTP, tn.Submission} {
			d := ehlod(t, addr, false)
			d.startTLS()
			sameList(t, "after STARTTLS on "+addr, d.ehlo("a.example.com"), ehloKeywordsFor(true, defaultMechs))
			// Once authenticated, AUTH is no longer offered (RFC 4954 §4: AUTH is refused then).
			d.authPlain("bob@example.test", "pw-bob")
			sameList(t, "after AUTH on "+addr, d.ehlo("a.example.com"), ehloKeywordsFor(true, ""))
		}
	})

	t.Run("HELO and sequence errors", func(t *testing.T) {
		d := greeted(t, tn.SMTP, false)
		d.cmd("MAIL FROM:<alice@host.example.com>", `503 5\.5\.1 Error: send HELO/EHLO first`)
		d.cmd("HELO host.example.com", `250 mx\.example\.test`)
		d.cmd("RCPT TO:<bob@example.test>", `503 5\.5\.1 Error: need MAIL command`)
		d.cmd("MAIL FROM:<alice@host.example.com>", `250 2\.1\.0 Ok`)
		d.cmd("MAIL FROM:<alice@host.example.com>", `503 5\.5\.1 Error: nested MAIL command`)
		d.cmd("DATA", `503 5\.5\.1 Error: need RCPT command`)
		d.cmd("RSET", `250 2\.0\.0 Ok`)
		d.cmd("XYZZY", `500 5\.5\.2 Error: command not recognized`)
		d.cmd("VRFY bob@example.test", `252 2\.0\.0 .+`)
		d.cmd("VRFY nobody@example.test", `252 2\.0\.0 .+`) // never tells which accounts exist
		d.cmd("EXPN staff", `502 5\.5\.1 Error: command not implemented`)
		d.cmd("TURN", `502 5\.5\.1 Error: command not implemented`)
		d.cmd("ETRN remote.test", `459 4\.7\.1 Node remote\.test not allowed: ETRN requires authentication`)
		d.cmd("ETRN example.test", `459 4\.7\.1 Node example\.test not allowed: mail for it is delivered here`)
		help := d.cmd("HELP", `(214-2\.0\.0 .*\n)*214 2\.0\.0 .*`)
		mustMatch(t, "HELP", help, `STARTTLS`)
		d.cmd("NOOP", `250 2\.0\.0 Ok`)
		d.cmd("QUIT", `221 2\.0\.0 Bye`)
		d.expectClosed()
	})

	// RFC 5321 §4.5.1: postmaster works in every local domain, with no account behind it.
	t.Run("Postmaster", func(t *testing.T) {
		d := ehlod(t, tn.SMTP, false)
		tok := token(t)
		d.cmd("MAIL FROM:<alice@host.example.com>", `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<Postmaster>", `250 2\.1\.5 Ok`)
		d.cmd("DATA", `354 .*`)
		d.write("Subject: " + tok + "\r\n\r\nfor the postmaster\r\n.\r\n")
		d.expect(queuedRE)
		d.sendMessage("alice@host.example.com", "POSTMASTER@example.test", "Subject: "+tok+"-2\r\n\r\nagain\r\n")
		tn.WaitMessage("postmaster@example.test", tok+"\n", 10*time.Second)
		tn.WaitMessage("postmaster@example.test", tok+"-2", 10*time.Second)
	})

	t.Run("HTTP request is refused", func(t *testing.T) {
		d := greeted(t, tn.SMTP, false)
		d.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		d.expect(`421 4\.7\.0 mx\.example\.test Error: HTTP is not SMTP, closing`)
		d.expectClosed()
	})

	t.Run("BDAT two chunks", func(t *testing.T) {
		d := ehlod(t, tn.SMTP, false)
		d.cmd("MAIL FROM:<alice@host.example.com>", `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<carol@example.test>", `250 2\.1\.5 Ok`)
		c1 := "Subject: bdat test\r\n\r\nfirst half of a li"
		c2 := "ne\r\nsecond line\r\n"
		d.write(bdat(c1, false))
		d.expect(`250 2\.0\.0 Ok: ` + strconv.Itoa(len(c1)) + ` octets received`)
		d.write(bdat(c2, true))
		id := queueID(t, d.expect(queuedRE))
		// A pipelined chunked message: everything in one write.
		c3 := "Subject: second\r\n\r\nh\xc3\xa9\r\n"
		d.write("MAIL FROM:<alice@host.example.com> BODY=8BITMIME\r\nRCPT TO:<carol@example.test>\r\n" +
			bdat(c3, false) + bdat("", true))
		d.expect(`250 2\.1\.0 Ok`)
		d.expect(`250 2\.1\.5 Ok`)
		d.expect(`250 2\.0\.0 Ok: ` + strconv.Itoa(len(c3)) + ` octets received`)
		d.expect(queuedRE)
		d.cmd("QUIT", `221 2\.0\.0 Bye`)

		// Deliveries run in parallel, so the Maildir order is not the order of arrival.
		msgs := tn.WaitMaildir("carol@example.test", 2, 10*time.Second)
		if strings.Contains(msgs[0], "Subject: second\n") {
			msgs[0], msgs[1] = msgs[1], msgs[0]
		}
		mustMatch(t, "Received", header(msgs[0], "Received"), `with ESMTP id `+id+`\b`)
		if got := body(msgs[0]); got != "first half of a line\nsecond line\n" {
			t.Fatalf("body of the chunked message: %q", got)
		}
		if got := body(msgs[1]); got != "h\xc3\xa9\n" {
			t.Fatalf("body of the pipelined chunked message: %q", got)
		}
	})

	t.Run("BDAT message without a final CRLF", func(t *testing.T) {
		d := ehlod(t, tn.SMTP, false)
		d.cmd("MAIL FROM:<alice@host.example.com>", `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<bob@example.test>", `250 2\.1\.5 Ok`)
		tok := token(t)
		d.write(bdat("Subject: "+tok+"\r\n\r\nno line end at the end", true))
		d.expect(queuedRE)
		msg := tn.WaitMessage("bob@example.test", tok, 10*time.Second)
		if got := body(msg); got != "no line end at the end\n" { // completed, as RFC 5322 §2.3 wants
			t.Fatalf("body %q", got)
		}
	})

	t.Run("BODY=BINARYMIME", func(t *testing.T) {
		d := ehlod(t, tn.SMTP, false)
		d.cmd("MAIL FROM:<alice@host.example.com> BODY=BINARYMIME", `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<dave@example.test>", `250 2\.1\.5 Ok`)
		d.cmd("DATA", `503 5\.5\.1 Error: BODY=BINARYMIME requires BDAT`)
		bin := "Subject: binary\r\n\r\n\x00\x01\x02\xfe\xff bare\nLF and a NUL\x00 end"
		d.write(bdat(bin, true))
		d.expect(queuedRE)
		d.cmd("QUIT", `221 2\.0\.0 Bye`)
		msg := tn.WaitMaildir("dave@example.test", 1, 10*time.Second)[0]
		if !strings.Contains(msg, "\x00\x01\x02\xfe\xff bare\nLF and a NUL\x00 end") {
			t.Fatalf("binary body not delivered intact: %q", msg)
		}
	})

	// SMTP smuggling (SEC Consult, 2023): an end-of-data a lenient server would accept, followed
	// by a second, smuggled transaction. tern must see one message, refuse it for the bare line
	// end, and never run the smuggled commands.
	for _, tc := range []struct{ name, fakeEnd, want string }{
		{`LF.LF`, "\n.\n", `554 5\.5\.2 Error: bare <LF> received in message data; lines must end with <CR><LF>`},
		{`CRLF.CR`, "\r\n.\r", `554 5\.5\.2 Error: bare <CR> received in message data`},
		{`LF.CRLF`, "\n.\r\n", `554 5\.5\.2 Error: bare <LF> received in message data; lines must end with <CR><LF>`},
		{`CRLF.LF`, "\r\n.\n", `554 5\.5\.2 Error: bare <LF> received in message data; lines must end with <CR><LF>`},
		{`CR.CRLF`, "\r.\r\n", `554 5\.5\.2 Error: bare <CR> received in message data`},
	} {
		t.Run("smuggling "+tc.name, func(t *testing.T) {
			before := len(tn.Maildir("erin@example.test"))
			d := ehlod(t, tn.SMTP, false)
			d.cmd("MAIL FROM:<alice@host.example.com>", `250 2\.1\.0 Ok`)
			d.cmd("RCPT TO:<erin@example.test>", `250 2\.1\.5 Ok`)
			d.cmd("DATA", `354 .*`)
			d.write("Subject: outer\r\n\r\nouter body" + tc.fakeEnd +
				"MAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n" +
				"Subject: smuggled\r\n\r\nsmuggled body\r\n.\r\n")
			d.expect(tc.want)
			// Had the server run the smuggled commands, their replies would come first.
			d.cmd("NOOP", `250 2\.0\.0 Ok`)
			d.cmd("RCPT TO:<bob@example.test>", `503 5\.5\.1 Error: need MAIL command`)
			d.cmd("QUIT", `221 2\.0\.0 Bye`)
			d.expectClosed()
			tn.ExpectNoMail("erin@example.test", before)
			for _, m := range tn.Maildir("bob@example.test") {
				mustNotMatch(t, "bob's mail", m, `smuggled`)
			}
		})
	}

	// STARTTLS command injection (CVE-2011-0411): commands pipelined after STARTTLS in the
	// same cleartext write must not be run inside the TLS session.
	t.Run("STARTTLS injection", func(t *testing.T) {
		d := ehlod(t, tn.SMTP, false)
		d.write("STARTTLS\r\nMAIL FROM:<x@y>\r\n")
		d.expect(`220 2\.0\.0 Ready to start TLS`)
		d.handshake()
		d.cmd("NOOP", `250 2\.0\.0 Ok`) // not a reply to the injected MAIL
		d.cmd("MAIL FROM:<alice@host.example.com>", `503 5\.5\.1 Error: send HELO/EHLO first`)
		sameList(t, "EHLO under TLS", d.ehlo("client.example.com"), ehloKeywordsFor(true, defaultMechs))
		d.cmd("STARTTLS", `503 5\.5\.1 Error: TLS already active`)
		d.cmd("QUIT", `221 2\.0\.0 Bye`)
	})

	// The same on submission, where the injected commands include a whole authentication: had
	// it run inside TLS, the session would be authenticated with credentials an attacker in the
	// middle chose, and could send as bob.
	t.Run("STARTTLS injection with EHLO and AUTH", func(t *testing.T) {
		d := ehlod(t, tn.Submission, false)
		d.write("STARTTLS\r\nEHLO evil.example\r\nAUTH PLAIN " + plainIR("bob@example.test", "pw-bob") + "\r\nMAIL FROM:<bob@example.test>\r\n")
		d.expect(`220 2\.0\.0 Ready to start TLS`)
		d.handshake()
		// Had the injected EHLO, AUTH and MAIL run, this RCPT would be accepted.
		d.cmd("RCPT TO:<bob@example.test>", `503 5\.5\.1 Error: need MAIL command`)
		d.cmd("MAIL FROM:<bob@example.test>", `503 5\.5\.1 Error: send HELO/EHLO first`)
		// Had the injected AUTH run, AUTH would no longer be offered, and MAIL would be accepted.
		sameList(t, "EHLO under TLS", d.ehlo("client.example.com"), ehloKeywordsFor(true, defaultMechs))
		d.cmd("MAIL FROM:<bob@example.test>", `530 5\.7\.0 Authentication required`)
		d.authPlain("bob@example.test", "pw-bob")
		d.cmd("MAIL FROM:<bob@example.test>", `250 2\.1\.0 Ok`)
	})

	t.Run("STARTTLS on the implicit TLS port", func(t *testing.T) {
		d := ehlod(t, tn.Submissions, true)
		d.cmd("STARTTLS", `503 5\.5\.1 Error: TLS already active`)
		d.authPlain("carol@example.test", "pw-carol")
		id := queueID(t, d.sendMessage("carol@example.test", "bob@example.test", "Subject: implicit\r\n\r\nhi\r\n"))
		d.cmd("QUIT", `221 2\.0\.0 Bye`)
		found := tn.WaitMessage("bob@example.test", " id "+id+"\n", 10*time.Second)
		mustMatch(t, "Received", header(found, "Received"),
			`^Received: from client\.example\.com \(\[127\.0\.0\.1\]\)\n\t\(using TLSv1\.3 with cipher TLS_[A-Z0-9_]+ \(\d+/\d+ bits\)\)\n\tby mx\.example\.test \(tern\) with ESMTPSA id `+id+`\n\tfor <bob@example\.test>; `)
	})
}

// TestETRN checks ETRN (RFC 1985): mail queued for a remote domain is made due at once, with
// the RFC's replies; a local domain is not a node anyone may ask for; only authenticated
// clients may ask (tern is nobody's backup MX), three times at once and then one more every
// 20 seconds.
func TestETRN(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{Config: "[queue]\nmin_backoff = \"1h\"\n"})
	tn.AddUser("bob@example.test", "pw")
	d := ehlod(t, tn.SMTP, false)
	d.cmd("ETRN example.test", `459 4\.7\.1 Node example\.test not allowed: mail for it is delivered here`)
	d.cmd("ETRN remote.test", `459 4\.7\.1 Node remote\.test not allowed: ETRN requires authentication`)
	d.cmd("ETRN", `501 5\.5\.4 Syntax: ETRN \[@\|#\]domain`)
	d.cmd("ETRN [127.0.0.1]", `501 5\.5\.4 .+`)
	// An authenticated client relays to remote.test; without remote delivery set up the message
	// waits an hour for its next attempt.
	d.authPlain("bob@example.test", "pw")
	d.sendMessage("bob@example.test", "someone@sub.remote.test", "Subject: held for ETRN\r\n\r\nhi\r\n")
	waitFor(t, 10*time.Second, "the failed attempt", func() bool { return strings.Contains(tn.QueueList(), "(451 ") })
	d.cmd("ETRN remote.test", `251 2\.0\.0 OK, no messages waiting for node remote\.test`) // not the subdomain
	d.cmd("ETRN @remote.test", `252 2\.0\.0 OK, pending messages for node @remote\.test started`)
	waitFor(t, 10*time.Second, "the flushed attempt", func() bool {
		return strings.Count(tn.Log(), `msg="delivery deferred"`) >= 2
	})
	d.cmd("ETRN #sub.remote.test", `25[12] 2\.0\.0 .+`)
	d.cmd("ETRN remote.test", `458 4\.7\.0 Unable to queue messages for node remote\.test: too many ETRN requests, try again later`)
	d.cmd("QUIT", `221 2\.0\.0 Bye`)
	syncLog(t, tn) // the log is a pipe: the 458's line may still be in it
	mustMatch(t, "log", tn.Log(), `level=INFO msg="etrn refused" .*remote=127\.0\.0\.1 .*node=remote\.test code=459 `)
	mustMatch(t, "log", tn.Log(), `level=INFO msg="etrn refused" .*remote=127\.0\.0\.1 .*node=remote\.test code=458 `)
}

// TestLargeMessage sends messages larger than the queue keeps inline (1 MiB), with DATA and
// with BDAT, and checks they arrive octet for octet.
func TestLargeMessage(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{})
	tn.AddUser("bob@example.test", "pw")
	var b strings.Builder
	for i := 0; b.Len() < 3<<20; i++ {
		fmt.Fprintf(&b, "%07d %s\r\n", i, strings.Repeat("0123456789abcdef", 4))
	}
	lines := b.String()
	want := strings.ReplaceAll(lines, "\r\n", "\n")

	d := ehlod(t, tn.SMTP, false)
	tokData, tokBdat := token(t)+"-data", token(t)+"-bdat"
	d.sendMessage("alice@host.example.com", "bob@example.test", "Subject: "+tokData+"\r\n\r\n"+lines)
	d.cmd("MAIL FROM:<alice@host.example.com> BODY=8BITMIME", `250 2\.1\.0 Ok`)
	d.cmd("RCPT TO:<bob@example.test>", `250 2\.1\.5 Ok`)
	msg := "Subject: " + tokBdat + "\r\n\r\n" + lines
	const chunk = 1 << 20
	for len(msg) > chunk {
		d.write(bdat(msg[:chunk], false))
		d.expect(`250 2\.0\.0 Ok: 1048576 octets received`)
		msg = msg[chunk:]
	}
	d.write(bdat(msg, true))
	d.expect(queuedRE)
	d.cmd("QUIT", `221 2\.0\.0 Bye`)
	for _, tok := range []string{tokData, tokBdat} {
		m := tn.WaitMessage("bob@example.test", tok, 20*time.Second)
		if got := body(m); got != want {
			t.Fatalf("%s: body of %d octets differs from the %d sent", tok, len(got), len(want))
		}
	}
}

// TestIPv6 runs the MX listener on ::1: the session works and the Received header carries the
// client's address as an IPv6 literal (RFC 5321 §4.1.3).
func TestIPv6(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		missingTool(t, "IPv6 loopback (::1)", err)
	}
	ln.Close()
	tn := startTern(t, ternOpts{SMTPListen: "[::1]:0"})
	if !strings.HasPrefix(tn.SMTP, "[::1]:") {
		t.Fatalf("smtp listener on %s, want [::1]", tn.SMTP)
	}
	tn.AddUser("bob@example.test", "pw")
	d := ehlod(t, tn.SMTP, false)
	id := queueID(t, d.sendMessage("alice@host.example.com", "bob@example.test", "Subject: over IPv6\r\n\r\nhi\r\n"))
	d.cmd("QUIT", `221 2\.0\.0 Bye`)
	msg := tn.WaitMaildir("bob@example.test", 1, 10*time.Second)[0]
	mustMatch(t, "Received", header(msg, "Received"), `^Received: from client\.example\.com \(\[IPv6:::1\]\)\n\tby mx\.example\.test \(tern\) with ESMTP id `+id+`\n`)
}
