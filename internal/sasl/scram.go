package sasl

// SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677) and their -PLUS variants with channel
// binding (RFC 5056; types tls-server-end-point of RFC 5929 and tls-exporter of RFC 9266).
//
// The exchange itself (nonces, proofs, the server signature) is github.com/xdg-go/scram's;
// this file adds what the library leaves to its caller: the stored-secret format, the choice of
// channel binding per connection, the authorization identity rule, the mapping of failures onto
// ErrAuthFailed/ErrProtocol/ErrUnavailable, and the framing of the last step for SMTP.
//
// # Channel binding
//
// tern advertises the -PLUS mechanisms whenever TLS is up, so:
//   - A -PLUS exchange must come with gs2 flag "p" and a binding type whose data this connection
//     can produce: tls-exporter (TLS 1.3; TLS 1.2 only with the extended master secret, which
//     crypto/tls insists on before it exports keying material) or tls-server-end-point (the
//     hash of our certificate, any version). Which one is the client's choice (its cb-name).
//   - A plain SCRAM exchange over TLS refuses flag "y" (RFC 5802 §6: the client supports
//     channel binding but saw no -PLUS mechanism, so someone removed it from our EHLO), and
//     refuses "p" (that belongs to the -PLUS names). Without TLS, "y" and "n" are fine.
//
// # Unknown users
//
// An unknown user (or one without a secret of this kind) gets a server-first-message built
// from a random decoy secret and fails only at the proof, like a wrong password, so one probe
// does not tell the two apart. Two probes can (a real user's salt is stable, a decoy's is
// not); closing that needs a per-installation key, which nothing here has.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/xdg-go/scram"
	"github.com/xdg-go/stringprep"
)

const (
	// scramIterations is the PBKDF2 iteration count of new secrets: RFC 7677 §4's minimum,
	// which is also the least xdg-go/scram clients accept. Each stored secret carries its own
	// count, so changing this affects new passwords only.
	scramIterations = 4096
	// scramSaltLen is the length of a new secret's random salt, in octets.
	scramSaltLen = 16
	// scramSecretVersion is the first octet of a stored secret (see scramSecret).
	scramSecretVersion = 1
	// scramNonceLen is the number of random octets in the server's part of the nonce
	// (32 characters once base64-encoded; RFC 5802 §5.1 only asks for them to be random).
	scramNonceLen = 24
	// scramMaxMessage bounds a client message. The longest legitimate one is a client-first
	// message with a name and an authzid of maxNameLen octets each, every octet escaped
	// ("=2C", three octets), plus a nonce: under 2100 octets.
	scramMaxMessage = 4096
)

// scramVariant describes one of the four SCRAM mechanisms.
type scramVariant struct {
	mech string                 // the mechanism name
	kind string                 // the Secret kind it verifies against
	hash scram.HashGeneratorFcn // H and HMAC's hash
	size int                    // the hash's output size: StoredKey, ServerKey and proof length
	plus bool                   // a -PLUS name: channel binding required
}

func scramVariantOf(mech string) (scramVariant, bool) {
	switch mech {
	case ScramSHA1, ScramSHA1Plus:
		return scramVariant{mech, SecretScramSHA1, scram.SHA1, 20, mech == ScramSHA1Plus}, true
	case ScramSHA256, ScramSHA256Plus:
		return scramVariant{mech, SecretScramSHA256, scram.SHA256, 32, mech == ScramSHA256Plus}, true
	}
	return scramVariant{}, false
}

func scramVariantOfKind(kind string) (scramVariant, bool) {
	switch kind {
	case SecretScramSHA1:
		return scramVariantOf(ScramSHA1)
	case SecretScramSHA256:
		return scramVariantOf(ScramSHA256)
	}
	return scramVariant{}, false
}

// scramSecret is what the server keeps for one user and hash (RFC 5802 §3: the salt, the
// iteration count, StoredKey and ServerKey; never the password or SaltedPassword). Stored as
//
//	version (1 octet, 1) | iterations (uint32, big-endian) | salt length (1 octet) | salt |
//	StoredKey | ServerKey (each the hash's size, which the secret kind fixes)
type scramSecret struct {
	salt      []byte
	iters     int
	storedKey []byte
	serverKey []byte
}

