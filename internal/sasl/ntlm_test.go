package sasl

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// MS-NLMP §4.2.1 and §4.2.4: the NTLMv2 example's inputs.
const (
	vecServerChallenge = "0123456789abcdef"
	vecClientChallenge = "aaaaaaaaaaaaaaaa"
)

// vecAVPairs is the target info of MS-NLMP §4.2.4: MsvAvNbDomainName "Domain",
// MsvAvNbComputerName "Server", MsvAvEOL.
func vecAVPairs() []byte {
	info := appendAVPair(nil, ntlmAvNbDomainName, utf16le("Domain"))
	info = appendAVPair(info, ntlmAvNbComputerName, utf16le("Server"))
	return appendAVPair(info, ntlmAvEOL, nil)
}

// vecBlob is §4.2.4.2.2's "temp": the client blob with time 0 and the vector's AV pairs.
func vecBlob(t testing.TB) []byte {
	b := []byte{1, 1, 0, 0, 0, 0, 0, 0}
	b = append(b, make([]byte, 8)...) // Time
	b = append(b, unhex(t, vecClientChallenge)...)
	b = append(b, 0, 0, 0, 0)
	b = append(b, vecAVPairs()...)
	return append(b, 0, 0, 0, 0)
}

// authenticateMessage builds an AUTHENTICATE_MESSAGE from its parts (64-octet header).
func authenticateMessage(lm, nt, domain, user, workstation []byte, flags uint32) []byte {
	b := append([]byte(ntlmSignature), 3, 0, 0, 0)
	off := ntlmAuthenticateHeader
	payloads := [][]byte{lm, nt, domain, user, workstation, nil}
	for _, p := range payloads {
		b = appendNTLMField(b, len(p), off)
		off += len(p)
	}
	b = binary.LittleEndian.AppendUint32(b, flags)
	for _, p := range payloads {
		b = append(b, p...)
	}
	return b
}

