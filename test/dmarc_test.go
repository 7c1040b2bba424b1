package test

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/testutil"
)

// dmarcZone is the DNS data of the DMARC tests: every sending domain lets 127.0.0.1 send (SPF),
// dkim.test and esp.test publish the key of selector "sel", and the _dmarc records are what
// each case needs.
var dmarcZone = []string{
	`_dmarc.spf.test. TXT "v=DMARC1; p=reject"`,
	`_dmarc.dkim.test. TXT "v=DMARC1; p=reject"`,
	`_dmarc.reject.test. TXT "v=DMARC1; p=reject; rua=mailto:dmarc@reject.test"`,
	`_dmarc.quarantine.test. TXT "v=DMARC1; p=quarantine"`,
	`_dmarc.pct0.test. TXT "v=DMARC1; p=quarantine; pct=0"`,
	`_dmarc.pct0reject.test. TXT "v=DMARC1; p=reject; pct=0"`,
	`_dmarc.org.test. TXT "v=DMARC1; p=none; sp=reject"`,
	`_dmarc.relaxed.test. TXT "v=DMARC1; p=reject"`,
	`_dmarc.strict.test. TXT "v=DMARC1; p=reject; aspf=s"`,
}

// dkimpyKey makes an RSA key for dkimsign: the TXT value of its record and its PEM file.
func dkimpyKey(t *testing.T) (txt, keyFile string) {
	t.Helper()
	key, _, err := dkim.GenerateKey(dkim.RSA)
	if err != nil {
		t.Fatal(err)
	}
	if txt, err = dkim.TXTValue(key); err != nil {
		t.Fatal(err)
	}
	return txt, writeFile(t, "rsa.pem",
		string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))})))
}

// dkimpySign signs msg with dkimpy's dkimsign for domain, selector "sel", and returns it with
// CRLF line ends.
func dkimpySign(t *testing.T, dkimsign, keyFile, domain, msg string) string {
	t.Helper()
	out, errOut, code := runTool(t, 30*time.Second, msg, dkimsign, "sel", domain, keyFile)
	if code != 0 {
		t.Fatalf("dkimsign: exit %d: %s", code, errOut)
	}
	return strings.ReplaceAll(strings.ReplaceAll(out, "\r\n", "\n"), "\n", "\r\n")
}

// spfAll lets 127.0.0.1 send for each domain.
func spfAll(domains ...string) []string {
	var rrs []string
	for _, d := range domains {
		rrs = append(rrs, d+`. TXT "v=spf1 ip4:127.0.0.1 -all"`)
	}
	return rrs
}

// junk returns the messages in the Junk folder (Maildir++ .Junk) of addr's mailbox.
func junk(t *testing.T, tn *Tern, addr string) []string {
	t.Helper()
	return readMessages(t, filepath.Join(filepath.Dir(tn.MaildirNew(addr)), ".Junk", "new"))
}

