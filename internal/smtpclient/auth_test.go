package smtpclient

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/sasl"
)

const (
	testAccount  = "bob@example.test"
	testPassword = "correct horse"
)

// testCreds serves one account from sasl.Derive's output, for the real server halves.
type testCreds struct {
	secrets map[string][]byte
}

func newTestCreds(t *testing.T) testCreds {
	t.Helper()
	all := []string{sasl.CRAMMD5, sasl.CRAMSHA1, sasl.DigestMD5, sasl.ScramSHA1, sasl.ScramSHA256, sasl.NTLM}
	s, err := sasl.Derive(testAccount, testPassword, all)
	if err != nil {
		t.Fatal(err)
	}
	return testCreds{secrets: s}
}

func (c testCreds) resolve(login string) (string, error) {
	if login == testAccount || login+"@example.test" == testAccount {
		return testAccount, nil
	}
	return "", sasl.ErrAuthFailed
}

func (c testCreds) CheckPassword(_ context.Context, login, password string) (string, error) {
	acct, err := c.resolve(login)
	if err != nil || password != testPassword {
		return "", sasl.ErrAuthFailed
	}
	return acct, nil
}

func (c testCreds) Secret(_ context.Context, login, kind string) (string, []byte, error) {
	acct, err := c.resolve(login)
	if err != nil || c.secrets[kind] == nil {
		return "", nil, sasl.ErrAuthFailed
	}
	return acct, c.secrets[kind], nil
}

// serveAuth answers one AUTH command with the real server half of the mechanism, framed as in
// RFC 4954; tamper may change a challenge before it is sent.
func (s *fakeServer) serveAuth(creds sasl.Credentials, st *tls.ConnectionState, cert *tls.Certificate, tamper func(round int, ch []byte) []byte) {
	line := s.Line()
	mech, ir, hasIR := strings.Cut(strings.TrimPrefix(line, "AUTH "), " ")
	opts := sasl.ServerOptions{Hostname: "mx.example.test", Realms: []string{"example.test"}, TLS: st}
	if cert != nil {
		opts.Certificate = cert.Leaf
	}
	srv, err := sasl.NewServer(context.Background(), mech, creds, opts)
	if err != nil {
		s.Send("504 5.5.4 Unrecognized authentication type")
		return
	}
	var resp []byte
	if hasIR {
		if ir != "=" {
			if resp, err = base64.StdEncoding.DecodeString(ir); err != nil {
				s.Send("501 5.5.2 bad base64")
				return
			}
		} else {
			resp = []byte{}
		}
	}
	for round := 0; ; round++ {
		ch, done, err := srv.Next(resp)
		switch {
		case err != nil:
			s.Send("535 5.7.8 Error: authentication failed")
			return
		case done:
			s.Send("235 2.7.0 Authentication successful")
			return
		}
		if tamper != nil {
			ch = tamper(round, ch)
		}
		s.Send("334 " + base64.StdEncoding.EncodeToString(ch))
		l := s.Line()
		if l == "*" {
			s.Send("501 5.7.0 Authentication cancelled")
			return
		}
		if resp, err = base64.StdEncoding.DecodeString(l); err != nil {
			s.Send("501 5.5.2 bad base64")
			return
		}
	}
}