// negotiateMessage builds a NEGOTIATE_MESSAGE with flags and empty fields.
func negotiateMessage(flags uint32) []byte {
	b := append([]byte(ntlmSignature), 1, 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = appendNTLMField(b, 0, 32)
	return appendNTLMField(b, 0, 32)
}

// ntlmTestServer returns an NTLM server whose challenge is vecServerChallenge, ready for the
// AUTHENTICATE_MESSAGE (its CHALLENGE_MESSAGE is returned too).
func ntlmTestServer(t *testing.T, creds Credentials, flags uint32) (Server, []byte) {
	t.Helper()
	return ntlmTestServerV1(t, creds, flags, false)
}

// ntlmTestServerV1 is ntlmTestServer with ServerOptions.NTLMv1 set to v1.
func ntlmTestServerV1(t *testing.T, creds Credentials, flags uint32, v1 bool) (Server, []byte) {
	t.Helper()
	s := NewNTLMServer(context.Background(), creds, ServerOptions{
		Hostname: "mx.example.test",
		Rand:     bytes.NewReader(unhex(t, vecServerChallenge)),
		Now:      func() time.Time { return time.Unix(1700000000, 0) },
		NTLMv1:   v1,
	})
	if ch, done, err := s.Next(nil); err != nil || done || len(ch) != 0 || ch == nil {
		t.Fatalf("Next(nil) = %q, %v, %v; want an empty challenge", ch, done, err)
	}
	ch, done, err := s.Next(negotiateMessage(flags))
	if err != nil || done {
		t.Fatalf("Next(NEGOTIATE) = %v, %v", done, err)
	}
	return s, ch
}

// TestNTLMVectors checks the primitives and the server against MS-NLMP §4.2.2.1.2 (NT hash)
// and §4.2.4 (NTLMv2).
func TestNTLMVectors(t *testing.T) {
	nt, err := deriveNTLM("Password")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(nt), "a4f49c406510bdcab6824ee7c30fd852"; got != want {
		t.Errorf("NT hash %s, want %s", got, want)
	}
	key := ntowfv2(nt, "User", utf16le("Domain"))
	if got, want := hex.EncodeToString(key), "0c868a403bfd7a93a3001ef22ef02e3f"; got != want {
		t.Errorf("NTOWFv2 %s, want %s", got, want)
	}
	blob := vecBlob(t)
	proof := ntlmHMAC(key, unhex(t, vecServerChallenge), blob)
	if got, want := hex.EncodeToString(proof), "68cd0ab851e51c96aabc927bebef6a1c"; got != want {
		t.Errorf("NTProofStr %s, want %s", got, want)
	}
	lmv2 := append(ntlmHMAC(key, unhex(t, vecServerChallenge), unhex(t, vecClientChallenge)), unhex(t, vecClientChallenge)...)
	if got, want := hex.EncodeToString(lmv2), "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"; got != want {
		t.Errorf("LMv2 response %s, want %s", got, want)
	}

	// The server, given §4.2.4's AUTHENTICATE_MESSAGE contents for its challenge.
	store := newSecretStore(t, map[string]string{"user@example.test": "Password"})
	s, _ := ntlmTestServer(t, store, ntlmClientFlags)
	msg := authenticateMessage(lmv2, append(proof, blob...), utf16le("Domain"), utf16le("User"), utf16le("COMPUTER"), 0xe2888215)
	if _, done, err := s.Next(msg); !done || err != nil || s.Identity() != "user@example.test" {
		t.Fatalf("server: %v, %v, identity %q", done, err, s.Identity())
	}

	// The client, given a CHALLENGE_MESSAGE with §4.2.4's challenge and AV pairs, no timestamp.
	challenge := append([]byte(ntlmSignature), 2, 0, 0, 0)
	challenge = appendNTLMField(challenge, 0, 48)
	challenge = binary.LittleEndian.AppendUint32(challenge, ntlmFlagUnicode|ntlmFlagNTLM|ntlmFlagTargetInfo)
	challenge = append(challenge, unhex(t, vecServerChallenge)...)
	challenge = append(challenge, make([]byte, 8)...)
	challenge = appendNTLMField(challenge, len(vecAVPairs()), 48)
	challenge = append(challenge, vecAVPairs()...)
	c := NewNTLMClient("User", "Password", "Domain", "COMPUTER").(*ntlmClient)
	c.rand = bytes.NewReader(unhex(t, vecClientChallenge))
	c.now = func() time.Time { return time.Unix(-11644473600, 0) } // FILETIME 0
	if _, err := c.Next(nil); err != nil {
		t.Fatal(err)
	}
	out, err := c.Next(challenge)
	if err != nil {
		t.Fatal(err)
	}
	a, err := parseNTLMAuthenticate(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(proof, blob...); !bytes.Equal(a.nt, want) {
		t.Errorf("client NT response\n%x, want\n%x", a.nt, want)
	}
	if !bytes.Equal(a.lm, lmv2) {
		t.Errorf("client LM response %x, want %x", a.lm, lmv2)
	}
	if !bytes.Equal(a.user, utf16le("User")) || !bytes.Equal(a.domain, utf16le("Domain")) || !bytes.Equal(a.workstation, utf16le("COMPUTER")) {
		t.Errorf("client names %q %q %q", a.user, a.domain, a.workstation)
	}
}

// TestNTLMDomainAsOEM: Authen::NTLM in NTLMv2 mode flags Unicode but sends the domain as
// plain octets, and hashes it widened to UTF-16. Its blob's timestamp is nonsense too (seconds,
// not 100 ns units), like the time 0 of the vector here: neither may make it fail.
func TestNTLMDomainAsOEM(t *testing.T) {
	store := newSecretStore(t, scramAccounts())
	nt, _ := deriveNTLM("pencil")
	blob := vecBlob(t)
	for _, tt := range []struct {
		name       string
		sent, hash string // the domain as sent, and as hashed (widened)
		want       error
	}{
		{"odd length", "EXAMPLE", "EXAMPLE", nil},
		{"even length", "DOMAIN", "DOMAIN", nil},
		{"another domain hashed", "EXAMPLE", "EXAMPLF", ErrAuthFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := ntlmTestServer(t, store, ntlmClientFlags)
			key := ntowfv2(nt, "user", latin1To16([]byte(tt.hash)))
			resp := append(ntlmHMAC(key, unhex(t, vecServerChallenge), blob), blob...)
			_, done, err := s.Next(authenticateMessage(nil, resp, []byte(tt.sent), utf16le("user"), nil, 0x88205))
			if !done {
				t.Fatal("not done")
			}
			checkErr(t, err, tt.want)
		})
	}
}

func TestDeriveNTLM(t *testing.T) {
	if _, err := deriveNTLM("bad\xffUTF-8"); err == nil {
		t.Error("invalid UTF-8: no error")
	}
	// A character outside the BMP is two UTF-16 units.
	h := ntlmHash("\U0001F511")
	if got := ntlmHash(string([]rune{0x1F511})); !bytes.Equal(h, got) || len(h) != 16 {
		t.Errorf("hash %x", h)
	}
}

func TestNTLMRoundTrip(t *testing.T) {
	store := newSecretStore(t, scramAccounts())
	for account, password := range scramAccounts() {
		for _, domain := range []string{"", "EXAMPLE", "exämple"} {
			t.Run(account+"/"+domain, func(t *testing.T) {
				c := NewNTLMClient(account, password, domain, "WORKSTATION")
				s := NewNTLMServer(context.Background(), store, ServerOptions{Hostname: "mx.example.test"})
				identity, steps, err := runExchange(t, c, s)
				if err != nil || identity != account || steps != 3 {
					t.Fatalf("identity %q after %d steps, error %v", identity, steps, err)
				}
			})
		}
	}

	// A NEGOTIATE_MESSAGE as the initial response (as Outlook sends it).
	c := NewNTLMClient("user", "pencil", "", "")
	s := NewNTLMServer(context.Background(), store, ServerOptions{})
	if _, _, err := c.Start(); err != nil {
		t.Fatal(err)
	}
	type1, _ := c.Next([]byte{})
	ch, done, err := s.Next(type1)
	if err != nil || done {
		t.Fatal(err)
	}
	type3, err := c.Next(ch)
	if err != nil {
		t.Fatal(err)
	}
	if _, done, err := s.Next(type3); !done || err != nil || s.Identity() != "user@example.test" {
		t.Fatalf("type 1 as initial response: %v, %v", done, err)
	}
}

// TestNTLMOEM: a client that asks for OEM only (curl does) gets OEM, and is understood.
func TestNTLMOEM(t *testing.T) {
	store := newSecretStore(t, scramAccounts())
	const curlFlags = ntlmFlagOEM | ntlmFlagRequestTarget | ntlmFlagNTLM | ntlmFlagAlwaysSign | ntlmFlagExtendedSecurity
	for _, tt := range []struct{ user, password, domain string }{
		{"user", "pencil", ""},
		{"kenneth.burgener@example.test", "ImBB1999!", "EXAMPLE"},
		{"bjørn@exämple.test", "pässwörd", "exämple"}, // Latin-1 octets in OEM
	} {
		t.Run(tt.user, func(t *testing.T) {
			s, type2 := ntlmTestServer(t, store, curlFlags)
			flags, _, _, err := parseNTLMChallenge(type2)
			if err != nil {
				t.Fatal(err)
			}
			if flags&ntlmFlagOEM == 0 || flags&ntlmFlagUnicode != 0 || flags&ntlmFlagExtendedSecurity == 0 {
				t.Fatalf("CHALLENGE flags %#x: want OEM and extended session security, not Unicode", flags)
			}
			c := NewNTLMClient(tt.user, tt.password, tt.domain, "WS")
			clientStep(t, c)
			type3, err := c.Next(type2)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := parseNTLMAuthenticate(type3)
			if want, _ := latin1(tt.user); !bytes.Equal(a.user, want) {
				t.Errorf("user field %q, want OEM %q", a.user, want)
			}
			if _, done, err := s.Next(type3); !done || err != nil {
				t.Fatalf("%v, %v", done, err)
			}
		})
	}
	// The client cannot put a name beyond Latin-1 into OEM.
	_, type2 := ntlmTestServer(t, store, curlFlags)
	c := NewNTLMClient("zoë@例え.test", "x", "", "")
	clientStep(t, c)
	if _, err := c.Next(type2); err == nil {
		t.Error("non-Latin-1 name in OEM: no error")
	}
}

func TestNTLMChallengeMessage(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, tt := range []struct {
		name      string
		asked     uint32
		host      string
		want      uint32 // flags that must be set
		wantNot   uint32 // flags that must not be
		target    string
		dnsDomain string
	}{
		{"unicode", ntlmClientFlags, "mx.example.test", ntlmFlagUnicode | ntlmFlagNTLM | ntlmFlagTargetInfo | ntlmFlagExtendedSecurity, ntlmFlagOEM, "MX", "example.test"},
		{"OEM", ntlmFlagOEM | ntlmFlagNTLM, "mx.example.test", ntlmFlagOEM | ntlmFlagTargetInfo, ntlmFlagUnicode | ntlmFlagExtendedSecurity, "MX", "example.test"},
		{"neither", 0, "averyveryverylonghostname", ntlmFlagOEM, ntlmFlagUnicode, "AVERYVERYVERYLO", ""},
		{"no hostname", ntlmFlagUnicode, "", ntlmFlagUnicode, 0, "LOCALHOST", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := NewNTLMServer(context.Background(), &secretStore{}, ServerOptions{
				Hostname: tt.host, Now: func() time.Time { return now },
			})
			msg, done, err := s.Next(negotiateMessage(tt.asked))
			if err != nil || done {
				t.Fatal(err)
			}
			flags, challenge, info, err := parseNTLMChallenge(msg)
			if err != nil {
				t.Fatal(err)
			}
			if flags&tt.want != tt.want || flags&tt.wantNot != 0 {
				t.Errorf("flags %#x: want %#x set and %#x clear", flags, tt.want, tt.wantNot)
			}
			if len(challenge) != 8 || bytes.Equal(challenge, make([]byte, 8)) {
				t.Errorf("server challenge %x", challenge)
			}
			target, _ := ntlmField(msg, 12)
			wantTarget := []byte(tt.target)
			if flags&ntlmFlagUnicode != 0 {
				wantTarget = utf16le(tt.target)
			}
			if !bytes.Equal(target, wantTarget) {
				t.Errorf("target name %q, want %q", target, wantTarget)
			}
			// Authen::NTLM reads the target info by its MaxLen.
			if binary.LittleEndian.Uint16(msg[40:]) != binary.LittleEndian.Uint16(msg[42:]) {
				t.Error("target info Len != MaxLen")
			}
			pairs, err := parseNTLMAVPairs(info)
			if err != nil {
				t.Fatal(err)
			}
			got := map[uint16]string{}
			for _, p := range pairs {
				got[p.id] = string(p.value)
			}
			host := tt.host
			if host == "" {
				host = "localhost"
			}
			wantPairs := map[uint16]string{
				ntlmAvNbDomainName:    string(utf16le(tt.target)),
				ntlmAvNbComputerName:  string(utf16le(tt.target)),
				ntlmAvDNSComputerName: string(utf16le(host)),
				ntlmAvTimestamp:       string(binary.LittleEndian.AppendUint64(nil, 133594528890000000)),
			}
			if tt.dnsDomain != "" {
				wantPairs[ntlmAvDNSDomainName] = string(utf16le(tt.dnsDomain))
			}
			if len(got) != len(wantPairs) {
				t.Errorf("AV pairs %x, want %x", got, wantPairs)
			}
			for id, v := range wantPairs {
				if got[id] != v {
					t.Errorf("AV pair %d: %x, want %x", id, got[id], v)
				}
			}
		})
	}
}

