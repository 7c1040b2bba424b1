package remote

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/testutil"
)

// ---- DNS ----

// ---- certificates ----

// testCA issues server certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tern test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

var serial struct {
	sync.Mutex
	n int64
}

func nextSerial() *big.Int {
	serial.Lock()
	defer serial.Unlock()
	serial.n++
	return big.NewInt(serial.n + 100)
}

// issue returns a certificate for names, its chain ending with the CA's certificate (which
// DANE-TA needs to see).
func (ca *testCA) issue(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	return ca.issueWith(t, nil, names...)
}

// issueWith is issue with the template changed by mod first (nil: unchanged).
func (ca *testCA) issueWith(t *testing.T, mod func(*x509.Certificate), names ...string) tls.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if mod != nil {
		mod(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}
}

// tlsaRR is a TLSA record for cert at name, as zone-file text.
func tlsaRR(t *testing.T, name string, usage, selector, mtype uint8, cert *x509.Certificate) string {
	t.Helper()
	data, err := dns.CertificateToDANE(selector, mtype, cert)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s TLSA %d %d %d %s", name, usage, selector, mtype, data)
}

// ---- SMTP peers ----

// peer is a small scripted SMTP server on loopback: enough of RFC 5321 for a client to deliver,
// with knobs for the replies and the extensions, and a record of every transaction.
type peer struct {
	t  *testing.T
	ln net.Listener

	name      string   // in the greeting and EHLO
	greeting  string   // whole greeting line; default "220 <name> ESMTP"
	ext       []string // EHLO keywords besides STARTTLS and AUTH
	tls       *tls.Config
	implicit  bool     // TLS from the first octet (port 465), with tls
	badTLS    bool     // answer STARTTLS with 220, then hang up instead of a handshake
	authMechs []string // AUTH mechanisms offered (over TLS or not)
	creds     sasl.Credentials
	mail      string                   // reply to MAIL; default 250
	rcpt      func(addr string) string // reply to RCPT; default 250
	data      string                   // reply to the end of the data; default 250
	tlsRefuse string                   // reply to STARTTLS instead of 220
	hangup    string                   // hang up without a reply on this verb ("DATA": after the data)
	rcptMax   int                      // RCPTs taken per transaction; then 452 4.5.3 (0: no limit)
	hangupTx  int                      // hang up at the MAIL of this transaction of a connection (2: the second)
	discard   bool                     // keep only the size of the data (large messages)

	mu    sync.Mutex
	conns int
	txns  []*txn
	wg    sync.WaitGroup
}

// txn is what the peer saw of one transaction.
type txn struct {
	mail  string   // the MAIL line
	rcpts []string // the RCPT lines it accepted
	data  []byte
	size  int64 // of the data, after DATA
	tls   bool
	auth  string // the authenticated identity
	mech  string // and the mechanism
	bdat  bool
	// pipelined: more commands had arrived when MAIL was read (the client did not wait
	// for MAIL's reply).
	pipelined bool
}

// serve starts accepting on ln.
func (p *peer) serve() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns++
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				p.session(c)
			}()
		}
	}()
	p.t.Cleanup(func() {
		p.ln.Close()
		p.wg.Wait()
	})
}

// transactions returns the completed transactions.
func (p *peer) transactions() []*txn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*txn(nil), p.txns...)
}

func (p *peer) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns
}

