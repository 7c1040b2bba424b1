package sasl

// NTLM over SMTP AUTH (MS-NLMP; the SMTP framing is MS-SMTPNTLM): the client sends a
// NEGOTIATE_MESSAGE (type 1), the server answers with a CHALLENGE_MESSAGE (type 2) holding a
// random server challenge, and the client proves its password with an AUTHENTICATE_MESSAGE
// (type 3).
//
// By default only NTLMv2 responses are accepted (MS-NLMP §3.3.2). NTLMv1 responses, with or
// without "extended session security" (the NTLM2 session response), are DES over the unsalted
// NT hash: one captured exchange gives the hash (and with it the login) to a cracker in hours,
// whatever the password. Old clients (Authen::NTLM, so swaks' default and the seeds' gen-auth)
// send nothing else, so ServerOptions.NTLMv1 accepts them on request (MS-NLMP §3.3.1). LM
// responses are never accepted: tern does not keep the LM hash. A refused response is
// ErrAuthFailed, and the wrapped reason says why, with the user name and domain the
// AUTHENTICATE_MESSAGE carried, for the log. The server keeps the NT hash (MD4 of the UTF-16LE
// password) as the SecretNTLM secret, the key of both versions; it is password-equivalent for
// NTLM: the weakest secret tern stores.
//
// Session security (signing, sealing, the MIC) is not negotiated or checked: SMTP does not use
// it, and after AUTH the connection carries mail, not NTLM-protected messages.

import (
	"bytes"
	"context"
	"crypto/des"
	"crypto/hmac"
	"crypto/md5"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	//lint:ignore SA1019 NTLM is defined on MD4 (MS-NLMP §3.3.1): the mechanism exists only for legacy clients
	"golang.org/x/crypto/md4"
)

const (
	ntlmSignature = "NTLMSSP\x00"

	// Message types (MS-NLMP §2.2.1).
	ntlmNegotiate    = 1
	ntlmChallenge    = 2
	ntlmAuthenticate = 3

	// ntlmMaxMessage bounds a client message. Real AUTHENTICATE_MESSAGEs are a few hundred
	// octets: names, and the NTLMv2 blob that echoes our target info.
	ntlmMaxMessage = 8192

	// Header sizes: NEGOTIATE up to its WorkstationFields, CHALLENGE up to TargetInfoFields
	// (no Version), AUTHENTICATE up to WorkstationFields (older clients stop there) and with
	// EncryptedRandomSessionKeyFields and NegotiateFlags (what tern's client sends).
	ntlmNegotiateHeader       = 32
	ntlmChallengeHeader       = 48
	ntlmAuthenticateMinHeader = 52
	ntlmAuthenticateHeader    = 64

	// ntlmV2BlobHeader is the fixed part of an NTLMv2_CLIENT_CHALLENGE (MS-NLMP §2.2.2.7), up to
	// its AvPairs: RespType, HiRespType, Reserved1, Reserved2, TimeStamp, ChallengeFromClient,
	// Reserved3.
	ntlmV2BlobHeader = 28

	// ntlmFiletimeEpoch is 1970-01-01 as a FILETIME (100 ns units since 1601-01-01).
	ntlmFiletimeEpoch = 116444736000000000
)

// NegotiateFlags (MS-NLMP §2.2.2.5) that tern uses.
const (
	ntlmFlagUnicode          uint32 = 0x00000001 // NTLMSSP_NEGOTIATE_UNICODE
	ntlmFlagOEM              uint32 = 0x00000002 // NTLM_NEGOTIATE_OEM
	ntlmFlagRequestTarget    uint32 = 0x00000004 // NTLMSSP_REQUEST_TARGET
	ntlmFlagNTLM             uint32 = 0x00000200 // NTLMSSP_NEGOTIATE_NTLM
	ntlmFlagAlwaysSign       uint32 = 0x00008000 // NTLMSSP_NEGOTIATE_ALWAYS_SIGN
	ntlmFlagTargetTypeServer uint32 = 0x00020000 // NTLMSSP_TARGET_TYPE_SERVER
	ntlmFlagExtendedSecurity uint32 = 0x00080000 // NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
	ntlmFlagTargetInfo       uint32 = 0x00800000 // NTLMSSP_NEGOTIATE_TARGET_INFO
	ntlmFlag128              uint32 = 0x20000000 // NTLMSSP_NEGOTIATE_128
	ntlmFlag56               uint32 = 0x80000000 // NTLMSSP_NEGOTIATE_56
)

