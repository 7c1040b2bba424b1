package smtpserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/sasl"
)

// The seeds' account: kenneth.burgener, password ImBB1999!, in the default domain.
const (
	seedUser     = "kenneth.burgener@example.test"
	seedPassword = "ImBB1999!"
)

var allMechs = []string{sasl.Plain, sasl.Login, sasl.ScramSHA256, sasl.ScramSHA256Plus, sasl.ScramSHA1,
	sasl.ScramSHA1Plus, sasl.CRAMMD5, sasl.CRAMSHA1, sasl.DigestMD5, sasl.NTLM}

// fakeCreds serves accounts from passwords, deriving the mechanisms' secrets as the store would.
type fakeCreds struct {
	passwords map[string]string
	broken    bool // every lookup fails as a store outage would
}

// account is the limiter's view of resolve.
func (f fakeCreds) account(login string) (string, bool) { return f.resolve(login), true }

func (f fakeCreds) resolve(login string) string {
	if !strings.Contains(login, "@") {
		login += "@example.test"
	}
	return strings.ToLower(login)
}

func (f fakeCreds) CheckPassword(_ context.Context, login, password string) (string, error) {
	if f.broken {
		return "", sasl.ErrUnavailable
	}
	acct := f.resolve(login)
	if pw, ok := f.passwords[acct]; !ok || pw != password {
		return "", sasl.ErrAuthFailed
	}
	return acct, nil
}

func (f fakeCreds) Secret(_ context.Context, login, kind string) (string, []byte, error) {
	if f.broken {
		return "", nil, sasl.ErrUnavailable
	}
	acct := f.resolve(login)
	pw, ok := f.passwords[acct]
	if !ok {
		return "", nil, sasl.ErrAuthFailed
	}
	secrets, err := sasl.Derive(acct, pw, allMechs)
	if err != nil {
		return "", nil, err
	}
	return acct, secrets[kind], nil
}

// withAuth turns AUTH on in a test server's options.
func withAuth(mod func(*AuthOptions)) func(*Options) {
	return func(o *Options) {
		a := &AuthOptions{
			Mechanisms:       allMechs,
			NewServer:        sasl.NewServer,
			Credentials:      fakeCreds{passwords: map[string]string{seedUser: seedPassword, "bob@example.test": "bobpw"}},
			Realms:           []string{"example.test"},
			LoopbackIsSecure: true,
			SenderMustOwn:    true,
			Limiter: policy.NewAuthLimiter(policy.AuthLimits{MaxFailures: 3, BaseDelay: time.Millisecond,
				MaxDelay: 5 * time.Millisecond, Account: fakeCreds{}.account, Logger: o.Logger}),
		}
		if mod != nil {
			mod(a)
		}
		o.Auth = a
	}
}

func TestAuthSeedSessions(t *testing.T) {
	ts := newTestServer(t, withAuth(nil))
	t.Run("login", func(t *testing.T) {
		ts.dial(t, RoleMX).run(`
			S: 220
			C: EHLO trogdor
			S: 250-mx.example.test\n.*250-AUTH PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 CRAM-SHA1 DIGEST-MD5 NTLM\n250-AUTH=PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 CRAM-SHA1 DIGEST-MD5 NTLM\n
			C: AUTH LOGIN
			S: 334 VXNlcm5hbWU6
			C: a2VubmV0aC5idXJnZW5lcg==
			S: 334 UGFzc3dvcmQ6
			C: SW1CQjE5OTkh
			S: 235 2.7.0 Authentication successful
			C: RCPT TO: <kenneth@oeey.com>
			S: 503 5.5.1 Error: need MAIL command
			C: MAIL FROM: <kenneth.burgener@example.test>
			S: 250 2.1.0 Ok
			C: RCPT TO: <kenneth@oeey.com>
			S: 250 2.1.5 Ok
			C: DATA
			S: 354
			C: Subject: This is a test
			C:
			C: This is a test
			C: .
			S: 250 2.0.0 Ok: queued as
			C: AUTH PLAIN
			S: 503 5.5.1 Error: already authenticated
			C: quit
			S: 221 2.0.0 Bye`)
		m := lastMessage(t, ts, 1)
		if m.env.AuthUser != seedUser || !strings.Contains(m.body.String(), " with ESMTPA id ") {
			t.Errorf("AuthUser %q, Received %q", m.env.AuthUser, m.body.String())
		}
	})
	t.Run("plain", func(t *testing.T) {
		ts.dial(t, RoleMX).run(`
			S: 220
			C: EHLO trogdor
			S: 250
			C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
			S: 235 2.7.0 Authentication successful`)
		ts.dial(t, RoleMX).run(`
			S: 220
			C: EHLO trogdor
			S: 250
			C: AUTH PLAIN
			S: 334 $
			C: AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
			S: 235 2.7.0`)
		ts.dial(t, RoleMX).run(`
			S: 220
			C: EHLO trogdor
			S: 250
			C: auth login a2VubmV0aC5idXJnZW5lcg==
			S: 334 UGFzc3dvcmQ6
			C: SW1CQjE5OTkh
			S: 235 2.7.0`)
	})
}