// Every mechanism of package sasl, through the real server halves: the framing, the initial
// responses, and the empty response after SCRAM's and DIGEST-MD5's final data. The -PLUS
// mechanisms run over STARTTLS with channel binding.
func TestAuthRoundTrip(t *testing.T) {
	t.Parallel()
	creds := newTestCreds(t)
	cert, pool := testCert(t)
	tests := []struct {
		mech   string
		tls    bool
		client func(st *tls.ConnectionState, password string) sasl.Client
		rounds int // 334s the server sends
	}{
		{sasl.Plain, false, func(_ *tls.ConnectionState, pw string) sasl.Client { return sasl.NewPlainClient("", "bob", pw) }, 0},
		{sasl.Login, false, func(_ *tls.ConnectionState, pw string) sasl.Client { return sasl.NewLoginClient("bob", pw) }, 2},
		{sasl.CRAMMD5, false, func(_ *tls.ConnectionState, pw string) sasl.Client {
			return sasl.NewCRAMClient(sasl.CRAMMD5, "bob", pw)
		}, 1},
		{sasl.CRAMSHA1, false, func(_ *tls.ConnectionState, pw string) sasl.Client {
			return sasl.NewCRAMClient(sasl.CRAMSHA1, "bob", pw)
		}, 1},
		{sasl.DigestMD5, false, func(_ *tls.ConnectionState, pw string) sasl.Client {
			return sasl.NewDigestMD5Client("bob", pw, "mx.example.test", "")
		}, 2},
		{sasl.ScramSHA1, false, func(_ *tls.ConnectionState, pw string) sasl.Client {
			return sasl.NewScramClient(sasl.ScramSHA1, "", "bob", pw, nil)
		}, 2},
		{sasl.ScramSHA256, false, func(_ *tls.ConnectionState, pw string) sasl.Client {
			return sasl.NewScramClient(sasl.ScramSHA256, "", "bob", pw, nil)
		}, 2},
		{sasl.ScramSHA256Plus, true, func(st *tls.ConnectionState, pw string) sasl.Client {
			return sasl.NewScramClient(sasl.ScramSHA256Plus, "", "bob", pw, st)
		}, 2},
		{sasl.ScramSHA1Plus, true, func(st *tls.ConnectionState, pw string) sasl.Client {
			return sasl.NewScramClient(sasl.ScramSHA1Plus, "", "bob", pw, st)
		}, 2},
		{sasl.NTLM, false, func(_ *tls.ConnectionState, pw string) sasl.Client { return sasl.NewNTLMClient("bob", pw, "", "WS") }, 2},
	}
	for _, tt := range tests {
		for _, right := range []bool{true, false} {
			name := tt.mech + "/right"
			password := testPassword
			if !right {
				name, password = tt.mech+"/wrong", "wrong horse"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				conn := runFake(t, func(s *fakeServer) {
					s.Send("220 mx")
					var st *tls.ConnectionState
					if tt.tls {
						s.ehlo("STARTTLS")
						s.Expect("STARTTLS", "220 go ahead")
						s.StartTLS(&tls.Config{Certificates: []tls.Certificate{cert}})
						cs := s.Conn.(*tls.Conn).ConnectionState()
						st = &cs
					}
					s.ehlo("AUTH " + tt.mech)
					s.serveAuth(creds, st, &cert, nil)
				})
				var tr traceLog
				c := newClient(t, conn, Options{Trace: tr.trace,
					TLSConfig: &tls.Config{ServerName: "mx.example.test", RootCAs: pool}})
				ctx := context.Background()
				if tt.tls {
					if err := c.StartTLS(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if err := c.Hello(ctx); err != nil {
					t.Fatal(err)
				}
				var st *tls.ConnectionState
				if s, ok := c.TLS(); ok {
					st = &s
				}
				err := c.Auth(ctx, tt.client(st, password))
				if right {
					if err != nil {
						t.Fatalf("Auth: %v\n%s", err, tr.String())
					}
					if !c.Authenticated() {
						t.Fatal("not Authenticated after 235")
					}
				} else {
					e := gotError(t, err, CmdAUTH, 535, true)
					if e.Enhanced != "5.7.8" {
						t.Fatalf("%+v", e)
					}
				}
				// What the client sent is redacted in the trace.
				trace := tr.String()
				if n := strings.Count(trace, "334 "); right && n != tt.rounds {
					t.Errorf("%d challenges, want %d:\n%s", n, tt.rounds, trace)
				}
				for _, l := range strings.Split(trace, "\n") {
					if strings.HasPrefix(l, "C") && strings.Contains(l, ": AUTH ") {
						if want := "AUTH " + tt.mech; l[strings.Index(l, ": ")+2:] != want && !strings.HasSuffix(l, want+" "+redacted) {
							t.Errorf("traced %q", l)
						}
					} else if strings.HasPrefix(l, "C") && !strings.HasSuffix(l, ": "+redacted) && !strings.HasSuffix(l, ": ") &&
						!strings.Contains(l, "EHLO") && !strings.Contains(l, "STARTTLS") {
						t.Errorf("traced %q unredacted", l)
					}
				}
			})
		}
	}
}

// TraceSecrets shows the AUTH lines as sent.
func TestAuthTraceSecrets(t *testing.T) {
	t.Parallel()
	creds := newTestCreds(t)
	conn := runFake(t, func(s *fakeServer) {
		s.Send("220 mx")
		s.ehlo("AUTH LOGIN")
		s.serveAuth(creds, nil, nil, nil)
	})
	var tr traceLog
	c := newClient(t, conn, Options{Trace: tr.trace, TraceSecrets: true})
	if err := c.Auth(context.Background(), sasl.NewLoginClient("bob", testPassword)); err != nil {
		t.Fatal(err)
	}
	want := "C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\nC: Ym9i\nS: 334 UGFzc3dvcmQ6\nC: " +
		base64.StdEncoding.EncodeToString([]byte(testPassword)) + "\nS: 235 2.7.0 Authentication successful"
	if !strings.HasSuffix(tr.String(), want) {
		t.Fatalf("trace:\n%s\nwant it to end with:\n%s", tr.String(), want)
	}
}

// An initial response too long for the command line goes in answer to the empty challenge.
func TestAuthLongInitialResponse(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("p", 400)
	conn := runFake(t, func(s *fakeServer) {
		s.Send("220 mx")
		s.ehlo("AUTH PLAIN")
		s.Expect("AUTH PLAIN", "334 ")
		if got, want := s.Line(), base64.StdEncoding.EncodeToString([]byte("\x00bob\x00"+long)); got != want {
			t.Errorf("response %q, want %q", got, want)
		}
		s.Send("235 ok")
	})
	c := newClient(t, conn, Options{})
	if err := c.Auth(context.Background(), sasl.NewPlainClient("", "bob", long)); err != nil {
		t.Fatal(err)
	}
}

// The client cancels with "*" when it cannot go on: a challenge that is not base64, or a server
// that does not prove it knows the password (SCRAM's server signature).
func TestAuthCancel(t *testing.T) {
	t.Parallel()
	creds := newTestCreds(t)
	t.Run("bad base64", func(t *testing.T) {
		t.Parallel()
		conn := runFake(t, func(s *fakeServer) {
			s.Send("220 mx")
			s.ehlo("AUTH CRAM-MD5")
			s.Expect("AUTH CRAM-MD5", "334 not base64!")
			s.Expect("*", "501 5.7.0 Authentication cancelled")
		})
		c := newClient(t, conn, Options{})
		err := c.Auth(context.Background(), sasl.NewCRAMClient(sasl.CRAMMD5, "bob", testPassword))
		if e := gotError(t, err, CmdAUTH, 0, false); !errors.Is(e, ErrBadChallenge) {
			t.Fatalf("error %v, want ErrBadChallenge", e)
		}
	})
	t.Run("SCRAM server signature", func(t *testing.T) {
		t.Parallel()
		conn := runFake(t, func(s *fakeServer) {
			s.Send("220 mx")
			s.ehlo("AUTH SCRAM-SHA-256")
			s.serveAuth(creds, nil, nil, func(round int, ch []byte) []byte {
				if round == 1 { // server-final-message: a signature the client cannot check
					return []byte("v=" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
				}
				return ch
			})
		})
		var tr traceLog
		c := newClient(t, conn, Options{Trace: tr.trace})
		err := c.Auth(context.Background(), sasl.NewScramClient(sasl.ScramSHA256, "", "bob", testPassword, nil))
		wantError(t, err, CmdAUTH, 0, true)
		if c.Authenticated() {
			t.Fatal("Authenticated after a cancelled exchange")
		}
		if !strings.Contains(tr.String(), "C: *\nS: 501 5.7.0 Authentication cancelled") {
			t.Fatalf("trace:\n%s", tr.String())
		}
	})
	t.Run("endless challenges", func(t *testing.T) {
		t.Parallel()
		conn := runFake(t, func(s *fakeServer) {
			s.Send("220 mx")
			s.ehlo("AUTH X-ECHO")
			s.Line()
			for {
				s.Send("334 ")
				if s.Line() == "*" {
					s.Send("501 cancelled")
					return
				}
			}
		})
		c := newClient(t, conn, Options{})
		err := c.Auth(context.Background(), echoClient{})
		if e := gotError(t, err, CmdAUTH, 0, false); !errors.Is(e, ErrTooManyRounds) {
			t.Fatalf("error %v, want ErrTooManyRounds", e)
		}
	})
	t.Run("refused mechanism", func(t *testing.T) {
		t.Parallel()
		conn := runFake(t, func(s *fakeServer) {
			s.Send("220 mx")
			s.ehlo("AUTH PLAIN")
			s.serveAuth(creds, nil, nil, nil)
		})
		c := newClient(t, conn, Options{})
		wantError(t, c.Auth(context.Background(), echoClient{}), CmdAUTH, 504, true)
	})
}

// echoClient is a mechanism that answers every challenge with an empty response.
type echoClient struct{}

func (echoClient) Start() (string, []byte, error) { return "X-ECHO", nil, nil }
func (echoClient) Next(_ []byte) ([]byte, error)  { return []byte{}, nil }