// AV_PAIR ids (MS-NLMP §2.2.2.1).
const (
	ntlmAvEOL             = 0
	ntlmAvNbComputerName  = 1
	ntlmAvNbDomainName    = 2
	ntlmAvDNSComputerName = 3
	ntlmAvDNSDomainName   = 4
	ntlmAvTimestamp       = 7
)

// deriveNTLM returns the SecretNTLM secret for password: the NT hash (MS-NLMP §3.3.1 NTOWFv1),
// MD4 of the password in UTF-16LE.
func deriveNTLM(password string) ([]byte, error) {
	if !utf8.ValidString(password) {
		// UTF-16 conversion would silently replace the bad octets: a different password.
		return nil, errors.New("sasl: NTLM: password is not valid UTF-8")
	}
	return ntlmHash(password), nil
}

func ntlmHash(password string) []byte {
	h := md4.New()
	h.Write(utf16le(password))
	return h.Sum(nil)
}

// ntowfv2 is MS-NLMP §3.3.2 NTOWFv2: HMAC_MD5(NT hash, UNICODE(Uppercase(User) || UserDom)),
// with the domain already in UTF-16LE (as the client encoded it).
func ntowfv2(ntHash []byte, user string, domain16 []byte) []byte {
	m := hmac.New(md5.New, ntHash)
	m.Write(utf16le(strings.ToUpper(user)))
	m.Write(domain16)
	return m.Sum(nil)
}

