package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// The world remote delivery is tested in: a DNS server in the test process, and the mail
// servers its MX records name, all on loopback. tern's --remote-port is one port for every MX
// host, so each host gets its own loopback address and they all share one port P:
//
//	b.test    MX 10 mx.b.test    mx.b.test A 127.0.0.2    tern B (or a slow proxy in front of it)
//	c.test    MX 10 mx.c.test    mx.c.test A 127.0.0.3    a private Postfix (when a test starts one)
//	d.test    MX 10 mx.d.test    mx.d.test A 127.0.0.4    nothing listens: connection refused
//	null.test MX 0 .                                      a null MX (RFC 7505)
//	a.test    MX 10 mx.a.test    mx.a.test A 127.0.0.5    tern A's MX listener
//
// Tern A serves a.test (and the harness's example.test) as mx.example.test, asks that DNS
// server (--resolver), delivers to port P (--remote-port) and retries on a short schedule
// (--retry-schedule). Its account alice@a.test sends through the submission port, after AUTH,
// as a real user would; what A cannot deliver comes back to alice's Maildir on A.

// Accounts of the world.
const (
	aliceA   = "alice@a.test"
	alicePW  = "alice-secret"
	bobB     = "bob@b.test"
	carolB   = "carol@b.test"
	relayB   = "relay@b.test" // the account A logs in with when B is its relayhost
	relayPW  = "relay-secret"
	bHost    = "mx.b.test"
	bHostIP  = "127.0.0.2"
	pfHostIP = "127.0.0.3"
	deadIP   = "127.0.0.4"
	aHostIP  = "127.0.0.5"
)

// sharedPort returns a TCP port that was free a moment ago on every one of hosts.
func sharedPort(t *testing.T, hosts ...string) string {
	t.Helper()
	for try := 0; try < 50; try++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		lns := []net.Listener{ln}
		ok := true
		for _, h := range hosts[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(h, port))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, l)
		}
		for _, l := range lns {
			l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatalf("no port free on all of %v", hosts)
	return ""
}

// worldOpts configure startWorld.
type worldOpts struct {
	// Schedule is A's --retry-schedule. Default: 1s,2s,4s.
	Schedule string
	// AConfig is A's configuration file; AArgs more serve flags for A.
	AConfig string
	AArgs   []string
	// AEnv is added to A's environment.
	AEnv []string
	// BDown leaves B stopped: its data directory and accounts exist, B.Start starts it.
	BDown bool
	// BListen is B's MX listener. Default: mx.b.test's address on port P.
	BListen string
	// BConfig is B's configuration file.
	BConfig string
}

// mxWorld is a DNS server, tern A and tern B, and the port P of every MX host.
type mxWorld struct {
	DNS  *testutil.DNS
	Port string
	A, B *Tern
}

// startWorld starts the DNS server, B (unless BDown) and A.
func startWorld(t *testing.T, o worldOpts) *mxWorld {
	t.Helper()
	w := &mxWorld{}
	w.Port = sharedPort(t, bHostIP, pfHostIP, deadIP, aHostIP)
	w.DNS = testutil.StartDNS(t,
		"b.test. MX 10 mx.b.test.",
		"mx.b.test. A "+bHostIP,
		"c.test. MX 10 mx.c.test.",
		"mx.c.test. A "+pfHostIP,
		"d.test. MX 10 mx.d.test.",
		"mx.d.test. A "+deadIP,
		"null.test. MX 0 .",
		"a.test. MX 10 mx.a.test.",
		"mx.a.test. A "+aHostIP,
	)
	if o.Schedule == "" {
		o.Schedule = "1s,2s,4s"
	}
	if o.BListen == "" {
		o.BListen = net.JoinHostPort(bHostIP, w.Port)
	}
	w.B = startTern(t, ternOpts{
		SMTPListen: o.BListen,
		Config:     o.BConfig,
		ServeArgs: []string{"--domain", "b.test", "--hostname", bHost, "--resolver", w.DNS.Addr,
			"--remote-port", w.Port, "--retry-schedule", "1s"},
		NoStart: true,
	})
	w.B.AddUsers("bob-pw", bobB, carolB)
	w.B.AddUser(relayB, relayPW)
	if !o.BDown {
		w.B.Start()
	}
	w.A = startTern(t, ternOpts{
		SMTPListen: net.JoinHostPort(aHostIP, w.Port),
		Config:     o.AConfig,
		ServeArgs: append([]string{"--domain", "a.test", "--resolver", w.DNS.Addr, "--remote-port", w.Port,
			"--retry-schedule", o.Schedule}, o.AArgs...),
		Env:     o.AEnv,
		NoStart: true,
	})
	w.A.AddUser(aliceA, alicePW)
	w.A.Start()
	return w
}

// outMsg is a message alice (or anyone) sends through A.
type outMsg struct {
	From       string // MAIL FROM; default alice@a.test ("<>" for the null sender)
	MailParams string // after MAIL FROM:<...>
	Rcpts      []string
	RcptParams string // after each RCPT TO:<...>
	Tok        string // in the Subject and the body
	Pad        int    // body lines of padding (76 octets each)
}

