package sasl

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// RFC 2831 §4, the IMAP example.
const (
	rfc2831Challenge = `realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",algorithm=md5-sess,charset=utf-8`
	rfc2831Response  = `charset=utf-8,username="chris",realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",nc=00000001,cnonce="OA6MHXh6VqTrRk",digest-uri="imap/elwood.innosoft.com",response=d388dad90d4bbd760a152321f2143af7,qop=auth`
	rfc2831Rspauth   = "rspauth=ea40f60335c427b5527b84dbabcdfffd"
)

func TestDigestMD5RFC2831(t *testing.T) {
	t.Run("computation", func(t *testing.T) {
		urp := md5.Sum([]byte("chris:elwood.innosoft.com:secret"))
		if got := digestURP("chris", "elwood.innosoft.com", "secret"); !bytes.Equal(got, urp[:]) {
			t.Errorf("digestURP = %x, want %x", got, urp)
		}
		const nonce, cnonce, uri = "OA6MG9tEQGm2hh", "OA6MHXh6VqTrRk", "imap/elwood.innosoft.com"
		if got := digestResponseValue(urp[:], nonce, cnonce, "00000001", "", "AUTHENTICATE:"+uri); got != "d388dad90d4bbd760a152321f2143af7" {
			t.Errorf("response = %s", got)
		}
		if got := digestResponseValue(urp[:], nonce, cnonce, "00000001", "", ":"+uri); "rspauth="+got != rfc2831Rspauth {
			t.Errorf("rspauth = %s", got)
		}
	})
	t.Run("server", func(t *testing.T) {
		s := newDigestMD5Server(t.Context(), pwStore{}, ServerOptions{
			Hostname: "elwood.innosoft.com", Realms: []string{"elwood.innosoft.com"},
		}, "imap")
		if _, _, err := s.Next(nil); err != nil {
			t.Fatal(err)
		}
		s.nonce = "OA6MG9tEQGm2hh" // the RFC's, in place of our random one
		challenge, done, err := s.Next([]byte(rfc2831Response))
		if string(challenge) != rfc2831Rspauth || done || err != nil {
			t.Fatalf("Next(response) = %q, %v, %v", challenge, done, err)
		}
		if _, done, err := s.Next([]byte{}); !done || err != nil || s.Identity() != "chris@elwood.innosoft.com" {
			t.Fatalf("Next(empty) = %v, %v, identity %q", done, err, s.Identity())
		}
	})
	t.Run("client", func(t *testing.T) {
		c := newDigestMD5Client("chris", "secret", "imap", "elwood.innosoft.com", "")
		resp, rspauth, err := c.respond([]byte(rfc2831Challenge), "OA6MHXh6VqTrRk")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := sortedDirectives(t, resp), sortedDirectives(t, []byte(rfc2831Response)); !slices.Equal(got, want) {
			t.Errorf("response %s\nwant the directives of %s", resp, rfc2831Response)
		}
		if "rspauth="+rspauth != rfc2831Rspauth {
			t.Errorf("expected rspauth %s", rspauth)
		}
	})
}

// sortedDirectives parses an RFC 2831 message into sorted "name=value" strings.
func sortedDirectives(t *testing.T, msg []byte) []string {
	t.Helper()
	list, err := parseDigestDirectives(msg)
	if err != nil {
		t.Fatalf("parsing %q: %v", msg, err)
	}
	var out []string
	for _, d := range list {
		out = append(out, d.name+"="+d.value)
	}
	slices.Sort(out)
	return out
}

// The seeds' DIGEST-MD5 exchange, against sendmail: the client chose qop=auth-conf (with
// cipher rc4), which we never offer, so the server must refuse it as a protocol error. The
// seed's password is unknown; with qop=auth and no cipher, the same response is well-formed
// and fails only as authentication.
func TestDigestMD5Seed(t *testing.T) {
	dec := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	challenge := dec("bm9uY2U9IkFKUlVjNUp4MFVRYnY1U0o5Rm95VW5hWnBxWklIRGhMVFUrQXduL0swVXc9Iixxb3A9ImF1dGgsYXV0aC1pbnQsYXV0aC1jb25mIixjaXBoZXI9InJjNC00MCxyYzQtNTYscmM0LGRlcywzZGVzIixjaGFyc2V0PXV0Zi04LGFsZ29yaXRobT1tZDUtc2Vzcw==")
	response := dec("dXNlcm5hbWU9InRlc3QiLHJlYWxtPSJ3aXouZXhhbXBsZS5jb20iLG5vbmNlPSJBSlJVYzVKeDBVUWJ2NVNKOUZveVVuYVpwcVpJSERoTFRVK0F3bi9LMFV3PSIsY25vbmNlPSJBSlJVYzVKeDBVUWJ2NVNKOUZveVVuYVpwcVpJSERoTFRVK0F3bi9LMFV3PSIsbmM9MDAwMDAwMDEscW9wPWF1dGgtY29uZixjaXBoZXI9InJjNCIsY2hhcnNldD11dGYtOCxkaWdlc3QtdXJpPSJzbXRwL2xvY2FsaG9zdC5zZW5kbWFpbC5jb20uIixyZXNwb25zZT0wZTdjZmNhZTcxN2VlYWM5NzJmYzlkNTYwNmExMDgzZA==")
	rspauth := dec("cnNwYXV0aD03NDM5ODBjODQ0MmRiYjcxNmQ0ZWE5ZTQ5OTNiMDFkMA==")
	if !bytes.HasPrefix(rspauth, []byte("rspauth=")) {
		t.Fatalf("seed rspauth %q", rspauth)
	}
	nonce := dec("AJRUc5Jx0UQbv5SJ9FoyUnaZpqZIHDhLTU+Awn/K0Uw=")
	if len(nonce) != digestNonceOctets {
		t.Fatalf("seed nonce of %d octets", len(nonce))
	}
	server := func() Server {
		// Our random source made to give sendmail's nonce.
		s := NewDigestMD5Server(t.Context(), pwStore{}, ServerOptions{
			Hostname: "localhost.sendmail.com.", Realms: []string{"wiz.example.com"}, Rand: bytes.NewReader(nonce),
		})
		c, _, err := s.Next(nil)
		if err != nil || !bytes.Contains(c, []byte(`nonce="AJRUc5Jx0UQbv5SJ9FoyUnaZpqZIHDhLTU+Awn/K0Uw="`)) {
			t.Fatalf("challenge %q, %v", c, err)
		}
		return s
	}
	t.Run("auth-conf", func(t *testing.T) {
		_, done, err := server().Next(response)
		if !done || !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "qop") {
			t.Errorf("Next = %v, %v; want ErrProtocol about qop", done, err)
		}
	})
	t.Run("as auth", func(t *testing.T) {
		r := strings.Replace(string(response), "qop=auth-conf,cipher=\"rc4\"", "qop=auth", 1)
		_, done, err := server().Next([]byte(r))
		if !done || !errors.Is(err, ErrAuthFailed) {
			t.Errorf("Next = %v, %v; want ErrAuthFailed", done, err)
		}
	})
	t.Run("client", func(t *testing.T) {
		// Our client answers sendmail's challenge with qop=auth and no realm (none offered).
		c := NewDigestMD5Client("test", "password", "localhost.sendmail.com.", "")
		resp, err := c.Next(challenge)
		if err != nil {
			t.Fatal(err)
		}
		d, _, err := digestDirectiveMap(mustParseDigest(t, resp), "")
		if err != nil || d["qop"] != "auth" || d["charset"] != "utf-8" || d["digest-uri"] != "smtp/localhost.sendmail.com." {
			t.Errorf("response %q, %v", resp, err)
		}
		if _, ok := d["realm"]; ok {
			t.Errorf("realm in response %q", resp)
		}
		// The seed's rspauth is for another response.
		if _, err := c.Next(rspauth); err == nil {
			t.Errorf("wrong rspauth accepted")
		}
	})
}