// MS-NLMP §4.2.2 (NTLMv1) and §4.2.3 (NTLMv1 with client challenge: the NTLM2 session
// response), for §4.2.1's inputs (password "Password", vecServerChallenge, vecClientChallenge).
const (
	vecNTLMv1Response    = "67c43011f30298a2ad35ece64f16331c44bdbed927841f94"
	vecNTLMv1ESSResponse = "7537f803ae367128ca458204bde7caf81e97ed2683267232"
)

// TestNTLMv1Vectors checks DESL and the server's NTLMv1 verification against MS-NLMP §4.2.2
// and §4.2.3, with NTLMv1 on: the flags the client asked for decide which of the two it is.
func TestNTLMv1Vectors(t *testing.T) {
	nt, err := deriveNTLM("Password")
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(desl(nt, unhex(t, vecServerChallenge))); got != vecNTLMv1Response {
		t.Errorf("DESL(NT hash, server challenge) %s, want %s", got, vecNTLMv1Response)
	}
	store := newSecretStore(t, map[string]string{"user@example.test": "Password"})
	essLM := append(unhex(t, vecClientChallenge), make([]byte, 16)...) // §4.2.3.2.1
	v1Flags := ntlmFlagUnicode | ntlmFlagOEM | ntlmFlagRequestTarget | ntlmFlagNTLM | ntlmFlagAlwaysSign
	tests := []struct {
		name    string
		flags   uint32 // the NEGOTIATE_MESSAGE's
		lm, nt  []byte
		wantErr error
	}{
		{"NTLMv1", v1Flags, make([]byte, 24), unhex(t, vecNTLMv1Response), nil},
		{"NTLMv1, no LM response", v1Flags, nil, unhex(t, vecNTLMv1Response), nil},
		{"NTLM2 session response", v1Flags | ntlmFlagExtendedSecurity, essLM, unhex(t, vecNTLMv1ESSResponse), nil},
		{"NTLMv1 where the session response was negotiated", v1Flags | ntlmFlagExtendedSecurity, make([]byte, 24), unhex(t, vecNTLMv1Response), ErrAuthFailed},
		{"session response where NTLMv1 was negotiated", v1Flags, essLM, unhex(t, vecNTLMv1ESSResponse), ErrAuthFailed},
		{"session response without the client challenge", v1Flags | ntlmFlagExtendedSecurity, nil, unhex(t, vecNTLMv1ESSResponse), ErrAuthFailed},
		{"NTLMv1, one bit off", v1Flags, nil, unhex(t, "67c43011f30298a2ad35ece64f16331c44bdbed927841f95"), ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := ntlmTestServerV1(t, store, tt.flags, true)
			msg := authenticateMessage(tt.lm, tt.nt, utf16le("Domain"), utf16le("User"), utf16le("COMPUTER"), tt.flags)
			_, done, err := s.Next(msg)
			if !done {
				t.Fatal("not done")
			}
			checkErr(t, err, tt.wantErr)
			if err == nil && s.Identity() != "user@example.test" {
				t.Errorf("identity %q", s.Identity())
			}
			if err != nil && !strings.Contains(err.Error(), `wrong NTLMv1 response (password; user "User", domain "Domain")`) {
				t.Errorf("error %q does not say what failed for whom", err)
			}
		})
	}
}

