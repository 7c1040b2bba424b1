package sasl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// What tools (tern auth) need of NTLM beyond the Client interface: a client whose random and
// clock inputs are fixed, to reproduce MS-NLMP §4.2.4, and a reader that takes any NTLM message
// apart for display. The server and the client halves do not use ParseNTLM: it is lenient
// about content (it shows what is there) where they are strict.

// NTLMFixed fixes what an NTLM client otherwise takes from crypto/rand and the clock.
type NTLMFixed struct {
	// ClientChallenge is the 8-octet client challenge of the NTLMv2 response; nil draws it
	// from crypto/rand. A fixed one makes the response predictable: for test vectors only.
	ClientChallenge []byte
	// Now gives the NTLMv2 blob's time when the server's CHALLENGE_MESSAGE carries none
	// (MsvAvTimestamp); nil means time.Now.
	Now func() time.Time
}

// NewNTLMClientFixed is NewNTLMClient with the client challenge and the clock fixed.
func NewNTLMClientFixed(user, password, domain, workstation string, fixed NTLMFixed) Client {
	c := NewNTLMClient(user, password, domain, workstation).(*ntlmClient)
	if fixed.ClientChallenge != nil {
		if len(fixed.ClientChallenge) != 8 {
			return failedClient{fmt.Errorf("sasl: NTLM: client challenge of %d octets, want 8", len(fixed.ClientChallenge))}
		}
		c.rand = bytes.NewReader(fixed.ClientChallenge)
	}
	if fixed.Now != nil {
		c.now = fixed.Now
	}
	return c
}

// NTLMMessage is an NTLM message taken apart (MS-NLMP §2.2.1). Strings are decoded as the
// flags say (UTF-16LE with NTLMSSP_NEGOTIATE_UNICODE, else octets as Latin-1).
type NTLMMessage struct {
	// Type is 1 (NEGOTIATE_MESSAGE), 2 (CHALLENGE_MESSAGE) or 3 (AUTHENTICATE_MESSAGE).
	Type int
	// Flags are the NegotiateFlags (§2.2.2.5); NTLMFlagNames names them. An
	// AUTHENTICATE_MESSAGE of the oldest form (a 52-octet header) has none: NTLM_NEGOTIATE_OEM.
	Flags uint32
	// Domain and Workstation: what a NEGOTIATE or AUTHENTICATE message names; User is the
	// AUTHENTICATE message's user name.
	Domain, Workstation, User string
	// TargetName is the CHALLENGE_MESSAGE's name of the server or its domain.
	TargetName string
	// ServerChallenge is the CHALLENGE_MESSAGE's 8-octet nonce.
	ServerChallenge []byte
	// TargetInfo are the CHALLENGE_MESSAGE's AV pairs, or those an NTLMv2 response echoes.
	TargetInfo []NTLMAVPair
	// LMResponse and NTResponse are the AUTHENTICATE_MESSAGE's responses, and SessionKey its
	// EncryptedRandomSessionKey (empty unless the key exchange was negotiated).
	LMResponse, NTResponse, SessionKey []byte
	// NTLMv2 reports that NTResponse is an NTLMv2_RESPONSE (§2.2.2.8: longer than NTLMv1's 24
	// octets, with a blob of version 1.1); NTProofStr, ClientChallenge and Timestamp (a FILETIME,
	// 100 ns units since 1601) are then taken from it.
	NTLMv2          bool
	NTProofStr      []byte
	ClientChallenge []byte
	Timestamp       uint64
	// Version is the VERSION structure (§2.2.2.10) as "major.minor.build rev N", if present.
	Version string
}

// NTLMAVPair is one AV_PAIR (§2.2.2.1).
type NTLMAVPair struct {
	ID    uint16
	Value []byte
}

// Name is the AV pair's name in MS-NLMP, e.g. "MsvAvNbDomainName".
func (p NTLMAVPair) Name() string {
	names := []string{"MsvAvEOL", "MsvAvNbComputerName", "MsvAvNbDomainName", "MsvAvDnsComputerName",
		"MsvAvDnsDomainName", "MsvAvDnsTreeName", "MsvAvFlags", "MsvAvTimestamp", "MsvAvSingleHost",
		"MsvAvTargetName", "MsvAvChannelBindings"}
	if int(p.ID) < len(names) {
		return names[p.ID]
	}
	return fmt.Sprintf("AvId %d", p.ID)
}

