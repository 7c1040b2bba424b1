package authstr

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/sasl"
)

// Vectors and seeds. The challenges of the seeds and RFCs, as the documents give them.
const (
	// The seeds' indimail CRAM-MD5 session.
	seedCRAMChallenge = "PDIwMTM3LjEyNjc1ODUxMDBAaW5kaW1haWwub3JnPg=="
	seedCRAMResponse  = "cG9zdG1hc3RlckBleGFtcGxlLmNvbSBjZWU4Mzk3YWIxMjNhMGQ0ZjNhN2ZkZGJiOWNiODcxOQ=="
	// The seeds' AUTH PLAIN and AUTH LOGIN sessions (kenneth.burgener, ImBB1999!).
	seedPlain     = "AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh"
	seedLoginUser = "a2VubmV0aC5idXJnZW5lcg=="
	seedLoginPass = "SW1CQjE5OTkh"
	// The seeds' sendmail DIGEST-MD5 session.
	seedDigestChallenge = "bm9uY2U9IkFKUlVjNUp4MFVRYnY1U0o5Rm95VW5hWnBxWklIRGhMVFUrQXduL0swVXc9Iixxb3A9ImF1dGgsYXV0aC1pbnQsYXV0aC1jb25mIixjaXBoZXI9InJjNC00MCxyYzQtNTYscmM0LGRlcywzZGVzIixjaGFyc2V0PXV0Zi04LGFsZ29yaXRobT1tZDUtc2Vzcw=="
	seedDigestResponse  = "dXNlcm5hbWU9InRlc3QiLHJlYWxtPSJ3aXouZXhhbXBsZS5jb20iLG5vbmNlPSJBSlJVYzVKeDBVUWJ2NVNKOUZveVVuYVpwcVpJSERoTFRVK0F3bi9LMFV3PSIsY25vbmNlPSJBSlJVYzVKeDBVUWJ2NVNKOUZveVVuYVpwcVpJSERoTFRVK0F3bi9LMFV3PSIsbmM9MDAwMDAwMDEscW9wPWF1dGgtY29uZixjaXBoZXI9InJjNCIsY2hhcnNldD11dGYtOCxkaWdlc3QtdXJpPSJzbXRwL2xvY2FsaG9zdC5zZW5kbWFpbC5jb20uIixyZXNwb25zZT0wZTdjZmNhZTcxN2VlYWM5NzJmYzlkNTYwNmExMDgzZA=="
	seedDigestRspauth   = "cnNwYXV0aD03NDM5ODBjODQ0MmRiYjcxNmQ0ZWE5ZTQ5OTNiMDFkMA=="
	// RFC 2831 §4.
	rfc2831Challenge = `realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",algorithm=md5-sess,charset=utf-8`
	// MS-NLMP §4.2.4.3's CHALLENGE_MESSAGE.
	msnlmpChallenge = "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef00000000000000002400240044000000" +
		"060070170000000f53006500720076006500720002000c0044006f006d00610069006e0001000c0053006500720076006500720000000000"
)