func (s scramSecret) marshal() []byte {
	b := make([]byte, 0, 6+len(s.salt)+len(s.storedKey)+len(s.serverKey))
	b = append(b, scramSecretVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(s.iters))
	b = append(b, byte(len(s.salt)))
	b = append(b, s.salt...)
	b = append(b, s.storedKey...)
	return append(b, s.serverKey...)
}

// parseScramSecret decodes a stored secret whose keys are size octets long.
func parseScramSecret(b []byte, size int) (scramSecret, error) {
	if len(b) < 6 || b[0] != scramSecretVersion {
		return scramSecret{}, errors.New("not a version 1 SCRAM secret")
	}
	iters := binary.BigEndian.Uint32(b[1:5])
	saltLen := int(b[5])
	rest := b[6:]
	switch {
	case iters == 0 || iters > 1<<31-1:
		return scramSecret{}, fmt.Errorf("iteration count %d out of range", iters)
	case saltLen == 0:
		return scramSecret{}, errors.New("empty salt")
	case len(rest) != saltLen+2*size:
		return scramSecret{}, fmt.Errorf("%d octets, want %d", len(b), 6+saltLen+2*size)
	}
	return scramSecret{
		salt:      rest[:saltLen],
		iters:     int(iters),
		storedKey: rest[saltLen : saltLen+size],
		serverKey: rest[saltLen+size:],
	}, nil
}

func (s scramSecret) credentials() scram.StoredCredentials {
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(s.salt), Iters: s.iters},
		StoredKey:  s.storedKey,
		ServerKey:  s.serverKey,
	}
}

// deriveScram derives the stored secret of kind (SecretScramSHA1 or SecretScramSHA256) for
// password, with a fresh random salt read from rand (crypto/rand if nil).
func deriveScram(kind, password string, rand io.Reader) ([]byte, error) {
	if rand == nil {
		rand = cryptoRand()
	}
	salt := make([]byte, scramSaltLen)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return nil, fmt.Errorf("sasl: SCRAM: reading a salt: %w", err)
	}
	return deriveScramSalt(kind, password, salt, scramIterations)
}

// deriveScramSalt is deriveScram with a given salt and iteration count (RFC test vectors).
func deriveScramSalt(kind, password string, salt []byte, iters int) ([]byte, error) {
	v, ok := scramVariantOfKind(kind)
	switch {
	case !ok:
		return nil, fmt.Errorf("sasl: SCRAM: unknown secret kind %q", kind)
	case len(salt) == 0 || len(salt) > 255:
		return nil, fmt.Errorf("sasl: SCRAM: salt of %d octets", len(salt))
	case iters < 1 || iters > 1<<31-1:
		return nil, fmt.Errorf("sasl: SCRAM: iteration count %d", iters)
	}
	// The password is prepared here, so the library must not prepare it again.
	c, err := v.hash.NewClientUnprepped("", scramPreparePassword(password), "")
	if err != nil {
		return nil, fmt.Errorf("sasl: SCRAM: %w", err)
	}
	sc, err := c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iters})
	if err != nil {
		return nil, fmt.Errorf("sasl: SCRAM: deriving keys: %w", err)
	}
	return scramSecret{salt: salt, iters: iters, storedKey: sc.StoredKey, serverKey: sc.ServerKey}.marshal(), nil
}

// scramPreparePassword applies SASLprep (RFC 4013, as a stored string) to a password, as RFC
// 5802 §2.2's Normalize does. A password SASLprep refuses (unassigned code points such as
// emoji, mixed-direction text) is used as it is, as PostgreSQL does, rather than making SCRAM
// impossible for that account; tern's client and tern's secrets agree on that.
func scramPreparePassword(password string) string {
	if p, err := stringprep.SASLprep.Prepare(password); err == nil {
		return p
	}
	return password
}

// cryptoRand is crypto/rand's Reader, for where a parameter named rand hides the package.
func cryptoRand() io.Reader { return rand.Reader }