// ntlmFlagNames are the names of the NegotiateFlags bits (§2.2.2.5), bit 0 first; "" marks a
// reserved bit.
var ntlmFlagNames = [32]string{
	"NTLMSSP_NEGOTIATE_UNICODE", "NTLM_NEGOTIATE_OEM", "NTLMSSP_REQUEST_TARGET", "",
	"NTLMSSP_NEGOTIATE_SIGN", "NTLMSSP_NEGOTIATE_SEAL", "NTLMSSP_NEGOTIATE_DATAGRAM", "NTLMSSP_NEGOTIATE_LM_KEY",
	"", "NTLMSSP_NEGOTIATE_NTLM", "", "NTLMSSP_NEGOTIATE_ANONYMOUS",
	"NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED", "NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED", "", "NTLMSSP_NEGOTIATE_ALWAYS_SIGN",
	"NTLMSSP_TARGET_TYPE_DOMAIN", "NTLMSSP_TARGET_TYPE_SERVER", "", "NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY",
	"NTLMSSP_NEGOTIATE_IDENTIFY", "", "NTLMSSP_REQUEST_NON_NT_SESSION_KEY", "NTLMSSP_NEGOTIATE_TARGET_INFO",
	"", "NTLMSSP_NEGOTIATE_VERSION", "", "",
	"", "NTLMSSP_NEGOTIATE_128", "NTLMSSP_NEGOTIATE_KEY_EXCH", "NTLMSSP_NEGOTIATE_56",
}

// NTLMFlagNames names the bits set in flags, lowest first, as MS-NLMP §2.2.2.5 does; a
// reserved bit is shown as "reserved 0x...".
func NTLMFlagNames(flags uint32) []string {
	var out []string
	for i := range 32 {
		bit := uint32(1) << i
		if flags&bit == 0 {
			continue
		}
		if ntlmFlagNames[i] == "" {
			out = append(out, fmt.Sprintf("reserved 0x%08x", bit))
			continue
		}
		out = append(out, ntlmFlagNames[i])
	}
	return out
}

// ntlmFlagVersion is NTLMSSP_NEGOTIATE_VERSION.
const ntlmFlagVersion uint32 = 0x02000000

// ParseNTLM takes an NTLM message of any type apart. It checks what it needs to read the
// message safely (signature, type, header length, that every field lies inside the message)
// and is lenient about the rest: names that do not decode are shown octet by octet.
func ParseNTLM(msg []byte) (NTLMMessage, error) {
	var m NTLMMessage
	if len(msg) < 12 || string(msg[:8]) != ntlmSignature {
		return m, errors.New("sasl: NTLM: no NTLMSSP signature")
	}
	if len(msg) > ntlmMaxMessage {
		return m, fmt.Errorf("sasl: NTLM: message of %d octets, limit %d", len(msg), ntlmMaxMessage)
	}
	m.Type = int(binary.LittleEndian.Uint32(msg[8:]))
	var err error
	switch m.Type {
	case ntlmNegotiate:
		err = m.parseNegotiate(msg)
	case ntlmChallenge:
		err = m.parseChallenge(msg)
	case ntlmAuthenticate:
		err = m.parseAuthenticate(msg)
	default:
		err = fmt.Errorf("unknown message type %d", m.Type)
	}
	if err != nil {
		return m, fmt.Errorf("sasl: NTLM: %w", err)
	}
	return m, nil
}

// field reads the security buffer at msg[at:] and returns its payload.
func (m *NTLMMessage) field(msg []byte, at int) ([]byte, error) {
	if len(msg) < at+8 {
		return nil, fmt.Errorf("message of %d octets ends inside the field at %d", len(msg), at)
	}
	return ntlmField(msg, at)
}

// text decodes a name as the flags say.
func (m *NTLMMessage) text(b []byte, unicode bool) string {
	if unicode && len(b)%2 == 0 {
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		return string(utf16.Decode(u)) // lone surrogates become U+FFFD
	}
	r := make([]byte, 0, len(b))
	for _, c := range b {
		r = utf8.AppendRune(r, rune(c))
	}
	return string(r)
}

// version reads the VERSION structure at msg[at:], when the flags announce it and the header
// (which ends where the first payload starts) has room for it.
func (m *NTLMMessage) version(msg []byte, at, payloadStart int) {
	if m.Flags&ntlmFlagVersion == 0 || payloadStart < at+8 || len(msg) < at+8 {
		return
	}
	v := msg[at : at+8]
	m.Version = fmt.Sprintf("%d.%d.%d rev %d", v[0], v[1], binary.LittleEndian.Uint16(v[2:]), v[7])
}

// payloadStart is the lowest offset of a non-empty field among those at the given places:
// where the header ends.
func payloadStart(msg []byte, ats ...int) int {
	start := len(msg)
	for _, at := range ats {
		if len(msg) >= at+8 && binary.LittleEndian.Uint16(msg[at:]) > 0 {
			start = min(start, int(binary.LittleEndian.Uint32(msg[at+4:])))
		}
	}
	return start
}

