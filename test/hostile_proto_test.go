package test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The protocol attacks of the hostile-client suite: malformed line ends, smuggling, STARTTLS
// injection, long lines, garbage. See hostile_test.go.

// smtpsmugEndings are the malformed ends of data of the public smtpsmug tool
// (github.com/hannob/smtpsmug, its `tests` table; the tool's eleventh test, "pipelining", is
// attackSmugglingPipelined). A server that took any of them as the end of the data would run the
// smuggled transaction that follows.
var smtpsmugEndings = []struct{ name, end string }{
	{"lflf", "\n.\n"},
	{"crcr", "\r.\r"},
	{"crlf", "\r.\n"},
	{"lfcr", "\n.\r"},
	{"lfcrlf", "\n.\r\n"},
	{"crlflf", "\r\n.\n"},
	{"crcrlf", "\r.\r\n"},
	{"crlfcr", "\r\n.\r"},
	{"nullbefore", "\r\n\x00.\r\n"},
	{"nullafter", "\r\n.\x00\r\n"},
}

// hListener is a listener an attack runs on, and how a client gets to send mail there.
type hListener struct {
	name, addr string
	tls, auth  bool
	from       string // the envelope sender a client may use there
}

func (h *hostile) listeners() []hListener {
	return []hListener{
		{"smtp", h.tn.SMTP, false, false, hOutsider},
		{"submission", h.tn.Submission, false, true, hUser},
		{"submissions", h.tn.Submissions, true, true, hUser},
	}
}

// session is an EHLO'd (and, where mail needs it, authenticated) dialogue on l.
func (h *hostile) session(t testing.TB, l hListener) *dialog {
	t.Helper()
	d := ehlod(t, l.addr, l.tls)
	if l.auth {
		d.authPlain(hUser, hUserPW)
	}
	return d
}

// quit ends a dialogue politely and closes it.
func quit(d *dialog) {
	d.t.Helper()
	d.cmd("QUIT", `221 2\.0\.0 Bye`)
	d.conn.Close()
}

// smuggled is what follows a fake end of data: a whole second transaction to the victim.
func smuggled(tok string) string {
	return "MAIL FROM:<admin@example.test>\r\nRCPT TO:<" + hVictim + ">\r\nDATA\r\n" +
		"Subject: smuggled " + tok + "\r\n\r\nsmuggled body\r\n.\r\n"
}

// attackSmuggling sends every smtpsmug ending, followed by a smuggled transaction, on every
// listener: the data must not end early (one reply, a refusal), the smuggled commands never run,
// and nothing reaches the victim.
func attackSmuggling(a *attackRun) {
	for _, l := range a.h.listeners() {
		for _, e := range smtpsmugEndings {
			a.tries++
			d := a.h.session(a, l)
			tok := token(a.t)
			d.cmd("MAIL FROM:<"+l.from+">", `250 2\.1\.0 Ok`)
			d.cmd("RCPT TO:<"+hInbox+">", `250 2\.1\.5 Ok`)
			d.cmd("DATA", `354 .*`)
			d.write("Subject: outer " + tok + "\r\n\r\nouter body" + e.end + smuggled(tok))
			lines, err := d.reply()
			got := strings.Join(lines, "\n")
			if err != nil {
				a.Fatalf("%s %s: reading the reply to the data: %v (%q)", l.name, e.name, err, got)
			}
			want := `^554 5\.5\.2 Error: bare <(CR|LF)> received in message data`
			if strings.Contains(e.name, "null") {
				want = `^` + replyNULData + `$`
			}
			if !regexp.MustCompile(want).MatchString(got) {
				a.Errorf("%s %s: %q, want %s", l.name, e.name, got, want)
			}
			// Had the server run the smuggled commands, their replies would come now.
			d.cmd("NOOP", `250 2\.0\.0 Ok`)
			d.cmd("RCPT TO:<"+hVictim+">", `503 5\.5\.1 Error: need MAIL command`)
			quit(d)
		}
		attackSmugglingPipelined(a, l)
	}
	a.h.checkNothingSmuggled(a)
}