// NewScramServer returns the server half of one SCRAM exchange for mech (SCRAM-SHA-1,
// SCRAM-SHA-256 or their -PLUS names). The client's first message comes as the initial
// response or in answer to the empty challenge of Next(nil). Its "n=" name (after =2C/=3D
// decoding) is looked up with creds.Secret(ctx, name, SecretScramSHA1 or SecretScramSHA256).
// An authzid must be empty or name the same user unless opts.AllowAuthzID (then Identity is
// the authzid). The server-final message ("v=...") comes as a challenge with done false; the
// client's empty answer ends the exchange.
//
// A -PLUS mech needs opts.TLS; without it the first Next fails with ErrProtocol.
func NewScramServer(ctx context.Context, mech string, creds Credentials, opts ServerOptions) Server {
	// tls.ConnectionState does not carry the server's own certificate: it comes in opts
	// (nil refuses tls-server-end-point, and only tls-exporter works).
	return newScramServer(ctx, mech, creds, opts, opts.Certificate)
}

// newScramServer is NewScramServer with the server's certificate (for tls-server-end-point;
// nil refuses that binding type).
func newScramServer(ctx context.Context, mech string, creds Credentials, opts ServerOptions, cert *x509.Certificate) *scramServer {
	s := &scramServer{ctx: ctx, creds: creds, opts: opts, cert: cert}
	v, ok := scramVariantOf(mech)
	switch {
	case !ok:
		s.err = fmt.Errorf("%w: SCRAM: %q is not a SCRAM mechanism", ErrProtocol, mech)
	case v.plus && opts.TLS == nil:
		// RFC 5802 §6: -PLUS means channel binding, and there is no channel to bind to.
		s.err = fmt.Errorf("%w: %s needs TLS for channel binding", ErrProtocol, mech)
	}
	s.v = v
	s.nonce = func() (string, error) {
		b, err := optionsRandom(opts, scramNonceLen)
		return base64.StdEncoding.EncodeToString(b), err
	}
	return s
}

// States of a scramServer.
const (
	scramWantFirst = iota // waiting for client-first-message
	scramWantFinal        // server-first-message sent, waiting for client-final-message
	scramWantEmpty        // server-final-message sent, waiting for the empty response
	scramDone             // over, by success or failure
)

// scramServer is the state of one SCRAM exchange on the server.
type scramServer struct {
	ctx   context.Context
	creds Credentials
	opts  ServerOptions
	cert  *x509.Certificate // our certificate, for tls-server-end-point; nil: not offered
	v     scramVariant
	err   error                  // set at creation: the first Next returns it
	nonce func() (string, error) // the server's part of the nonce (tests fix it)

	state    int
	prompted bool // the empty challenge asking for client-first-message was sent
	conv     *scram.ServerConversation
	first    scramClientFirst
	account  string // what Credentials returned for the user
	decoy    bool   // the user is unknown: the exchange runs on a random secret and must fail
	storeErr error  // why the credential lookup failed, when it did not just not find the user
	pending  string // the identity, once the proof checked out
	identity string // the identity, once the exchange is over
}

func (s *scramServer) Identity() string { return s.identity }

func (s *scramServer) Next(response []byte) ([]byte, bool, error) {
	if s.state == scramDone {
		return nil, true, fmt.Errorf("%w: SCRAM: exchange already over", ErrProtocol)
	}
	if s.err != nil {
		return s.fail(s.err)
	}
	switch s.state {
	case scramWantFirst:
		if response == nil && !s.prompted {
			// RFC 4954 §4: no initial response, so an empty challenge asks for it.
			s.prompted = true
			return []byte{}, false, nil
		}
		s1, err := s.serverFirst(response)
		if err != nil {
			return s.fail(err)
		}
		s.state = scramWantFinal
		return []byte(s1), false, nil
	case scramWantFinal:
		s2, err := s.serverFinal(response)
		if err != nil {
			return s.fail(err)
		}
		s.state = scramWantEmpty
		return []byte(s2), false, nil
	default: // scramWantEmpty
		if len(response) != 0 {
			return s.fail(fmt.Errorf("%w: SCRAM: want an empty response to server-final-message", ErrProtocol))
		}
		s.state = scramDone
		s.identity = s.pending
		return nil, true, nil
	}
}

func (s *scramServer) fail(err error) ([]byte, bool, error) {
	s.state = scramDone
	return nil, true, err
}