// text is the message: headers, a body with the token, padding, and a last line that shows
// the message arrived whole.
func (m outMsg) text() string {
	from := m.From
	if from == "" || from == "<>" {
		from = aliceA
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: Alice <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@a.test>\r\n\r\nHello from A, %s.\r\n",
		from, m.Rcpts[0], m.Tok, m.Tok, m.Tok)
	for i := 0; i < m.Pad; i++ {
		fmt.Fprintf(&b, "%06d %s\r\n", i, strings.Repeat("x", 67))
	}
	fmt.Fprintf(&b, "END-%s\r\n", m.Tok)
	return b.String()
}

// submit logs in as alice on A's submission port and sends m; it returns the queue id.
func (w *mxWorld) submit(t *testing.T, m outMsg) string {
	t.Helper()
	d := ehlod(t, w.A.Submission, false)
	d.authPlain(aliceA, alicePW)
	id := d.transaction(m)
	d.cmd("QUIT", `221 2\.0\.0 Bye`)
	return id
}

// transaction runs MAIL, RCPT and DATA for m on an authenticated session and returns the
// queue id.
func (d *dialog) transaction(m outMsg) string {
	d.t.Helper()
	from := m.From
	switch from {
	case "":
		from = aliceA
	case "<>":
		from = ""
	}
	d.cmd(strings.TrimSpace("MAIL FROM:<"+from+"> "+m.MailParams), `250 2\.1\.0 Ok`)
	for _, r := range m.Rcpts {
		d.cmd(strings.TrimSpace("RCPT TO:<"+r+"> "+m.RcptParams), `250 2\.1\.5 Ok`)
	}
	d.cmd("DATA", `354 End data with <CR><LF>\.<CR><LF>`)
	d.write(m.text() + ".\r\n")
	return queueID(d.t, d.expect(queuedRE))
}

// headers returns every header field called name in a delivered message, in order (folded
// lines joined by "\n").
func headers(msg, name string) []string {
	head, _, _ := strings.Cut(msg, "\n\n")
	var out []string
	cur := -1
	for _, line := range strings.Split(head, "\n") {
		if line != "" && (line[0] == ' ' || line[0] == '\t') {
			if cur >= 0 {
				out[cur] += "\n" + line
			}
			continue
		}
		cur = -1
		if k, _, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			out = append(out, line)
			cur = len(out) - 1
		}
	}
	return out
}

// logLine is one line of a tern log.
type logLine struct {
	Time time.Time
	Text string
}

// logLines returns the lines of tn's log with msg="msg" that have every one of the attributes
// (`key=value` as slog writes them), oldest first.
func logLines(tn *Tern, msg string, attrs ...string) []logLine {
	var out []logLine
	timeRE := regexp.MustCompile(`^time=(\S+) `)
	for _, l := range strings.Split(tn.Log(), "\n") {
		if !strings.Contains(l, ` msg="`+msg+`" `) && !strings.Contains(l, ` msg=`+msg+` `) {
			continue
		}
		ok := true
		for _, a := range attrs {
			ok = ok && (strings.Contains(l, " "+a+" ") || strings.HasSuffix(l, " "+a))
		}
		if !ok {
			continue
		}
		ll := logLine{Text: l}
		if m := timeRE.FindStringSubmatch(l); m != nil {
			ll.Time, _ = time.Parse(time.RFC3339Nano, m[1])
		}
		out = append(out, ll)
	}
	return out
}

// logDelay is the delay of a queue log line: how long after the message arrived the attempt
// started, on the queue's clock.
func logDelay(t *testing.T, l logLine) time.Duration {
	t.Helper()
	m := regexp.MustCompile(` delay=(\S+)`).FindStringSubmatch(l.Text)
	if m == nil {
		t.Fatalf("no delay in %s", l.Text)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatalf("delay in %s: %v", l.Text, err)
	}
	return d
}

// waitLog waits until tn's log has at least n lines logLines would return, and returns them.
func waitLog(t *testing.T, tn *Tern, timeout time.Duration, n int, msg string, attrs ...string) []logLine {
	t.Helper()
	var lines []logLine
	waitFor(t, timeout, fmt.Sprintf("%d log line(s) msg=%q %v", n, msg, attrs), func() bool {
		lines = logLines(tn, msg, attrs...)
		return len(lines) >= n
	})
	return lines
}

// gone waits until the queue no longer has id: every recipient has its final outcome and the
// reports it called for are queued; and until the test has read what the server logged of
// that (see syncLog), so that a line that is not there never will be.
func gone(t *testing.T, tn *Tern, id string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, id+" out of the queue", func() bool {
		return !strings.Contains(tn.QueueList(), id)
	})
	syncLog(t, tn)
}

// syncLog waits until the test has read every line the running server logged before now. The
// server logs an admin request before it answers it, and its log is one pipe, read in order:
// once the line of a request made here has arrived, so has every line written before it.
func syncLog(t *testing.T, tn *Tern) {
	t.Helper()
	mark := strings.ToUpper("sync-" + token(t)) // tern queue makes an id upper case
	queueCmd(t, tn, "show", mark)               // no such message: it exits 1
	waitLog(t, tn, 10*time.Second, 1, "admin request", "op=show", "arg="+mark)
}