func TestAuthErrors(t *testing.T) {
	ts := newTestServer(t, withAuth(func(a *AuthOptions) {
		a.Limiter = nil // counted separately in TestAuthLimits
	}))
	ts.dial(t, RoleMX).run(`
		S: 220
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
		S: 503 5.5.1 Error: send HELO/EHLO first
		C: EHLO c
		S: 250
		C: AUTH
		S: 501 5.5.4 Syntax: AUTH mechanism
		C: AUTH GSSAPI
		S: 504 5.5.4 Unrecognized authentication type
		C: AUTH SCRAM-SHA-256-PLUS
		S: 504 5.5.4
		C: AUTH PLAIN not!base64
		S: 501 5.5.2 Error: invalid base64 data
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIAd3Jvbmc=
		S: 535 5.7.8 Error: authentication failed
		C: AUTH PLAIN AG5vYm9keQB3cm9uZw==
		S: 535 5.7.8 Error: authentication failed
		C: AUTH PLAIN AAA=
		S: 501 5.5.2 Error: malformed authentication response
		C: AUTH LOGIN
		S: 334 VXNlcm5hbWU6
		C: *
		S: 501 5.7.0 Error: authentication cancelled
		C: AUTH LOGIN
		S: 334 VXNlcm5hbWU6
		C: a2VubmV0aC5idXJnZW5lcg
		S: 501 5.5.2 Error: invalid base64 data
		C: MAIL FROM:<a@b.example>
		S: 250
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
		S: 503 5.5.1 Error: MAIL transaction in progress
		C: RSET
		S: 250
		C: AUTH PLAIN ` + strings.Repeat("A", MaxAuthLine) + `
		S: 500 5.5.2 Error: line too long
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
		S: 235 2.7.0`)
	logs := ts.logs.String()
	if strings.Contains(logs, "ImBB1999") || strings.Contains(logs, "AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh") || strings.Contains(logs, "wrong") {
		t.Error("a password or an AUTH response reached the log")
	}
	if !strings.Contains(logs, `msg="auth failed" conn=1 remote=127.0.0.1 listener=smtp mech=PLAIN user=kenneth.burgener`) {
		t.Errorf("no fail2ban-friendly line for the failure:\n%s", logs)
	}
}

func TestAuthStoreDown(t *testing.T) {
	ts := newTestServer(t, withAuth(func(a *AuthOptions) { a.Credentials = fakeCreds{broken: true} }))
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO c
		S: 250
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
		S: 454 4.7.0 Temporary authentication failure`)
}

// Without TLS (and with loopback not trusted), AUTH is neither offered nor accepted; after
// STARTTLS it is, with the -PLUS mechanisms.
func TestAuthNeedsTLS(t *testing.T) {
	ts := newTestServer(t, withAuth(func(a *AuthOptions) { a.LoopbackIsSecure = false }))
	c := ts.dial(t, RoleSubmission)
	got := c.run2(`
		S: 220
		C: EHLO c
		S: 250
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
		S: 538 5.7.11 Encryption required for requested authentication mechanism
		C: MAIL FROM:<kenneth.burgener@example.test>
		S: 530 5.7.0 Authentication required
		C: STARTTLS
		S: 220`)
	if strings.Contains(got, "AUTH") && strings.Contains(got, "250-AUTH") {
		t.Errorf("AUTH offered in cleartext: %q", got)
	}
	c.startTLS()
	c.run2(`
		C: EHLO c
		S: 250-mx.example.test\n.*250-AUTH PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-1 SCRAM-SHA-1-PLUS CRAM-MD5
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
		S: 235 2.7.0
		C: MAIL FROM:<Kenneth.Burgener+list@example.test>
		S: 250 2.1.0
		C: RSET
		S: 250
		C: MAIL FROM:<bob@example.test>
		S: 553 5.7.1 <bob@example.test>: Sender address rejected: not owned by user kenneth.burgener@example.test
		C: MAIL FROM:<>
		S: 250 2.1.0
		C: RCPT TO:<anyone@remote.example>
		S: 250 2.1.5
		C: DATA
		S: 354
		C: .
		S: 250 2.0.0 Ok: queued`)
	m := lastMessage(t, ts, 1)
	if !strings.Contains(m.body.String(), " with ESMTPSA id ") {
		t.Errorf("Received: %q", m.body.String())
	}
	// The MX listener still takes local mail without AUTH.
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO c
		S: 250
		C: MAIL FROM:<a@b.example>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: RCPT TO:<anyone@remote.example>
		S: 554 5.7.1`)
}