func mustParseDigest(t *testing.T, msg []byte) []digestDirective {
	t.Helper()
	list, err := parseDigestDirectives(msg)
	if err != nil {
		t.Fatalf("parsing %q: %v", msg, err)
	}
	return list
}

func TestDigestMD5RoundTrip(t *testing.T) {
	tests := []struct {
		name           string
		user, password string
		host, realm    string // the client's
		offered        []string
		want           string
		wantErr        error
	}{
		{"local part, offered realm", "kenneth.burgener", "ImBB1999!", "mx.example.test", "", []string{"example.test"}, "kenneth.burgener@example.test", nil},
		{"address and realm", "kenneth.burgener@example.test", "ImBB1999!", "mx.example.test", "example.test", []string{"other.test", "example.test"}, "kenneth.burgener@example.test", nil},
		{"address, no realm offered", "kenneth.burgener@example.test", "ImBB1999!", "mx.example.test", "", nil, "kenneth.burgener@example.test", nil},
		{"host in other case", "kenneth.burgener", "ImBB1999!", "MX.Example.TEST", "", []string{"example.test"}, "kenneth.burgener@example.test", nil},
		{"ISO 8859-1 characters", "bjørn", "pässwörd", "mx.example.test", "", []string{"exämple.test"}, "bjørn@exämple.test", nil},
		{"password not ISO 8859-1", "zoë", "密码", "mx.example.test", "example.test", []string{"example.test"}, "zoë@example.test", nil},
		{"first offered realm is another", "kenneth.burgener", "ImBB1999!", "mx.example.test", "", []string{"other.test", "example.test"}, "", ErrAuthFailed},
		{"local part without realm", "kenneth.burgener", "ImBB1999!", "mx.example.test", "", nil, "", ErrAuthFailed},
		{"address with another local realm", "kenneth.burgener@example.test", "ImBB1999!", "mx.example.test", "other.test", []string{"other.test", "example.test"}, "kenneth.burgener@example.test", nil},
		{"address, first offered realm another", "kenneth.burgener@example.test", "ImBB1999!", "mx.example.test", "", []string{"other.test", "example.test"}, "kenneth.burgener@example.test", nil},
		{"address with a realm the secret lacks", "kenneth.burgener@example.test", "ImBB1999!", "mx.example.test", "new.test", []string{"example.test", "new.test"}, "", ErrAuthFailed},
		{"user in other case", "Kenneth.Burgener", "ImBB1999!", "mx.example.test", "", []string{"example.test"}, "", ErrAuthFailed},
		{"realm not ours", "kenneth.burgener", "ImBB1999!", "mx.example.test", "elsewhere.test", []string{"example.test"}, "", ErrAuthFailed},
		{"other host", "kenneth.burgener", "ImBB1999!", "mx.other.test", "", []string{"example.test"}, "", ErrAuthFailed},
		{"host is the realm (curl)", "kenneth.burgener", "ImBB1999!", "example.test", "", []string{"example.test"}, "kenneth.burgener@example.test", nil},
		{"host is an address (swaks, msmtp)", "kenneth.burgener", "ImBB1999!", "127.0.0.1", "", []string{"example.test"}, "kenneth.burgener@example.test", nil},
		{"host is an IPv6 address", "kenneth.burgener", "ImBB1999!", "::1", "", []string{"example.test"}, "kenneth.burgener@example.test", nil},
		{"wrong password", "kenneth.burgener", "ImBB1999", "mx.example.test", "", []string{"example.test"}, "", ErrAuthFailed},
		{"unknown user", "nobody", "ImBB1999!", "mx.example.test", "", []string{"example.test"}, "", ErrAuthFailed},
		{"store down", "broken", "x", "mx.example.test", "", []string{"example.test"}, "", ErrUnavailable},
		{"corrupt secret", "corrupt", "corrupt", "mx.example.test", "", []string{"example.test"}, "", ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewDigestMD5Server(t.Context(), pwStore{}, ServerOptions{Hostname: "mx.example.test", Realms: tt.offered})
			id, steps, err := runExchange(t, NewDigestMD5Client(tt.user, tt.password, tt.host, tt.realm), s)
			checkErr(t, err, tt.wantErr)
			wantSteps := 3
			if tt.wantErr != nil {
				wantSteps = 2
			}
			if id != tt.want || steps != wantSteps {
				t.Errorf("identity %q after %d steps, want %q after %d", id, steps, tt.want, wantSteps)
			}
		})
	}
}