// attackSmugglingPipelined is smtpsmug's "pipelining" test: a correct end of data, then a second
// transaction, its message sent without waiting for the 354. Postfix 3.9 refuses that
// (smtpd_forbid_unauth_pipelining); tern may take it, since only <CRLF>.<CRLF> ends data there,
// but the first message must end exactly at its end of data, and the second must be its own.
func attackSmugglingPipelined(a *attackRun, l hListener) {
	a.tries++
	d := a.h.session(a, l)
	tok1, tok2 := token(a.t), token(a.t)
	d.cmd("MAIL FROM:<"+l.from+">", `250 2\.1\.0 Ok`)
	d.cmd("RCPT TO:<"+hInbox+">", `250 2\.1\.5 Ok`)
	d.cmd("DATA", `354 .*`)
	d.write("Subject: first " + tok1 + "\r\n\r\nThis is mail 1/2 to test pipelining\r\n.\r\n" +
		"MAIL FROM:<" + l.from + ">\r\nRCPT TO:<" + hInbox + ">\r\nDATA\r\n" +
		"Subject: second " + tok2 + "\r\n\r\nThis is mail 2/2 to test pipelining\r\n.\r\n")
	d.expect(queuedRE)
	a.accept(hInbox, tok1)
	lines, _ := d.reply()
	if first := strings.Join(lines, "\n"); first != "250 2.1.0 Ok" {
		// A refusal of the early data (as Postfix 3.9 does) is as safe.
		if !replyRE.MatchString(first) {
			a.Errorf("%s pipelining: %q after the first message", l.name, first)
		}
		a.note("%s: the early message data got %q", l.name, first)
		d.conn.Close()
		return
	}
	d.expect(`250 2\.1\.5 Ok`)
	d.expect(`354 .*`)
	d.expect(queuedRE)
	a.accept(hInbox, tok2)
	quit(d)
}

// checkNothingSmuggled waits for the queue to empty, then checks that the victim got nothing and
// that no delivered message is a smuggled one (its own Subject), nor holds the text of another.
func (h *hostile) checkNothingSmuggled(a *attackRun) {
	a.Helper()
	h.waitDelivered(a)
	h.waitQueueEmpty(a)
	if msgs := h.tn.Maildir(hVictim); len(msgs) > 0 {
		a.Errorf("the victim got %d smuggled message(s):\n%s", len(msgs), msgs[0])
	}
	for _, m := range h.tn.Maildir(hInbox) {
		subj := header(m, "Subject")
		if strings.HasPrefix(subj, "Subject: smuggled") || strings.HasPrefix(subj, "Subject: first") && strings.Contains(m, "mail 2/2") {
			a.Errorf("a smuggled message was delivered as its own:\n%s", m)
		}
	}
}