// TestNTLMRefusesV1: without NTLMv1, NTLMv1 and NTLM2 session responses never pass, even when
// they are right, and LM-only responses never do. The reason names the user and domain the
// message carried, for the log, and the account is looked up (so the log and the limiter name
// it too).
func TestNTLMRefusesV1(t *testing.T) {
	store := newSecretStore(t, map[string]string{"user@example.test": "Password"})
	tests := []struct {
		name    string
		v1      bool
		lm, nt  []byte
		wantErr error
		want    string
	}{
		{"NTLMv1", false, make([]byte, 24), unhex(t, vecNTLMv1Response), ErrAuthFailed,
			`NTLMv1 response (24 octets; user "User", domain "Domain"): refused, NTLMv1 is off (auth.ntlm_v1)`},
		{"NTLM2 session response", false, append(unhex(t, vecClientChallenge), make([]byte, 16)...), unhex(t, vecNTLMv1ESSResponse), ErrAuthFailed, "NTLMv1 is off"},
		{"LM only", true, bytes.Repeat([]byte{3}, 24), nil, ErrAuthFailed, `no NT response (anonymous, or LM only; user "User", domain "Domain")`},
		{"short NT response", true, nil, []byte{1, 2, 3}, ErrProtocol, "NT response of 3 octets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &loginRecorderStore{Credentials: store}
			s, _ := ntlmTestServerV1(t, rec, ntlmClientFlags, tt.v1)
			_, done, err := s.Next(authenticateMessage(tt.lm, tt.nt, utf16le("Domain"), utf16le("User"), nil, 0))
			if !done || !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%v, %v; want %v saying %q", done, err, tt.wantErr, tt.want)
			}
			if tt.name == "NTLMv1" && rec.login != "User" {
				t.Errorf("looked up %q, want the user name", rec.login)
			}
		})
	}
}

