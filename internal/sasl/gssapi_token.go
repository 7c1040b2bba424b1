package sasl

import (
	"bytes"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// The tokens of the Kerberos V5 GSS-API mechanism that GSSAPI (RFC 4752) carries, written by
// hand on top of gokrb5's types and crypto: gokrb5 can neither frame an AP-REP (its KRB5Token
// refuses to marshal one) nor read a Wrap token that is rotated (RRC > 0) or sealed, both of
// which RFC 4121 allows a peer to send.

// krb5OID is the DER encoding of the Kerberos V5 mechanism's OID, 1.2.840.113554.1.2.2
// (RFC 1964 §1, RFC 4121 §4.1).
var krb5OID = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02}

// TOK_ID values of the context tokens (RFC 4121 §4.1).
const (
	tokAPReq    = 0x0100
	tokAPRep    = 0x0200
	tokKRBError = 0x0300
)

// maxGSSAPIToken bounds a token a peer sends. A ticket with a large PAC (Active Directory)
// reaches about 12 KiB; RFC 4954 §4 lets an AUTH line carry 12288 octets of base64 anyway.
const maxGSSAPIToken = 64 << 10

// frameToken puts a Kerberos message into the generic GSS-API framing of RFC 2743 §3.1:
// [APPLICATION 0] IMPLICIT SEQUENCE { thisMech OID, innerToken }, the inner token being the
// two-octet TOK_ID and the message (RFC 4121 §4.1).
func frameToken(tokID uint16, msg []byte) []byte {
	inner := len(krb5OID) + 2 + len(msg)
	b := append([]byte{0x60}, derLength(inner)...)
	b = append(b, krb5OID...)
	b = binary.BigEndian.AppendUint16(b, tokID)
	return append(b, msg...)
}

// derLength is a DER definite length (X.690 §8.1.3).
func derLength(n int) []byte {
	if n < 0x80 {
		return []byte{byte(n)}
	}
	var b []byte
	for v := n; v > 0; v >>= 8 {
		b = append([]byte{byte(v)}, b...)
	}
	return append([]byte{0x80 | byte(len(b))}, b...)
}

// unframeToken takes a context token apart and returns its TOK_ID and message. The framing
// must be exact: DER definite lengths, the Kerberos V5 OID, nothing after the token.
func unframeToken(b []byte) (tokID uint16, msg []byte, err error) {
	if len(b) > maxGSSAPIToken {
		return 0, nil, fmt.Errorf("token of %d octets, more than %d", len(b), maxGSSAPIToken)
	}
	if len(b) < 2 || b[0] != 0x60 {
		return 0, nil, errors.New("not a GSS-API initial context token (RFC 2743 §3.1: it starts with 0x60)")
	}
	n, rest, err := readDERLength(b[1:])
	if err != nil {
		return 0, nil, err
	}
	if n != len(rest) {
		return 0, nil, fmt.Errorf("token length %d, but %d octets follow", n, len(rest))
	}
	if !bytes.HasPrefix(rest, krb5OID) {
		return 0, nil, errors.New("the token's mechanism is not Kerberos V5 (OID 1.2.840.113554.1.2.2)")
	}
	rest = rest[len(krb5OID):]
	if len(rest) < 2 {
		return 0, nil, errors.New("token ends before its TOK_ID")
	}
	return binary.BigEndian.Uint16(rest), rest[2:], nil
}

// readDERLength reads a DER definite length (at most 4 octets of it) and returns it with what
// follows.
func readDERLength(b []byte) (int, []byte, error) {
	if len(b) == 0 {
		return 0, nil, errors.New("token ends in its length")
	}
	if b[0] < 0x80 {
		return int(b[0]), b[1:], nil
	}
	k := int(b[0] & 0x7f)
	if k == 0 || k > 4 || len(b) < 1+k {
		return 0, nil, errors.New("bad DER length in the token header")
	}
	n := 0
	for _, c := range b[1 : 1+k] {
		n = n<<8 | int(c)
	}
	if n < 0x80 || b[1] == 0 {
		return 0, nil, errors.New("non-minimal DER length in the token header")
	}
	return n, b[1+k:], nil
}

// Wrap token flags (RFC 4121 §4.2.2).
const (
	wrapSentByAcceptor = 0x01
	wrapSealed         = 0x02
	wrapAcceptorSubkey = 0x04
)

// wrapHeaderLen is the length of a Wrap token's header: TOK_ID 05 04, Flags, Filler FF,
// EC (2), RRC (2), SND_SEQ (8) (RFC 4121 §4.2.6.2).
const wrapHeaderLen = 16

// cfxEtype refuses the encryption types whose GSS-API tokens are not RFC 4121's: DES, 3DES and
// RC4 keep the RFC 1964 token formats (RFC 4121 §4.2, RFC 4757), which tern does not implement.
func cfxEtype(key types.EncryptionKey) error {
	switch key.KeyType {
	case etypeID.AES128_CTS_HMAC_SHA1_96, etypeID.AES256_CTS_HMAC_SHA1_96,
		etypeID.AES128_CTS_HMAC_SHA256_128, etypeID.AES256_CTS_HMAC_SHA384_192:
		return nil
	}
	return fmt.Errorf("session key of encryption type %d: only the AES types (RFC 3962, RFC 8009) are supported", key.KeyType)
}