// TestInboundDMARC runs DMARC through the real binary with spf_dkim on: an aligned pass by SPF
// and by a DKIM signature of dkimpy's, a misaligned failure refused (550 5.7.1) under p=reject,
// p=quarantine delivered into the mailbox's Junk folder, pct=0 taking the policy one step down
// (RFC 7489 §6.6.4), sp= for a subdomain with the record found only at its organisational
// domain, relaxed against strict SPF alignment; every delivered message has exactly one
// Authentication-Results field, ours, with the forged one it carried removed.
func TestInboundDMARC(t *testing.T) {
	t.Parallel()
	dkimsign := needTool(t, "dkimsign")
	txt, keyFile := dkimpyKey(t)
	z := testutil.StartDNS(t, append(dmarcZone, spfAll("spf.test", "esp.test", "mail.relaxed.test", "mail.strict.test")...)...)
	for _, d := range []string{"dkim.test", "esp.test"} {
		z.Add(t, dkim.RecordName("sel", d)+". 300 IN TXT "+dkim.ZoneStrings(txt))
	}
	sign := func(domain, msg string) string { return dkimpySign(t, dkimsign, keyFile, domain, msg) }
	tn := startTern(t, ternOpts{Config: "[inbound]\nspf_dkim = true\n", ServeArgs: []string{"--resolver", z.Addr}})
	tn.AddUser("bob@example.test", "dmarc-pw-1")

	forged := "Authentication-Results: mx.example.test; dmarc=pass header.from=reject.test\r\n"
	msg := func(from, token string) string {
		return forged + "From: <" + from + ">\r\nTo: <bob@example.test>\r\nSubject: " + token + "\r\n" +
			"Message-ID: <" + token + "@dmarc.test>\r\n\r\n" + token + "\r\n"
	}
	const (
		inbox = iota
		junkFolder
		refused
	)
	for _, tc := range []struct {
		name, mailFrom, data string // name is the message's Subject and Message-ID
		where                int
		ar                   string // what our field says of DMARC
	}{
		{"aligned-spf", "alice@spf.test", msg("alice@spf.test", "aligned-spf"), inbox,
			`dmarc=pass \(p=reject dis=none\) header\.from=spf\.test`},
		{"aligned-dkim", "bounce@esp.test", sign("dkim.test", msg("news@dkim.test", "aligned-dkim")), inbox,
			`dkim=pass header\.d=dkim\.test .*;\r?\n\tdmarc=pass \(p=reject dis=none\) header\.from=dkim\.test`},
		{"misaligned-reject", "bounce@esp.test", sign("esp.test", msg("ceo@reject.test", "misaligned-reject")), refused, ""},
		{"quarantine", "bounce@esp.test", msg("a@quarantine.test", "quarantine"), junkFolder,
			`dmarc=fail \(p=quarantine dis=quarantine\) header\.from=quarantine\.test`},
		{"pct0-quarantine", "bounce@esp.test", msg("a@pct0.test", "pct0-quarantine"), inbox,
			`dmarc=fail \(p=quarantine dis=none\) header\.from=pct0\.test`},
		{"pct0-reject", "bounce@esp.test", msg("a@pct0reject.test", "pct0-reject"), junkFolder,
			`dmarc=fail \(p=reject dis=quarantine\) header\.from=pct0reject\.test`},
		{"org-domain-p", "bounce@esp.test", msg("a@org.test", "org-domain-p"), inbox,
			`dmarc=fail \(p=none dis=none\) header\.from=org\.test`},
		{"org-domain-sp", "bounce@esp.test", msg("a@deep.sub.org.test", "org-domain-sp"), refused, ""},
		{"relaxed", "x@mail.relaxed.test", msg("a@relaxed.test", "relaxed"), inbox,
			`spf=pass smtp\.mailfrom=x@mail\.relaxed\.test;\r?\n\tdkim=none;\r?\n\tdmarc=pass \(p=reject dis=none\) header\.from=relaxed\.test`},
		{"strict", "x@mail.strict.test", msg("a@strict.test", "strict"), refused, ""},
	} {
		d := dial(t, tn.SMTP)
		d.expect(`220 .*`)
		d.ehlo("client.esp.test")
		d.cmd("MAIL FROM:<"+tc.mailFrom+">", `250 .*`)
		d.cmd("RCPT TO:<bob@example.test>", `250 .*`)
		d.cmd("DATA", `354 .*`)
		d.write(tc.data + ".\r\n")
		if tc.where == refused {
			d.expect(`550 5\.7\.1 Message rejected by the DMARC policy of [a-z.]+: neither SPF nor DKIM passed for an aligned domain`)
		} else {
			d.expect(`250 .*`)
		}
		d.cmd("QUIT", `221 .*`)
		if tc.where == refused {
			continue
		}
		var got string
		if tc.where == inbox {
			got = tn.WaitMessage("bob@example.test", "Subject: "+tc.name+"\n", 10*time.Second)
		} else {
			tn.WaitQueueEmpty(10 * time.Second)
			for _, m := range junk(t, tn, "bob@example.test") {
				if strings.Contains(m, "Message-ID: <"+tc.name+"@") {
					got = m
				}
			}
			if got == "" {
				t.Fatalf("%s: not in the Junk folder", tc.name)
			}
		}
		if n := len(regexp.MustCompile(`(?m)^Authentication-Results:`).FindAllString(got, -1)); n != 1 {
			t.Errorf("%s: %d Authentication-Results fields, want ours only:\n%s", tc.name, n, got)
		}
		mustMatch(t, tc.name, got, `^Authentication-Results: mx\.example\.test;\r?\n\tspf=`)
		mustMatch(t, tc.name, got, tc.ar)
		mustNotMatch(t, tc.name, got, `header\.from=reject\.test`)
	}
	// What went to Junk did not go to the inbox, and nothing refused arrived anywhere.
	tn.ExpectNoMail("bob@example.test", 5)
	if n := len(junk(t, tn, "bob@example.test")); n != 2 {
		t.Errorf("%d messages in Junk, want 2", n)
	}
}

