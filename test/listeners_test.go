package test

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// listenersConfig is a host with two MX listeners on two loopback addresses and different
// message sizes, a submission listener offering PLAIN only, and an MX listener behind a proxy.
const listenersConfig = `
[[listener]]
name = "mx"
address = "127.0.0.1:0"
role = "mx"
message_size = 100000
[[listener]]
name = "mx2"
address = "127.0.0.2:0"
role = "mx"
message_size = 2000
tls = "required"
[[listener]]
name = "submission"
address = "127.0.0.1:0"
role = "submission"
mechanisms = ["PLAIN"]
[[listener]]
name = "submissions"
address = "127.0.0.1:0"
role = "submissions"
[[listener]]
name = "proxied"
address = "127.0.0.1:0"
role = "mx"
proxy_protocol = true
proxy_from = ["127.0.0.1"]
`

// TestListeners runs the binary with [[listener]] tables: each listener keeps its own limits,
// TLS mode and mechanisms, and the log names it.
func TestListeners(t *testing.T) {
	t.Parallel()
	tn := startTern(t, ternOpts{Config: listenersConfig, Named: true})
	for _, name := range []string{"mx", "mx2", "submission", "submissions", "proxied"} {
		if tn.Listeners[name] == "" {
			t.Fatalf("listener %s not printed: %v", name, tn.Listeners)
		}
	}
	if !strings.HasPrefix(tn.Listeners["mx2"], "127.0.0.2:") {
		t.Fatalf("mx2 on %s, want 127.0.0.2", tn.Listeners["mx2"])
	}
	tn.AddUser("bob@"+testDomain, "pw-bob")

	t.Run("mx", func(t *testing.T) {
		d := greeted(t, tn.Listeners["mx"], false)
		mustMatch(t, "EHLO", strings.Join(d.ehlo("client.example.org"), "\n"), `(?m)^SIZE 100000$`)
		d.cmd("MAIL FROM:<a@example.org> SIZE=3000", `250 .*`)
	})
	t.Run("mx2", func(t *testing.T) {
		d := greeted(t, tn.Listeners["mx2"], false)
		d.ehlo("client.example.org")
		d.cmd("MAIL FROM:<a@example.org>", `530 5\.7\.0 Must issue a STARTTLS command first`)
		d.startTLS()
		mustMatch(t, "EHLO", strings.Join(d.ehlo("client.example.org"), "\n"), `(?m)^SIZE 2000$`)
		d.cmd("MAIL FROM:<a@example.org> SIZE=3000", `552 5\.3\.4 .*`)
	})
	t.Run("submission", func(t *testing.T) {
		d := greeted(t, tn.Listeners["submission"], false)
		mustMatch(t, "EHLO", strings.Join(d.ehlo("client.example.org"), "\n"), `(?m)^AUTH PLAIN$`)
		d.cmd("MAIL FROM:<bob@example.test>", `530 5\.7\.0 .*`)
		d.cmd("AUTH LOGIN", `504 5\.5\.4 .*`)
		d.authPlain("bob@"+testDomain, "pw-bob")
	})
	t.Run("submissions", func(t *testing.T) {
		d := greeted(t, tn.Listeners["submissions"], true)
		mustMatch(t, "EHLO", strings.Join(d.ehlo("client.example.org"), "\n"), `(?m)^AUTH PLAIN LOGIN SCRAM`)
	})
	t.Run("proxy from elsewhere", func(t *testing.T) {
		d := dialFrom(t, "127.0.0.5", tn.Listeners["proxied"])
		if line, err := d.r.ReadString('\n'); err == nil {
			t.Fatalf("an untrusted peer got %q", line)
		}
		logMatches(t, tn, `proxy protocol: connection from an address not in proxy_from refused.*remote=127\.0\.0\.5:`)
	})
	mustMatch(t, "log", tn.Log(), `listener=mx2`)
}

// TestListenersHAProxy puts Debian's haproxy in front of the proxied listener, once with
// send-proxy (v1) and once with send-proxy-v2: the client connects to haproxy from 127.0.0.3
// and 127.0.0.4, and the Received field and the log show those addresses, not haproxy's.
func TestListenersHAProxy(t *testing.T) {
	t.Parallel()
	haproxy := needTool(t, "haproxy")
	tn := startTern(t, ternOpts{Config: listenersConfig, Named: true})
	tn.AddUser("bob@"+testDomain, "pw-bob")
	v1, v2 := freeLoopbackPort(t), freeLoopbackPort(t)
	cfg := writeFile(t, "haproxy.cfg", fmt.Sprintf(`global
	maxconn 50
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend v1
	bind %s
	default_backend tern_v1
backend tern_v1
	server tern %s send-proxy
frontend v2
	bind %s
	default_backend tern_v2
backend tern_v2
	server tern %s send-proxy-v2
`, v1, tn.Listeners["proxied"], v2, tn.Listeners["proxied"]))
	cmd := exec.Command(haproxy, "-db", "-f", cfg)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // by PID: ours
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", out)
		}
	})
	for _, tc := range []struct{ name, front, client string }{
		{"send-proxy", v1, "127.0.0.3"},
		{"send-proxy-v2", v2, "127.0.0.4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := dialHAProxy(t, tc.client, tc.front)
			d.ehlo("client.example.org")
			d.cmd("MAIL FROM:<a@example.org>", `250 .*`)
			d.cmd("RCPT TO:<bob@"+testDomain+">", `250 .*`)
			d.cmd("DATA", `354 .*`)
			d.cmd("Subject: "+tc.name+"\r\n\r\nthrough haproxy\r\n.", `250 .*`)
			d.cmd("QUIT", `221 .*`)
			msg := tn.WaitMessage("bob@"+testDomain, "Subject: "+tc.name, 10*time.Second)
			mustMatch(t, "Received", header(msg, "Received"), `^Received: from client\.example\.org \(.*\[`+strings.ReplaceAll(tc.client, ".", `\.`)+`\]\)`)
			logMatches(t, tn, `msg=connect .*remote=`+strings.ReplaceAll(tc.client, ".", `\.`)+` listener=proxied`)
		})
	}
}

// dialHAProxy connects to haproxy's frontend from ip once it listens, and reads tern's greeting
// through it.
func dialHAProxy(t *testing.T, ip, addr string) *dialog {
	t.Helper()
	waitFor(t, 10*time.Second, "haproxy listening on "+addr, func() bool {
		c, err := dialQuiet(addr)
		if err == nil {
			c.Close() // haproxy's connection to tern ends with it
		}
		return err == nil
	})
	d := dialFrom(t, ip, addr)
	d.expect(`220 .*`)
	return d
}

// logMatches waits until the server's log matches re.
func logMatches(t *testing.T, tn *Tern, re string) {
	t.Helper()
	rx := regexp.MustCompile("(?m)" + re)
	waitFor(t, 10*time.Second, "a log line matching "+re, func() bool { return rx.MatchString(tn.Log()) })
}