// loginRecorderStore remembers the login of the last secret lookup, as the SMTP server's does
// for its log.
type loginRecorderStore struct {
	Credentials
	login string
}

func (r *loginRecorderStore) Secret(ctx context.Context, login, kind string) (string, []byte, error) {
	r.login = login
	return r.Credentials.Secret(ctx, login, kind)
}

// TestNTLMServerFailures covers the credential outcomes and the step sequence.
func TestNTLMServerFailures(t *testing.T) {
	store := newSecretStore(t, scramAccounts())
	for _, tt := range []struct {
		name, user, password string
		want                 error
	}{
		{"wrong password", "user", "pencil!", ErrAuthFailed},
		{"unknown user", "nobody", "pencil", ErrAuthFailed},
		{"store down", brokenAccount, "pencil", ErrUnavailable},
		{"corrupt secret", corruptAccount, "pencil", ErrUnavailable},
		{"user in upper case", "USER@EXAMPLE.TEST", "pencil", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, steps, err := runExchange(t, NewNTLMClient(tt.user, tt.password, "", ""), NewNTLMServer(context.Background(), store, ServerOptions{}))
			checkErr(t, err, tt.want)
			if steps != 3 {
				t.Errorf("ended at step %d, want 3", steps)
			}
		})
	}

	s := NewNTLMServer(context.Background(), store, ServerOptions{Rand: iotest.ErrReader(errors.New("no entropy"))})
	if _, done, err := s.Next(negotiateMessage(ntlmClientFlags)); !done || !errors.Is(err, ErrUnavailable) {
		t.Errorf("failing random source: %v, %v", done, err)
	}
	s = NewNTLMServer(context.Background(), store, ServerOptions{})
	serverStep(t, s, nil)
	if _, done, err := s.Next([]byte{}); !done || !errors.Is(err, ErrProtocol) {
		t.Errorf("empty NEGOTIATE_MESSAGE: %v, %v", done, err)
	}
	if _, done, err := s.Next(negotiateMessage(ntlmClientFlags)); !done || !errors.Is(err, ErrProtocol) {
		t.Errorf("Next after the end: %v, %v", done, err)
	}

	// Anonymous: an empty user name with an NTLMv2-shaped response.
	s, _ = ntlmTestServer(t, store, ntlmClientFlags)
	if _, _, err := s.Next(authenticateMessage(nil, append(make([]byte, 16), vecBlob(t)...), nil, nil, nil, 0)); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("anonymous: %v", err)
	}

	// An extra step after success.
	c := NewNTLMClient("user", "pencil", "", "")
	s = NewNTLMServer(context.Background(), store, ServerOptions{})
	if _, _, err := runExchange(t, c, s); err != nil {
		t.Fatal(err)
	}
	if _, done, err := s.Next([]byte{}); !done || !errors.Is(err, ErrProtocol) || s.Identity() != "user@example.test" {
		t.Errorf("Next after success: %v, %v", done, err)
	}
	if _, err := c.Next([]byte("more")); err == nil {
		t.Error("client: a third challenge was answered")
	}
}

