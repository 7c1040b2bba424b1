package authstr

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/sasl"
)

// NTLMParams are the inputs of `tern auth ntlm`.
type NTLMParams struct {
	User, Password, Domain, Workstation string
	// Fixed fixes the client challenge and the clock, for MS-NLMP §4.2.4's vectors.
	Fixed sasl.NTLMFixed
}

// NTLM is `tern auth ntlm`. Without a challenge it returns the NEGOTIATE_MESSAGE (type 1),
// which needs no password; with the server's CHALLENGE_MESSAGE (type 2, base64, "334 " allowed)
// it returns the AUTHENTICATE_MESSAGE (type 3) with an NTLMv2 response.
func NTLM(p NTLMParams, challenge string, o Options) (Output, error) {
	c := sasl.NewNTLMClientFixed(p.User, p.Password, p.Domain, p.Workstation, p.Fixed)
	if _, _, err := c.Start(); err != nil {
		return Output{}, err
	}
	negotiate, err := c.Next([]byte{})
	if err != nil {
		return Output{}, err
	}
	if challenge == "" {
		d, _ := describeNTLM(negotiate, o)
		d.note("send it (AUTH NTLM, then this in answer to the empty 334, or AUTH NTLM <this>); then run tern auth ntlm again with the server's type 2")
		return Output{Lines: []string{b64(negotiate)}, Explain: []Description{d}}, nil
	}
	msg, err := NTLMChallenge(challenge)
	if err != nil {
		return Output{}, err
	}
	in, _ := describeNTLM(msg, o)
	authenticate, err := c.Next(msg)
	if err != nil {
		return Output{}, err
	}
	out, _ := describeNTLM(authenticate, o)
	inputs := Description{Title: "NTLMv2 inputs (MS-NLMP §3.3.2)"}
	inputs.add("user", Escape([]byte(p.User)))
	inputs.add("password", o.secretField(p.Password))
	inputs.add("domain", Escape([]byte(p.Domain))+" (often empty; the server may ignore it)")
	inputs.add("NTOWFv2", "HMAC-MD5(MD4(UTF-16LE(password)), UTF-16LE(UPPER(user) || domain))")
	inputs.add("NTProofStr", "HMAC-MD5(NTOWFv2, server challenge || blob); the blob holds the time, a client challenge and the server's target info")
	return Output{Lines: []string{b64(authenticate)}, Explain: []Description{in, inputs, out}}, nil
}

// NTLMChallenge decodes the server's CHALLENGE_MESSAGE as typed (base64, "334 " allowed), and
// checks that it is one: `tern auth ntlm` uses it to tell the CHALLENGE argument from the others.
func NTLMChallenge(s string) ([]byte, error) {
	msg, _, err := serverMessage(s, nil)
	if err != nil {
		return nil, fmt.Errorf("NTLM challenge: %w", err)
	}
	m, err := sasl.ParseNTLM(msg)
	if err != nil {
		// The parser's errors are worded for logs ("sasl: NTLM: ..."); this one is read by the
		// person who pasted the challenge.
		return nil, &wordedError{"NTLM challenge: " + strings.TrimPrefix(err.Error(), "sasl: NTLM: "), err}
	}
	if m.Type != 2 {
		return nil, fmt.Errorf("NTLM challenge: a type %d message, not the server's type 2 (CHALLENGE_MESSAGE)", m.Type)
	}
	return msg, nil
}

// describeNTLM recognises an NTLM message (MS-NLMP §2.2.1) by its signature.
func describeNTLM(msg []byte, o Options) (Description, bool) {
	if !bytes.HasPrefix(msg, []byte("NTLMSSP\x00")) {
		return Description{}, false
	}
	d := Description{Text: Escape(msg)}
	m, err := sasl.ParseNTLM(msg)
	if err != nil {
		d.Title = "NTLM message (MS-NLMP), malformed"
		d.note("%v", err)
		return d, true
	}
	switch m.Type {
	case 1:
		d.Title = "NTLM NEGOTIATE_MESSAGE (type 1, MS-NLMP §2.2.1.1): the client's opening"
		ntlmFlags(&d, m.Flags)
		optional(&d, "domain", m.Domain)
		optional(&d, "workstation", m.Workstation)
	case 2:
		d.Title = "NTLM CHALLENGE_MESSAGE (type 2, MS-NLMP §2.2.1.2): the server's challenge"
		ntlmFlags(&d, m.Flags)
		d.add("target name", Escape([]byte(m.TargetName)))
		d.add("challenge", hex.EncodeToString(m.ServerChallenge)+" (the server challenge, 8 random octets)")
		avPairs(&d, m.TargetInfo)
	case 3:
		d.Title = "NTLM AUTHENTICATE_MESSAGE (type 3, MS-NLMP §2.2.1.3): the client's proof"
		ntlmFlags(&d, m.Flags)
		d.add("domain", Escape([]byte(m.Domain)))
		d.add("user", Escape([]byte(m.User)))
		d.add("workstation", Escape([]byte(m.Workstation)))
		ntlmResponses(&d, m)
		if len(m.SessionKey) > 0 {
			d.add("session key", fmt.Sprintf("%d octets (encrypted; for signing and sealing, which SMTP does not use)", len(m.SessionKey)))
		}
	}
	optional(&d, "version", m.Version)
	return d, true
}

