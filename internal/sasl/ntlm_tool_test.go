package sasl

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"testing"
	"time"
)

// msnlmpChallenge is MS-NLMP §4.2.4.3's CHALLENGE_MESSAGE: target name "Server", flags
// 0xe28a8233, server challenge 0123456789abcdef, version 6.0.6000 rev 15, and the AV pairs
// MsvAvNbDomainName "Domain", MsvAvNbComputerName "Server" (no timestamp).
const msnlmpChallenge = "4e544c4d53535000 02000000 0c000c00 38000000 33828ae2 0123456789abcdef 0000000000000000" +
	" 24002400 44000000 060070170000000f" +
	" 530065007200760065007200" +
	" 02000c0044006f006d00610069006e00 01000c00530065007200760065007200 00000000"

// TestNTLMClientFixedMSNLMP runs the client on the spec's CHALLENGE_MESSAGE with the spec's
// client challenge and time (FILETIME 0), and checks the AUTHENTICATE_MESSAGE's responses
// against §4.2.4.2 (NTProofStr, the blob "temp", LMv2) through ParseNTLM.
func TestNTLMClientFixedMSNLMP(t *testing.T) {
	challenge := unhex(t, msnlmpChallenge)
	m, err := ParseNTLM(challenge)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != 2 || m.Flags != 0xe28a8233 || m.TargetName != "Server" || hex.EncodeToString(m.ServerChallenge) != vecServerChallenge ||
		m.Version != "6.0.6000 rev 15" || len(m.TargetInfo) != 2 || string(m.TargetInfo[0].Value) != string(utf16le("Domain")) {
		t.Fatalf("ParseNTLM(spec CHALLENGE_MESSAGE) = %+v", m)
	}
	c := NewNTLMClientFixed("User", "Password", "Domain", "COMPUTER", NTLMFixed{
		ClientChallenge: unhex(t, vecClientChallenge),
		Now:             func() time.Time { return NTLMFiletimeTime(0) },
	})
	if _, _, err := c.Start(); err != nil {
		t.Fatal(err)
	}
	negotiate, err := c.Next([]byte{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ParseNTLM(negotiate); err != nil || n.Type != 1 || n.Flags != ntlmClientFlags {
		t.Fatalf("ParseNTLM(NEGOTIATE) = %+v, %v", n, err)
	}
	out, err := c.Next(challenge)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseNTLM(out)
	if err != nil {
		t.Fatal(err)
	}
	wantNT := append(unhex(t, "68cd0ab851e51c96aabc927bebef6a1c"), vecBlob(t)...)
	switch {
	case a.Type != 3 || a.User != "User" || a.Domain != "Domain" || a.Workstation != "COMPUTER":
		t.Errorf("AUTHENTICATE names: %+v", a)
	case !bytes.Equal(a.NTResponse, wantNT):
		t.Errorf("NT response\n%x, want\n%x", a.NTResponse, wantNT)
	case hex.EncodeToString(a.LMResponse) != "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa":
		t.Errorf("LM response %x", a.LMResponse)
	case !a.NTLMv2 || hex.EncodeToString(a.NTProofStr) != "68cd0ab851e51c96aabc927bebef6a1c" ||
		hex.EncodeToString(a.ClientChallenge) != vecClientChallenge || a.Timestamp != 0 || len(a.TargetInfo) != 2:
		t.Errorf("NTLMv2 parts: %+v", a)
	case a.Flags&ntlmFlagUnicode == 0:
		t.Errorf("flags %#x without Unicode", a.Flags)
	}
}

// The fixed client still authenticates against tern's server (whose challenge has a timestamp).
func TestNTLMClientFixedRoundTrip(t *testing.T) {
	store := newSecretStore(t, map[string]string{"user@example.test": "Password"})
	s := NewNTLMServer(context.Background(), store, ServerOptions{Hostname: "mx.example.test"})
	c := NewNTLMClientFixed("user", "Password", "", "", NTLMFixed{ClientChallenge: []byte("12345678")})
	if id, _, err := runExchange(t, c, s); err != nil || id != "user@example.test" {
		t.Fatalf("identity %q, %v", id, err)
	}
	if _, _, err := NewNTLMClientFixed("u", "p", "", "", NTLMFixed{ClientChallenge: []byte("short")}).Start(); err == nil {
		t.Errorf("a 5-octet client challenge was taken")
	}
}

func TestParseNTLM(t *testing.T) {
	v1 := authenticateMessage(make([]byte, 24), bytes.Repeat([]byte{7}, 24), []byte("DOM"), []byte("bob"), []byte("WS"), ntlmFlagOEM|ntlmFlagNTLM)
	if m, err := ParseNTLM(v1); err != nil || m.NTLMv2 || m.User != "bob" || m.Domain != "DOM" || m.Workstation != "WS" || len(m.NTResponse) != 24 {
		t.Errorf("NTLMv1 AUTHENTICATE: %+v, %v", m, err)
	}
	// A NEGOTIATE_MESSAGE with the OEM domain and workstation supplied, and a version.
	neg := append([]byte(ntlmSignature), 1, 0, 0, 0)
	neg = binary.LittleEndian.AppendUint32(neg, 0x02003207)
	neg = appendNTLMField(neg, 3, 40)
	neg = appendNTLMField(neg, 2, 43)
	neg = append(neg, 10, 0, 0x61, 0x4a, 0, 0, 0, 15)
	neg = append(neg, "DOMWS"...)
	if m, err := ParseNTLM(neg); err != nil || m.Domain != "DOM" || m.Workstation != "WS" || m.Version != "10.0.19041 rev 15" {
		t.Errorf("NEGOTIATE: %+v, %v", m, err)
	}
	for _, tt := range []struct {
		name string
		msg  []byte
	}{
		{"empty", nil},
		{"no signature", []byte("NTLMSSP\x01\x01\x00\x00\x00")},
		{"type 4", append([]byte(ntlmSignature), 4, 0, 0, 0)},
		{"short NEGOTIATE", append([]byte(ntlmSignature), 1, 0, 0, 0)},
		{"short CHALLENGE", append([]byte(ntlmSignature), 2, 0, 0, 0, 1, 2)},
		{"short AUTHENTICATE", append([]byte(ntlmSignature), 3, 0, 0, 0)},
		{"field past the end", authenticateMessage(nil, nil, nil, []byte("bob"), nil, 0)[:66]},
		{"bad AV pairs", func() []byte {
			b := unhex(t, msnlmpChallenge)
			return b[:len(b)-4]
		}()},
		{"too long", append([]byte(ntlmSignature+"\x01\x00\x00\x00"), make([]byte, ntlmMaxMessage)...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := ParseNTLM(tt.msg); err == nil {
				t.Errorf("ParseNTLM = %+v, want an error", m)
			}
		})
	}
}

func TestNTLMFlagNames(t *testing.T) {
	got := NTLMFlagNames(0x80000209)
	want := []string{"NTLMSSP_NEGOTIATE_UNICODE", "reserved 0x00000008", "NTLMSSP_NEGOTIATE_NTLM", "NTLMSSP_NEGOTIATE_56"}
	if !slices.Equal(got, want) {
		t.Errorf("NTLMFlagNames = %q, want %q", got, want)
	}
	if n := len(NTLMFlagNames(0xffffffff)); n != 32 {
		t.Errorf("%d names for all bits", n)
	}
}

func TestNTLMFiletimeTime(t *testing.T) {
	for ft, want := range map[uint64]string{
		0:                  "1601-01-01T00:00:00Z",
		ntlmFiletimeEpoch:  "1970-01-01T00:00:00Z",
		133594528890000000: "2024-05-06T07:08:09Z",
		ntlmFiletime(time.Unix(1700000000, 123400)): "2023-11-14T22:13:20.0001234Z",
	} {
		if got := NTLMFiletimeTime(ft).Format(time.RFC3339Nano); got != want {
			t.Errorf("NTLMFiletimeTime(%d) = %s, want %s", ft, got, want)
		}
	}
}

func FuzzParseNTLM(f *testing.F) {
	f.Add(unhex(f, msnlmpChallenge))
	f.Add(authenticateMessage(make([]byte, 24), make([]byte, 24), []byte("D"), []byte("U"), []byte("W"), 0))
	f.Add(negotiateMessage(ntlmClientFlags))
	f.Fuzz(func(t *testing.T, msg []byte) {
		m, err := ParseNTLM(msg)
		if err == nil && (m.Type < 1 || m.Type > 3) {
			t.Errorf("type %d parsed", m.Type)
		}
	})
}