// ntlmHMAC is HMAC_MD5(key, a || b).
func ntlmHMAC(key, a, b []byte) []byte {
	m := hmac.New(md5.New, key)
	m.Write(a)
	m.Write(b)
	return m.Sum(nil)
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// latin1To16 widens octets to UTF-16LE, each octet a code point: how OEM strings are read
// (tern does not guess code pages; the names that matter, mail addresses, are ASCII).
func latin1To16(b []byte) []byte {
	w := make([]byte, 2*len(b))
	for i, c := range b {
		w[2*i] = c
	}
	return w
}

func decodeUTF16LE(b []byte) (string, error) {
	if len(b)%2 != 0 {
		return "", errors.New("odd length")
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	r := utf16.Decode(u)
	for _, c := range r {
		if c == utf8.RuneError || c == 0 {
			return "", errors.New("invalid UTF-16 or NUL")
		}
	}
	return string(r), nil
}

// ntlmFiletime is t as a FILETIME. (Not through UnixNano, which overflows before 1678.)
func ntlmFiletime(t time.Time) uint64 {
	return uint64(t.Unix()*1e7 + int64(t.Nanosecond()/100) + ntlmFiletimeEpoch)
}

// ntlmHeader checks the signature and message type, and the minimum length.
func ntlmHeader(msg []byte, typ uint32, min int) error {
	switch {
	case len(msg) < 12 || string(msg[:8]) != ntlmSignature:
		return errors.New("no NTLMSSP signature")
	case binary.LittleEndian.Uint32(msg[8:]) != typ:
		return fmt.Errorf("message type %d, want %d", binary.LittleEndian.Uint32(msg[8:]), typ)
	case len(msg) < min:
		return fmt.Errorf("%d octets, shorter than the %d-octet header", len(msg), min)
	}
	return nil
}

// ntlmField returns the payload that the security buffer at msg[at:at+8] points to (Len,
// MaxLen, Offset; MS-NLMP §2.2.2.x "Fields"), after checking that it lies inside msg. An
// empty field may point anywhere (clients put all sorts of offsets there).
func ntlmField(msg []byte, at int) ([]byte, error) {
	n := int(binary.LittleEndian.Uint16(msg[at:]))
	off := int64(binary.LittleEndian.Uint32(msg[at+4:]))
	if n == 0 {
		return nil, nil
	}
	if off+int64(n) > int64(len(msg)) {
		return nil, fmt.Errorf("field at %d: %d octets at offset %d, past the end (%d)", at, n, off, len(msg))
	}
	return msg[off : off+int64(n)], nil
}

// parseNTLMNegotiate reads a NEGOTIATE_MESSAGE (MS-NLMP §2.2.1.1) and returns its flags. The
// domain and workstation fields are only bounds-checked (and only when present: some clients
// send the 16 octets up to the flags; Authen::NTLM swaps the two fields).
func parseNTLMNegotiate(msg []byte) (uint32, error) {
	if err := ntlmHeader(msg, ntlmNegotiate, 16); err != nil {
		return 0, err
	}
	if len(msg) >= ntlmNegotiateHeader {
		for _, at := range []int{16, 24} {
			if _, err := ntlmField(msg, at); err != nil {
				return 0, err
			}
		}
	}
	return binary.LittleEndian.Uint32(msg[12:]), nil
}

// ntlmAuthenticateMsg is what the server uses of an AUTHENTICATE_MESSAGE (MS-NLMP §2.2.1.3).
type ntlmAuthenticateMsg struct {
	lm, nt, domain, user, workstation []byte
}

func parseNTLMAuthenticate(msg []byte) (ntlmAuthenticateMsg, error) {
	var a ntlmAuthenticateMsg
	if err := ntlmHeader(msg, ntlmAuthenticate, ntlmAuthenticateMinHeader); err != nil {
		return a, err
	}
	for _, f := range []struct {
		at  int
		dst *[]byte
	}{{12, &a.lm}, {20, &a.nt}, {28, &a.domain}, {36, &a.user}, {44, &a.workstation}} {
		var err error
		if *f.dst, err = ntlmField(msg, f.at); err != nil {
			return a, err
		}
	}
	return a, nil
}

// splitNTLMv2Response splits an NTLMv2_RESPONSE (MS-NLMP §2.2.2.8) into NTProofStr and the
// client blob, checking the blob's structure: RespType and HiRespType 1, and AV pairs that
// end with MsvAvEOL inside the blob. Its timestamp is not checked (see verify).
func splitNTLMv2Response(nt []byte) (proof, blob []byte, err error) {
	if len(nt) < 16+ntlmV2BlobHeader+4 {
		return nil, nil, fmt.Errorf("NTLMv2 response of %d octets is too short", len(nt))
	}
	proof, blob = nt[:16], nt[16:]
	if blob[0] != 1 || blob[1] != 1 {
		return nil, nil, fmt.Errorf("NTLMv2 blob version %d.%d, want 1.1", blob[0], blob[1])
	}
	if _, err := parseNTLMAVPairs(blob[ntlmV2BlobHeader:]); err != nil {
		return nil, nil, fmt.Errorf("NTLMv2 blob: %w", err)
	}
	return proof, blob, nil
}

// ntlmAVPair is one AV_PAIR (MS-NLMP §2.2.2.1).
type ntlmAVPair struct {
	id    uint16
	value []byte
}

// parseNTLMAVPairs reads AV pairs up to MsvAvEOL; octets after it are ignored (the NTLMv2
// blob has padding there).
func parseNTLMAVPairs(b []byte) ([]ntlmAVPair, error) {
	var pairs []ntlmAVPair
	for {
		if len(b) < 4 {
			return nil, errors.New("AV pairs without MsvAvEOL")
		}
		id, n := binary.LittleEndian.Uint16(b), int(binary.LittleEndian.Uint16(b[2:]))
		if id == ntlmAvEOL {
			return pairs, nil
		}
		if len(b) < 4+n {
			return nil, fmt.Errorf("AV pair %d of %d octets past the end", id, n)
		}
		pairs = append(pairs, ntlmAVPair{id, b[4 : 4+n]})
		b = b[4+n:]
	}
}

func appendAVPair(b []byte, id uint16, value []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, id)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

// appendNTLMField appends a security buffer for a payload of n octets at offset off.
func appendNTLMField(b []byte, n, off int) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(n))
	b = binary.LittleEndian.AppendUint16(b, uint16(n))
	return binary.LittleEndian.AppendUint32(b, uint32(off))
}

