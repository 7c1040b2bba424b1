package test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestConnectionReserve floods the server from ten loopback addresses, each opening as many
// connections as connections_per_ip allows and holding them, and then checks that a newcomer
// is still served, on the MX port and on submission: the last 20% of the slots are kept for
// clients holding fewer than connections_per_ip_busy, and their second half for submission.
// At a tenth of the defaults: connections 100, 10 per address, 2 per address once 20 or fewer
// are free.
func TestConnectionReserve(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{Config: "[limits]\nconnections = 100\nconnections_per_ip = 10\nconnections_reserved_percent = 20\nconnections_per_ip_busy = 2\n"})
	tn.AddUser("bob@example.test", "pw")

	held := map[string]int{}
	for i := range 10 {
		ip := fmt.Sprintf("127.0.0.%d", 10+i)
		for range 10 {
			d := dialFrom(t, ip, tn.SMTP)
			first := d.expect(`(220 mx\.example\.test ESMTP tern|421 4\.7\.0 Server busy: too many connections from ` + strings.ReplaceAll(ip, ".", `\.`) + `, try again later)`)
			if strings.HasPrefix(first, "421") {
				d.expectClosed()
				continue
			}
			held[ip]++ // held open until the test ends
		}
	}
	// Eight addresses take their ten; then the server is busy, and the last two get two each.
	total := 0
	for i := range 10 {
		ip := fmt.Sprintf("127.0.0.%d", 10+i)
		want := 10
		if i >= 8 {
			want = 2
		}
		if held[ip] != want {
			t.Errorf("%s holds %d connections, want %d", ip, held[ip], want)
		}
		total += held[ip]
	}
	t.Logf("the flood holds %d of 100 connections", total)

	// A newcomer on the MX port is served...
	mx := dialFrom(t, "127.0.0.50", tn.SMTP)
	mx.expect(`220 mx\.example\.test ESMTP tern`)
	mx.ehlo("newcomer.example.com")
	mx.sendMessage("alice@host.example.com", "bob@example.test", "Subject: through the flood\r\n\r\nhi\r\n")
	// ...and so is a user on submission.
	sub := dialFrom(t, "127.0.0.51", tn.Submission)
	sub.expect(`220 mx\.example\.test ESMTP tern`)
	sub.ehlo("laptop.example.com")
	sub.authPlain("bob@example.test", "pw")
	sub.sendMessage("bob@example.test", "bob@example.test", "Subject: submitted through the flood\r\n\r\nhi\r\n")
	// A flooder gets nothing more, on either port.
	for _, addr := range []string{tn.SMTP, tn.Submission} {
		d := dialFrom(t, "127.0.0.18", addr)
		d.expect(`421 4\.7\.0 Server busy: too many connections from 127\.0\.0\.18, try again later`)
		d.expectClosed()
	}
	mx.cmd("QUIT", `221 2\.0\.0 Bye`)
	sub.cmd("QUIT", `221 2\.0\.0 Bye`)
	tn.WaitMaildir("bob@example.test", 2, 10*time.Second)
	syncLog(t, tn)
	mustMatch(t, "log", tn.Log(), `level=WARN msg="connections: busy, keeping the reserve for clients holding few" connections=80 reserved=20 busy_per_ip=2$`)
	mustMatch(t, "log", tn.Log(), `level=INFO msg="connection refused" .*remote=127\.0\.0\.18 .*code=421 reason="Server busy: too many connections from 127\.0\.0\.18, try again later"`)
}