// ntlmResponses describes the LM and NT responses, and says which NTLM version they are.
func ntlmResponses(d *Description, m sasl.NTLMMessage) {
	switch {
	case len(m.LMResponse) == 0:
		d.add("LM response", "(none)")
	case bytes.Equal(m.LMResponse, make([]byte, len(m.LMResponse))):
		d.add("LM response", fmt.Sprintf("%d zero octets (NTLMv2 with a server timestamp sends none, MS-NLMP §3.1.5.1.2)", len(m.LMResponse)))
	case m.NTLMv2 && len(m.LMResponse) == 24:
		d.add("LM response", "LMv2 (24 octets: HMAC-MD5(NTOWFv2, server challenge || client challenge), client challenge)")
	default:
		d.add("LM response", fmt.Sprintf("%d octets", len(m.LMResponse)))
	}
	switch {
	case len(m.NTResponse) == 0:
		d.add("NT response", "(none: anonymous)")
		d.note("an anonymous AUTHENTICATE_MESSAGE logs no one in; tern's server refuses it")
	case m.NTLMv2:
		d.add("NT response", fmt.Sprintf("NTLMv2 (%d octets)", len(m.NTResponse)))
		d.add("NTProofStr", hex.EncodeToString(m.NTProofStr))
		d.add("client challenge", hex.EncodeToString(m.ClientChallenge))
		d.add("time", ntlmTime(m.Timestamp))
		avPairs(d, m.TargetInfo)
	case len(m.NTResponse) == 24:
		ess := m.Flags&0x00080000 != 0 && len(m.LMResponse) == 24 && bytes.Equal(m.LMResponse[8:], make([]byte, 16))
		if ess {
			d.add("NT response", "NTLMv1 with extended session security (\"NTLM2 session response\", 24 octets)")
		} else {
			d.add("NT response", "NTLMv1 (24 octets)")
		}
		d.note("NTLMv1 is DES over the unsalted NT hash and is cracked offline in seconds; tern's server refuses it unless auth.ntlm_v1 is set (use NTLMv2)")
	default:
		d.add("NT response", fmt.Sprintf("%d octets, neither NTLMv1 (24) nor a well-formed NTLMv2 response", len(m.NTResponse)))
	}
}

// ntlmFlags adds the flags, one name per line.
func ntlmFlags(d *Description, flags uint32) {
	d.add("flags", fmt.Sprintf("0x%08x", flags))
	for _, n := range sasl.NTLMFlagNames(flags) {
		d.add("", n)
	}
}

// avPairs adds the AV pairs of a target info (MS-NLMP §2.2.2.1).
func avPairs(d *Description, pairs []sasl.NTLMAVPair) {
	for _, p := range pairs {
		var v string
		switch {
		case p.ID == 7 && len(p.Value) == 8: // MsvAvTimestamp
			v = ntlmTime(binary.LittleEndian.Uint64(p.Value))
		case p.ID == 6 && len(p.Value) == 4: // MsvAvFlags
			v = fmt.Sprintf("0x%08x", binary.LittleEndian.Uint32(p.Value))
		case p.ID >= 1 && p.ID <= 5 || p.ID == 9: // names, in UTF-16LE
			v = Escape([]byte(utf16Text(p.Value)))
		default:
			v = hex.EncodeToString(p.Value)
		}
		d.add(p.Name(), v)
	}
}

// ntlmTime formats a FILETIME.
func ntlmTime(ft uint64) string {
	return fmt.Sprintf("%s (FILETIME %d)", sasl.NTLMFiletimeTime(ft).Format(time.RFC3339Nano), ft)
}

// utf16Text decodes UTF-16LE leniently, for display.
func utf16Text(b []byte) string {
	if len(b)%2 != 0 {
		return string(b)
	}
	r := make([]rune, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		r = append(r, rune(binary.LittleEndian.Uint16(b[i:])))
	}
	// Surrogate pairs do not occur in host and domain names; a lone one shows as U+FFFD.
	for i, c := range r {
		if c >= 0xd800 && c < 0xe000 {
			r[i] = 0xfffd
		}
	}
	return string(r)
}

// optional adds a field if the value is not empty.
func optional(d *Description, name, value string) {
	if value != "" {
		d.add(name, Escape([]byte(value)))
	}
}

// wordedError is an error whose text is written for people, with its cause still reachable.
type wordedError struct {
	msg string
	err error
}

func (e *wordedError) Error() string { return e.msg }
func (e *wordedError) Unwrap() error { return e.err }