// serverFirst checks client-first-message, looks the user up and returns server-first-message.
func (s *scramServer) serverFirst(msg []byte) (string, error) {
	if err := checkScramMessage(msg, "client-first-message"); err != nil {
		return "", err
	}
	first, err := parseScramClientFirst(string(msg))
	if err != nil {
		return "", fmt.Errorf("%w: SCRAM: client-first-message: %w", ErrProtocol, err)
	}
	s.first = first
	nonce, err := s.nonce()
	if err != nil {
		return "", err
	}
	srv, err := s.v.hash.NewServer(s.lookup)
	if err != nil {
		return "", fmt.Errorf("%w: SCRAM: %w", ErrUnavailable, err)
	}
	srv.WithNonceGenerator(func() string { return nonce })
	if s.conv, err = s.conversation(srv, first); err != nil {
		return "", err
	}
	s1, err := s.conv.Step(string(msg))
	if err != nil {
		if s.storeErr != nil {
			return "", s.storeErr
		}
		return "", scramLibraryError(s1, "client-first-message")
	}
	return s1, nil
}

// conversation starts the library's conversation with the channel binding this exchange
// needs (see the file comment).
func (s *scramServer) conversation(srv *scram.Server, first scramClientFirst) (*scram.ServerConversation, error) {
	switch {
	case s.v.plus:
		if first.flag != 'p' {
			return nil, fmt.Errorf("%w: SCRAM: %s needs channel binding (gs2 flag p), got %q", ErrProtocol, s.v.mech, first.flag)
		}
		cb, err := s.channelBinding(first.cbName)
		if err != nil {
			// RFC 5802 §6: a binding type the server does not support fails authentication.
			return nil, fmt.Errorf("%w: SCRAM: channel binding %q: %w", ErrAuthFailed, first.cbName, err)
		}
		return srv.NewConversationWithChannelBindingRequired(cb), nil
	case first.flag == 'p':
		return nil, fmt.Errorf("%w: SCRAM: channel binding asked for with %s, which is not a -PLUS mechanism", ErrProtocol, s.v.mech)
	case s.opts.TLS != nil:
		// We advertised -PLUS, which the library learns from a binding being present: it then
		// refuses "y". The binding's data is never compared ("p" was refused just above).
		return srv.NewConversationWithChannelBinding(scram.ChannelBinding{
			Type: scram.ChannelBindingTLSExporter,
			Data: []byte("-PLUS advertised"),
		}), nil
	default:
		return srv.NewConversation(), nil
	}
}

// channelBinding returns this connection's binding data of the type the client named.
func (s *scramServer) channelBinding(name string) (scram.ChannelBinding, error) {
	switch scram.ChannelBindingType(name) {
	case scram.ChannelBindingTLSExporter:
		// RFC 9266 defines it for TLS 1.3, and for TLS 1.2 only with the extended master secret
		// (RFC 7627); crypto/tls refuses to export keying material from TLS 1.2 without it.
		return scram.NewTLSExporterBinding(s.opts.TLS)
	case scram.ChannelBindingTLSServerEndpoint:
		if s.cert == nil {
			return scram.ChannelBinding{}, errors.New("our certificate is not known here")
		}
		// RFC 5929 §4.1: a hash of our certificate, the hash chosen by its signature
		// algorithm. The library computes it from a peer certificate (it is written for
		// clients), so hand ours over as if it were the peer's.
		return scram.NewTLSServerEndpointBinding(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{s.cert}})
	}
	// tls-unique (RFC 5929 §3) is undefined for TLS 1.3 and unsafe for TLS 1.2 without the
	// extended master secret (RFC 9266 §1); tls-exporter replaces it.
	return scram.ChannelBinding{}, errors.New("binding type not supported")
}

// lookup is the library's credential lookup: it fetches and decodes the stored secret, and
// answers an unknown user with a decoy secret (see the file comment).
func (s *scramServer) lookup(user string) (scram.StoredCredentials, error) {
	account, secret, err := s.creds.Secret(s.ctx, user, s.v.kind)
	switch {
	case errors.Is(err, ErrAuthFailed):
		return s.decoyCredentials()
	case err != nil:
		s.storeErr = credentialsError(err)
		return scram.StoredCredentials{}, s.storeErr
	}
	sec, err := parseScramSecret(secret, s.v.size)
	if err != nil {
		s.storeErr = fmt.Errorf("%w: SCRAM: stored %s secret of %q: %w", ErrUnavailable, s.v.kind, account, err)
		return scram.StoredCredentials{}, s.storeErr
	}
	s.account = account
	return sec.credentials(), nil
}