func TestNTLMServerMalformed(t *testing.T) {
	store := newSecretStore(t, scramAccounts())
	type1 := negotiateMessage(ntlmClientFlags)
	t1 := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, type1...)) }
	negotiates := map[string][]byte{
		"short":            type1[:15],
		"no signature":     append([]byte("NTLMSSX\x00"), type1[8:]...),
		"type 3":           t1(func(b []byte) []byte { b[8] = 3; return b }),
		"field past end":   t1(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[16:], 1); return b }),
		"offset past end":  t1(func(b []byte) []byte { b[24] = 1; binary.LittleEndian.PutUint32(b[28:], 0xffffffff); return b }),
		"oversize":         append(append([]byte{}, type1...), make([]byte, ntlmMaxMessage)...),
		"text, not binary": []byte("hello"),
	}
	for name, msg := range negotiates {
		t.Run("NEGOTIATE/"+name, func(t *testing.T) {
			s := NewNTLMServer(context.Background(), store, ServerOptions{})
			_, done, err := s.Next(msg)
			if !done {
				t.Fatal("not done")
			}
			checkErr(t, err, ErrProtocol)
		})
	}

	// A valid AUTHENTICATE_MESSAGE of tern's client, for the server of ntlmTestServer.
	_, type2 := ntlmTestServer(t, store, ntlmClientFlags)
	c := NewNTLMClient("user", "pencil", "", "WS")
	clientStep(t, c)
	good, err := c.Next(type2)
	if err != nil {
		t.Fatal(err)
	}
	ntOff := int(binary.LittleEndian.Uint32(good[24:]))
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	v2 := append(make([]byte, 16), vecBlob(t)...)
	authenticates := map[string][]byte{
		"short header":       good[:51],
		"no signature":       mod(func(b []byte) []byte { b[0] = 'X'; return b }),
		"type 1":             mod(func(b []byte) []byte { b[8] = 1; return b }),
		"LM past end":        mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[16:], uint32(len(b))); return b }),
		"NT length past end": mod(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[20:], 0xffff); return b }),
		"NT offset huge":     mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[24:], 0xfffffff0); return b }),
		"user past end":      mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[40:], uint32(len(b)-1)); return b }),
		"workstation huge":   mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[48:], 0xffffffff); return b }),
		"truncated payload":  good[:len(good)-3],
		"blob version 2":     mod(func(b []byte) []byte { b[ntOff+16] = 2; return b }),
		"AV pair overruns":   authenticateMessage(nil, append(v2[:16+28], 2, 0, 0xff, 0), nil, utf16le("user"), nil, 0),
		"AV pairs no EOL":    authenticateMessage(nil, append(v2[:16+28], 2, 0, 2, 0, 'a', 0), nil, utf16le("user"), nil, 0),
		"blob too short":     authenticateMessage(nil, v2[:30], nil, utf16le("user"), nil, 0),
		"odd-length user":    authenticateMessage(nil, v2, nil, []byte("use"), nil, 0),
		"lone surrogate":     authenticateMessage(nil, v2, nil, []byte{0x00, 0xd8}, nil, 0),
		"NUL in user":        authenticateMessage(nil, v2, nil, utf16le("us\x00er"), nil, 0),
		"long user":          authenticateMessage(nil, v2, nil, utf16le(strings.Repeat("u", maxNameLen+1)), nil, 0),
		"oversize":           append(append([]byte{}, good...), make([]byte, ntlmMaxMessage)...),
	}
	for name, msg := range authenticates {
		t.Run("AUTHENTICATE/"+name, func(t *testing.T) {
			s, _ := ntlmTestServer(t, store, ntlmClientFlags)
			_, done, err := s.Next(msg)
			if !done {
				t.Fatal("not done")
			}
			checkErr(t, err, ErrProtocol)
		})
	}
	// The unmodified message passes, so the cases above fail for their own reason.
	s, _ := ntlmTestServer(t, store, ntlmClientFlags)
	if _, _, err := s.Next(good); err != nil {
		t.Fatalf("good message: %v", err)
	}
}