func b64s(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func unb64(t testing.TB, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func msnlmpChallengeB64(t testing.TB) string {
	b, err := hex.DecodeString(msnlmpChallenge)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestVectors checks every mechanism against the seeds' and the RFCs' published strings.
func TestVectors(t *testing.T) {
	o := Options{}
	tests := []struct {
		name string
		run  func() (Output, error)
		want []string
	}{
		{"seed CRAM-MD5", func() (Output, error) {
			return CRAM(sasl.CRAMMD5, "postmaster@example.com", "pass", seedCRAMChallenge, o)
		}, []string{seedCRAMResponse}},
		{"seed CRAM-MD5, 334 copied along", func() (Output, error) {
			return CRAM(sasl.CRAMMD5, "postmaster@example.com", "pass", "334 "+seedCRAMChallenge+"\r\n", o)
		}, []string{seedCRAMResponse}},
		{"seed CRAM-MD5, raw", func() (Output, error) {
			return CRAM(sasl.CRAMMD5, "postmaster@example.com", "pass", "<20137.1267585100@indimail.org>", o)
		}, []string{seedCRAMResponse}},
		{"RFC 2195 §2", func() (Output, error) {
			return CRAM(sasl.CRAMMD5, "tim", "tanstaaftanstaaf", "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+", o)
		}, []string{"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"}},
		{"RFC 2195 §2, raw", func() (Output, error) {
			return CRAM(sasl.CRAMMD5, "tim", "tanstaaftanstaaf", "<1896.697170952@postoffice.reston.mci.net>", o)
		}, []string{"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"}},
		{"seed PLAIN", func() (Output, error) { return Plain("", "kenneth.burgener", "ImBB1999!", o) }, []string{seedPlain}},
		{"PLAIN with authzid", func() (Output, error) { return Plain("admin", "bob", "pw", o) }, []string{b64s("admin\x00bob\x00pw")}},
		{"seed LOGIN", func() (Output, error) { return Login("kenneth.burgener", "ImBB1999!", o) }, []string{seedLoginUser, seedLoginPass}},
		{"RFC 2831 §4", func() (Output, error) {
			return DigestMD5(b64s(rfc2831Challenge), sasl.DigestMD5Params{User: "chris", Password: "secret", Service: "imap",
				Host: "elwood.innosoft.com", Realm: "elwood.innosoft.com", Cnonce: "OA6MHXh6VqTrRk"}, o)
		}, []string{
			b64s(`charset=utf-8,username="chris",realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",cnonce="OA6MHXh6VqTrRk",nc=00000001,qop=auth,digest-uri="imap/elwood.innosoft.com",response=d388dad90d4bbd760a152321f2143af7`),
			b64s("rspauth=ea40f60335c427b5527b84dbabcdfffd"),
		}},
		{"RFC 2831 §4, raw challenge, host from the realm", func() (Output, error) {
			return DigestMD5(rfc2831Challenge, sasl.DigestMD5Params{User: "chris", Password: "secret", Service: "imap", Cnonce: "OA6MHXh6VqTrRk"}, o)
		}, []string{
			b64s(`charset=utf-8,username="chris",realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",cnonce="OA6MHXh6VqTrRk",nc=00000001,qop=auth,digest-uri="imap/elwood.innosoft.com",response=d388dad90d4bbd760a152321f2143af7`),
			b64s("rspauth=ea40f60335c427b5527b84dbabcdfffd"),
		}},
		{"Google XOAUTH2", func() (Output, error) {
			return XOAuth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg", o)
		}, []string{"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="}},
		{"RFC 7628 §4.1", func() (Output, error) {
			return OAuthBearer("user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "server.example.com", 143, o)
		}, []string{b64s("n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01")}},
		{"NTLM type 1", func() (Output, error) { return NTLM(NTLMParams{User: "User"}, "", o) },
			[]string{"TlRMTVNTUAABAAAAB4IIAAAAAAAgAAAAAAAAACAAAAA="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.run()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(out.Lines, tt.want) {
				t.Errorf("lines %q\nwant %q", out.Lines, tt.want)
			}
			if len(out.Explain) == 0 {
				t.Errorf("no explanation")
			}
		})
	}
}

// MS-NLMP §4.2.4: the type 3 made from the spec's type 2, with its client challenge and time.
func TestNTLMVector(t *testing.T) {
	out, err := NTLM(NTLMParams{User: "User", Password: "Password", Domain: "Domain", Workstation: "COMPUTER",
		Fixed: sasl.NTLMFixed{
			ClientChallenge: []byte{0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa},
			Now:             func() time.Time { return sasl.NTLMFiletimeTime(0) },
		}}, "334 "+msnlmpChallengeB64(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := sasl.ParseNTLM([]byte(unb64(t, out.Lines[0])))
	if err != nil {
		t.Fatal(err)
	}
	// §4.2.4.2.1 LMv2, §4.2.4.2.2 NTProofStr and "temp" (the blob).
	const blob = "01010000000000000000000000000000aaaaaaaaaaaaaaaa00000000" +
		"02000c0044006f006d00610069006e0001000c005300650072007600650072000000000000000000"
	if got := hex.EncodeToString(m.NTResponse); got != "68cd0ab851e51c96aabc927bebef6a1c"+blob {
		t.Errorf("NT response %s", got)
	}
	if got := hex.EncodeToString(m.LMResponse); got != "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa" {
		t.Errorf("LM response %s", got)
	}
	if m.User != "User" || m.Domain != "Domain" || m.Workstation != "COMPUTER" {
		t.Errorf("names %q %q %q", m.User, m.Domain, m.Workstation)
	}
}

// RFC 5802 §5 and RFC 7677 §3 through Scram, with the server's messages typed every way.
func TestScramVectors(t *testing.T) {
	type vector struct {
		mech, nonce                                        string
		clientFirst, serverFirst, clientFinal, serverFinal string
	}
	vectors := []vector{{
		sasl.ScramSHA1, "fyko+d2lbbFgONRv9qkxdawL",
		"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	}, {
		sasl.ScramSHA256, "rOprNGfwEbeRWgbNEkqO",
		"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
		"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	}}
	forms := map[string]func(string) string{
		"raw":       func(s string) string { return s },
		"base64":    b64s,
		"334 line":  func(s string) string { return "334 " + b64s(s) + "\r\n" },
		"unpadded ": func(s string) string { return strings.TrimRight(b64s(s), "=") },
	}
	for _, v := range vectors {
		for form, typed := range forms {
			t.Run(v.mech+"/"+form, func(t *testing.T) {
				s, err := NewScram(ScramParams{Mech: v.mech, User: "user", Password: "pencil", Nonce: v.nonce}, Options{})
				if err != nil {
					t.Fatal(err)
				}
				var lines []string
				for _, step := range []func() (Output, error){
					s.First,
					func() (Output, error) { return s.Next(typed(v.serverFirst)) },
					func() (Output, error) { return s.Next(typed(v.serverFinal)) },
				} {
					out, err := step()
					if err != nil {
						t.Fatal(err)
					}
					lines = append(lines, out.Lines...)
				}
				want := []string{b64s(v.clientFirst), b64s(v.clientFinal), ""}
				if !slices.Equal(lines, want) || !s.Done() {
					t.Errorf("lines %q, done %v\nwant %q", lines, s.Done(), want)
				}
			})
		}
	}
	t.Run("empty challenge first", func(t *testing.T) {
		s, _ := NewScram(ScramParams{Mech: sasl.ScramSHA1, User: "user", Password: "pencil", Nonce: "abc"}, Options{})
		first, _ := s.First()
		again, err := s.Next("334 ")
		if err != nil || !slices.Equal(again.Lines, first.Lines) || s.Want() != "server-first-message" {
			t.Errorf("Next(334 ) = %q, %v, want %q", again.Lines, err, first.Lines)
		}
	})
}

func TestErrors(t *testing.T) {
	o := Options{}
	scram := func(steps ...string) func() error {
		return func() error {
			s, err := NewScram(ScramParams{Mech: sasl.ScramSHA1, User: "user", Password: "pencil", Nonce: "fyko+d2lbbFgONRv9qkxdawL"}, o)
			if err != nil {
				return err
			}
			if _, err := s.First(); err != nil {
				return err
			}
			for _, st := range steps {
				if _, err := s.Next(st); err != nil {
					return err
				}
			}
			return nil
		}
	}
	const s1 = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
	for _, tt := range []struct {
		name string
		run  func() error
		want string // in the error text
	}{
		{"CRAM challenge not base64", func() error {
			_, err := CRAM(sasl.CRAMMD5, "u", "p", "not base64!", o)
			return err
		}, "not base64"},
		{"CRAM empty password", func() error { _, err := CRAM(sasl.CRAMMD5, "u", "", "<1.2@h>", o); return err }, "empty"},
		{"PLAIN NUL in user", func() error { _, err := Plain("", "a\x00b", "p", o); return err }, "NUL"},
		{"LOGIN empty user", func() error { _, err := Login("", "p", o); return err }, "empty"},
		{"DIGEST not a challenge", func() error {
			_, err := DigestMD5(b64s("hello"), sasl.DigestMD5Params{User: "u", Password: "p", Host: "h"}, o)
			return err
		}, "not a digest-challenge"},
		{"DIGEST no host, no realm", func() error {
			_, err := DigestMD5(`nonce="x",algorithm=md5-sess`, sasl.DigestMD5Params{User: "u", Password: "p"}, o)
			return err
		}, "--host"},
		{"NTLM type 1 as challenge", func() error {
			_, err := NTLM(NTLMParams{User: "u", Password: "p"}, "TlRMTVNTUAABAAAAB4IIAAAAAAAgAAAAAAAAACAAAAA=", o)
			return err
		}, "type 1"},
		{"NTLM challenge not NTLM", func() error { _, err := NTLM(NTLMParams{User: "u", Password: "p"}, b64s("hello"), o); return err }, "signature"},
		{"SCRAM -PLUS", func() error {
			_, err := NewScram(ScramParams{Mech: sasl.ScramSHA256Plus, User: "u", Password: "p"}, o)
			if !errors.Is(err, ErrChannelBinding) {
				return errors.New("not ErrChannelBinding")
			}
			return err
		}, "-PLUS"},
		{"SCRAM not a SCRAM message", scram(b64s("hello")), "not a SCRAM message"},
		{"SCRAM not base64", scram("hello!"), "not base64"},
		{"SCRAM wrong nonce", scram("r=other,s=QSXCR+Q6sek8bf92,i=4096"), "nonce"},
		{"SCRAM wrong signature", scram(s1, "v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="), "did not prove"},
		{"SCRAM e=invalid-proof", scram(s1, "e=invalid-proof"), "wrong password"},
		{"SCRAM after the end", scram(s1, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=", "v=x"), "over"},
		{"XOAUTH2 bad token", func() error { _, err := XOAuth2("u", "a b", o); return err }, "token"},
		{"OAUTHBEARER bad port", func() error { _, err := OAuthBearer("u", "t", "", 70000, o); return err }, "port"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one with %q", err, tt.want)
			}
		})
	}
}

// Secrets never appear in explanations unless asked for.
func TestSecretsMasked(t *testing.T) {
	const pw, token = "Sup3r-S3cret", "tok3n.S3cret"
	outputs := map[string]func(o Options) (Output, error){
		"plain": func(o Options) (Output, error) { return Plain("", "bob", pw, o) },
		"login": func(o Options) (Output, error) { return Login("bob", pw, o) },
		"cram":  func(o Options) (Output, error) { return CRAM(sasl.CRAMMD5, "bob", pw, "<1.2@h>", o) },
		"digest": func(o Options) (Output, error) {
			return DigestMD5(rfc2831Challenge, sasl.DigestMD5Params{User: "bob", Password: pw}, o)
		},
		"ntlm": func(o Options) (Output, error) {
			return NTLM(NTLMParams{User: "bob", Password: pw}, msnlmpChallengeB64(t), o)
		},
		"xoauth2":     func(o Options) (Output, error) { return XOAuth2("bob", token, o) },
		"oauthbearer": func(o Options) (Output, error) { return OAuthBearer("bob", token, "h", 1, o) },
		"scram": func(o Options) (Output, error) {
			s, err := NewScram(ScramParams{Mech: sasl.ScramSHA1, User: "bob", Password: pw, Nonce: "n"}, o)
			if err != nil {
				return Output{}, err
			}
			if _, err := s.First(); err != nil {
				return Output{}, err
			}
			return s.Next("r=nX,s=QSXCR+Q6sek8bf92,i=4096")
		},
	}
	for name, run := range outputs {
		t.Run(name, func(t *testing.T) {
			for _, show := range []bool{false, true} {
				out, err := run(Options{ShowSecrets: show})
				if err != nil {
					t.Fatal(err)
				}
				text := FormatExplain(out.Explain)
				leaked := strings.Contains(text, pw) || strings.Contains(text, token)
				if leaked != show {
					t.Errorf("ShowSecrets %v, secret shown %v:\n%s", show, leaked, text)
				}
			}
		})
	}
	for _, in := range []string{b64s("\x00bob\x00" + pw), b64s("user=bob\x01auth=Bearer " + token + "\x01\x01"),
		b64s("n,,\x01auth=Bearer " + token + "\x01\x01")} {
		d, err := Decode(in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if text := FormatDecode(d); strings.Contains(text, pw) || strings.Contains(text, token) {
			t.Errorf("decode shows the secret:\n%s", text)
		}
	}
}

func TestEscape(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"\x00kenneth.burgener\x00***", `\0kenneth.burgener\0***`},
		{"tab\tcr\rlf\n", `tab\tcr\rlf\n`},
		{`a\b`, `a\\b`},
		{"\x01\x7f", `\x01\x7f`},
		{"zoë 密码", "zoë 密码"},
		{"bad\xff\xfe", `bad\xff\xfe`},
		{"\u200b\U000e0001", `\u200b\U000e0001`},
	} {
		if got := Escape([]byte(tt.in)); got != tt.want {
			t.Errorf("Escape(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if back, err := Unescape(tt.want); err != nil || string(back) != tt.in {
			t.Errorf("Unescape(%s) = %q, %v", tt.want, back, err)
		}
	}
	for _, bad := range []string{`\`, `\q`, `\x4`, `\xzz`, `\ud800`, `\U00110000`} {
		if b, err := Unescape(bad); err == nil {
			t.Errorf("Unescape(%s) = %q, want an error", bad, b)
		}
	}
}

func FuzzEscape(f *testing.F) {
	f.Add([]byte("\x00bob\x00pw"))
	f.Add([]byte("a\\0b\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := Escape(b)
		if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("Escape(%q) = %q has a control character", b, s)
		}
		back, err := Unescape(s)
		if err != nil || string(back) != string(b) {
			t.Fatalf("Unescape(Escape(%q)) = %q, %v", b, back, err)
		}
	})
}