// TestAuthLimits: a client that keeps failing is blocked (421, on every listener, even with the
// right password), while the owner of the account it guessed at logs in from elsewhere; and
// guessing one account from several clients, in any spelling of its login, makes the account
// refuse those clients even with the right password (answered 535, like a wrong one), not others.
func TestAuthLimits(t *testing.T) {
	ts := newTestServer(t, withAuth(nil))
	wrong := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00kenneth.burgener\x00guess"))
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO c
		S: 250
		C: ` + wrong + `
		S: 535 5.7.8
		C: ` + wrong + `
		S: 535 5.7.8
		C: ` + wrong + `
		S: 535 5.7.8
		S: 421 4.7.0 Error: too many failed authentications, try again later
		CLOSED`)
	// The client is blocked now, even with the right password, on any listener.
	ts.dial(t, RoleSubmission).run(`
		S: 220
		C: EHLO c
		S: 250
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
		S: 421 4.7.0 Error: too many failed authentications
		CLOSED`)
	// The account's owner, elsewhere, is not locked out.
	ts.dialFrom(t, RoleSubmission, "127.0.0.2").run(`
		S: 220
		C: EHLO c
		S: 250
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
		S: 235 2.7.0`)

	// bob guessed at from two clients, as "bob", "BOB" and "bob@example.test": three failures
	// for one account.
	plain := func(login, pw string) string {
		return "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+login+"\x00"+pw))
	}
	c3 := ts.dialFrom(t, RoleSubmission, "127.0.0.3")
	c3.run(`
		S: 220
		C: EHLO c
		S: 250
		C: ` + plain("bob", "guess-1") + `
		S: 535 5.7.8
		C: ` + plain("BOB", "guess-2") + `
		S: 535 5.7.8`)
	ts.dialFrom(t, RoleSubmission, "127.0.0.4").run(`
		S: 220
		C: EHLO c
		S: 250
		C: ` + plain("bob@example.test", "guess-3") + `
		S: 535 5.7.8
		C: ` + plain("bob", "bobpw") + `
		S: 535 5.7.8 Error: authentication failed
		C: ` + plain("kenneth.burgener", seedPassword) + `
		S: 235 2.7.0`)
	// The right password from a client that guessed is one more failure: its third.
	c3.run(`
		C: ` + plain("bob", "bobpw") + `
		S: 535 5.7.8 Error: authentication failed
		S: 421 4.7.0
		CLOSED`)
	ts.dialFrom(t, RoleSubmission, "127.0.0.5").run(`
		S: 220
		C: EHLO c
		S: 250
		C: ` + plain("Bob", "bobpw") + `
		S: 235 2.7.0`)
	logs := ts.logs.String()
	for _, want := range []string{
		`level=WARN msg="auth block started" kind=account user=kenneth.burgener@example.test remote=127.0.0.1 failures=3 `,
		`level=WARN msg="auth block started" kind=client remote=127.0.0.1 client=127.0.0.1 failures=3 `,
		`level=WARN msg="auth refused: client blocked" conn=2 remote=127.0.0.1 `,
		`level=WARN msg="auth block started" kind=account user=bob@example.test remote=127.0.0.4 failures=3 `,
		`level=WARN msg="auth block started" kind=client remote=127.0.0.3 client=127.0.0.3 failures=3 `,
		`level=WARN msg="auth failed" conn=5 remote=127.0.0.4 listener=submission mech=PLAIN user=bob@example.test reason="sasl: authentication failed: right credentials refused: the account is under attack and this client failed for it"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q in the log:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "bobpw") || strings.Contains(logs, "guess-") {
		t.Error("a password reached the log")
	}
}