func (p *peer) session(c net.Conn) {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var implicitSt *tls.ConnectionState
	if p.implicit {
		tc := tls.Server(c, p.tls)
		if err := tc.Handshake(); err != nil {
			return
		}
		st := tc.ConnectionState()
		c, implicitSt = tc, &st
	}
	br, bw := bufio.NewReader(c), bufio.NewWriter(c)
	reply := func(s string) bool {
		bw.WriteString(s + "\r\n")
		return bw.Flush() == nil
	}
	greet := p.greeting
	if greet == "" {
		greet = "220 " + p.name + " ESMTP test"
	}
	if !reply(greet) || !strings.HasPrefix(greet, "220") {
		return
	}
	var (
		cur    *txn
		tlsOn  bool
		tlsSt  *tls.ConnectionState
		authID string
		mech   string
		mails  int
	)
	if implicitSt != nil {
		tlsOn, tlsSt = true, implicitSt
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		if p.hangup != "" && strings.EqualFold(verb, p.hangup) && p.hangup != "DATA" {
			return
		}
		if strings.EqualFold(verb, "MAIL") {
			mails++
			if mails == p.hangupTx {
				return
			}
		}
		switch strings.ToUpper(verb) {
		case "EHLO":
			lines := []string{p.name}
			lines = append(lines, p.ext...)
			if p.tls != nil && !tlsOn || p.badTLS && !tlsOn {
				lines = append(lines, "STARTTLS")
			}
			if len(p.authMechs) > 0 {
				lines = append(lines, "AUTH "+strings.Join(p.authMechs, " "))
			}
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				bw.WriteString("250" + sep + l + "\r\n")
			}
			if bw.Flush() != nil {
				return
			}
		case "HELO":
			reply("250 " + p.name)
		case "STARTTLS":
			if tlsOn || (p.tls == nil && !p.badTLS) {
				reply("502 5.5.1 no")
				continue
			}
			if p.tlsRefuse != "" {
				reply(p.tlsRefuse)
				continue
			}
			reply("220 2.0.0 go ahead")
			if p.badTLS {
				_, _ = c.Write([]byte("this is not TLS\r\n")) // the client may be gone already: its error is what the test checks
				return
			}
			tc := tls.Server(c, p.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			st := tc.ConnectionState()
			c, tlsOn, tlsSt = tc, true, &st
			br.Reset(tc)
			bw.Reset(tc)
			cur, authID, mech = nil, "", ""
		case "AUTH":
			id, ok := p.auth(br, reply, arg, tlsSt)
			if !ok {
				continue
			}
			authID = id
			mech, _, _ = strings.Cut(arg, " ")
		case "MAIL":
			r := p.mail
			if r == "" {
				r = "250 2.1.0 Ok"
			}
			if strings.HasPrefix(r, "250") {
				cur = &txn{mail: line, tls: tlsOn, auth: authID, mech: mech, pipelined: br.Buffered() > 0}
			}
			reply(r)
		case "RCPT":
			if cur == nil {
				reply("503 5.5.1 MAIL first")
				continue
			}
			r := "250 2.1.5 Ok"
			if p.rcptMax > 0 && len(cur.rcpts) >= p.rcptMax {
				r = "452 4.5.3 Too many recipients"
			} else if p.rcpt != nil {
				addr := strings.TrimSuffix(strings.TrimPrefix(strings.Fields(arg)[0], "TO:<"), ">")
				if s := p.rcpt(addr); s != "" {
					r = s
				}
			}
			if strings.HasPrefix(r, "250") {
				cur.rcpts = append(cur.rcpts, line)
			}
			reply(r)
		case "DATA":
			if cur == nil || len(cur.rcpts) == 0 {
				reply("554 5.5.1 no valid recipients")
				continue
			}
			reply("354 go ahead")
			var buf bytes.Buffer
			var w io.Writer = &buf
			if p.discard {
				w = io.Discard
			}
			n, err := smtp.ReadData(br, w, 64<<20)
			if err != nil {
				reply("554 5.6.0 bad data: " + err.Error())
				cur = nil
				continue
			}
			cur.data, cur.size = buf.Bytes(), n
			if p.hangup == "DATA" {
				return
			}
			p.finish(cur, reply)
			cur = nil
		case "BDAT":
			f := strings.Fields(arg)
			n, err := strconv.Atoi(f[0])
			if err != nil || cur == nil {
				reply("501 5.5.4 bad BDAT")
				return
			}
			chunk := make([]byte, n)
			if _, err := io.ReadFull(br, chunk); err != nil {
				return
			}
			cur.data = append(cur.data, chunk...)
			cur.bdat = true
			if len(f) > 1 && strings.EqualFold(f[1], "LAST") {
				p.finish(cur, reply)
				cur = nil
			} else {
				reply("250 2.0.0 chunk ok")
			}
		case "RSET":
			cur = nil
			reply("250 2.0.0 Ok")
		case "NOOP":
			reply("250 2.0.0 Ok")
		case "QUIT":
			reply("221 2.0.0 Bye")
			return
		default:
			reply("500 5.5.2 unknown command")
		}
	}
}