// NewNTLMServer returns the server half of one NTLM exchange. Next(nil) returns the empty
// challenge; the NEGOTIATE_MESSAGE may also come as the initial response. The AUTHENTICATE_MESSAGE
// ends the exchange (no further step): its user name, as sent, is looked up with
// creds.Secret(ctx, user, SecretNTLM), and its NTLMv2 response verified, or its NTLMv1 one when
// opts.NTLMv1 is set (see the file comment). opts.Hostname names the server in the
// CHALLENGE_MESSAGE.
func NewNTLMServer(ctx context.Context, creds Credentials, opts ServerOptions) Server {
	return &ntlmServer{ctx: ctx, creds: creds, opts: opts}
}

// States of an ntlmServer.
const (
	ntlmWantNegotiate    = iota // nothing yet, or the empty challenge sent
	ntlmWantAuthenticate        // CHALLENGE_MESSAGE sent
	ntlmDone                    // over, by success or failure
)

type ntlmServer struct {
	ctx   context.Context
	creds Credentials
	opts  ServerOptions

	state     int
	prompted  bool   // the empty challenge was sent
	flags     uint32 // the flags of our CHALLENGE_MESSAGE: the negotiated ones
	challenge []byte // our 8-octet server challenge
	identity  string
}

func (s *ntlmServer) Identity() string { return s.identity }

func (s *ntlmServer) Next(response []byte) ([]byte, bool, error) {
	switch s.state {
	case ntlmWantNegotiate:
		if response == nil && !s.prompted {
			s.prompted = true
			return []byte{}, false, nil
		}
		msg, err := s.negotiate(response)
		if err != nil {
			return s.fail(err)
		}
		s.state = ntlmWantAuthenticate
		return msg, false, nil
	case ntlmWantAuthenticate:
		account, err := s.authenticate(response)
		if err != nil {
			return s.fail(err)
		}
		s.state = ntlmDone
		s.identity = account
		return nil, true, nil
	}
	return nil, true, fmt.Errorf("%w: NTLM: exchange already over", ErrProtocol)
}

func (s *ntlmServer) fail(err error) ([]byte, bool, error) {
	s.state = ntlmDone
	return nil, true, err
}

// negotiate reads the NEGOTIATE_MESSAGE and returns our CHALLENGE_MESSAGE.
func (s *ntlmServer) negotiate(msg []byte) ([]byte, error) {
	if len(msg) > ntlmMaxMessage {
		return nil, fmt.Errorf("%w: NTLM: NEGOTIATE_MESSAGE longer than %d octets", ErrProtocol, ntlmMaxMessage)
	}
	asked, err := parseNTLMNegotiate(msg)
	if err != nil {
		return nil, fmt.Errorf("%w: NTLM: NEGOTIATE_MESSAGE: %w", ErrProtocol, err)
	}
	if s.challenge, err = optionsRandom(s.opts, 8); err != nil {
		return nil, err
	}
	s.flags = ntlmServerFlags(asked)
	return s.challengeMessage(), nil
}

// ntlmServerFlags chooses the CHALLENGE_MESSAGE's flags for a client's NEGOTIATE flags.
func ntlmServerFlags(asked uint32) uint32 {
	flags := ntlmFlagNTLM | ntlmFlagTargetInfo | ntlmFlagRequestTarget | ntlmFlagTargetTypeServer
	// MS-NLMP §3.2.5.1.1: Unicode if the client can, else OEM (curl asks for OEM only).
	if asked&ntlmFlagUnicode != 0 {
		flags |= ntlmFlagUnicode
	} else {
		flags |= ntlmFlagOEM
	}
	// Echoed when asked: extended session security is what makes curl answer with NTLMv2, and
	// the rest only describe session security, which SMTP never uses.
	flags |= asked & (ntlmFlagExtendedSecurity | ntlmFlagAlwaysSign | ntlmFlag128 | ntlmFlag56)
	return flags
}