func (s *scramServer) decoyCredentials() (scram.StoredCredentials, error) {
	b, err := optionsRandom(s.opts, scramSaltLen+2*s.v.size)
	if err != nil {
		s.storeErr = err
		return scram.StoredCredentials{}, err
	}
	s.decoy = true
	return scramSecret{
		salt:      b[:scramSaltLen],
		iters:     scramIterations,
		storedKey: b[scramSaltLen : scramSaltLen+s.v.size],
		serverKey: b[scramSaltLen+s.v.size:],
	}.credentials(), nil
}

// serverFinal checks client-final-message and returns server-final-message.
func (s *scramServer) serverFinal(msg []byte) (string, error) {
	if err := checkScramMessage(msg, "client-final-message"); err != nil {
		return "", err
	}
	if err := checkScramClientFinal(string(msg), s.v.size); err != nil {
		return "", fmt.Errorf("%w: SCRAM: client-final-message: %w", ErrProtocol, err)
	}
	s2, err := s.conv.Step(string(msg))
	switch {
	case err != nil:
		return "", scramLibraryError(s2, "client-final-message")
	case !s.conv.Valid() || s.decoy:
		// Not reachable (a decoy's StoredKey is random), but a decoy must never succeed.
		return "", fmt.Errorf("%w: SCRAM: unknown user", ErrAuthFailed)
	}
	identity, err := authzIdentity(s.first.authzID, s.first.user, s.account, s.opts.AllowAuthzID)
	if err != nil {
		return "", err
	}
	s.pending = identity
	return s2, nil
}

// scramLibraryError maps the library's server-error value (RFC 5802 §7 "e=") onto the
// package's errors. The library's own error text is not used: some of it quotes the client's
// message or the channel binding data.
func scramLibraryError(serverError, what string) error {
	switch serverError {
	case scram.ErrInvalidProof:
		return fmt.Errorf("%w: SCRAM: wrong proof (password)", ErrAuthFailed)
	case scram.ErrUnknownUser:
		return fmt.Errorf("%w: SCRAM: unknown user", ErrAuthFailed)
	case scram.ErrChannelBindingsDontMatch:
		return fmt.Errorf("%w: SCRAM: channel binding does not match this connection", ErrAuthFailed)
	case scram.ErrServerDoesSupportChannelBinding:
		// RFC 5802 §6: flag "y" although we advertised -PLUS: the advertisement was removed.
		return fmt.Errorf("%w: SCRAM: client saw no -PLUS mechanism (gs2 flag y): possible downgrade", ErrAuthFailed)
	case scram.ErrChannelBindingNotSupported, scram.ErrUnsupportedChannelBindingType:
		return fmt.Errorf("%w: SCRAM: channel binding type not supported", ErrAuthFailed)
	case scram.ErrOtherError:
		// What remains after checkScramClientFinal: the nonce is not the one we sent (a replay).
		return fmt.Errorf("%w: SCRAM: %s: nonce does not match", ErrAuthFailed, what)
	}
	return fmt.Errorf("%w: SCRAM: malformed %s", ErrProtocol, what)
}

func checkScramMessage(msg []byte, what string) error {
	switch {
	case len(msg) == 0:
		return fmt.Errorf("%w: SCRAM: empty %s", ErrProtocol, what)
	case len(msg) > scramMaxMessage:
		return fmt.Errorf("%w: SCRAM: %s longer than %d octets", ErrProtocol, what, scramMaxMessage)
	case !utf8.Valid(msg):
		// RFC 5802 §7: the messages are UTF-8.
		return fmt.Errorf("%w: SCRAM: %s is not UTF-8", ErrProtocol, what)
	}
	return nil
}

// scramClientFirst is what the server needs to know of client-first-message before the
// library sees it: the channel binding flag, and the names (for the authzid rule).
type scramClientFirst struct {
	flag    byte   // gs2-cbind-flag: 'n', 'y' or 'p'
	cbName  string // with 'p', the channel binding type
	authzID string // decoded, "" if absent
	user    string // decoded
}