// finish answers the end of the data and records the transaction if it was accepted.
func (p *peer) finish(cur *txn, reply func(string) bool) {
	r := p.data
	if r == "" {
		r = "250 2.0.0 Ok: queued"
	}
	if strings.HasPrefix(r, "250") {
		p.mu.Lock()
		p.txns = append(p.txns, cur)
		p.mu.Unlock()
	}
	reply(r)
}

// auth runs an AUTH exchange with the sasl server half.
func (p *peer) auth(br *bufio.Reader, reply func(string) bool, arg string, st *tls.ConnectionState) (string, bool) {
	mech, ir, hasIR := strings.Cut(arg, " ")
	srv, err := sasl.NewServer(context.Background(), strings.ToUpper(mech), p.creds, sasl.ServerOptions{Hostname: p.name, TLS: st})
	if err != nil || p.creds == nil {
		reply("504 5.5.4 unknown mechanism")
		return "", false
	}
	var resp []byte
	if hasIR {
		if ir != "=" {
			if resp, err = base64.StdEncoding.DecodeString(ir); err != nil {
				reply("501 5.5.2 bad base64")
				return "", false
			}
		} else {
			resp = []byte{}
		}
	}
	for {
		chal, done, err := srv.Next(resp)
		if done {
			if err != nil {
				reply("535 5.7.8 authentication failed")
				return "", false
			}
			reply("235 2.7.0 authenticated")
			return srv.Identity(), true
		}
		if err != nil {
			reply("535 5.7.8 authentication failed")
			return "", false
		}
		reply("334 " + base64.StdEncoding.EncodeToString(chal))
		line, rerr := br.ReadString('\n')
		if rerr != nil {
			return "", false
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "*" {
			reply("501 5.7.0 cancelled")
			return "", false
		}
		if resp, err = base64.StdEncoding.DecodeString(line); err != nil {
			reply("501 5.5.2 bad base64")
			return "", false
		}
	}
}

// testCreds is one account for the peers' AUTH.
type testCreds struct {
	user, password string
	secrets        map[string][]byte
}

func newCreds(t *testing.T, user, password string) *testCreds {
	t.Helper()
	s, err := sasl.Derive(user, password, []string{sasl.ScramSHA256, sasl.ScramSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return &testCreds{user: user, password: password, secrets: s}
}

func (c *testCreds) CheckPassword(_ context.Context, login, password string) (string, error) {
	if login == c.user && password == c.password {
		return c.user, nil
	}
	return "", sasl.ErrAuthFailed
}

func (c *testCreds) Secret(_ context.Context, login, kind string) (string, []byte, error) {
	if login != c.user || c.secrets[kind] == nil {
		return "", nil, sasl.ErrAuthFailed
	}
	return c.user, c.secrets[kind], nil
}

// ---- the harness ----

// harness is a DNS server and SMTP peers on loopback, all peers on one port (Options.Port) at
// different 127.0.0.x addresses. Holding 127.0.0.1:port keeps the port ours, so that an
// address without a peer refuses connections.
type harness struct {
	t     *testing.T
	dns   *testutil.DNS
	ca    *testCA
	port  int
	first net.Listener // 127.0.0.1:port, until a peer takes it
	logs  *testutil.SyncBuffer
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &harness{t: t, dns: testutil.StartDNS(t), ca: newCA(t), port: ln.Addr().(*net.TCPAddr).Port, first: ln, logs: &testutil.SyncBuffer{}}
}

// peer starts p on ip at the harness's port.
func (h *harness) peer(ip string, p *peer) *peer {
	h.t.Helper()
	p.t = h.t
	if ip == "127.0.0.1" && h.first != nil {
		p.ln, h.first = h.first, nil
	} else {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(h.port)))
		if err != nil {
			h.t.Fatalf("listen on %s:%d: %v", ip, h.port, err)
		}
		p.ln = ln
	}
	p.serve()
	return p
}

// tlsConfig is a server TLS configuration with cert.
func tlsConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// deliverer returns a Deliverer that asks the harness's DNS and dials its port.
func (h *harness) deliverer(mod func(*Options)) *Deliverer {
	h.t.Helper()
	o := Options{
		Hostname: "tern.sender.test",
		Resolver: h.dns.Addr,
		Port:     h.port,
		RootCAs:  h.ca.pool,
		Timeouts: Timeouts{Connect: 5 * time.Second, Command: 10 * time.Second, Data: 10 * time.Second, DNS: 5 * time.Second, PolicyFetch: 5 * time.Second},
		Logger:   slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&o)
	}
	d, err := New(o)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		if h.t.Failed() {
			h.t.Logf("deliverer log:\n%s", h.logs.String())
		}
	})
	return d
}