// TestInboundDMARCLMTP: over LMTP, where tern cannot pick a folder, a message DMARC quarantines
// reaches Dovecot with X-Spam-Flag: YES on top of tern's Authentication-Results field, and the
// usual Sieve rule (scripts/dovecot-lmtp.sh LMTP_SIEVE_JUNK=1) files it into Junk; a message
// that passes stays in the INBOX, unflagged.
func TestInboundDMARCLMTP(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sievec"); err != nil {
		testutil.MissingPeer(t, "sievec (dovecot-sieve) not installed: run scripts/test-deps.sh")
	}
	script, err := filepath.Abs(filepath.Join("..", "scripts", "dovecot-lmtp.sh"))
	if err != nil {
		t.Fatal(err)
	}
	dv := &dovecotPeer{testutil.StartDovecot(t, script, "bob@example.test", "LMTP_SIEVE_JUNK=1")}
	z := testutil.StartDNS(t, append(dmarcZone, spfAll("spf.test", "esp.test")...)...)
	tn := startTern(t, ternOpts{Config: fmt.Sprintf("[inbound]\nspf_dkim = true\n[delivery]\nlmtp = %q\n", dv.Addr),
		ServeArgs: []string{"--resolver", z.Addr}})
	tn.AddUser("bob@example.test", "dmarc-pw-1")
	for _, m := range []struct{ mailFrom, from, subject string }{
		{"bounce@esp.test", "a@quarantine.test", "lmtp-quarantined"},
		{"alice@spf.test", "alice@spf.test", "lmtp-passed"},
	} {
		d := dial(t, tn.SMTP)
		d.expect(`220 .*`)
		d.ehlo("client.esp.test")
		d.cmd("MAIL FROM:<"+m.mailFrom+">", `250 .*`)
		d.cmd("RCPT TO:<bob@example.test>", `250 .*`)
		d.cmd("DATA", `354 .*`)
		d.write("From: <" + m.from + ">\r\nSubject: " + m.subject + "\r\n\r\nhi\r\n.\r\n")
		d.expect(`250 .*`)
		d.cmd("QUIT", `221 .*`)
	}
	tn.WaitQueueEmpty(15 * time.Second)
	fetch := func(mailbox string) string {
		out, errOut, code := runTool(t, 30*time.Second, "", dv.Doveadm, "-c", dv.Conf, "fetch", "-u", "bob@example.test", "text", "mailbox", mailbox, "all")
		if code != 0 {
			t.Fatalf("doveadm fetch %s: status %d: %s", mailbox, code, errOut)
		}
		return out
	}
	junkBox, inbox := fetch("Junk"), fetch("INBOX")
	mustMatch(t, "Junk", junkBox, `\nX-Spam-Flag: YES\nAuthentication-Results: mx\.example\.test;\n(?:\t.*\n)*\tdmarc=fail \(p=quarantine dis=quarantine\) header\.from=quarantine\.test\n`)
	mustNotMatch(t, "Junk", junkBox, `lmtp-passed`)
	mustMatch(t, "INBOX", inbox, `Subject: lmtp-passed`)
	mustNotMatch(t, "INBOX", inbox, `lmtp-quarantined|X-Spam-Flag`)
	// Dovecot's Junk is the folder tern's own Maildir delivery quarantines into.
	if msgs := readMessages(t, filepath.Join(dv.Dir, "mail", "example.test", "bob", "Maildir", ".Junk", "new")); len(msgs) != 1 {
		t.Errorf("%d messages in Dovecot's Maildir/.Junk/new, want 1", len(msgs))
	}
}