// challengeMessage builds the CHALLENGE_MESSAGE (MS-NLMP §2.2.1.2): the target name is our
// NetBIOS-style name, and the target info names us (the NTLMv2 blob echoes it) and carries
// the time.
func (s *ntlmServer) challengeMessage() []byte {
	host := s.opts.Hostname
	if host == "" {
		host = "localhost"
	}
	nb, domain, _ := strings.Cut(host, ".")
	nb = strings.ToUpper(nb)
	if len(nb) > 15 { // NetBIOS names are at most 15 characters
		nb = nb[:15]
	}
	target := []byte(nb) // OEM: hostnames are ASCII
	if s.flags&ntlmFlagUnicode != 0 {
		target = utf16le(nb)
	}
	var info []byte
	// MS-NLMP §2.2.2.1: MsvAvNbComputerName and MsvAvNbDomainName MUST be present. A
	// stand-alone server uses its own name as the domain.
	info = appendAVPair(info, ntlmAvNbDomainName, utf16le(nb))
	info = appendAVPair(info, ntlmAvNbComputerName, utf16le(nb))
	if domain != "" {
		info = appendAVPair(info, ntlmAvDNSDomainName, utf16le(domain))
	}
	info = appendAVPair(info, ntlmAvDNSComputerName, utf16le(host))
	info = appendAVPair(info, ntlmAvTimestamp, binary.LittleEndian.AppendUint64(nil, ntlmFiletime(optionsNow(s.opts))))
	info = appendAVPair(info, ntlmAvEOL, nil)

	b := make([]byte, 0, ntlmChallengeHeader+len(target)+len(info))
	b = append(b, ntlmSignature...)
	b = binary.LittleEndian.AppendUint32(b, ntlmChallenge)
	b = appendNTLMField(b, len(target), ntlmChallengeHeader)
	b = binary.LittleEndian.AppendUint32(b, s.flags)
	b = append(b, s.challenge...)
	b = append(b, make([]byte, 8)...) // Reserved
	b = appendNTLMField(b, len(info), ntlmChallengeHeader+len(target))
	b = append(b, target...)
	return append(b, info...)
}

// authenticate verifies the AUTHENTICATE_MESSAGE and returns the account. The account is
// looked up before the response is judged, so that every refusal, an NTLMv1 response while
// they are off included, names the login in the log and counts for it in the AUTH limiter.
func (s *ntlmServer) authenticate(msg []byte) (string, error) {
	if len(msg) > ntlmMaxMessage {
		return "", fmt.Errorf("%w: NTLM: AUTHENTICATE_MESSAGE longer than %d octets", ErrProtocol, ntlmMaxMessage)
	}
	a, err := parseNTLMAuthenticate(msg)
	if err != nil {
		return "", fmt.Errorf("%w: NTLM: AUTHENTICATE_MESSAGE: %w", ErrProtocol, err)
	}
	user, err := s.decodeName(a.user)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: NTLM: user name: %w", ErrProtocol, err)
	case len(user) > maxNameLen:
		return "", fmt.Errorf("%w: NTLM: user name longer than %d octets", ErrProtocol, maxNameLen)
	}
	who := fmt.Sprintf("user %q, domain %q", truncateForError([]byte(user)), truncateForError([]byte(s.domainForLog(a.domain))))
	// MS-NLMP §3.3: an NTLMv1 NtChallengeResponse is 24 octets; NTLMv2's is longer.
	var v1 bool
	switch {
	case len(a.nt) == 0:
		return "", fmt.Errorf("%w: NTLM: no NT response (anonymous, or LM only; %s): refused", ErrAuthFailed, who)
	case user == "":
		return "", fmt.Errorf("%w: NTLM: anonymous (%s): refused", ErrAuthFailed, who)
	case len(a.nt) == 24:
		v1 = true
	case len(a.nt) < 24:
		return "", fmt.Errorf("%w: NTLM: NT response of %d octets (%s), neither NTLMv1 nor NTLMv2", ErrProtocol, len(a.nt), who)
	}
	var proof, blob []byte
	if !v1 {
		if proof, blob, err = splitNTLMv2Response(a.nt); err != nil {
			return "", fmt.Errorf("%w: NTLM: %w (%s)", ErrProtocol, err, who)
		}
	}
	account, ntHash, err := s.creds.Secret(s.ctx, user, SecretNTLM)
	switch {
	case v1 && !s.opts.NTLMv1:
		// Whatever the lookup said: the answer is the same, and the reason is this.
		return "", fmt.Errorf("%w: NTLM: NTLMv1 response (24 octets; %s): refused, NTLMv1 is off (auth.ntlm_v1)", ErrAuthFailed, who)
	case err != nil:
		return "", credentialsError(err)
	case len(ntHash) != md4.Size:
		return "", fmt.Errorf("%w: NTLM: stored secret of %q is %d octets, want %d", ErrUnavailable, account, len(ntHash), md4.Size)
	case v1:
		if !s.verifyV1(ntHash, a.lm, a.nt) {
			return "", fmt.Errorf("%w: NTLM: wrong NTLMv1 response (password; %s)", ErrAuthFailed, who)
		}
	case !s.verify(ntHash, user, a.domain, proof, blob):
		return "", fmt.Errorf("%w: NTLM: wrong NTLMv2 response (password; %s)", ErrAuthFailed, who)
	}
	return account, nil
}

