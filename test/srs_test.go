package test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/srs"
)

// TestSRSForwardAndBounce: carol@b.test writes to fwd@a.test, an alias on A of bob@b.test. A
// forwards with the envelope sender rewritten to SRS at a.test, and B, checking SPF on its MX
// (on by default), finds a.test's record allows A: spf=pass for the SRS address. Then carol
// writes to bad@a.test, an alias on A of gone@b.test, which B forwards to a null MX: B bounces
// to the SRS address, and A routes the bounce back to carol. SRS addresses with a forged hash
// or past their age are refused at A's RCPT.
func TestSRSForwardAndBounce(t *testing.T) {
	t.Parallel()
	w := startWorld(t, worldOpts{AConfig: "[addresses]\nsrs_domain = \"a.test\"\n"})
	// A connects to B from 127.0.0.1 (its listeners' addresses are on the MX port only).
	w.DNS.Add(t, `a.test. TXT "v=spf1 ip4:127.0.0.1 -all"`)
	w.A.aliasCmd("add", "fwd@a.test", bobB, "--domain", "a.test")
	w.A.aliasCmd("add", "bad@a.test", "gone@b.test", "--domain", "a.test")
	w.B.aliasCmd("add", "gone@b.test", "x@null.test", "--domain", "b.test")
	if _, err := os.Stat(filepath.Join(w.A.Data, "srs.secret")); !os.IsNotExist(err) {
		t.Fatalf("A has an SRS secret before its first forward (%v)", err)
	}

	send := func(to, tok string) {
		d := ehlod(t, w.A.SMTP, false)
		d.sendMessage(carolB, to, "From: Carol <"+carolB+">\r\nTo: <"+to+">\r\nSubject: "+tok+"\r\n\r\nHello, "+tok+".\r\n")
		d.cmd("QUIT", `221 .*`)
	}
	tok := token(t)
	send("fwd@a.test", tok)
	msg := w.B.WaitMessage(bobB, tok, 20*time.Second)
	srsRE := `SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=b\.test=carol@a\.test`
	m := mustMatch(t, "forwarded message", msg, `\AReturn-Path: <(`+srsRE+`)>\r?\n`)
	srsAddr := m[1]
	mustMatch(t, "forwarded message", msg, `(?m)^Authentication-Results: mx\.b\.test;\r?\n\tspf=pass smtp\.mailfrom="`+regexp.QuoteMeta(srsAddr)+`";`)
	st, err := os.Stat(filepath.Join(w.A.Data, "srs.secret"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("A's SRS secret after the forward: %v, %v; want mode 0600", st, err)
	}

	tok2 := token(t)
	send("bad@a.test", tok2)
	bounce := w.B.WaitMessage(carolB, tok2, 30*time.Second)
	mustMatch(t, "bounce", bounce, `\AReturn-Path: <>\r?\n`)
	mustMatch(t, "bounce", bounce, `(?m)^Content-Type: multipart/report; report-type=delivery-status`)
	mustMatch(t, "bounce", bounce, `(?mi)^Final-Recipient: rfc822; ?x@null\.test\r?$`)
	// A took the bounce for the SRS address and sent it on to carol.
	if len(logLines(w.A, "rcpt", `from=""`, `rcpt="`+srsAddr+`"`, "code=250")) == 0 {
		t.Errorf("A logged no accepted RCPT for the bounce:\n%s", w.A.Log())
	}

	// Forged and expired SRS addresses: refused at RCPT, each with its reason.
	secret, err := os.ReadFile(filepath.Join(w.A.Data, "srs.secret"))
	if err != nil {
		t.Fatal(err)
	}
	old, err := srs.New(srs.Options{Secrets: [][]byte{bytes.TrimSpace(secret)}, Domain: "a.test",
		Now: func() time.Time { return time.Now().Add(-30 * 24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := old.Forward(carolB)
	if err != nil {
		t.Fatal(err)
	}
	forged := []byte(srsAddr)
	// Another digit: still a valid address (a flipped bit could give '[' or '{'),
	// and another hash whatever case the check folds.
	forged[5] = '0'
	if srsAddr[5] == '0' {
		forged[5] = '1'
	}
	d := ehlod(t, w.A.SMTP, false)
	d.cmd("MAIL FROM:<>", `250 2\.1\.0 Ok`)
	d.cmd("RCPT TO:<"+srsAddr+">", `250 2\.1\.5 Ok`)
	d.cmd("RCPT TO:<"+string(forged)+">", `550 5\.1\.1 <`+regexp.QuoteMeta(string(forged))+`>: Recipient address rejected: hash invalid in SRS address`)
	d.cmd("RCPT TO:<"+expired+">", `550 5\.1\.1 <`+regexp.QuoteMeta(expired)+`>: Recipient address rejected: SRS address expired`)
	d.cmd("QUIT", `221 .*`)
	if strings.Contains(w.A.Log(), string(secret)) {
		t.Error("A's log holds the SRS secret")
	}
}