// parseScramClientFirst checks client-first-message against RFC 5802 §7:
//
//	gs2-cbind-flag "," [ "a=" saslname ] "," [ "m=" ... "," ] "n=" saslname "," "r=" c-nonce [ "," extensions ]
func parseScramClientFirst(msg string) (scramClientFirst, error) {
	var first scramClientFirst
	fields := strings.Split(msg, ",")
	if len(fields) < 4 {
		return first, errors.New("too few fields")
	}
	switch f := fields[0]; {
	case f == "n" || f == "y":
		first.flag = f[0]
	case strings.HasPrefix(f, "p="):
		first.flag = 'p'
		first.cbName = f[2:]
		if !validCBName(first.cbName) {
			return first, errors.New("bad channel binding name")
		}
	default:
		return first, errors.New("bad gs2-cbind-flag")
	}
	if a := fields[1]; a != "" {
		name, ok := strings.CutPrefix(a, "a=")
		if !ok {
			return first, errors.New("bad authzid field")
		}
		var err error
		if first.authzID, err = decodeScramName(name); err != nil {
			return first, fmt.Errorf("authzid: %w", err)
		}
	}
	if strings.HasPrefix(fields[2], "m=") {
		// RFC 5802 §5.1: mandatory extensions we do not know make authentication fail.
		return first, errors.New("mandatory extension not supported")
	}
	name, ok := strings.CutPrefix(fields[2], "n=")
	if !ok {
		return first, errors.New("no n= field")
	}
	var err error
	if first.user, err = decodeScramName(name); err != nil {
		return first, fmt.Errorf("user name: %w", err)
	}
	nonce, ok := strings.CutPrefix(fields[3], "r=")
	if !ok || nonce == "" {
		return first, errors.New("no nonce")
	}
	for i := 0; i < len(nonce); i++ {
		if c := nonce[i]; c < 0x21 || c > 0x7e { // RFC 5802 §7 printable, "," split off
			return first, errors.New("nonce is not printable ASCII")
		}
	}
	return first, nil
}

// decodeScramName decodes a saslname (RFC 5802 §5.1: "=2C" is ",", "=3D" is "=", and any
// other "=" is an error) and bounds it.
func decodeScramName(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0:
			return "", errors.New("NUL")
		case c != '=':
			b.WriteByte(c)
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
			i += 2
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
			i += 2
		default:
			return "", errors.New("'=' not followed by 2C or 3D")
		}
	}
	if b.Len() > maxNameLen {
		return "", fmt.Errorf("longer than %d octets", maxNameLen)
	}
	return b.String(), nil
}

// validCBName reports whether s is a cb-name (RFC 5056 §7: 1*(ALPHA / DIGIT / "." / "-")).
func validCBName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// checkScramClientFinal checks what the library does not (RFC 5802 §7):
// "c=" base64 "," "r=" nonce ["," extensions] "," "p=" base64 proof of the hash's size.
func checkScramClientFinal(msg string, size int) error {
	fields := strings.Split(msg, ",")
	if len(fields) < 3 {
		return errors.New("too few fields")
	}
	if c, ok := strings.CutPrefix(fields[0], "c="); !ok {
		return errors.New("no c= field")
	} else if _, err := base64.StdEncoding.DecodeString(c); err != nil {
		return errors.New("c= is not base64")
	}
	if !strings.HasPrefix(fields[1], "r=") {
		return errors.New("no r= field")
	}
	p, ok := strings.CutPrefix(fields[len(fields)-1], "p=")
	if !ok {
		return errors.New("no p= field last")
	}
	proof, err := base64.StdEncoding.DecodeString(p)
	if err != nil || len(proof) != size {
		return fmt.Errorf("p= is not %d octets in base64", size)
	}
	return nil
}