// messagesWith returns the messages in addr's Maildir on tn that contain tok.
func messagesWith(tn *Tern, addr, tok string) []string {
	var out []string
	for _, m := range tn.Maildir(addr) {
		if strings.Contains(m, tok) {
			out = append(out, m)
		}
	}
	return out
}

// dsnReport is what testdata/dsn_parse.py found in a report.
type dsnReport struct {
	ContentType   string              `json:"content_type"`
	ReportType    string              `json:"report_type"`
	Subject       string              `json:"subject"`
	From          string              `json:"from"`
	To            string              `json:"to"`
	AutoSubmitted string              `json:"auto_submitted"`
	Defects       []string            `json:"defects"`
	Parts         []string            `json:"parts"`
	PerMessage    map[string]string   `json:"per_message"`
	Recipients    []map[string]string `json:"recipients"`
	ReturnedType  string              `json:"returned_type"`
	Returned      string              `json:"returned"`
	Human         string              `json:"human"`
}

// parseDSN parses a delivery report with Python's email package and checks what every report
// tern sends must have (RFC 3464 §2, RFC 3462, RFC 3834): a multipart/report of report-type
// delivery-status, no parser defects, a human-readable part, then the message/delivery-status
// part, whose per-message fields name the reporting MTA.
func parseDSN(t *testing.T, msg, reportingMTA, to string) dsnReport {
	t.Helper()
	py := pythonExe(t)
	script, err := filepath.Abs(filepath.Join("testdata", "dsn_parse.py"))
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runTool(t, 30*time.Second, msg, py, script)
	if code != 0 {
		t.Fatalf("dsn_parse.py: exit status %d\n%s", code, errOut)
	}
	var r dsnReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("dsn_parse.py printed %q: %v", out, err)
	}
	switch {
	case r.ContentType != "multipart/report" || r.ReportType != "delivery-status":
		t.Fatalf("report is %s; report-type=%s, want multipart/report; report-type=delivery-status:\n%s", r.ContentType, r.ReportType, msg)
	case len(r.Defects) > 0:
		t.Fatalf("Python's email package found defects in the report: %v\n%s", r.Defects, msg)
	case len(r.Parts) < 2 || r.Parts[0] != "text/plain" || r.Parts[1] != "message/delivery-status":
		t.Fatalf("report parts %v, want text/plain, message/delivery-status[, the original]:\n%s", r.Parts, msg)
	case r.PerMessage["Reporting-MTA"] != "dns; "+reportingMTA:
		t.Fatalf("Reporting-MTA %q, want %q", r.PerMessage["Reporting-MTA"], "dns; "+reportingMTA)
	case r.From != "Mail Delivery System <MAILER-DAEMON@"+reportingMTA+">" || r.To != "<"+to+">":
		t.Fatalf("report From %q To %q", r.From, r.To)
	case r.AutoSubmitted != "auto-replied":
		t.Fatalf("report Auto-Submitted %q, want auto-replied", r.AutoSubmitted)
	case len(r.Recipients) == 0:
		t.Fatalf("report without per-recipient fields:\n%s", msg)
	}
	return r
}

// checkFields fails unless each field of got matches the regular expression want gives it
// (entirely); a want of "" means the field must be absent.
func checkFields(t *testing.T, what string, got map[string]string, want map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, ok := got[k]
		switch {
		case want[k] == "" && ok:
			t.Errorf("%s: %s: %q, want no such field", what, k, v)
		case want[k] == "":
		case !ok:
			t.Errorf("%s: no %s field (fields: %v)", what, k, got)
		case !regexp.MustCompile(`^(?:` + want[k] + `)$`).MatchString(v):
			t.Errorf("%s: %s: %q does not match %q", what, k, v, want[k])
		}
	}
}

// slowProxy forwards TCP connections from a listener to target, passing what the client sends
// on in chunks of chunk octets with a pause after each: a slow network in front of a real
// server, so that deliveries take long enough to be cut off in the middle.
type slowProxy struct {
	ln     net.Listener
	target string
	chunk  int
	pause  time.Duration

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startSlowProxy(t *testing.T, listen, target string, chunk int, pause time.Duration) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{ln: ln, target: target, chunk: chunk, pause: pause}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *slowProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { // server to client: as it comes
			defer p.wg.Done()
			_, _ = io.Copy(c, s) // until either side closes
			c.Close()
			s.Close()
		}()
		go func() { // client to server: slowly
			defer p.wg.Done()
			defer c.Close()
			defer s.Close()
			buf := make([]byte, p.chunk)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := s.Write(buf[:n]); werr != nil {
						return
					}
					time.Sleep(p.pause)
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// dirCount is the number of entries in dir (0 if it does not exist).
func dirCount(dir string) int {
	ents, _ := os.ReadDir(dir)
	return len(ents)
}