// domainForLog is the AUTHENTICATE_MESSAGE's domain as text for the log: in the negotiated
// character set, or as octets when it is not valid there (Authen::NTLM sends it unconverted).
func (s *ntlmServer) domainForLog(b []byte) string {
	if d, err := s.decodeName(b); err == nil {
		return d
	}
	return string(bytes.ToValidUTF8(b, []byte("?")))
}

// verifyV1 checks an NTLMv1 NtChallengeResponse (MS-NLMP §3.3.1) in constant time:
// DESL(NT hash, ServerChallenge), or, when extended session security was negotiated (the
// NTLM2 session response), DESL(NT hash, MD5(ServerChallenge || ClientChallenge)[0:8]) with
// the client's challenge in the first 8 octets of its LmChallengeResponse.
func (s *ntlmServer) verifyV1(ntHash, lm, nt []byte) bool {
	challenge := s.challenge
	if s.flags&ntlmFlagExtendedSecurity != 0 {
		if len(lm) != 24 {
			return false
		}
		sum := md5.Sum(append(append([]byte{}, s.challenge...), lm[:8]...))
		challenge = sum[:8]
	}
	return subtle.ConstantTimeCompare(desl(ntHash, challenge), nt) == 1
}

// desl is DESL(K, D) of MS-NLMP §6: the 16-octet key, padded with zeros to 21 octets, is cut
// into three 7-octet DES keys, and each encrypts the 8-octet D.
func desl(key, data []byte) []byte {
	k := make([]byte, 21)
	copy(k, key)
	out := make([]byte, 24)
	for i := range 3 {
		c, err := des.NewCipher(desKey(k[7*i : 7*i+7]))
		if err != nil {
			return nil // not reached (desKey makes 8 octets); nil matches no response
		}
		c.Encrypt(out[8*i:], data)
	}
	return out
}

// desKey spreads 56 key bits over the 8 octets of a DES key, 7 bits each in the high bits (the
// low bit is parity, which crypto/des ignores).
func desKey(k []byte) []byte {
	return []byte{
		k[0],
		k[0]<<7 | k[1]>>1,
		k[1]<<6 | k[2]>>2,
		k[2]<<5 | k[3]>>3,
		k[3]<<4 | k[4]>>4,
		k[4]<<3 | k[5]>>5,
		k[5]<<2 | k[6]>>6,
		k[6] << 1,
	}
}

// decodeName decodes a name of the AUTHENTICATE_MESSAGE in the negotiated character set.
func (s *ntlmServer) decodeName(b []byte) (string, error) {
	if s.flags&ntlmFlagUnicode != 0 {
		return decodeUTF16LE(b)
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return "", errors.New("NUL")
	}
	r := make([]rune, len(b)) // OEM octets as Latin-1, like latin1To16
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r), nil
}

