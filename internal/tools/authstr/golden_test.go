package authstr

import (
	"encoding/base64"
	"encoding/binary"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/testutil"
)

// update rewrites the golden files: go test ./internal/tools/authstr -run Golden -update
var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// checkGolden compares got with testdata/name.golden (or writes it with -update).
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	testutil.Golden(t, *update, name, got)
}

// ntlmV1Authenticate is an AUTHENTICATE_MESSAGE with an NTLMv1 response in the oldest form:
// a 52-octet header without session key and flags, OEM names.
func ntlmV1Authenticate() string {
	lm, nt := make([]byte, 24), make([]byte, 24)
	for i := range nt {
		lm[i], nt[i] = byte(i), byte(0x80+i)
	}
	payloads := [][]byte{lm, nt, []byte("WORKGROUP"), []byte("bob"), []byte("PC1")}
	b := []byte("NTLMSSP\x00\x03\x00\x00\x00")
	off := 52
	for _, p := range payloads {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(p)))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(p)))
		b = binary.LittleEndian.AppendUint32(b, uint32(off))
		off += len(p)
	}
	for _, p := range payloads {
		b = append(b, p...)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestGoldenDecode: what `tern auth decode` prints for each kind of message.
func TestGoldenDecode(t *testing.T) {
	ntlm3, err := NTLM(NTLMParams{User: "User", Password: "Password", Domain: "Domain", Workstation: "COMPUTER",
		Fixed: sasl.NTLMFixed{ClientChallenge: []byte("\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa"), Now: func() time.Time { return sasl.NTLMFiletimeTime(0) }}},
		msnlmpChallengeB64(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, in string
		show     bool
	}{
		{"01-decode-plain", seedPlain, false},
		{"02-decode-plain-show-secrets", seedPlain, true},
		{"03-decode-plain-authzid", b64s("admin@example.test\x00bob@example.test\x00pw"), false},
		{"04-decode-login-user", seedLoginUser, false},
		{"05-decode-login-prompt", "334 VXNlcm5hbWU6", false},
		{"06-decode-cram-challenge", seedCRAMChallenge, false},
		{"07-decode-cram-response", seedCRAMResponse, false},
		{"08-decode-digest-challenge", seedDigestChallenge, false},
		{"09-decode-digest-response", seedDigestResponse, false},
		{"10-decode-digest-rspauth", seedDigestRspauth, false},
		{"11-decode-ntlm-negotiate", "TlRMTVNTUAABAAAAB4IIAAAAAAAgAAAAAAAAACAAAAA=", false},
		{"12-decode-ntlm-challenge", msnlmpChallengeB64(t), false},
		{"13-decode-ntlm-authenticate-v2", ntlm3.Lines[0], false},
		{"14-decode-ntlm-authenticate-v1", ntlmV1Authenticate(), false},
		{"15-decode-ntlm-malformed", b64s("NTLMSSP\x00\x09\x00\x00\x00"), false},
		{"16-decode-scram-client-first", b64s("n,a=admin,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), false},
		{"17-decode-scram-server-first", b64s("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"), false},
		{"18-decode-scram-client-final", b64s("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="), false},
		{"19-decode-scram-server-final", b64s("v=rmF9pqV8S7suAoZWja4dJRkFsKQ="), false},
		{"20-decode-scram-error", b64s("e=invalid-proof"), false},
		{"21-decode-xoauth2", "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==", false},
		{"22-decode-oauthbearer", b64s("n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"), false},
		{"23-decode-oauth-error", "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K", false},
		{"24-decode-cancel", "*", false},
		{"25-decode-empty-initial-response", "=", false},
		{"26-decode-empty-challenge", "334 ", false},
		{"27-decode-text", seedLoginPass, false},
		{"28-decode-binary", "AAEC/w==", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Decode(tt.in, Options{ShowSecrets: tt.show})
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.name, FormatDecode(d))
		})
	}
}

// TestGoldenExplain: what --explain prints, after the lines, for each mechanism.
func TestGoldenExplain(t *testing.T) {
	o := Options{}
	scram := func() (Output, error) {
		s, err := NewScram(ScramParams{Mech: sasl.ScramSHA256, User: "user", Password: "pencil", Nonce: "rOprNGfwEbeRWgbNEkqO"}, o)
		if err != nil {
			return Output{}, err
		}
		var all Output
		for _, step := range []func() (Output, error){
			s.First,
			func() (Output, error) {
				return s.Next("334 " + b64s("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
			},
			func() (Output, error) { return s.Next("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=") },
		} {
			out, err := step()
			if err != nil {
				return Output{}, err
			}
			all.Lines = append(all.Lines, out.Lines...)
			all.Explain = append(all.Explain, out.Explain...)
		}
		return all, nil
	}
	for _, tt := range []struct {
		name string
		run  func() (Output, error)
	}{
		{"30-explain-plain", func() (Output, error) { return Plain("", "kenneth.burgener", "ImBB1999!", o) }},
		{"31-explain-login", func() (Output, error) { return Login("kenneth.burgener", "ImBB1999!", o) }},
		{"32-explain-cram-md5", func() (Output, error) {
			return CRAM(sasl.CRAMMD5, "postmaster@example.com", "pass", seedCRAMChallenge, o)
		}},
		{"33-explain-cram-sha1-raw", func() (Output, error) {
			return CRAM(sasl.CRAMSHA1, "tim", "tanstaaftanstaaf", "<1896.697170952@postoffice.reston.mci.net>", o)
		}},
		{"34-explain-digest-md5", func() (Output, error) {
			return DigestMD5(b64s(rfc2831Challenge), sasl.DigestMD5Params{User: "chris", Password: "secret", Service: "imap",
				Host: "elwood.innosoft.com", Cnonce: "OA6MHXh6VqTrRk"}, o)
		}},
		{"35-explain-digest-md5-authzid", func() (Output, error) {
			return DigestMD5(seedDigestChallenge, sasl.DigestMD5Params{User: "test", Password: "secret", Authzid: "boss",
				Host: "localhost.sendmail.com.", Cnonce: "AJRUc5Jx0UQbv5SJ9FoyUnaZpqZIHDhLTU+Awn/K0Uw="}, o)
		}},
		{"36-explain-scram-sha-256", scram},
		{"37-explain-ntlm-negotiate", func() (Output, error) { return NTLM(NTLMParams{User: "User"}, "", o) }},
		{"38-explain-ntlm-authenticate", func() (Output, error) {
			return NTLM(NTLMParams{User: "User", Password: "Password", Domain: "Domain", Workstation: "COMPUTER",
				Fixed: sasl.NTLMFixed{ClientChallenge: []byte("\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa"), Now: func() time.Time { return sasl.NTLMFiletimeTime(0) }}},
				msnlmpChallengeB64(t), o)
		}},
		{"39-explain-xoauth2", func() (Output, error) {
			return XOAuth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg", o)
		}},
		{"40-explain-oauthbearer", func() (Output, error) {
			return OAuthBearer("user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "server.example.com", 143, o)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.run()
			if err != nil {
				t.Fatal(err)
			}
			got := "== stdout\n" + strings.Join(out.Lines, "\n") + "\n== stderr (--explain)\n" + FormatExplain(out.Explain)
			checkGolden(t, tt.name, got)
		})
	}
}

// FuzzDecode: Decode never panics on any base64 input, never fails on valid base64, and its
// text is one line without control characters.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{seedPlain, seedLoginUser, seedCRAMChallenge, seedCRAMResponse, seedDigestChallenge,
		seedDigestResponse, seedDigestRspauth, "TlRMTVNTUAABAAAAB4IIAAAAAAAgAAAAAAAAACAAAAA=", ntlmV1Authenticate(),
		b64s("n,,n=user,r=abc"), b64s("r=abc,s=QSXCR+Q6sek8bf92,i=4096"), b64s("c=biws,r=abc,p=AAAA"), b64s("v=AAAA"),
		b64s("user=u\x01auth=Bearer t\x01\x01"), b64s("n,a=u,\x01auth=Bearer t\x01\x01"), b64s(`{"status":"401"}`)} {
		b, _ := base64.StdEncoding.DecodeString(s)
		f.Add(b, false)
	}
	if b, err := base64.StdEncoding.DecodeString(msnlmpChallengeB64(f)); err == nil {
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, msg []byte, show bool) {
		d, err := Decode(base64.StdEncoding.EncodeToString(msg), Options{ShowSecrets: show})
		if err != nil {
			t.Fatalf("Decode(base64 of %q): %v", msg, err)
		}
		if strings.ContainsFunc(d.Text, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("text %q has a control character", d.Text)
		}
		if d.Title == "" {
			t.Fatalf("no title for %q", msg)
		}
		_ = FormatDecode(d)
	})
}