// digestSetup returns a server that has sent its challenge, and a client response to it for
// kenneth.burgener in realm example.test, with a fixed cnonce.
func digestSetup(t *testing.T, opts ServerOptions) (*digestMD5Server, string) {
	t.Helper()
	if opts.Hostname == "" {
		opts.Hostname = "mx.example.test"
	}
	if opts.Realms == nil {
		opts.Realms = []string{"example.test"}
	}
	s := newDigestMD5Server(t.Context(), pwStore{}, opts, "smtp")
	challenge, _, err := s.Next(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newDigestMD5Client("kenneth.burgener", "ImBB1999!", "smtp", "mx.example.test", "")
	c.rand = bytes.NewReader(make([]byte, digestCnonceOctets))
	resp, err := c.Next(challenge)
	if err != nil {
		t.Fatal(err)
	}
	return s, string(resp)
}

// craftDigest makes a response to s's challenge, computing the response value for the given
// user name, realm, password, authzid and digest-uri (the hash as a client would compute it:
// digestURP converts to ISO 8859-1 itself). wire is how the strings are put in the message.
func craftDigest(s *digestMD5Server, user, realm, password, authzid, uri, charset string, wire func(string) string) string {
	const cnonce = "c2FsdA=="
	v := digestResponseValue(digestURP(user, realm, password), s.nonce, cnonce, "00000001", authzid, "AUTHENTICATE:"+uri)
	var b strings.Builder
	if charset != "" {
		b.WriteString("charset=" + charset + ",")
	}
	fmt.Fprintf(&b, "username=%s,", quoteDigest(wire(user)))
	if realm != "" {
		fmt.Fprintf(&b, "realm=%s,", quoteDigest(wire(realm)))
	}
	if authzid != "" {
		fmt.Fprintf(&b, "authzid=%s,", quoteDigest(authzid))
	}
	fmt.Fprintf(&b, `nonce=%s,cnonce="%s",nc=00000001,qop=auth,digest-uri=%s,response=%s`, quoteDigest(s.nonce), cnonce, quoteDigest(uri), v)
	return b.String()
}

func TestDigestMD5ServerCrafted(t *testing.T) {
	same := func(s string) string { return s }
	latin1 := func(s string) string { b, _ := toLatin1(s); return string(b) }
	tests := []struct {
		name                           string
		allow                          bool
		user, realm, password, authzid string
		charset                        string
		wire                           func(string) string
		want                           string
		wantErr                        error
	}{
		{"plain", false, "kenneth.burgener", "example.test", "ImBB1999!", "", "utf-8", same, "kenneth.burgener@example.test", nil},
		{"authzid as typed", false, "kenneth.burgener", "example.test", "ImBB1999!", "kenneth.burgener", "utf-8", same, "kenneth.burgener@example.test", nil},
		{"authzid the account", false, "kenneth.burgener", "example.test", "ImBB1999!", "Kenneth.Burgener@example.test", "utf-8", same, "kenneth.burgener@example.test", nil},
		{"authzid other", false, "kenneth.burgener", "example.test", "ImBB1999!", "tim@example.test", "utf-8", same, "", ErrAuthFailed},
		{"authzid other allowed", true, "kenneth.burgener", "example.test", "ImBB1999!", "tim@example.test", "utf-8", same, "tim@example.test", nil},
		{"ISO 8859-1 on the wire", false, "bjørn", "exämple.test", "pässwörd", "", "", latin1, "bjørn@exämple.test", nil},
		{"ISO 8859-1 wrong password", false, "bjørn", "exämple.test", "passwort", "", "", latin1, "", ErrAuthFailed},
		{"UTF-8 without charset", false, "bjørn", "exämple.test", "pässwörd", "", "", same, "", ErrAuthFailed},
		{"charset in upper case", false, "bjørn", "exämple.test", "pässwörd", "", "UTF-8", same, "bjørn@exämple.test", nil},
		{"charset iso-8859-1", false, "bjørn", "exämple.test", "pässwörd", "", "iso-8859-1", latin1, "", ErrProtocol},
		{"invalid UTF-8 with charset", false, "bjørn", "exämple.test", "pässwörd", "", "utf-8", latin1, "", ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := digestSetup(t, ServerOptions{AllowAuthzID: tt.allow, Realms: []string{"example.test", "exämple.test"}})
			resp := craftDigest(s, tt.user, tt.realm, tt.password, tt.authzid, "smtp/mx.example.test", tt.charset, tt.wire)
			challenge, done, err := s.Next([]byte(resp))
			checkErr(t, err, tt.wantErr)
			if err != nil {
				if !done {
					t.Errorf("error without done")
				}
				return
			}
			if done || !bytes.HasPrefix(challenge, []byte("rspauth=")) {
				t.Fatalf("Next(response) = %q, %v", challenge, done)
			}
			if _, done, err := s.Next(nil); !done || err != nil || s.Identity() != tt.want {
				t.Errorf("final Next = %v, %v, identity %q; want %q", done, err, s.Identity(), tt.want)
			}
		})
	}
}