// wrapToken makes a Wrap token without confidentiality (RFC 4121 §4.2.4: the checksum covers
// the plaintext and then the header with EC and RRC zero; EC then holds the checksum's length).
// RFC 4752 §3.3 wraps the security layer messages this way: they are not secret, only
// protected against changes. usage is 22 for the acceptor, 24 for the initiator (§2).
func wrapToken(key types.EncryptionKey, usage uint32, flags byte, seq uint64, payload []byte) ([]byte, error) {
	if err := cfxEtype(key); err != nil {
		return nil, err
	}
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return nil, err
	}
	hdr := wrapHeader(flags&^wrapSealed, 0, 0, seq)
	sum, err := et.GetChecksumHash(key.KeyValue, append(append([]byte{}, payload...), hdr...), usage)
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint16(hdr[4:], uint16(len(sum)))
	out := append(hdr, payload...)
	return append(out, sum...), nil
}

// wrapHeader is a Wrap token header.
func wrapHeader(flags byte, ec, rrc uint16, seq uint64) []byte {
	h := []byte{0x05, 0x04, flags, 0xff, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(h[4:], ec)
	binary.BigEndian.PutUint16(h[6:], rrc)
	return binary.BigEndian.AppendUint64(h, seq)
}

// unwrapped is what unwrapToken found.
type unwrapped struct {
	payload []byte
	flags   byte
	seq     uint64
}

// unwrapToken verifies a Wrap token (RFC 4121 §4.2.6.2) and returns its plaintext. It takes
// both kinds: integrity only (plaintext | checksum) and sealed (the encryption of plaintext |
// EC filler octets | a copy of the header), each possibly rotated right by RRC octets
// (§4.2.5). fromAcceptor is whether the peer is the acceptor; usage the peer's key usage.
func unwrapToken(key types.EncryptionKey, usage uint32, fromAcceptor bool, tok []byte) (unwrapped, error) {
	var u unwrapped
	if err := cfxEtype(key); err != nil {
		return u, err
	}
	if len(tok) > maxGSSAPIToken {
		return u, fmt.Errorf("wrap token of %d octets, more than %d", len(tok), maxGSSAPIToken)
	}
	if len(tok) < wrapHeaderLen || tok[0] != 0x05 || tok[1] != 0x04 {
		return u, errors.New("not an RFC 4121 Wrap token (TOK_ID 05 04)")
	}
	if tok[3] != 0xff {
		return u, errors.New("wrap token filler octet is not FF")
	}
	u.flags = tok[2]
	if u.flags&^(wrapSentByAcceptor|wrapSealed|wrapAcceptorSubkey) != 0 {
		return u, fmt.Errorf("wrap token has unknown flags %#02x", u.flags)
	}
	if (u.flags&wrapSentByAcceptor != 0) != fromAcceptor {
		return u, errors.New("wrap token's SentByAcceptor flag names the wrong side (a reflected token?)")
	}
	ec := int(binary.BigEndian.Uint16(tok[4:]))
	rrc := int(binary.BigEndian.Uint16(tok[6:]))
	u.seq = binary.BigEndian.Uint64(tok[8:])
	data := unrotate(tok[wrapHeaderLen:], rrc)
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return u, err
	}
	if u.flags&wrapSealed == 0 {
		// §4.2.4: the checksum's length is EC, and it is computed with EC and RRC zero.
		if ec != et.GetHMACBitLength()/8 || len(data) < ec {
			return u, fmt.Errorf("wrap token checksum length %d, want %d", ec, et.GetHMACBitLength()/8)
		}
		plain, sum := data[:len(data)-ec], data[len(data)-ec:]
		want, err := et.GetChecksumHash(key.KeyValue, append(append([]byte{}, plain...), wrapHeader(u.flags, 0, 0, u.seq)...), usage)
		if err != nil {
			return u, err
		}
		if !hmac.Equal(want, sum) {
			return u, errors.New("wrap token checksum does not verify (wrong key, or the token was changed)")
		}
		u.payload = plain
		return u, nil
	}
	// Sealed: the ciphertext must hold at least a confounder, the header copy and the HMAC,
	// or gokrb5's decryption would slice out of range.
	if len(data) < et.GetConfounderByteSize()+wrapHeaderLen+et.GetHMACBitLength()/8 {
		return u, errors.New("sealed wrap token too short")
	}
	plain, err := et.DecryptMessage(key.KeyValue, data, usage)
	if err != nil {
		return u, errors.New("sealed wrap token does not decrypt (wrong key, or the token was changed)")
	}
	if len(plain) < ec+wrapHeaderLen {
		return u, errors.New("sealed wrap token shorter than its filler and header")
	}
	// The encrypted header copy has RRC zero (§4.2.5) and must match the header sent.
	if !bytes.Equal(plain[len(plain)-wrapHeaderLen:], wrapHeader(u.flags, uint16(ec), 0, u.seq)) {
		return u, errors.New("sealed wrap token's header does not match its encrypted copy")
	}
	u.payload = plain[:len(plain)-ec-wrapHeaderLen]
	return u, nil
}

