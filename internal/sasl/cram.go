package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"unicode"
	"unicode/utf8"
)

// CRAM-MD5 (RFC 2195) and its SHA-1 twin CRAM-SHA1 (never standardised, but offered by
// several servers and by gen-auth) are one challenge and one response:
//
//	S: <random.unixtime@hostname>
//	C: user SP HEX(HMAC-H(password, challenge))
//
// The server never holds the password. RFC 2104 §4 points out that HMAC's key only ever
// enters two hash computations, H(K XOR ipad) and H(K XOR opad), each exactly one block long,
// so their intermediate states can be computed once and stored; Dovecot's CRAM-MD5 scheme does
// this. The stored secret (deriveCRAM) is those two states, saved with the hash's
// encoding.BinaryMarshaler, in a blob:
//
//	octet 0       version, cramSecretVersion
//	octet 1       n, length of the inner state
//	n octets      inner state: H after K XOR ipad
//	octet         m, length of the outer state
//	m octets      outer state: H after K XOR opad
//
// The states are password-equivalent for CRAM (anyone holding them can answer any challenge),
// though not for the other mechanisms: that is the price of CRAM, and why it should only be
// enabled for clients that need it.

// cramSecretVersion is the first octet of a CRAM secret blob.
const cramSecretVersion = 1

// cramMech returns the hash function and the secret kind of a CRAM mechanism name.
func cramMech(mech string) (newHash func() hash.Hash, kind string, ok bool) {
	switch mech {
	case CRAMMD5:
		return md5.New, SecretCRAMMD5, true
	case CRAMSHA1:
		return sha1.New, SecretCRAMSHA1, true
	}
	return nil, "", false
}

// cramKind returns the hash function of a CRAM secret kind.
func cramKind(kind string) (newHash func() hash.Hash, ok bool) {
	switch kind {
	case SecretCRAMMD5:
		return md5.New, true
	case SecretCRAMSHA1:
		return sha1.New, true
	}
	return nil, false
}

// deriveCRAM computes the stored secret of kind SecretCRAMMD5 or SecretCRAMSHA1 for password.
func deriveCRAM(kind, password string) ([]byte, error) {
	newHash, ok := cramKind(kind)
	if !ok {
		return nil, fmt.Errorf("sasl: deriveCRAM: unknown secret kind %q", kind)
	}
	if password == "" {
		return nil, errors.New("sasl: deriveCRAM: empty password")
	}
	// RFC 2104 §2: a key longer than the block is replaced by its hash; then it is padded
	// with zeros to the block size.
	key := []byte(password)
	h := newHash()
	bs := h.BlockSize()
	if len(key) > bs {
		h.Write(key)
		key = h.Sum(nil)
	}
	ipad := make([]byte, bs)
	opad := make([]byte, bs)
	copy(ipad, key)
	copy(opad, key)
	for i := range bs {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	blob := []byte{cramSecretVersion}
	for _, pad := range [][]byte{ipad, opad} {
		h := newHash()
		h.Write(pad)
		m, ok := h.(encoding.BinaryMarshaler)
		if !ok {
			return nil, fmt.Errorf("sasl: deriveCRAM: %s hash state cannot be saved", kind)
		}
		state, err := m.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("sasl: deriveCRAM: saving %s hash state: %w", kind, err)
		}
		if len(state) > 255 {
			return nil, fmt.Errorf("sasl: deriveCRAM: %s hash state of %d octets", kind, len(state))
		}
		blob = append(blob, byte(len(state)))
		blob = append(blob, state...)
	}
	return blob, nil
}

// cramStates restores the inner and outer HMAC states from a stored secret. A blob that does
// not parse means the store is corrupt or holds another kind: that must reach the operator,
// not look like a wrong password, so it is ErrUnavailable (454) with the reason.
func cramStates(newHash func() hash.Hash, kind string, blob []byte) (inner, outer hash.Hash, err error) {
	bad := func(reason string) (hash.Hash, hash.Hash, error) {
		return nil, nil, fmt.Errorf("%w: corrupt %s secret: %s", ErrUnavailable, kind, reason)
	}
	if len(blob) == 0 || blob[0] != cramSecretVersion {
		return bad("unknown version")
	}
	// The length of a fresh state: a state of another length is of another hash, or damaged.
	fresh, err := newHash().(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return bad(err.Error())
	}
	rest := blob[1:]
	var hs [2]hash.Hash
	for i := range hs {
		if len(rest) == 0 || int(rest[0]) != len(fresh) || len(rest) < 1+len(fresh) {
			return bad("bad state length")
		}
		h := newHash()
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(rest[1 : 1+len(fresh)]); err != nil {
			return bad(err.Error())
		}
		hs[i] = h
		rest = rest[1+len(fresh):]
	}
	if len(rest) != 0 {
		return bad("trailing octets")
	}
	return hs[0], hs[1], nil
}

// cramDigest computes HMAC(key, challenge) from the stored states.
func cramDigest(inner, outer hash.Hash, challenge []byte) []byte {
	inner.Write(challenge)
	outer.Write(inner.Sum(nil))
	return outer.Sum(nil)
}