func TestDigestMD5ServerMalformed(t *testing.T) {
	replace := func(old, new string) func(string) string {
		return func(r string) string { return strings.Replace(r, old, new, 1) }
	}
	drop := func(name string) func(string) string {
		re := regexp.MustCompile(`(^|,)` + name + `=("[^"]*"|[^,]*)`)
		return func(r string) string { return re.ReplaceAllString(r, "") }
	}
	add := func(d string) func(string) string { return func(r string) string { return r + "," + d } }
	padTo := func(n int) func(string) string { // to n octets in all
		return func(r string) string { return r + `,x="` + strings.Repeat("a", n-len(r)-5) + `"` }
	}
	tests := []struct {
		name    string
		edit    func(string) string
		wantErr error
	}{
		{"as is", func(r string) string { return r }, nil},
		{"unknown directive", add(`x-foo="bar",y=z`), nil},
		{"white space and null elements", func(r string) string { return " ,, " + strings.ReplaceAll(r, ",", " ,\t") + " , " }, nil},
		{"names in upper case", replace("username=", "UserName="), nil},
		{"qop absent", drop("qop"), nil},
		{"qop quoted", replace("qop=auth", `qop="auth"`), nil},
		{"realm absent", drop("realm"), ErrAuthFailed}, // then the login is the bare local part
		{"empty", func(string) string { return "" }, ErrProtocol},
		{"garbage", func(string) string { return "@@@" }, ErrProtocol},
		{"duplicate username", add(`username="tim"`), ErrProtocol},
		{"duplicate unknown directive", add(`x=1,x=2`), nil},
		{"missing username", drop("username"), ErrProtocol},
		{"empty username", replace(`username="kenneth.burgener"`, `username=""`), ErrProtocol},
		{"username too long", replace(`username="kenneth.burgener"`, `username="`+strings.Repeat("u", 321)+`"`), ErrProtocol},
		{"missing nonce", drop("nonce"), ErrProtocol},
		{"wrong nonce", replace(`nonce="`, `nonce="x`), ErrProtocol},
		{"missing cnonce", drop("cnonce"), ErrProtocol},
		{"missing nc", drop("nc"), ErrProtocol},
		{"second nc", replace("nc=00000001", "nc=00000002"), ErrProtocol},
		{"nc short", replace("nc=00000001", "nc=1"), ErrProtocol},
		{"qop auth-int", replace("qop=auth", "qop=auth-int"), ErrProtocol},
		{"qop auth-conf", replace("qop=auth", `qop=auth-conf,cipher="rc4"`), ErrProtocol},
		{"charset latin1", replace("charset=utf-8", "charset=iso-8859-1"), ErrProtocol},
		{"missing digest-uri", drop("digest-uri"), ErrProtocol},
		{"other service", replace(`digest-uri="smtp/`, `digest-uri="imap/`), ErrAuthFailed},
		{"serv-name", replace(`digest-uri="smtp/mx.example.test`, `digest-uri="smtp/mx.example.test/example.test`), ErrAuthFailed},
		{"missing response", drop("response"), ErrProtocol},
		{"response in upper case", func(r string) string {
			i := strings.Index(r, "response=") + len("response=")
			return r[:i] + strings.ToUpper(r[i:i+32]) + r[i+32:]
		}, ErrProtocol},
		{"response short", func(r string) string {
			i := strings.Index(r, "response=") + len("response=")
			return r[:i] + r[i+1:]
		}, ErrProtocol},
		{"wrong response", func(r string) string {
			i := strings.Index(r, "response=") + len("response=")
			return r[:i] + strings.Repeat("0", 32) + r[i+32:]
		}, ErrAuthFailed},
		{"empty authzid", add(`authzid=""`), ErrProtocol},
		{"authzid too long", add(`authzid="` + strings.Repeat("a", 321) + `"`), ErrProtocol},
		{"authzid changes the response", add(`authzid="kenneth.burgener"`), ErrAuthFailed},
		{"unterminated quote", add(`x="abc`), ErrProtocol},
		{"bad escape at end", add(`x="abc\`), ErrProtocol},
		{"control character", add("x=\"a\x01b\""), ErrProtocol},
		{"CRLF", add("\r\nx=y"), ErrProtocol},
		{"no value", add("x="), ErrProtocol},
		{"no equals", add("x"), ErrProtocol},
		{"junk after value", replace("nc=00000001", "nc=00000001 x"), ErrProtocol},
		{"longest", padTo(maxDigestResponse - 1), nil},
		{"too long", padTo(maxDigestResponse), ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, resp := digestSetup(t, ServerOptions{})
			edited := tt.edit(resp)
			challenge, done, err := s.Next([]byte(edited))
			checkErr(t, err, tt.wantErr)
			if err == nil && (done || !bytes.HasPrefix(challenge, []byte("rspauth="))) {
				t.Errorf("Next = %q, %v", challenge, done)
			}
			if err != nil && (!done || challenge != nil) {
				t.Errorf("Next = %q, %v with error", challenge, done)
			}
			if err != nil && strings.Contains(err.Error(), "ImBB") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestDigestMD5ServerSequence(t *testing.T) {
	t.Run("initial response", func(t *testing.T) {
		s := NewDigestMD5Server(t.Context(), pwStore{}, ServerOptions{})
		if _, done, err := s.Next([]byte{}); !done || !errors.Is(err, ErrProtocol) {
			t.Errorf("Next(empty) = %v, %v; want ErrProtocol", done, err)
		}
		if _, _, err := s.Next(nil); !errors.Is(err, ErrProtocol) {
			t.Errorf("Next after the end: %v", err)
		}
	})
	t.Run("answer to rspauth", func(t *testing.T) {
		s, resp := digestSetup(t, ServerOptions{})
		if _, done, err := s.Next([]byte(resp)); done || err != nil {
			t.Fatalf("Next(response) = %v, %v", done, err)
		}
		if s.Identity() != "" {
			t.Errorf("identity %q before the end", s.Identity())
		}
		if _, done, err := s.Next([]byte("rspauth=x")); !done || !errors.Is(err, ErrProtocol) || s.Identity() != "" {
			t.Errorf("non-empty answer: %v, %v, identity %q", done, err, s.Identity())
		}
	})
	t.Run("after success", func(t *testing.T) {
		s, resp := digestSetup(t, ServerOptions{})
		serverStep(t, s, []byte(resp))
		if _, done, err := s.Next(nil); !done || err != nil {
			t.Fatalf("final Next = %v, %v", done, err)
		}
		for _, msg := range [][]byte{nil, {}, []byte(resp)} {
			if _, done, err := s.Next(msg); !done || !errors.Is(err, ErrProtocol) {
				t.Errorf("Next(%.10q) after the end = %v, %v", msg, done, err)
			}
		}
	})
	t.Run("replay", func(t *testing.T) {
		// A response is only good for the nonce it was made for.
		_, resp := digestSetup(t, ServerOptions{})
		s2, _ := digestSetup(t, ServerOptions{})
		if _, _, err := s2.Next([]byte(resp)); !errors.Is(err, ErrProtocol) {
			t.Errorf("replayed response: %v", err)
		}
	})
}

func TestDigestMD5Challenge(t *testing.T) {
	s := NewDigestMD5Server(t.Context(), pwStore{}, ServerOptions{
		Realms: []string{"example.test", `we"ird\realm`},
		Rand:   bytes.NewReader(make([]byte, digestNonceOctets)),
	})
	c, done, err := s.Next(nil)
	want := `realm="example.test",realm="we\"ird\\realm",nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",qop="auth",charset=utf-8,algorithm=md5-sess`
	if string(c) != want || done || err != nil {
		t.Fatalf("challenge %s, %v, %v\nwant %s", c, done, err, want)
	}
	_, realms, err := digestDirectiveMap(mustParseDigest(t, c), "realm")
	if err != nil || !slices.Equal(realms, []string{"example.test", `we"ird\realm`}) {
		t.Errorf("realms %q, %v", realms, err)
	}

	t.Run("many realms", func(t *testing.T) {
		var realms []string
		for i := range 200 {
			realms = append(realms, fmt.Sprintf("domain-number-%03d.example.test", i))
		}
		opts := ServerOptions{Hostname: "mx.example.test", Realms: realms}
		s := NewDigestMD5Server(t.Context(), pwStore{}, opts)
		c, _, err := s.Next(nil)
		if err != nil || len(c) >= maxDigestChallenge || !bytes.Contains(c, []byte(realms[0])) || bytes.Contains(c, []byte(realms[199])) {
			t.Fatalf("challenge of %d octets, %v", len(c), err)
		}
		// A realm that did not fit is still ours: the exchange fails on the (unknown) user,
		// not on the realm.
		resp, err := NewDigestMD5Client("kenneth.burgener", "x", "mx.example.test", realms[199]).Next(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Next(resp); !errors.Is(err, ErrAuthFailed) || strings.Contains(err.Error(), "not one of ours") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("random source fails", func(t *testing.T) {
		s := NewDigestMD5Server(t.Context(), pwStore{}, ServerOptions{Rand: strings.NewReader("short")})
		if _, done, err := s.Next(nil); !done || !errors.Is(err, ErrUnavailable) {
			t.Errorf("Next = %v, %v; want ErrUnavailable", done, err)
		}
	})
}

func TestDigestMD5Client(t *testing.T) {
	const host = "mx.example.test"
	goodChallenge := `realm="example.test",nonce="abc",qop="auth",charset=utf-8,algorithm=md5-sess`
	for _, tt := range []struct {
		name      string
		challenge string
		ok        bool
	}{
		{"good", goodChallenge, true},
		{"qop list", `nonce="abc",qop="auth-conf, auth ,auth-int",algorithm=md5-sess`, true},
		{"no qop", `nonce="abc",algorithm=md5-sess`, true},
		{"no nonce", `qop="auth",algorithm=md5-sess`, false},
		{"two nonces", `nonce="a",nonce="b",algorithm=md5-sess`, false},
		{"no algorithm", `nonce="abc",qop="auth"`, false},
		{"md5 algorithm", `nonce="abc",algorithm=md5`, false},
		{"no qop=auth", `nonce="abc",qop="auth-int,auth-conf",algorithm=md5-sess`, false},
		{"other charset", `nonce="abc",charset=latin1,algorithm=md5-sess`, false},
		{"unparsable", `nonce="abc`, false},
		{"too long", goodChallenge + `,x="` + strings.Repeat("x", 2048) + `"`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewDigestMD5Client("kenneth.burgener", "ImBB1999!", host, "").Next([]byte(tt.challenge))
			if (err == nil) != tt.ok {
				t.Errorf("Next: %v", err)
			}
		})
	}
	t.Run("rspauth", func(t *testing.T) {
		for _, tt := range []struct {
			name    string
			rspauth func(want string) string
			ok      bool
		}{
			{"right", func(w string) string { return "rspauth=" + w }, true},
			{"quoted", func(w string) string { return `rspauth="` + w + `"` }, true},
			{"wrong", func(w string) string { return "rspauth=" + strings.Repeat("0", 32) }, false},
			{"missing", func(w string) string { return "" }, false},
			{"unparsable", func(w string) string { return "rspauth" }, false},
			{"twice", func(w string) string { return "rspauth=" + w + ",rspauth=" + w }, false},
		} {
			t.Run(tt.name, func(t *testing.T) {
				c := newDigestMD5Client("kenneth.burgener", "ImBB1999!", "smtp", host, "")
				if _, err := c.Next([]byte(goodChallenge)); err != nil {
					t.Fatal(err)
				}
				resp, err := c.Next([]byte(tt.rspauth(c.rspauth)))
				if (err == nil) != tt.ok || (tt.ok && (resp == nil || len(resp) != 0)) {
					t.Errorf("Next(rspauth) = %q, %v", resp, err)
				}
				if _, err := c.Next(nil); err == nil {
					t.Errorf("third challenge accepted")
				}
			})
		}
	})
	t.Run("no charset", func(t *testing.T) {
		// Without charset=utf-8 the client sends ISO 8859-1 and our server takes it.
		s := NewDigestMD5Server(t.Context(), pwStore{}, ServerOptions{Hostname: host, Realms: []string{"exämple.test"}})
		challenge, _, err := s.Next(nil)
		if err != nil {
			t.Fatal(err)
		}
		challenge = bytes.Replace(challenge, []byte(",charset=utf-8"), nil, 1)
		challenge = bytes.Replace(challenge, []byte("exämple"), []byte("ex\xe4mple"), 1)
		c := NewDigestMD5Client("bjørn", "pässwörd", host, "")
		resp, err := c.Next(challenge)
		if err != nil || !bytes.Contains(resp, []byte("username=\"bj\xf8rn\",realm=\"ex\xe4mple.test\"")) || bytes.Contains(resp, []byte("charset")) {
			t.Fatalf("response %q, %v", resp, err)
		}
		rspauth, done, err := s.Next(resp)
		if done || err != nil {
			t.Fatalf("server: %v, %v", done, err)
		}
		if _, err := c.Next(rspauth); err != nil {
			t.Fatal(err)
		}
		// A password beyond ISO 8859-1 cannot be sent that way.
		if _, err := NewDigestMD5Client("zoë", "密码", host, "").Next(challenge); err == nil {
			t.Errorf("non-ISO 8859-1 password accepted without charset=utf-8")
		}
	})
	t.Run("start", func(t *testing.T) {
		if mech, ir, err := NewDigestMD5Client("u", "p", host, "").Start(); mech != DigestMD5 || ir != nil || err != nil {
			t.Errorf("Start = %q, %q, %v", mech, ir, err)
		}
		if _, _, err := NewDigestMD5Client("u", "p", "", "").Start(); err == nil {
			t.Errorf("Start without host succeeded")
		}
	})
}

func TestDeriveDigestMD5(t *testing.T) {
	secret, err := deriveDigestMD5("chris@elwood.innosoft.com", "secret", []string{"other.test", "elwood.innosoft.com", "", "b.test"})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{digestSecretV2}
	for _, s := range []string{"chris:elwood.innosoft.com:secret", "chris@elwood.innosoft.com::secret"} {
		h := md5.Sum([]byte(s))
		want = append(want, h[:]...)
	}
	// The account's domain first, then the other realms once each, each with its length.
	for _, realm := range []string{"elwood.innosoft.com", "other.test", "b.test"} {
		h := md5.Sum([]byte("chris@elwood.innosoft.com:" + realm + ":secret"))
		want = append(append(append(want, byte(len(realm))), realm...), h[:]...)
	}
	if !bytes.Equal(secret, want) {
		t.Errorf("secret\n%x, want\n%x", secret, want)
	}
	// ISO 8859-1 where possible, each string on its own.
	secret, err = deriveDigestMD5("zoë@exämple.test", "密码", nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := md5.Sum([]byte("zo\xeb:ex\xe4mple.test:密码")); !bytes.Equal(secret[1:1+md5.Size], h[:]) {
		t.Errorf("non-ASCII secret %x", secret)
	}
	for _, tt := range []struct {
		account, password string
		realms            []string
	}{
		{"chris", "secret", nil}, {"@elwood.innosoft.com", "secret", nil}, {"chris@", "secret", nil},
		{"chris@elwood.innosoft.com", "", nil}, {"chris@elwood.innosoft.com", "secret", []string{strings.Repeat("a", 256)}},
	} {
		if _, err := deriveDigestMD5(tt.account, tt.password, tt.realms); err == nil {
			t.Errorf("deriveDigestMD5(%q, %q, %q) succeeded", tt.account, tt.password, tt.realms)
		}
	}
	t.Run("corrupt", func(t *testing.T) {
		good, err := deriveDigestMD5("kenneth.burgener@example.test", "ImBB1999!", nil)
		if err != nil {
			t.Fatal(err)
		}
		for name, secret := range map[string][]byte{
			"version":          append([]byte{3}, good[1:]...),
			"truncated":        good[:len(good)-1],
			"v2 without realm": append([]byte{digestSecretV2}, good[1:1+2*md5.Size-1]...),
			"empty realm":      append(append([]byte{}, good[:1+2*md5.Size]...), append([]byte{0}, make([]byte, md5.Size)...)...),
			"v1 truncated":     append([]byte{digestSecretV1}, good[1:1+3*md5.Size-1]...),
			"CRAM":             mustDeriveCRAM(t),
		} {
			t.Run(name, func(t *testing.T) {
				s, resp := digestSetup(t, ServerOptions{})
				s.creds = fixedSecret{account: "kenneth.burgener@example.test", secret: secret}
				if _, _, err := s.Next([]byte(resp)); !errors.Is(err, ErrUnavailable) {
					t.Errorf("error %v, want ErrUnavailable", err)
				}
			})
		}
	})
}

// digestSecretV1For is the version 1 secret tern stored before it kept a hash per realm.
func digestSecretV1For(account, password string) []byte {
	local, domain, _ := cutLast(account, "@")
	b := []byte{digestSecretV1}
	for _, form := range [][2]string{{local, domain}, {account, domain}, {account, ""}} {
		b = append(b, digestURP(form[0], form[1], password)...)
	}
	return b
}

// TestDigestMD5Domains is the matrix of login forms and accounts in several local domains: the
// server offers three realms, and each account answers the way real clients do. swaks
// (Authen::SASL), curl, Cyrus and Java take the first realm offered with the full address;
// gsasl and others with a realm option send the account's domain with the local part or with
// the address; some send the address without a realm.
func TestDigestMD5Domains(t *testing.T) {
	realms := []string{"example.test", "b.test", "c.test"}
	const password = "ImBB1999!"
	accounts := []string{"kenneth.burgener@example.test", "m@b.test", "joe@c.test"}
	// Each account's secret as tern user add stores it with these local domains; plus secrets
	// of accounts whose password was set when fewer domains were local, and in version 1.
	store := &secretStore{secrets: map[string]map[string][]byte{}}
	for _, a := range accounts {
		secret, err := deriveDigestMD5(a, password, realms)
		if err != nil {
			t.Fatal(err)
		}
		store.secrets[a] = map[string][]byte{SecretDigestMD5: secret}
	}
	before, err := deriveDigestMD5("old@b.test", password, []string{"b.test", "c.test"})
	if err != nil {
		t.Fatal(err)
	}
	store.secrets["old@b.test"] = map[string][]byte{SecretDigestMD5: before}
	store.secrets["v1@b.test"] = map[string][]byte{SecretDigestMD5: digestSecretV1For("v1@b.test", password)}

	type form struct {
		name        string
		user, realm func(account string) string // what the client sends
	}
	address := func(a string) string { return a }
	local := func(a string) string { l, _, _ := cutLast(a, "@"); return l }
	domain := func(a string) string { _, d, _ := cutLast(a, "@"); return d }
	forms := []form{
		{"first offered realm, address", address, func(string) string { return realms[0] }},
		{"own domain, local part", local, domain},
		{"own domain, address", address, domain},
		{"no realm, address", address, func(string) string { return "" }},
		{"last offered realm, address", address, func(string) string { return realms[2] }},
	}
	check := func(t *testing.T, account string, f form, wantErr error, wantText string) {
		t.Helper()
		s := newDigestMD5Server(t.Context(), store, ServerOptions{Hostname: "mx.example.test", Realms: realms}, "smtp")
		if _, _, err := s.Next(nil); err != nil {
			t.Fatal(err)
		}
		resp := craftDigest(s, f.user(account), f.realm(account), password, "", "smtp/127.0.0.1", "utf-8", func(s string) string { return s })
		rspauth, done, err := s.Next([]byte(resp))
		checkErr(t, err, wantErr)
		if err != nil {
			if !strings.Contains(err.Error(), wantText) {
				t.Errorf("error %q does not say %q", err, wantText)
			}
			return
		}
		if done || !bytes.HasPrefix(rspauth, []byte("rspauth=")) {
			t.Fatalf("Next(response) = %q, %v", rspauth, done)
		}
		if _, done, err := s.Next([]byte{}); !done || err != nil || s.Identity() != account {
			t.Errorf("final Next = %v, %v, identity %q; want %q", done, err, s.Identity(), account)
		}
	}
	for _, account := range accounts {
		for _, f := range forms {
			t.Run(account+"/"+f.name, func(t *testing.T) { check(t, account, f, nil, "") })
		}
	}
	// The local part in the first realm names an account of that domain: another one (unknown).
	t.Run("m@b.test/first offered realm, local part", func(t *testing.T) {
		check(t, "m@b.test", form{"", local, func(string) string { return realms[0] }}, ErrAuthFailed, "no digest-md5 secret")
	})
	// A secret from before example.test was a local domain: the forms it knows still pass; the
	// first realm fails like a wrong password, with a reason that tells the admin what to do.
	for _, f := range forms[1:] {
		t.Run("old@b.test/"+f.name, func(t *testing.T) { check(t, "old@b.test", f, nil, "") })
	}
	t.Run("old@b.test/"+forms[0].name, func(t *testing.T) {
		check(t, "old@b.test", forms[0], ErrAuthFailed, `no stored hash for old@b.test in realm "example.test" (not a local domain when the password was set): set the password again`)
	})
	// Version 1 secrets keep working for the forms they hold.
	for i, f := range forms {
		want, text := error(nil), ""
		if i == 0 || i == 4 {
			want, text = ErrAuthFailed, "the password was set before tern kept a hash per local domain"
		}
		t.Run("v1@b.test/"+f.name, func(t *testing.T) { check(t, "v1@b.test", f, want, text) })
	}
}

func mustDeriveCRAM(t *testing.T) []byte {
	t.Helper()
	b, err := deriveCRAM(SecretCRAMMD5, "ImBB1999!")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixedSecret is a Credentials that returns one secret for every login.
type fixedSecret struct {
	account string
	secret  []byte
}

func (f fixedSecret) CheckPassword(context.Context, string, string) (string, error) {
	return "", ErrAuthFailed
}

func (f fixedSecret) Secret(context.Context, string, string) (string, []byte, error) {
	return f.account, f.secret, nil
}

func TestParseDigestDirectives(t *testing.T) {
	d := func(kv ...string) []digestDirective {
		var out []digestDirective
		for i := 0; i < len(kv); i += 2 {
			out = append(out, digestDirective{kv[i], kv[i+1]})
		}
		return out
	}
	tests := []struct {
		in   string
		want []digestDirective // nil with ok false: an error
		ok   bool
	}{
		{``, nil, true},
		{` , ,`, nil, true},
		{`a=b`, d("a", "b"), true},
		{`A=B`, d("a", "B"), true},
		{`a="b c"`, d("a", "b c"), true},
		{`a = "b" , c=d`, d("a", "b", "c", "d"), true},
		{"a\t=\tb", d("a", "b"), true},
		{`a=""`, d("a", ""), true},
		{`a="\"\\\x"`, d("a", `"\x`), true},
		{`a="ø,="`, d("a", "ø,="), true},
		{"a=\"\t\"", d("a", "\t"), true},
		{`a=b,a=c`, d("a", "b", "a", "c"), true}, // duplicates are digestDirectiveMap's business
		{`a`, nil, false},
		{`=b`, nil, false},
		{`a=`, nil, false},
		{`a=b c`, nil, false},
		{`a="b"c`, nil, false},
		{`a="b`, nil, false},
		{`a="b\`, nil, false},
		{"a=\"\\\x01\"", nil, false},
		{"a=\"b\nc\"", nil, false},
		{"a=b\r\n", nil, false},
		{`a=ø`, nil, false},
		{`a/b=c`, nil, false},
		{`a=b;c=d`, nil, false},
	}
	for _, tt := range tests {
		got, err := parseDigestDirectives([]byte(tt.in))
		if (err == nil) != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("parseDigestDirectives(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzDigestParse checks that the directive parser does not panic, and that whatever it
// accepts comes back the same after quoting.
func FuzzDigestParse(f *testing.F) {
	for _, s := range []string{
		rfc2831Challenge, rfc2831Response, rfc2831Rspauth,
		`nonce="AJRUc5Jx0UQbv5SJ9FoyUnaZpqZIHDhLTU+Awn/K0Uw=",qop="auth,auth-int,auth-conf",cipher="rc4-40,rc4-56,rc4,des,3des",charset=utf-8,algorithm=md5-sess`,
		`username="test",realm="wiz.example.com",nonce="AJRUc5Jx0UQbv5SJ9FoyUnaZpqZIHDhLTU+Awn/K0Uw=",cnonce="AJRUc5Jx0UQbv5SJ9FoyUnaZpqZIHDhLTU+Awn/K0Uw=",nc=00000001,qop=auth-conf,cipher="rc4",charset=utf-8,digest-uri="smtp/localhost.sendmail.com.",response=0e7cfcae717eeac972fc9d5606a1083d`,
		`a="\"\\",, b = c `, "a=\"\xff\"", `a="b`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		list, err := parseDigestDirectives(msg)
		if err != nil {
			return
		}
		var b strings.Builder
		for i, d := range list {
			if d.name == "" || d.name != strings.ToLower(d.name) {
				t.Fatalf("name %q", d.name)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(d.name + "=" + quoteDigest(d.value))
		}
		again, err := parseDigestDirectives([]byte(b.String()))
		if err != nil || !slices.Equal(again, list) {
			t.Fatalf("%q parsed as %q, which quoted (%q) parses as %q, %v", msg, list, b.String(), again, err)
		}
		if _, _, err := digestDirectiveMap(list, "realm"); err != nil {
			return
		}
	})
}

// FuzzDigestMD5Server answers a fixed challenge (nonce of zero octets, realm example.test,
// host mx.example.test) with fuzzed responses. The server must not panic, must never accept
// with the wrong store, and after accepting must end the exchange only on an empty answer.
func FuzzDigestMD5Server(f *testing.F) {
	opts := func() ServerOptions {
		return ServerOptions{
			Hostname: "mx.example.test", Realms: []string{"example.test", "exämple.test"},
			Rand: bytes.NewReader(make([]byte, digestNonceOctets)),
		}
	}
	for _, acct := range []struct{ user, password, realm string }{
		{"kenneth.burgener", "ImBB1999!", ""},
		{"kenneth.burgener@example.test", "ImBB1999!", "example.test"},
		{"bjørn", "pässwörd", "exämple.test"},
		{"broken", "x", ""},
		{"corrupt", "corrupt", ""},
	} {
		s := NewDigestMD5Server(context.Background(), pwStore{}, opts())
		challenge, _, err := s.Next(nil)
		if err != nil {
			f.Fatal(err)
		}
		c := newDigestMD5Client(acct.user, acct.password, "smtp", "mx.example.test", acct.realm)
		c.rand = bytes.NewReader(make([]byte, digestCnonceOctets))
		resp, err := c.Next(challenge)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(resp)
	}
	f.Add([]byte(rfc2831Response))
	f.Fuzz(func(t *testing.T, response []byte) {
		for _, store := range []pwStore{{}, {wrong: true}} {
			s := NewDigestMD5Server(context.Background(), store, opts())
			if _, _, err := s.Next(nil); err != nil {
				t.Fatal(err)
			}
			rspauth, done, err := s.Next(response)
			if err != nil {
				if !done || rspauth != nil {
					t.Fatalf("Next = %q, %v, %v", rspauth, done, err)
				}
				if _, _, err := s.Next(nil); !errors.Is(err, ErrProtocol) {
					t.Fatalf("Next after the end: %v", err)
				}
				continue
			}
			if store.wrong {
				t.Fatalf("wrong store accepted %q", response)
			}
			if done || !bytes.HasPrefix(rspauth, []byte("rspauth=")) || s.Identity() != "" {
				t.Fatalf("Next = %q, %v, identity %q", rspauth, done, s.Identity())
			}
			if _, done, err := s.Next([]byte("x")); !done || err == nil || s.Identity() != "" {
				t.Fatalf("non-empty answer to rspauth: %v, %v", done, err)
			}
		}
	})
}

// FuzzDigestSecret feeds arbitrary stored secrets to parseDigestSecret: it must not panic, and
// what it returns must be whole MD5 hashes.
func FuzzDigestSecret(f *testing.F) {
	v2, err := deriveDigestMD5("m@b.test", "pw", []string{"example.test", "c.test"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v2)
	f.Add(digestSecretV1For("m@b.test", "pw"))
	f.Add(v2[:len(v2)-1])
	f.Fuzz(func(t *testing.T, secret []byte) {
		h, err := parseDigestSecret(secret, "b.test")
		if err != nil {
			return
		}
		if len(h.local) != md5.Size || len(h.address[""]) != md5.Size {
			t.Fatalf("hashes of %d and %d octets", len(h.local), len(h.address[""]))
		}
		for realm, urp := range h.address {
			if len(urp) != md5.Size {
				t.Fatalf("realm %q: hash of %d octets", realm, len(urp))
			}
		}
	})
}