func (m *NTLMMessage) parseNegotiate(msg []byte) error {
	if len(msg) < 16 {
		return errors.New("NEGOTIATE_MESSAGE shorter than 16 octets")
	}
	m.Flags = binary.LittleEndian.Uint32(msg[12:])
	if len(msg) < ntlmNegotiateHeader {
		return nil // some clients stop after the flags
	}
	domain, err := m.field(msg, 16)
	if err != nil {
		return err
	}
	ws, err := m.field(msg, 24)
	if err != nil {
		return err
	}
	// §2.2.1.1: these two are always OEM.
	m.Domain, m.Workstation = m.text(domain, false), m.text(ws, false)
	m.version(msg, 32, payloadStart(msg, 16, 24))
	return nil
}

func (m *NTLMMessage) parseChallenge(msg []byte) error {
	if len(msg) < 32 {
		return errors.New("CHALLENGE_MESSAGE shorter than 32 octets")
	}
	m.Flags = binary.LittleEndian.Uint32(msg[20:])
	target, err := m.field(msg, 12)
	if err != nil {
		return err
	}
	m.TargetName = m.text(target, m.Flags&ntlmFlagUnicode != 0)
	m.ServerChallenge = msg[24:32]
	if len(msg) < ntlmChallengeHeader {
		return nil
	}
	info, err := m.field(msg, 40)
	if err != nil {
		return err
	}
	if len(info) > 0 {
		if m.TargetInfo, err = ntlmAVPairs(info); err != nil {
			return fmt.Errorf("target info: %w", err)
		}
	}
	m.version(msg, 48, payloadStart(msg, 12, 40))
	return nil
}

func (m *NTLMMessage) parseAuthenticate(msg []byte) error {
	if len(msg) < ntlmAuthenticateMinHeader {
		return fmt.Errorf("AUTHENTICATE_MESSAGE shorter than %d octets", ntlmAuthenticateMinHeader)
	}
	// Older clients end the header after the workstation field (52 octets): the session key
	// field and the flags are there only if the payload starts after them.
	ats := []int{12, 20, 28, 36, 44}
	header := payloadStart(msg, ats...)
	full := header >= ntlmAuthenticateHeader && len(msg) >= ntlmAuthenticateHeader
	if full {
		ats = append(ats, 52)
	}
	fields := make([][]byte, 6) // LM, NT, domain, user, workstation, session key
	for i, at := range ats {
		var err error
		if fields[i], err = m.field(msg, at); err != nil {
			return err
		}
	}
	if full {
		m.Flags = binary.LittleEndian.Uint32(msg[60:])
		m.version(msg, 64, payloadStart(msg, ats...))
	} else {
		m.Flags = ntlmFlagOEM // without flags, names are OEM
	}
	unicode := m.Flags&ntlmFlagUnicode != 0
	m.LMResponse, m.NTResponse, m.SessionKey = fields[0], fields[1], fields[5]
	m.Domain, m.User, m.Workstation = m.text(fields[2], unicode), m.text(fields[3], unicode), m.text(fields[4], unicode)
	if len(m.NTResponse) > 24 {
		if proof, blob, err := splitNTLMv2Response(m.NTResponse); err == nil {
			m.NTLMv2 = true
			m.NTProofStr = proof
			m.Timestamp = binary.LittleEndian.Uint64(blob[8:])
			m.ClientChallenge = blob[16:24]
			m.TargetInfo, _ = ntlmAVPairs(blob[ntlmV2BlobHeader:]) // checked by splitNTLMv2Response
		}
	}
	return nil
}

// ntlmAVPairs is parseNTLMAVPairs with the exported type.
func ntlmAVPairs(b []byte) ([]NTLMAVPair, error) {
	pairs, err := parseNTLMAVPairs(b)
	if err != nil {
		return nil, err
	}
	out := make([]NTLMAVPair, len(pairs))
	for i, p := range pairs {
		out[i] = NTLMAVPair{ID: p.id, Value: p.value}
	}
	return out, nil
}

// NTLMFiletimeTime converts a FILETIME (100 ns units since 1601-01-01 UTC), as in
// MsvAvTimestamp and the NTLMv2 blob, to a time.
func NTLMFiletimeTime(ft uint64) time.Time {
	// Seconds first: a time.Duration overflows after 292 years, and 1601 is further back.
	const perSecond = 10_000_000
	sec := int64(ft/perSecond) - ntlmFiletimeEpoch/perSecond
	return time.Unix(sec, int64(ft%perSecond)*100).UTC()
}
