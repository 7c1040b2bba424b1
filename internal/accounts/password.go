package accounts

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Parameters for new hashes: the argon2id minimum recommended by the OWASP Password Storage
// Cheat Sheet (19 MiB, 2 passes, 1 lane), with the salt and key sizes RFC 9106 §3.1 suggests.
// Changing them is safe: CheckPassword reads the parameters from each stored hash, so old
// hashes keep working and new ones (made by Add or SetPassword) use the new cost.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16 // octets
	argonKeyLen  = 32 // octets
)

// Limits on what CheckPassword accepts from a stored hash. They are far above anything we
// write; their job is to turn a corrupt or tampered row into ErrBadHash instead of a 4 TiB
// allocation or an hours-long loop in the middle of an AUTH exchange.
const (
	maxArgonMemory = 1 << 20 // KiB, 1 GiB
	maxArgonTime   = 64
	minSaltLen     = 8 // RFC 9106 §3.1 minimum
	maxSaltLen     = 64
	minKeyLen      = 16
	maxKeyLen      = 64
	maxEncodedLen  = 512
)

// phcPrefix is the algorithm and version part of every hash we accept. Only version 19
// (argon2.Version, 0x13) exists in golang.org/x/crypto/argon2; the PHC format lets it be
// omitted, meaning 0x10, which we could not compute, so it is required.
const phcPrefix = "$argon2id$v=19$"

// b64 is the PHC string format's base64: standard alphabet, no padding. Strict refuses
// non-zero trailing bits so that each hash has exactly one encoding.
func b64() *base64.Encoding { return base64.RawStdEncoding.Strict() }

// decodeB64 decodes PHC base64. encoding/base64 skips CR and LF anywhere in its input, even in
// Strict mode; a stored hash with a line break in it is corrupt, not another spelling.
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("line break in base64")
	}
	return b64().DecodeString(s)
}

// HashPassword returns password hashed with argon2id and a fresh random salt, in PHC string
// format: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>. It returns ErrEmptyPassword for "".
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", ErrEmptyPassword
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("accounts: reading salt: %w", err)
	}
	p := phc{memory: argonMemory, time: argonTime, threads: argonThreads, salt: salt}
	p.key = argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, argonKeyLen)
	return p.String(), nil
}

// CheckPassword reports whether password matches encoded, a PHC string made by HashPassword
// (possibly with other cost parameters). It returns an error wrapping ErrBadHash if encoded
// cannot be parsed; a wrong password is (false, nil).
func CheckPassword(encoded, password string) (bool, error) {
	p, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	// Constant time, so the comparison does not tell an attacker how many leading bytes of
	// their guess's hash were right.
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

// phc is a parsed argon2id PHC string.
type phc struct {
	memory  uint32 // KiB
	time    uint32 // passes
	threads uint8  // lanes
	salt    []byte
	key     []byte
}

func (p phc) String() string {
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", phcPrefix, p.memory, p.time, p.threads,
		b64().EncodeToString(p.salt), b64().EncodeToString(p.key))
}

// parsePHC parses $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>. The parameters
// must come in that order, as the PHC string format specifies for argon2; the optional
// keyid and data parameters are not supported since we never write them.
func parsePHC(encoded string) (phc, error) {
	bad := func(reason string) (phc, error) {
		return phc{}, fmt.Errorf("%w: %s", ErrBadHash, reason)
	}
	if len(encoded) > maxEncodedLen {
		return bad("too long")
	}
	rest, ok := strings.CutPrefix(encoded, phcPrefix)
	if !ok {
		return bad("not an argon2id v=19 PHC string")
	}
	fields := strings.Split(rest, "$")
	if len(fields) != 3 {
		return bad("want parameters, salt and hash")
	}
	params := strings.Split(fields[0], ",")
	if len(params) != 3 {
		return bad("want parameters m, t and p")
	}
	memory, err := phcParam(params[0], "m", maxArgonMemory)
	if err != nil {
		return phc{}, err
	}
	passes, err := phcParam(params[1], "t", maxArgonTime)
	if err != nil {
		return phc{}, err
	}
	threads, err := phcParam(params[2], "p", 255) // argon2.IDKey takes a uint8
	if err != nil {
		return phc{}, err
	}
	p := phc{memory: memory, time: passes, threads: uint8(threads)}
	if p.salt, err = decodeB64(fields[1]); err != nil {
		return bad("salt: " + err.Error())
	}
	if len(p.salt) < minSaltLen || len(p.salt) > maxSaltLen {
		return bad(fmt.Sprintf("salt length %d outside %d..%d", len(p.salt), minSaltLen, maxSaltLen))
	}
	if p.key, err = decodeB64(fields[2]); err != nil {
		return bad("hash: " + err.Error())
	}
	if len(p.key) < minKeyLen || len(p.key) > maxKeyLen {
		return bad(fmt.Sprintf("hash length %d outside %d..%d", len(p.key), minKeyLen, maxKeyLen))
	}
	return p, nil
}

// phcParam parses one "name=value" parameter whose value must be in 1..max. Zero is refused
// because argon2 needs at least one pass and one lane, and zero memory would silently be
// raised by the library, hiding a corrupt row.
func phcParam(s, name string, max uint32) (uint32, error) {
	v, ok := strings.CutPrefix(s, name+"=")
	if !ok {
		return 0, fmt.Errorf("%w: want parameter %s, got %q", ErrBadHash, name, s)
	}
	// ParseUint accepts leading zeros; PHC forbids them, and refusing them keeps one
	// encoding per hash.
	if len(v) > 1 && v[0] == '0' {
		return 0, fmt.Errorf("%w: parameter %s has leading zero", ErrBadHash, name)
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == 0 || n > uint64(max) {
		return 0, fmt.Errorf("%w: parameter %s=%q not in 1..%d", ErrBadHash, name, v, max)
	}
	return uint32(n), nil
}

// Decoy stands in for the stored hash of an account that does not exist. Verify calls Check
// when the lookup finds no user so that the unknown-user path costs one argon2id computation,
// like the wrong-password path; otherwise response time would tell an attacker which
// addresses are accounts.
//
// The zero value is ready to use; each Store owns one (it is not a package global, so tests
// and stores do not share state). A Decoy must not be copied after first use.
type Decoy struct {
	once    sync.Once
	encoded string // hash of a random password nobody knows
	err     error
}

// Check spends the time of one CheckPassword with the current parameters. It never reports a
// match: it only returns an error if the decoy hash could not be made.
func (d *Decoy) Check(password string) error {
	// The decoy is made on first use, not at Open, so `tern user` commands don't pay for it.
	// Making it costs one hash, the same as checking against it, so even the first call
	// takes the usual time.
	first := false
	d.once.Do(func() {
		first = true
		d.encoded, d.err = HashPassword(rand.Text())
	})
	if first || d.err != nil {
		return d.err
	}
	_, err := CheckPassword(d.encoded, password)
	return err
}

// Verify checks password against encoded, the stored hash of an account, or against the decoy
// when the account was not found, so that both answers take the same time.
func (d *Decoy) Verify(encoded string, found bool, password string) (bool, error) {
	if !found {
		return false, d.Check(password)
	}
	return CheckPassword(encoded, password)
}