// waitQueueEmpty waits until the server's queue is empty.
func (h *hostile) waitQueueEmpty(a *attackRun) {
	a.Helper()
	deadline := time.Now().Add(deliverBound)
	for h.status(a).Queue > 0 {
		if time.Now().After(deadline) {
			a.Fatalf("queue not empty after %v:\n%s", deliverBound, h.tn.QueueList())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The refusals of bare CR, bare LF and NUL (internal/smtpserver: session.lineError, command,
// data.go).
const (
	replyBareLFCommand = `521 5\.5\.2 mx\.example\.test Error: bare <LF> received; lines must end with <CR><LF> \(nc -C adds them\)`
	replyBareCRCommand = `500 5\.5\.2 Error: bare <CR> received`
	replyNULCommand    = `500 5\.5\.2 Error: NUL character received`
	replyNULData       = `554 5\.6\.0 Error: message contains a NUL character; binary content needs BDAT with BODY=BINARYMIME`
)

// attackBare sends bare CR, bare LF and NUL octets in commands, in an AUTH response and in
// message data.
func attackBare(a *attackRun) {
	h := a.h
	mx, sub := h.listeners()[0], h.listeners()[1]

	// Bare LF in a command: the text after the LF must never run as a command (a desync behind
	// a proxy that splits on CRLF), so the session ends with one reply that names the fix.
	for _, line := range []string{"NOOP\nMAIL FROM:<" + hOutsider + ">\r\n", "MAIL FROM:<" + hOutsider + ">\n"} {
		a.tries++
		d := h.session(a, mx)
		d.write(line)
		d.expect(replyBareLFCommand)
		d.expectClosed()
		d.conn.Close()
	}
	// The same in an AUTH response (after a 334).
	a.tries++
	d := ehlod(a, sub.addr, false)
	d.cmd("AUTH PLAIN", `334 ?`)
	d.write(plainIR(hUser, hUserPW) + "\nMAIL FROM:<" + hUser + ">\r\n")
	d.expect(replyBareLFCommand)
	d.expectClosed()
	d.conn.Close()

	// Bare CR in a command, and NUL: that line is refused whole (the MAIL in it never runs), and
	// the session stays in step.
	for _, tc := range []struct{ line, want string }{
		{"NOOP\rMAIL FROM:<" + hOutsider + ">", replyBareCRCommand},
		{"MAIL FROM:<" + hOutsider + ">\r", replyBareCRCommand},
		{"NOOP\x00", replyNULCommand},
		{"MAIL FROM:<al\x00ice@host.example.com>", replyNULCommand},
		{"\x00\x00\x00\x00", replyNULCommand},
	} {
		a.tries++
		d = h.session(a, mx)
		d.send(tc.line)
		d.expect(tc.want)
		d.cmd("RCPT TO:<"+hInbox+">", `503 5\.5\.1 Error: need MAIL command`)
		quit(d)
	}

	// In message data: bare LF and bare CR are refused after the real end of data.
	for _, tc := range []struct{ body, want string }{
		{"line one\nline two\r\n", `554 5\.5\.2 Error: bare <LF> received in message data; lines must end with <CR><LF>`},
		{"line one\rline two\r\n", `554 5\.5\.2 Error: bare <CR> received in message data`},
	} {
		a.tries++
		d = h.session(a, mx)
		d.cmd("MAIL FROM:<"+hOutsider+">", `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<"+hInbox+">", `250 2\.1\.5 Ok`)
		d.cmd("DATA", `354 .*`)
		d.write("Subject: bare\r\n\r\n" + tc.body + ".\r\n")
		d.expect(tc.want)
		d.cmd("NOOP", `250 2\.0\.0 Ok`)
		quit(d)
	}

	// NUL octets in a message: refused (554 5.6.0) with DATA and with BDAT, since a server
	// after us that strips them could see an early end of data; a BODY=BINARYMIME message may
	// carry any octet, and is delivered intact.
	var binTok string
	for _, how := range []string{"DATA", "BDAT", "BDAT BINARYMIME"} {
		a.tries++
		d = h.session(a, mx)
		tok := token(a.t)
		msg := "Subject: " + tok + "\r\n\r\nbefore\x00after\r\n"
		param, want := "", replyNULData
		if how == "BDAT BINARYMIME" {
			param, want = " BODY=BINARYMIME", queuedRE
		}
		d.cmd("MAIL FROM:<"+hOutsider+">"+param, `250 2\.1\.0 Ok`)
		d.cmd("RCPT TO:<"+hInbox+">", `250 2\.1\.5 Ok`)
		if how == "DATA" {
			d.cmd("DATA", `354 .*`)
			d.write(msg + ".\r\n")
		} else {
			d.write(bdat(msg, true))
		}
		d.expect(want)
		if param != "" {
			a.accept(hInbox, tok)
			binTok = tok
		}
		d.cmd("NOOP", `250 2\.0\.0 Ok`)
		quit(d)
	}
	h.waitDelivered(a)
	if !slices.ContainsFunc(h.tn.Maildir(hInbox), func(m string) bool {
		return strings.Contains(m, binTok) && strings.Contains(m, "before\x00after")
	}) {
		a.Errorf("the BINARYMIME message with a NUL octet was not delivered intact")
	}
}

// attackStartTLSInjection pipelines commands after STARTTLS in the same cleartext write, on
// every port that offers STARTTLS (CVE-2011-0411): none of them may run inside TLS.
func attackStartTLSInjection(a *attackRun) {
	for _, l := range a.h.listeners() {
		if l.tls {
			continue // implicit TLS: no STARTTLS
		}
		for _, inject := range []string{
			"MAIL FROM:<" + hOutsider + ">\r\n",
			"EHLO evil.example\r\nAUTH PLAIN " + plainIR(hUser, hUserPW) + "\r\nMAIL FROM:<" + hUser + ">\r\nRCPT TO:<" + hVictim + ">\r\n",
		} {
			a.tries++
			d := ehlod(a, l.addr, false)
			d.write("STARTTLS\r\n" + inject)
			d.expect(`220 2\.0\.0 Ready to start TLS`)
			d.handshake()
			d.cmd("NOOP", `250 2\.0\.0 Ok`) // not a reply to anything injected
			d.cmd("RCPT TO:<"+hVictim+">", `503 5\.5\.1 Error: need MAIL command`)
			d.cmd("MAIL FROM:<"+hUser+">", `503 5\.5\.1 Error: send HELO/EHLO first`)
			sameList(a, "EHLO under TLS on "+l.name, d.ehlo("client.example.com"), ehloKeywordsFor(true, defaultMechs))
			if l.auth {
				d.cmd("MAIL FROM:<"+hUser+">", `530 5\.7\.0 Authentication required`)
			}
			quit(d)
		}
	}
	a.h.checkNothingSmuggled(a)
}

// attackLongLines sends 1 MB lines where a command, a path, an AUTH response and a text line go.
func attackLongLines(a *attackRun) {
	h := a.h
	mx, sub := h.listeners()[0], h.listeners()[1]
	mb := strings.Repeat("a", 1<<20)

	a.tries++
	d := h.session(a, mx)
	d.send("NOOP " + mb)
	d.expect(`500 5\.5\.2 Error: line too long`)
	d.cmd("NOOP", `250 2\.0\.0 Ok`)

	a.tries++
	d.send("MAIL FROM:<" + mb + "@host.example.com>")
	d.expect(`500 5\.5\.2 Error: line too long`)
	d.cmd("RCPT TO:<"+hInbox+">", `503 5\.5\.1 Error: need MAIL command`)

	a.tries++
	d.cmd("MAIL FROM:<"+hOutsider+">", `250 2\.1\.0 Ok`)
	d.cmd("RCPT TO:<"+hInbox+">", `250 2\.1\.5 Ok`)
	d.cmd("DATA", `354 .*`)
	d.write("Subject: long\r\n\r\n" + mb + "\r\n.\r\n")
	d.expect(`554 5\.6\.0 Error: message has a line longer than 1000 octets`)
	d.cmd("NOOP", `250 2\.0\.0 Ok`)
	quit(d)

	a.tries++
	d = ehlod(a, sub.addr, false)
	d.send("AUTH PLAIN " + mb)
	d.expect(`500 5\.5\.2 Error: line too long`)
	d.authPlain(hUser, hUserPW) // neither a failure counted against bob nor a desync
	quit(d)
}

// clientHello returns the first TLS record a Go client sends: its ClientHello.
func clientHello(t testing.TB) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c2.Close()
	go func() {
		defer c1.Close()
		_ = tls.Client(c1, insecureTLS()).Handshake() // only its first record counts
	}()
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c2, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(c2, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// attackClientHello speaks TLS to the cleartext ports: a TLS client must fail cleanly, and a
// ClientHello's octets sent as commands get SMTP replies, never a hang.
func attackClientHello(a *attackRun) {
	hello := clientHello(a)
	for _, l := range a.h.listeners() {
		if l.tls {
			continue
		}
		a.tries++
		c, err := net.DialTimeout("tcp", l.addr, 5*time.Second)
		if err != nil {
			a.Fatal(err)
		}
		tc := tls.Client(c, insecureTLS())
		tc.SetDeadline(time.Now().Add(replyTimeout))
		var rhe tls.RecordHeaderError
		if err := tc.Handshake(); !errors.As(err, &rhe) || !strings.HasPrefix(string(rhe.RecordHeader[:]), "220 m") {
			a.Errorf("%s: a TLS client got %v, want the cleartext greeting as a bad record header", l.name, err)
		}
		c.Close()

		a.tries++
		d := greeted(a, l.addr, false)
		d.write(string(hello) + "\r\nQUIT\r\n")
		for {
			lines, err := d.reply()
			got := strings.Join(lines, "\n")
			if err != nil {
				a.Errorf("%s: after a ClientHello: %v (%q)", l.name, err, got)
				break
			}
			if got == "221 2.0.0 Bye" {
				break
			}
			if !replyRE.MatchString(got) || got[0] != '5' {
				a.Errorf("%s: reply %q to a ClientHello", l.name, got)
			}
			if strings.HasPrefix(got, "521") || strings.HasPrefix(got, "421") {
				d.expectClosed()
				break
			}
		}
		d.conn.Close()
	}
}

// attackGarbage sends 64 KiB of random octets (seeded, so a failure can be rerun) to each port:
// every reply must be a well-formed SMTP reply with an enhanced code, and the server must end
// the session itself (error budget, bare LF, or a failed TLS handshake). Random octets hold a
// bare LF within a few hundred, which ends the session at once; so for seeds 3 to 5 every LF
// gets its CR, and the garbage goes on through the command parser until the error budget.
func attackGarbage(a *attackRun) {
	const size = 64 << 10
	type target struct {
		l    hListener
		seed uint64
	}
	var targets []target
	for seed := uint64(1); seed <= 5; seed++ {
		targets = append(targets, target{a.h.listeners()[0], seed})
	}
	targets = append(targets, target{a.h.listeners()[1], 6}, target{a.h.listeners()[2], 7})
	var seen []string // per seed on the cleartext ports: how many replies, and the last
	for _, tg := range targets {
		a.tries++
		rng := rand.New(rand.NewPCG(tg.seed, 11))
		junk := make([]byte, 0, size+size/128)
		for range size {
			b := byte(rng.Uint32())
			if b == '\n' && tg.seed >= 3 && tg.seed <= 5 && (len(junk) == 0 || junk[len(junk)-1] != '\r') {
				junk = append(junk, '\r')
			}
			junk = append(junk, b)
		}
		p, err := dialPeer("", tg.l.addr, 5*time.Second)
		if err != nil {
			a.Fatal(err)
		}
		if !tg.l.tls {
			p.c.SetReadDeadline(time.Now().Add(replyTimeout))
			if g, err := p.reply(); err != nil || !strings.HasPrefix(g, "220 ") {
				a.Fatalf("%s: greeting %q %v", tg.l.name, g, err)
			}
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			for off := 0; off < len(junk); off += 4096 {
				if _, err := p.c.Write(junk[off:min(off+4096, len(junk))]); err != nil {
					return // the server has hung up
				}
			}
		}()
		p.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		var (
			replies   int
			lastReply string
		)
		for !tg.l.tls {
			l, err := p.r.ReadString('\n')
			if err != nil {
				break
			}
			replies++
			lastReply = strings.TrimSuffix(l, "\r\n")
			if !replyRE.MatchString(lastReply) || l[0] != '5' && l[0] != '4' {
				a.Errorf("%s seed %d: reply %q to garbage", tg.l.name, tg.seed, l)
			}
		}
		last, closed := p.closed(30 * time.Second)
		if !closed {
			a.Errorf("%s seed %d: the server did not end the session (last %q)", tg.l.name, tg.seed, last)
		}
		wg.Wait()
		p.c.Close()
		if !tg.l.tls {
			seen = append(seen, fmt.Sprintf("seed %d on %s: %d replies, the last %.9q", tg.seed, tg.l.name, replies, lastReply))
		}
	}
	a.note("%s; then the server closed", strings.Join(seen, "; "))
}