// verify checks NTProofStr (MS-NLMP §3.3.2): HMAC_MD5(NTOWFv2, ServerChallenge || blob), with
// the user name and domain as the client sent them, in constant time.
//
// The domain is tried as the negotiated encoding says and, under Unicode, also as OEM octets:
// Authen::NTLM (swaks) in NTLMv2 mode sends the domain unconverted while it flags Unicode and
// hashes the widened form. Two candidates cost an attacker one bit of a 128-bit proof.
//
// The blob's timestamp is not checked against our clock: Authen::NTLM writes seconds where
// MS-NLMP wants 100 ns units, and the random server challenge of this exchange is already in
// the proof, so an old response cannot be replayed anyway.
func (s *ntlmServer) verify(ntHash []byte, user string, domain, proof, blob []byte) bool {
	var candidates [][]byte
	if s.flags&ntlmFlagUnicode != 0 {
		if len(domain)%2 == 0 {
			candidates = append(candidates, domain)
		}
		if len(domain) > 0 {
			candidates = append(candidates, latin1To16(domain))
		}
	} else {
		candidates = append(candidates, latin1To16(domain))
	}
	ok := 0
	for _, d := range candidates {
		want := ntlmHMAC(ntowfv2(ntHash, user, d), s.challenge, blob)
		ok |= subtle.ConstantTimeCompare(want, proof)
	}
	return ok == 1
}

// parseNTLMChallenge reads a CHALLENGE_MESSAGE (MS-NLMP §2.2.1.2) for the client.
func parseNTLMChallenge(msg []byte) (flags uint32, challenge, targetInfo []byte, err error) {
	if err := ntlmHeader(msg, ntlmChallenge, 32); err != nil {
		return 0, nil, nil, err
	}
	if _, err := ntlmField(msg, 12); err != nil { // TargetName, not used
		return 0, nil, nil, err
	}
	flags = binary.LittleEndian.Uint32(msg[20:])
	challenge = msg[24:32]
	if len(msg) >= ntlmChallengeHeader && flags&ntlmFlagTargetInfo != 0 {
		if targetInfo, err = ntlmField(msg, 40); err != nil {
			return 0, nil, nil, err
		}
		if _, err := parseNTLMAVPairs(targetInfo); err != nil {
			return 0, nil, nil, fmt.Errorf("target info: %w", err)
		}
	}
	return flags, challenge, targetInfo, nil
}

// NewNTLMClient returns the client half of NTLM, which answers with NTLMv2 only. Start has no
// initial response; Next answers the server's empty challenge with a NEGOTIATE_MESSAGE and
// the CHALLENGE_MESSAGE with the AUTHENTICATE_MESSAGE. domain and workstation may be empty.
func NewNTLMClient(user, password, domain, workstation string) Client {
	return &ntlmClient{user: user, password: password, domain: domain, workstation: workstation,
		rand: cryptoRand(), now: time.Now}
}

type ntlmClient struct {
	user, password, domain, workstation string
	rand                                io.Reader        // the client challenge (tests fix it)
	now                                 func() time.Time // the blob's time when the server sends none
	step                                int              // 0: Start, 1: NEGOTIATE sent, 2: AUTHENTICATE sent
}

// ntlmClientFlags are the NEGOTIATE_MESSAGE's flags: either character set, and extended
// session security, as curl and Windows send it (tern's client answers with NTLMv2 whatever
// the server says).
const ntlmClientFlags = ntlmFlagUnicode | ntlmFlagOEM | ntlmFlagRequestTarget | ntlmFlagNTLM |
	ntlmFlagAlwaysSign | ntlmFlagExtendedSecurity

func (c *ntlmClient) Start() (string, []byte, error) {
	if c.user == "" {
		return "", nil, errors.New("sasl: NTLM: empty user name")
	}
	if !utf8.ValidString(c.password) {
		return "", nil, errors.New("sasl: NTLM: password is not valid UTF-8")
	}
	return NTLM, nil, nil
}