// NewCRAMServer returns the server half of CRAM-MD5 (RFC 2195) or CRAM-SHA1, as mech says.
// Next(nil) returns the challenge "<random.unixtime@hostname>" (64 random bits from
// opts.Rand, the time from opts.Now, opts.Hostname); an initial response is a protocol error,
// since the response depends on the challenge. The answer is checked against the secret
// creds.Secret returns for SecretCRAMMD5 or SecretCRAMSHA1 (see deriveCRAM).
func NewCRAMServer(ctx context.Context, mech string, creds Credentials, opts ServerOptions) Server {
	s := &cramServer{ctx: ctx, creds: creds, opts: opts, mech: mech}
	s.newHash, s.kind, _ = cramMech(mech)
	return s
}

// cramServer is the state of one CRAM exchange.
type cramServer struct {
	ctx     context.Context
	creds   Credentials
	opts    ServerOptions
	mech    string
	newHash func() hash.Hash // nil for an unknown mech
	kind    string           // the secret kind for mech

	challenge []byte // sent by the first Next; nil before
	done      bool
	identity  string
}

func (s *cramServer) Next(response []byte) ([]byte, bool, error) {
	switch {
	case s.newHash == nil:
		s.done = true
		return nil, true, fmt.Errorf("sasl: NewCRAMServer: unknown mechanism %q", s.mech)
	case s.done:
		return nil, true, fmt.Errorf("%w: %s: exchange already over", ErrProtocol, s.mech)
	case s.challenge == nil:
		if response != nil {
			s.done = true
			return nil, true, fmt.Errorf("%w: %s takes no initial response", ErrProtocol, s.mech)
		}
		r, err := optionsRandom(s.opts, 8)
		if err != nil {
			s.done = true
			return nil, true, err
		}
		host := s.opts.Hostname
		if host == "" {
			host = "localhost"
		}
		// RFC 2195 §2: the challenge has the syntax of a msg-id (RFC 822), and should be
		// unique, hence the random number and the time.
		s.challenge = fmt.Appendf(nil, "<%d.%d@%s>", binary.BigEndian.Uint64(r), optionsNow(s.opts).Unix(), host)
		return s.challenge, false, nil
	}
	s.done = true
	user, digest, err := s.parseResponse(response)
	if err != nil {
		return nil, true, err
	}
	account, secret, err := s.creds.Secret(s.ctx, user, s.kind)
	if err != nil {
		return nil, true, credentialsError(err)
	}
	inner, outer, err := cramStates(s.newHash, s.kind, secret)
	if err != nil {
		return nil, true, fmt.Errorf("%w (account %s)", err, account)
	}
	// hmac.Equal is constant-time.
	if !hmac.Equal(cramDigest(inner, outer, s.challenge), digest) {
		return nil, true, fmt.Errorf("%w: %s: wrong digest", ErrAuthFailed, s.mech)
	}
	s.identity = account
	return nil, true, nil
}

// parseResponse splits "user SP digest" (RFC 2195 §2) and decodes the digest, which must be
// lower-case hex of the hash's size.
func (s *cramServer) parseResponse(response []byte) (user string, digest []byte, err error) {
	hexLen := 2 * s.newHash().Size()
	bad := func(reason string) (string, []byte, error) {
		return "", nil, fmt.Errorf("%w: %s: %s", ErrProtocol, s.mech, reason)
	}
	if len(response) > maxNameLen+1+hexLen {
		return bad("response too long")
	}
	// The digest has no spaces, so the last one is the separator.
	sp := strings.LastIndexByte(string(response), ' ')
	if sp < 0 {
		return bad("no space between user name and digest")
	}
	user, hexDigest := string(response[:sp]), string(response[sp+1:])
	switch {
	case user == "":
		return bad("empty user name")
	case !utf8.ValidString(user):
		return bad("user name is not UTF-8")
	case strings.ContainsFunc(user, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		// Not forbidden by RFC 2195, but no tern account has one, and a second space
		// most likely means a confused client.
		return bad("space or control character in user name")
	case len(hexDigest) != hexLen || strings.ContainsFunc(hexDigest, func(r rune) bool {
		return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f')
	}):
		return bad(fmt.Sprintf("digest is not %d lower-case hex digits", hexLen))
	}
	digest, err = hex.DecodeString(hexDigest)
	if err != nil {
		return bad("digest is not hex")
	}
	return user, digest, nil
}

func (s *cramServer) Identity() string { return s.identity }

// NewCRAMClient returns the client half of CRAM-MD5 or CRAM-SHA1, as mech says.
func NewCRAMClient(mech, user, password string) Client {
	return &cramClient{mech: mech, user: user, password: password}
}

type cramClient struct {
	mech, user, password string
	answered             bool
}

func (c *cramClient) Start() (string, []byte, error) {
	switch _, _, ok := cramMech(c.mech); {
	case !ok:
		return "", nil, fmt.Errorf("sasl: NewCRAMClient: unknown mechanism %q", c.mech)
	case c.user == "" || c.password == "":
		return "", nil, fmt.Errorf("sasl: %s: empty user name or password", c.mech)
	}
	return c.mech, nil, nil
}

func (c *cramClient) Next(challenge []byte) ([]byte, error) {
	newHash, _, ok := cramMech(c.mech)
	switch {
	case !ok:
		return nil, fmt.Errorf("sasl: NewCRAMClient: unknown mechanism %q", c.mech)
	case c.answered:
		return nil, fmt.Errorf("sasl: %s: unexpected second server challenge", c.mech)
	case len(challenge) == 0:
		return nil, fmt.Errorf("sasl: %s: empty server challenge", c.mech)
	}
	c.answered = true
	mac := hmac.New(newHash, []byte(c.password))
	mac.Write(challenge)
	return fmt.Appendf(nil, "%s %x", c.user, mac.Sum(nil)), nil
}