// unrotate undoes a right rotation by rrc octets (RFC 4121 §4.2.5).
func unrotate(b []byte, rrc int) []byte {
	if len(b) == 0 {
		return b
	}
	rrc %= len(b)
	out := make([]byte, 0, len(b))
	out = append(out, b[rrc:]...)
	return append(out, b[:rrc]...)
}

// DescribeGSSAPIToken says what a GSSAPI message is, without any key (for tern auth decode and
// tern send's transcript): a context token (an AP-REQ with its ticket's server principal and
// encryption type, an AP-REP, a KRB-ERROR) or a Wrap token, whose payload is readable when it
// is not sealed (the security layer messages of RFC 4752 §3.1). ok is false for anything else.
func DescribeGSSAPIToken(b []byte) (desc string, ok bool) {
	if len(b) >= wrapHeaderLen && b[0] == 0x05 && b[1] == 0x04 && b[3] == 0xff {
		return describeWrap(b), true
	}
	tokID, msg, err := unframeToken(b)
	if err != nil {
		return "", false
	}
	switch tokID {
	case tokAPReq:
		var req messages.APReq
		if err := safely(func() error { return req.Unmarshal(msg) }); err != nil {
			return "GSSAPI initial context token with a malformed AP-REQ", true
		}
		t := req.Ticket
		s := fmt.Sprintf("GSSAPI AP-REQ (RFC 4121 §4.1): a ticket for %s@%s, %s, kvno %d",
			t.SName.PrincipalNameString(), t.Realm, etypeName(t.EncPart.EType), t.EncPart.KVNO)
		if types.IsFlagSet(&req.APOptions, flags.APOptionMutualRequired) {
			s += "; mutual authentication asked for"
		}
		return s, true
	case tokAPRep:
		return "GSSAPI AP-REP (RFC 4121 §4.1): the server's proof that it holds the service key", true
	case tokKRBError:
		var ke messages.KRBError
		if err := safely(func() error { return ke.Unmarshal(msg) }); err != nil {
			return "GSSAPI KRB-ERROR (malformed)", true
		}
		return strings.TrimSpace("GSSAPI KRB-ERROR: " + errorcode.Lookup(ke.ErrorCode) + " " + ke.EText), true
	}
	return fmt.Sprintf("GSSAPI context token with TOK_ID %04x", tokID), true
}

// describeWrap describes a Wrap token and, when it is neither sealed nor rotated, the RFC 4752
// security layer message in it.
func describeWrap(b []byte) string {
	fl := b[2]
	from := "the client"
	if fl&wrapSentByAcceptor != 0 {
		from = "the server"
	}
	s := fmt.Sprintf("GSSAPI Wrap token (RFC 4121 §4.2.6.2) from %s, seq %d", from, binary.BigEndian.Uint64(b[8:]))
	ec, rrc := int(binary.BigEndian.Uint16(b[4:])), binary.BigEndian.Uint16(b[6:])
	if fl&wrapSealed != 0 || rrc != 0 || len(b) < wrapHeaderLen+ec {
		return s + ", sealed or rotated: its content needs the key"
	}
	p := b[wrapHeaderLen : len(b)-ec]
	if len(p) < 4 {
		return s
	}
	var layers []string
	for _, l := range []struct {
		bit  byte
		name string
	}{{layerNone, "none"}, {layerIntegrity, "integrity"}, {layerConf, "confidentiality"}} {
		if p[0]&l.bit != 0 {
			layers = append(layers, l.name)
		}
	}
	size := int(p[1])<<16 | int(p[2])<<8 | int(p[3])
	verb := "security layers offered"
	if fl&wrapSentByAcceptor == 0 {
		verb = "security layer chosen"
	}
	s += fmt.Sprintf(": %s %s, max size %d (RFC 4752 §3.1)", verb, strings.Join(layers, " "), size)
	if len(p) > 4 {
		s += fmt.Sprintf(", authzid %q", p[4:])
	}
	return s
}

// etypeName names an encryption type as MIT does.
func etypeName(id int32) string {
	switch id {
	case etypeID.AES128_CTS_HMAC_SHA1_96:
		return "aes128-cts-hmac-sha1-96"
	case etypeID.AES256_CTS_HMAC_SHA1_96:
		return "aes256-cts-hmac-sha1-96"
	case etypeID.AES128_CTS_HMAC_SHA256_128:
		return "aes128-cts-hmac-sha256-128"
	case etypeID.AES256_CTS_HMAC_SHA384_192:
		return "aes256-cts-hmac-sha384-192"
	case etypeID.RC4_HMAC:
		return "arcfour-hmac"
	case etypeID.DES3_CBC_SHA1_KD:
		return "des3-cbc-sha1"
	}
	return fmt.Sprintf("encryption type %d", id)
}