const testMessage = "From: alice@sender.test\r\nTo: bob@dest.test\r\nSubject: hi\r\n\r\nHello.\r\n"

// newEnv is an envelope from alice@sender.test to rcpts.
func newEnv(rcpts ...string) *envelope.Envelope {
	env := &envelope.Envelope{ID: "Q1", From: "alice@sender.test", Received: time.Now()}
	for _, r := range rcpts {
		env.Rcpts = append(env.Rcpts, envelope.Recipient{Addr: r})
	}
	return env
}

// deliverAll delivers body to every recipient of env.
func deliverAll(d *Deliverer, env *envelope.Envelope, body string) []delivery.Outcome {
	idx := make([]int, len(env.Rcpts))
	for i := range idx {
		idx[i] = i
	}
	return d.DeliverBatch(context.Background(), env, idx, bytesBody(body))
}

// want describes an expected outcome: "ok", "relayed", or "perm CODE ENH" / "temp CODE ENH"
// (a code of 0 or an enhanced code of "" is not checked).
func checkOutcome(t *testing.T, i int, o delivery.Outcome, want string) {
	t.Helper()
	f := strings.Fields(want)
	switch f[0] {
	case "ok", "relayed":
		if o.Err != nil {
			t.Errorf("recipient %d: error %v, want success", i, o.Err)
		} else if o.Relayed != (f[0] == "relayed") {
			t.Errorf("recipient %d: Relayed = %v, want %s", i, o.Relayed, f[0])
		}
		return
	}
	var de *delivery.Error
	if o.Err == nil {
		t.Errorf("recipient %d: delivered, want %s", i, want)
		return
	}
	de, ok := o.Err.(*delivery.Error)
	if !ok {
		t.Errorf("recipient %d: error %T %v, want *delivery.Error", i, o.Err, o.Err)
		return
	}
	if de.Permanent != (f[0] == "perm") {
		t.Errorf("recipient %d: %v: permanent %v, want %s", i, de, de.Permanent, want)
	}
	if len(f) > 1 && f[1] != "0" && strconv.Itoa(de.Code) != f[1] {
		t.Errorf("recipient %d: %v: code %d, want %s", i, de, de.Code, f[1])
	}
	if len(f) > 2 && de.Enhanced() != f[2] {
		t.Errorf("recipient %d: %v: enhanced %s, want %s", i, de, de.Enhanced(), f[2])
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// bytesBody is a message held in memory.
type bytesBody []byte

func (b bytesBody) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
func (b bytesBody) Size() int64                  { return int64(len(b)) }