// Every mechanism works over the wire with the SMTP framing: base64, 334 continuations, and the
// extra step that carries SCRAM's server-final message and DIGEST-MD5's rspauth.
func TestAuthEveryMechanism(t *testing.T) {
	ts := newTestServer(t, withAuth(nil))
	clients := map[string]func() sasl.Client{
		sasl.Plain:    func() sasl.Client { return sasl.NewPlainClient("", "kenneth.burgener", seedPassword) },
		sasl.Login:    func() sasl.Client { return sasl.NewLoginClient("kenneth.burgener", seedPassword) },
		sasl.CRAMMD5:  func() sasl.Client { return sasl.NewCRAMClient(sasl.CRAMMD5, seedUser, seedPassword) },
		sasl.CRAMSHA1: func() sasl.Client { return sasl.NewCRAMClient(sasl.CRAMSHA1, seedUser, seedPassword) },
		sasl.DigestMD5: func() sasl.Client {
			return sasl.NewDigestMD5Client("kenneth.burgener", seedPassword, "mx.example.test", "")
		},
		sasl.ScramSHA1: func() sasl.Client { return sasl.NewScramClient(sasl.ScramSHA1, "", seedUser, seedPassword, nil) },
		sasl.ScramSHA256: func() sasl.Client {
			return sasl.NewScramClient(sasl.ScramSHA256, "", "kenneth.burgener", seedPassword, nil)
		},
		sasl.NTLM: func() sasl.Client { return sasl.NewNTLMClient("kenneth.burgener", seedPassword, "", "WS") },
	}
	for mech, newClient := range clients {
		t.Run(mech, func(t *testing.T) {
			c := ts.dial(t, RoleMX)
			c.run(`
				S: 220
				C: EHLO c
				S: 250`)
			if got := authenticate(t, c, newClient()); !strings.HasPrefix(got, "235 2.7.0") {
				t.Fatalf("%s: %q", mech, got)
			}
		})
	}
	t.Run("SCRAM-SHA-256-PLUS", func(t *testing.T) {
		c := ts.dial(t, RoleSubmissions)
		c.run(`
			S: 220
			C: EHLO c
			S: 250`)
		cs := c.tlsState()
		if got := authenticate(t, c, sasl.NewScramClient(sasl.ScramSHA256Plus, "", seedUser, seedPassword, &cs)); !strings.HasPrefix(got, "235 2.7.0") {
			t.Fatalf("%q", got)
		}
	})
}

// dialFrom connects to the role's listener from the loopback address ip: another client.
func (ts *testServer) dialFrom(t *testing.T, role Role, ip string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := d.Dial("tcp", ts.addrs[role])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// authenticate runs a client half against the server over c and returns the final reply.
func authenticate(t *testing.T, c *client, cl sasl.Client) string {
	t.Helper()
	mech, ir, err := cl.Start()
	if err != nil {
		t.Fatal(err)
	}
	cmd := "AUTH " + mech
	if ir != nil {
		cmd += " " + encodeIR(ir)
	}
	c.send(cmd + "\r\n")
	for {
		got, err := c.reply()
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		if !strings.HasPrefix(got, "334 ") {
			return got
		}
		challenge, err := base64.StdEncoding.DecodeString(got[4:])
		if err != nil {
			t.Fatalf("challenge %q: %v", got, err)
		}
		resp, err := cl.Next(challenge)
		if err != nil {
			t.Fatalf("client: %v", err)
		}
		c.send(base64.StdEncoding.EncodeToString(resp) + "\r\n")
	}
}

func encodeIR(ir []byte) string {
	if len(ir) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(ir)
}

// tlsState is the client side of the connection's TLS state.
func (c *client) tlsState() tls.ConnectionState {
	c.t.Helper()
	tc, ok := c.conn.(*tls.Conn)
	if !ok {
		c.t.Fatal("not a TLS connection")
	}
	return tc.ConnectionState()
}

// STARTTLS forgets an authentication made before it, like everything else (RFC 3207 §4.2).
func TestAuthForgottenByStartTLS(t *testing.T) {
	ts := newTestServer(t, withAuth(nil))
	c := ts.dial(t, RoleSubmission)
	c.run(`
		S: 220
		C: EHLO c
		S: 250
		C: AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
		S: 235
		C: STARTTLS
		S: 220`)
	c.startTLS()
	c.run(`
		C: EHLO c
		S: 250
		C: MAIL FROM:<kenneth.burgener@example.test>
		S: 530 5.7.0 Authentication required`)
}
