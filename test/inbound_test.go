package test

import (
	"regexp"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/testutil"
)

// TestInboundAuthenticationResults: a message signed by dkimpy (dkimsign), sent from an address
// its domain's SPF record allows, arrives with one Authentication-Results field with tern's
// authserv-id, spf=pass and dkim=pass; the forged field with tern's id that it carried is gone,
// another server's is kept. A DNS server that does not answer gives spf=temperror, recorded,
// or with inbound.temperror = "defer" answered 451 4.4.3.
func TestInboundAuthenticationResults(t *testing.T) {
	t.Parallel()
	dkimsign := needTool(t, "dkimsign")
	txt, keyFile := dkimpyKey(t)
	z := testutil.StartDNS(t, `sender.test. TXT "v=spf1 ip4:127.0.0.1 -all"`)
	z.Add(t, dkim.RecordName("sel", "sender.test")+". 300 IN TXT "+dkim.ZoneStrings(txt))
	z.Drop("down.test")

	msg := "Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=forged@example.test\r\n" +
		"Authentication-Results: other.example; dkim=pass header.d=sender.test\r\n" +
		"From: <alice@sender.test>\r\nTo: <bob@example.test>\r\nSubject: judged\r\n" +
		"Message-ID: <inbound.1@sender.test>\r\n\r\nhello inbound\r\n"
	signed := dkimpySign(t, dkimsign, keyFile, "sender.test", msg)

	send := func(tn *Tern, from, data, want string) {
		t.Helper()
		d := dial(t, tn.SMTP)
		d.expect(`220 .*`)
		d.ehlo("client.sender.test")
		d.cmd("MAIL FROM:<"+from+">", `250 .*`)
		d.cmd("RCPT TO:<bob@example.test>", `250 .*`)
		d.cmd("DATA", `354 .*`)
		d.write(data + ".\r\n")
		d.expect(want)
		d.cmd("QUIT", `221 .*`)
	}

	tn := startTern(t, ternOpts{Config: "[inbound]\nspf_dkim = true\n", ServeArgs: []string{"--resolver", z.Addr}})
	tn.AddUser("bob@example.test", "inbound-pw-1")
	send(tn, "alice@sender.test", signed, `250 .*`)
	got := tn.WaitMessage("bob@example.test", "hello inbound", 10*time.Second)
	ar := regexp.MustCompile(`(?m)^Authentication-Results:`).FindAllStringIndex(got, -1)
	if len(ar) != 2 {
		t.Fatalf("%d Authentication-Results fields, want ours and other.example's:\n%s", len(ar), got)
	}
	mustMatch(t, "delivered message", got, `^Authentication-Results: mx\.example\.test;\r?\n\tspf=pass smtp\.mailfrom=alice@sender\.test;\r?\n\tdkim=pass header\.d=sender\.test header\.s=sel header\.b=`)
	mustMatch(t, "delivered message", got, `(?m)^Authentication-Results: other\.example; dkim=pass`)
	mustNotMatch(t, "delivered message", got, `forged@example\.test`)

	// A DNS server that does not answer: temperror, recorded by default...
	send(tn, "carol@down.test", "Subject: silent dns\r\n\r\nx\r\n", `250 .*`)
	got = tn.WaitMessage("bob@example.test", "silent dns", 20*time.Second)
	mustMatch(t, "delivered message", got, `^Authentication-Results: mx\.example\.test;\r?\n\tspf=temperror smtp\.mailfrom=carol@down\.test;\r?\n\tdkim=none;\r?\n\tdmarc=permerror\r?\n`)

	// ... and answered 451 when asked.
	tn2 := startTern(t, ternOpts{Config: "[inbound]\nspf_dkim = true\ntemperror = \"defer\"\n", ServeArgs: []string{"--resolver", z.Addr}})
	tn2.AddUser("bob@example.test", "inbound-pw-1")
	send(tn2, "carol@down.test", "Subject: x\r\n\r\nx\r\n", `451 4\.4\.3 .*`)
	tn2.ExpectNoMail("bob@example.test", 0)
}

// TestInboundChecksOnByDefault: tern on its defaults checks mail from other servers. Without a
// DNS server to ask (the harness's resolver refuses every query), swaks's message is accepted
// at once with spf=temperror (and dmarc=temperror) recorded; with inbound.spf_dkim = false it gets no field.
func TestInboundChecksOnByDefault(t *testing.T) {
	t.Parallel()
	swaks := needTool(t, "swaks")
	for _, tc := range []struct {
		name, config string
		want         string // a regexp on the delivered message; "" for no field
	}{
		{"default", "", `^Authentication-Results: mx\.example\.test;\r?\n\tspf=temperror smtp\.mailfrom=alice@sender\.test;\r?\n\tdkim=none;\r?\n\tdmarc=temperror header\.from=sender\.test\r?\n`},
		{"off", "[inbound]\nspf_dkim = false\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tn := startTern(t, ternOpts{Config: tc.config})
			tn.AddUser("bob@example.test", "inbound-pw-2")
			token := "checks-" + tc.name
			out, errOut, code := runTool(t, 60*time.Second, "", swaks, "--server", tn.SMTP, "--helo", "client.sender.test",
				"--from", "alice@sender.test", "--to", "bob@example.test", "--header", "Subject: "+token)
			if code != 0 {
				t.Fatalf("swaks: exit %d\n%s\n%s", code, out, errOut)
			}
			got := tn.WaitMessage("bob@example.test", token, 10*time.Second)
			if tc.want == "" {
				mustNotMatch(t, "delivered message", got, `(?m)^Authentication-Results:`)
				return
			}
			mustMatch(t, "delivered message", got, tc.want)
		})
	}
}