func (c *ntlmClient) Next(challenge []byte) ([]byte, error) {
	c.step++
	switch c.step {
	case 1:
		if len(challenge) != 0 {
			return nil, errors.New("sasl: NTLM: want an empty first challenge")
		}
		b := make([]byte, 0, ntlmNegotiateHeader)
		b = append(b, ntlmSignature...)
		b = binary.LittleEndian.AppendUint32(b, ntlmNegotiate)
		b = binary.LittleEndian.AppendUint32(b, ntlmClientFlags)
		b = appendNTLMField(b, 0, ntlmNegotiateHeader) // domain
		b = appendNTLMField(b, 0, ntlmNegotiateHeader) // workstation
		return b, nil
	case 2:
		msg, err := c.authenticate(challenge)
		if err != nil {
			return nil, fmt.Errorf("sasl: NTLM: %w", err)
		}
		return msg, nil
	}
	return nil, errors.New("sasl: NTLM: unexpected server challenge")
}

// authenticate builds the AUTHENTICATE_MESSAGE with an NTLMv2 response (MS-NLMP §3.3.2).
func (c *ntlmClient) authenticate(msg []byte) ([]byte, error) {
	flags, serverChallenge, info, err := parseNTLMChallenge(msg)
	if err != nil {
		return nil, fmt.Errorf("CHALLENGE_MESSAGE: %w", err)
	}
	unicode := flags&ntlmFlagUnicode != 0
	names := make([][]byte, 3) // domain, user, workstation in the negotiated character set
	for i, s := range []string{c.domain, c.user, c.workstation} {
		if unicode {
			names[i] = utf16le(s)
		} else if names[i], err = latin1(s); err != nil {
			return nil, err
		}
	}
	domain16 := names[0]
	if !unicode {
		domain16 = latin1To16(names[0])
	}
	clientChallenge := make([]byte, 8)
	if _, err := io.ReadFull(c.rand, clientChallenge); err != nil {
		return nil, fmt.Errorf("reading a client challenge: %w", err)
	}
	if len(info) == 0 {
		info = appendAVPair(nil, ntlmAvEOL, nil)
	}
	var timestamp []byte
	pairs, _ := parseNTLMAVPairs(info) // checked by parseNTLMChallenge
	for _, p := range pairs {
		if p.id == ntlmAvTimestamp && len(p.value) == 8 {
			timestamp = p.value
		}
	}
	serverTime := timestamp != nil
	if !serverTime {
		timestamp = binary.LittleEndian.AppendUint64(nil, ntlmFiletime(c.now()))
	}
	key := ntowfv2(ntlmHash(c.password), c.user, domain16)

	// NTLMv2_CLIENT_CHALLENGE (MS-NLMP §2.2.2.7), then Z(4) as in §3.3.2's "temp".
	blob := []byte{1, 1, 0, 0, 0, 0, 0, 0}
	blob = append(blob, timestamp...)
	blob = append(blob, clientChallenge...)
	blob = append(blob, 0, 0, 0, 0)
	blob = append(blob, info...)
	blob = append(blob, 0, 0, 0, 0)
	nt := append(ntlmHMAC(key, serverChallenge, blob), blob...)
	// MS-NLMP §3.1.5.1.2: with a server timestamp the LM response is 24 zero octets; else LMv2.
	lm := make([]byte, 24)
	if !serverTime {
		lm = append(ntlmHMAC(key, serverChallenge, clientChallenge), clientChallenge...)
	}

	payloads := [][]byte{lm, nt, names[0], names[1], names[2], nil} // the last: session key
	b := make([]byte, 0, ntlmAuthenticateHeader+len(lm)+len(nt)+len(names[0])+len(names[1])+len(names[2]))
	b = append(b, ntlmSignature...)
	b = binary.LittleEndian.AppendUint32(b, ntlmAuthenticate)
	off := ntlmAuthenticateHeader
	for _, p := range payloads {
		if len(p) > 0xffff {
			return nil, errors.New("name too long")
		}
		b = appendNTLMField(b, len(p), off)
		off += len(p)
	}
	b = binary.LittleEndian.AppendUint32(b, flags&(ntlmClientFlags|ntlmFlagTargetInfo|ntlmFlag128|ntlmFlag56))
	for _, p := range payloads {
		b = append(b, p...)
	}
	return b, nil
}

// latin1 encodes s as octets, each code point one octet: the OEM form tern's server reads.
func latin1(s string) ([]byte, error) {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return nil, errors.New("the server wants OEM strings and a name has characters beyond Latin-1")
		}
		b = append(b, byte(r))
	}
	return b, nil
}