func TestNTLMClientMalformed(t *testing.T) {
	if _, _, err := NewNTLMClient("", "x", "", "").Start(); err == nil {
		t.Error("empty user: no error")
	}
	if _, _, err := NewNTLMClient("u", "\xff", "", "").Start(); err == nil {
		t.Error("bad password: no error")
	}
	c := NewNTLMClient("u", "p", "", "")
	if _, err := c.Next([]byte("not empty")); err == nil {
		t.Error("non-empty first challenge: no error")
	}
	_, good := ntlmTestServer(t, &secretStore{}, ntlmClientFlags)
	for name, msg := range map[string][]byte{
		"short":            good[:31],
		"type 3":           append(append([]byte{}, good[:8]...), append([]byte{3, 0, 0, 0}, good[12:]...)...),
		"target info huge": append(append([]byte{}, good[:44]...), append([]byte{0xff, 0xff, 0xff, 0xff}, good[48:]...)...),
		"no EOL":           good[:len(good)-4],
	} {
		c := NewNTLMClient("u", "p", "", "")
		clientStep(t, c)
		if _, err := c.Next(msg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// ntlmPerl drives Authen::NTLM (what swaks uses) through one exchange: it prints the
// NEGOTIATE_MESSAGE, reads the CHALLENGE_MESSAGE and prints the AUTHENTICATE_MESSAGE, base64.
const ntlmPerl = `
use strict; use Authen::NTLM;
my ($v2, $user, $password, $domain) = @ARGV;
$| = 1;
ntlmv2(1) if $v2;
ntlm_user($user); ntlm_password($password); ntlm_domain($domain);
print ntlm(), "\n";
my $challenge = <STDIN>;
print ntlm($challenge), "\n";
`

// TestNTLMAuthenNTLM runs the server against Authen::NTLM: NTLMv2 passes (also with a domain,
// which it sends in the wrong encoding), and its default NTLMv1 is refused unless NTLMv1 is on.
func TestNTLMAuthenNTLM(t *testing.T) {
	if err := exec.Command("perl", "-MAuthen::NTLM", "-e1").Run(); err != nil {
		requirePeer(t, "perl with Authen::NTLM (libauthen-ntlm-perl)", err)
	}
	store := newSecretStore(t, scramAccounts())
	tests := []struct {
		name, v2, user, password, domain string
		v1On                             bool
		want                             error
	}{
		{"v2", "1", "kenneth.burgener", "ImBB1999!", "", false, nil},
		{"v2, full address", "1", "user@example.test", "pencil", "", false, nil},
		{"v2, domain", "1", "user", "pencil", "EXAMPLE", false, nil},
		{"v2, wrong password", "1", "user", "pencil!", "", false, ErrAuthFailed},
		{"v1", "0", "user", "pencil", "", false, ErrAuthFailed},
		{"v1, domain", "0", "user", "pencil", "EXAMPLE", false, ErrAuthFailed},
		{"v1 on", "0", "kenneth.burgener", "ImBB1999!", "", true, nil},
		{"v1 on, domain", "0", "user@example.test", "pencil", "EXAMPLE", true, nil},
		{"v1 on, wrong password", "0", "user", "pencil!", "", true, ErrAuthFailed},
		{"v1 on, v2", "1", "user", "pencil", "", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startLineTool(t, "perl", "-e", ntlmPerl, tt.v2, tt.user, tt.password, tt.domain)
			s := NewNTLMServer(context.Background(), store, ServerOptions{Hostname: "mx.example.test", NTLMv1: tt.v1On})
			serverStep(t, s, nil)
			ch, done, err := s.Next(p.recv())
			if err != nil || done {
				t.Fatalf("NEGOTIATE_MESSAGE: %v", err)
			}
			p.send(ch)
			_, done, err = s.Next(p.recv())
			if !done {
				t.Fatal("not done")
			}
			checkErr(t, err, tt.want)
			if tt.v2 == "0" && err != nil && !strings.Contains(err.Error(), "NTLMv1") {
				t.Errorf("error %q does not say NTLMv1", err)
			}
			if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("user %q", tt.user)) {
				t.Errorf("error %q does not name the user %q", err, tt.user)
			}
			if err := p.wait(); err != nil {
				t.Errorf("perl: %v (stderr: %s)", err, p.stderr.String())
			}
		})
	}
}

func ExampleNewNTLMClient() {
	secret, err := deriveNTLM("pencil")
	if err != nil {
		panic(err)
	}
	store := &secretStore{secrets: map[string]map[string][]byte{"user@example.test": {SecretNTLM: secret}}}
	client := NewNTLMClient("user", "pencil", "", "")
	server := NewNTLMServer(context.Background(), store, ServerOptions{Hostname: "mx.example.test"})

	mech, msg, _ := client.Start() // no initial response: the server sends an empty challenge
	for {
		challenge, done, err := server.Next(msg)
		if done {
			fmt.Println(mech, server.Identity(), err)
			return
		}
		if msg, err = client.Next(challenge); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Output: NTLM user@example.test <nil>
}

func ntlmFuzzSeeds(f *testing.F) (type1, type3 [][]byte) {
	c := NewNTLMClient("user", "pencil", "EXAMPLE", "WS")
	clientStep(f, c)
	t1, _ := c.Next(nil)
	_, type2 := ntlmFuzzServer(f)
	t3, _ := c.Next(type2)
	v2 := append(make([]byte, 16), vecBlob(f)...)
	type1 = [][]byte{t1, negotiateMessage(ntlmFlagOEM), []byte(ntlmSignature + "\x01\x00\x00\x00\x07\xb2\x08\x00"), nil}
	type3 = [][]byte{t3, authenticateMessage(nil, v2, nil, utf16le("user"), nil, 0),
		authenticateMessage(make([]byte, 24), make([]byte, 24), nil, []byte("user"), nil, 0), type2}
	return type1, type3
}

func ntlmFuzzServer(f testing.TB) (Server, []byte) {
	s := NewNTLMServer(context.Background(), newSecretStore(f, map[string]string{"user@example.test": "pencil"}), ServerOptions{})
	ch, _, _ := s.Next(negotiateMessage(ntlmClientFlags))
	return s, ch
}

// FuzzNTLMServer feeds arbitrary NEGOTIATE and AUTHENTICATE messages: the server must never
// panic, and never accept (it cannot know the random challenge's answer).
func FuzzNTLMServer(f *testing.F) {
	type1s, type3s := ntlmFuzzSeeds(f)
	for i, t1 := range type1s {
		for _, t3 := range type3s {
			f.Add(t1, t3, i%2 == 0)
		}
	}
	store := newSecretStore(f, map[string]string{"user@example.test": "pencil"})
	f.Fuzz(func(t *testing.T, type1, type3 []byte, prompt bool) {
		// Each input with NTLMv1 off and on: neither may accept.
	configs:
		for _, v1 := range []bool{false, true} {
			s := NewNTLMServer(context.Background(), store, ServerOptions{Hostname: "mx.example.test", NTLMv1: v1})
			if prompt {
				if _, done, err := s.Next(nil); done || err != nil {
					t.Fatalf("Next(nil): %v, %v", done, err)
				}
			}
			for i, msg := range [][]byte{type1, type3, {}} {
				_, done, err := s.Next(msg)
				if done {
					if err == nil {
						t.Fatalf("accepted after step %d (NTLMv1 %v)", i+1, v1)
					}
					continue configs
				}
				if err != nil {
					t.Fatalf("error %v without done", err)
				}
			}
			t.Fatal("not done after three messages")
		}
	})
}

// FuzzNTLMParse feeds arbitrary octets to every NTLM parser, server and client side.
func FuzzNTLMParse(f *testing.F) {
	type1s, type3s := ntlmFuzzSeeds(f)
	for _, b := range append(type1s, type3s...) {
		f.Add(b)
	}
	f.Add(vecAVPairs())
	f.Add(append(make([]byte, 16), vecBlob(f)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		within := func(what string, parts ...[]byte) {
			for _, p := range parts {
				if len(p) > len(b) {
					t.Fatalf("%s: a field of %d octets from %d", what, len(p), len(b))
				}
			}
		}
		if _, err := parseNTLMNegotiate(b); err == nil && len(b) < 16 {
			t.Fatalf("NEGOTIATE of %d octets accepted", len(b))
		}
		if a, err := parseNTLMAuthenticate(b); err == nil {
			within("AUTHENTICATE", a.lm, a.nt, a.domain, a.user, a.workstation)
		}
		if _, ch, info, err := parseNTLMChallenge(b); err == nil {
			within("CHALLENGE", ch, info)
		}
		if pairs, err := parseNTLMAVPairs(b); err == nil {
			for _, p := range pairs {
				within("AV pair", p.value)
			}
		}
		if proof, blob, err := splitNTLMv2Response(b); err == nil && len(proof)+len(blob) != len(b) {
			t.Fatal("NTLMv2 response split wrongly")
		}
		_, _ = decodeUTF16LE(b) // only that it does not panic
		c := NewNTLMClient("user", "pencil", "EXAMPLE", "WS")
		_, _ = c.Next(nil)
		_, _ = c.Next(b) // only that it does not panic
	})
}
