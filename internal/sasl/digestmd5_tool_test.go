package sasl

import (
	"context"
	"encoding/base64"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// DigestMD5Response reproduces RFC 2831 §4 given the RFC's cnonce and the IMAP service.
func TestDigestMD5ResponseRFC2831(t *testing.T) {
	for _, realm := range []string{"", "elwood.innosoft.com"} {
		t.Run("realm="+realm, func(t *testing.T) {
			resp, rspauth, err := DigestMD5Response([]byte(rfc2831Challenge), DigestMD5Params{
				User: "chris", Password: "secret", Realm: realm,
				Service: "imap", Host: "elwood.innosoft.com", Cnonce: "OA6MHXh6VqTrRk",
			})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := sortedDirectives(t, resp), sortedDirectives(t, []byte(rfc2831Response)); !slices.Equal(got, want) {
				t.Errorf("response %s\nwant the directives of %s", resp, rfc2831Response)
			}
			if "rspauth="+rspauth != rfc2831Rspauth {
				t.Errorf("rspauth %s, want %s", rspauth, rfc2831Rspauth)
			}
		})
	}
}

// With defaults (service smtp, a random cnonce), and with an authzid, the response is what
// tern's server accepts.
func TestDigestMD5ResponseRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name, user, authzid string
		allowAuthzID        bool
		identity            string
	}{
		{"plain", "kenneth.burgener", "", false, "kenneth.burgener@example.test"},
		{"authzid is the user", "kenneth.burgener", "kenneth.burgener@example.test", false, "kenneth.burgener@example.test"},
		{"authzid for another", "kenneth.burgener", "tim@example.test", true, "tim@example.test"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := NewDigestMD5Server(context.Background(), pwStore{}, ServerOptions{
				Hostname: "mx.example.test", Realms: []string{"example.test"}, AllowAuthzID: tt.allowAuthzID,
			})
			challenge, _, err := s.Next(nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, rspauth, err := DigestMD5Response(challenge, DigestMD5Params{
				User: tt.user, Password: "ImBB1999!", Authzid: tt.authzid, Host: "mx.example.test",
			})
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`cnonce="[A-Za-z0-9+/]{43}=",`).Match(resp) || !strings.Contains(string(resp), `digest-uri="smtp/mx.example.test"`) {
				t.Errorf("response %s: want a random cnonce and service smtp", resp)
			}
			got, done, err := s.Next(resp)
			if err != nil || done || string(got) != "rspauth="+rspauth {
				t.Fatalf("server: %q, %v, %v; want rspauth=%s", got, done, err, rspauth)
			}
			if _, done, err := s.Next([]byte{}); !done || err != nil || s.Identity() != tt.identity {
				t.Fatalf("server: %v, %v, identity %q; want %q", done, err, s.Identity(), tt.identity)
			}
		})
	}
	t.Run("authzid refused", func(t *testing.T) {
		s := NewDigestMD5Server(context.Background(), pwStore{}, ServerOptions{Hostname: "mx.example.test", Realms: []string{"example.test"}})
		challenge, _, _ := s.Next(nil)
		resp, _, err := DigestMD5Response(challenge, DigestMD5Params{User: "kenneth.burgener", Password: "ImBB1999!", Authzid: "tim@example.test", Host: "mx.example.test"})
		if err != nil {
			t.Fatal(err)
		}
		// The authzid is in A1: a server that ignored it would still accept the response;
		// tern's computes with it, and refuses it only by the authzid rule.
		if _, done, err := s.Next(resp); !done || err == nil || !strings.Contains(err.Error(), "authorization identity") {
			t.Fatalf("server: %v, %v; want the authzid refused", done, err)
		}
	})
}

func TestDigestMD5ResponseErrors(t *testing.T) {
	good := DigestMD5Params{User: "u", Password: "p", Host: "h"}
	for _, tt := range []struct {
		name      string
		change    func(p *DigestMD5Params)
		challenge string
	}{
		{"no host", func(p *DigestMD5Params) { p.Host = "" }, rfc2831Challenge},
		{"no password", func(p *DigestMD5Params) { p.Password = "" }, rfc2831Challenge},
		{"slash in service", func(p *DigestMD5Params) { p.Service = "smtp/x" }, rfc2831Challenge},
		{"slash in host", func(p *DigestMD5Params) { p.Host = "a/b" }, rfc2831Challenge},
		{"bad challenge", func(p *DigestMD5Params) {}, `nonce="x`},
		{"no nonce", func(p *DigestMD5Params) {}, `algorithm=md5-sess`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			tt.change(&p)
			if resp, _, err := DigestMD5Response([]byte(tt.challenge), p); err == nil {
				t.Errorf("response %q, want an error", resp)
			}
		})
	}
}

// ParseDigestMD5 on the seeds' sendmail challenge.
func TestParseDigestMD5(t *testing.T) {
	b, err := base64.StdEncoding.DecodeString("bm9uY2U9IkFKUlVjNUp4MFVRYnY1U0o5Rm95VW5hWnBxWklIRGhMVFUrQXduL0swVXc9Iixxb3A9ImF1dGgsYXV0aC1pbnQsYXV0aC1jb25mIixjaXBoZXI9InJjNC00MCxyYzQtNTYscmM0LGRlcywzZGVzIixjaGFyc2V0PXV0Zi04LGFsZ29yaXRobT1tZDUtc2Vzcw==")
	if err != nil {
		t.Fatal(err)
	}
	list, err := ParseDigestMD5(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []DigestDirective{
		{"nonce", "AJRUc5Jx0UQbv5SJ9FoyUnaZpqZIHDhLTU+Awn/K0Uw="},
		{"qop", "auth,auth-int,auth-conf"},
		{"cipher", "rc4-40,rc4-56,rc4,des,3des"},
		{"charset", "utf-8"},
		{"algorithm", "md5-sess"},
	}
	if !slices.Equal(list, want) {
		t.Errorf("directives %q\nwant %q", list, want)
	}
	if _, err := ParseDigestMD5([]byte(`nonce="x`)); err == nil {
		t.Errorf("unterminated quote accepted")
	}
}