// NewScramClient returns the client half of SCRAM for mech. user, password and authzid (""
// for none) go through SASLprep (a password SASLprep refuses is used as it is, matching
// deriveScram). The -PLUS names need tlsState and bind to tls-exporter on TLS 1.3 and to
// tls-server-end-point on TLS 1.2; the others ignore it and send gs2 flag "n" (sending "y"
// needs to know whether the server advertised -PLUS, which this API does not say).
//
// Start returns client-first-message as the initial response; Next answers
// server-first-message with client-final-message, then checks server-final-message (an error
// if the server does not prove that it knows the password) and answers it with an empty response.
func NewScramClient(mech, authzid, user, password string, tlsState *tls.ConnectionState) Client {
	return &scramClient{mech: mech, authzid: authzid, user: user, password: password, tls: tlsState}
}

// States of a scramClient.
const (
	scramClientNew       = iota // Start not called
	scramClientSentFirst        // client-first-message sent
	scramClientSentFinal        // client-final-message sent
	scramClientDone             // server verified, or failed
)

type scramClient struct {
	mech, authzid, user, password string
	tls                           *tls.ConnectionState
	nonce                         scram.NonceGeneratorFcn // nil: the library's; tests fix it

	state  int
	conv   *scram.ClientConversation
	first  string // client-first-message
	resent bool   // first was sent again, in answer to an empty challenge
}

func (c *scramClient) Start() (string, []byte, error) {
	if c.state != scramClientNew {
		return "", nil, errors.New("sasl: SCRAM: Start called twice")
	}
	c.state = scramClientDone // until it succeeds
	v, ok := scramVariantOf(c.mech)
	if !ok {
		return "", nil, fmt.Errorf("sasl: SCRAM: %q is not a SCRAM mechanism", c.mech)
	}
	user, err := stringprep.SASLprep.Prepare(c.user)
	if err != nil || user == "" {
		return "", nil, errors.New("sasl: SCRAM: user name is empty or not allowed by SASLprep")
	}
	authzid, err := stringprep.SASLprep.Prepare(c.authzid)
	if err != nil {
		return "", nil, errors.New("sasl: SCRAM: authzid not allowed by SASLprep")
	}
	lib, err := v.hash.NewClientUnprepped(user, scramPreparePassword(c.password), authzid)
	if err != nil {
		return "", nil, fmt.Errorf("sasl: SCRAM: %w", err)
	}
	if c.nonce != nil {
		lib.WithNonceGenerator(c.nonce)
	}
	switch {
	case !v.plus:
		c.conv = lib.NewConversation()
	case c.tls == nil:
		return "", nil, fmt.Errorf("sasl: SCRAM: %s needs a TLS connection", c.mech)
	default:
		cb, err := clientChannelBinding(c.tls)
		if err != nil {
			return "", nil, fmt.Errorf("sasl: SCRAM: channel binding: %w", err)
		}
		c.conv = lib.NewConversationWithChannelBinding(cb)
	}
	if c.first, err = c.conv.Step(""); err != nil {
		return "", nil, fmt.Errorf("sasl: SCRAM: %w", err)
	}
	c.state = scramClientSentFirst
	return c.mech, []byte(c.first), nil
}

// clientChannelBinding picks the binding type by TLS version: tls-exporter is RFC 9266's
// type for TLS 1.3, and tls-server-end-point (RFC 5929, the server certificate's hash) is the
// one that is safe on TLS 1.2 whatever the handshake negotiated.
func clientChannelBinding(st *tls.ConnectionState) (scram.ChannelBinding, error) {
	if st.Version >= tls.VersionTLS13 {
		return scram.NewTLSExporterBinding(st)
	}
	return scram.NewTLSServerEndpointBinding(st)
}

func (c *scramClient) Next(challenge []byte) ([]byte, error) {
	switch c.state {
	case scramClientSentFirst:
		if len(challenge) == 0 && !c.resent {
			// The initial response was not sent (or not taken): the server asks for it.
			c.resent = true
			return []byte(c.first), nil
		}
		c.state = scramClientDone
		final, err := c.conv.Step(string(challenge))
		if err != nil {
			return nil, fmt.Errorf("sasl: SCRAM: server-first-message: %w", err)
		}
		c.state = scramClientSentFinal
		return []byte(final), nil
	case scramClientSentFinal:
		c.state = scramClientDone
		if _, err := c.conv.Step(string(challenge)); err != nil {
			return nil, fmt.Errorf("sasl: SCRAM: server-final-message: %w", err)
		}
		return []byte{}, nil
	}
	return nil, errors.New("sasl: SCRAM: unexpected server challenge")
}
