package sasl

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"
)

// DIGEST-MD5 (RFC 2831). RFC 6331 moved it to Historic; it is here for the old clients that
// still pick it. Only what SMTP AUTH needs is implemented:
//
//   - qop=auth only: no integrity or confidentiality layer (auth-int, auth-conf, cipher).
//   - Initial authentication only: nc must be 00000001, and there is no subsequent
//     authentication (RFC 2831 §2.2), so a client's initial response is refused.
//   - algorithm=md5-sess, the only one RFC 2831 defines.
//
// The exchange is: server challenge; client response; server "rspauth=..." (proof that the
// server knows the password too), which the client answers with an empty response.
//
// The server never holds the password. What it needs is H({username:realm:passwd}), the MD5
// of the login as the client types it; the stored secret (deriveDigestMD5) holds it for the
// forms of login tern accepts for the account local@domain:
//
//	username "local",        realm "domain"
//	username "local@domain", no realm
//	username "local@domain", realm R, for R the account's domain and each local domain
//	                         known when the password was set
//
// The last form is what swaks (Authen::SASL), curl, Cyrus SASL and Java send: the first realm
// the challenge offers, with the full address as the user name. With several local domains the
// first realm offered is often not the account's, so a hash per local domain is kept. A realm
// that became a local domain after the password was set has no hash in that secret: a client
// that names it fails like a wrong password, and the error (logged as the failure's reason)
// says to set the password again. Secrets of version 1, from before tern kept a hash per
// realm, hold the account's domain only.
//
// Any other form (another case, a bare local part without a realm, a realm that is not a local
// domain) has no stored hash and fails like a wrong password.
//
// Errors: a response that does not parse, or that does not answer the challenge (nonce, nc,
// qop, charset), is ErrProtocol; one that names another server (digest-uri), a realm that is
// not ours, or a login form without a stored hash is ErrAuthFailed, as is a wrong response.

// Sizes of RFC 2831 messages.
const (
	maxDigestChallenge = 2048 // RFC 2831 §2.1.1: a digest-challenge is shorter than 2048 octets
	maxDigestResponse  = 4096 // RFC 2831 §2.1.2: a digest-response is shorter than 4096 octets
	digestNonceOctets  = 32   // random octets in a server nonce (RFC 2831 asks for >= 64 bits)
	digestCnonceOctets = 32   // the same for the client nonce
)

// Versions of a DIGEST-MD5 secret blob, its first octet.
const (
	// digestSecretV1 is followed by three MD5 hashes: local in the domain, the address in the
	// domain, the address without a realm.
	digestSecretV1 = 1
	// digestSecretV2 is followed by the hashes of local in the domain and of the address
	// without a realm, then for each realm: its length (one octet), the realm, and the hash of
	// the address in that realm. The account's domain comes first.
	digestSecretV2 = 2
)

// digestSecretV1Len is the length of a version 1 secret.
const digestSecretV1Len = 1 + 3*md5.Size

// deriveDigestMD5 computes the stored DIGEST-MD5 secret of account ("local@domain", already
// normalized) for password: H({user:realm:password}) for each login form, with the address in
// the account's domain and in each of realms (the local domains DIGEST-MD5 offers).
func deriveDigestMD5(account, password string, realms []string) ([]byte, error) {
	at := strings.LastIndexByte(account, '@')
	if at <= 0 || at == len(account)-1 {
		return nil, fmt.Errorf("sasl: deriveDigestMD5: account %q is not local@domain", account)
	}
	if password == "" {
		return nil, errors.New("sasl: deriveDigestMD5: empty password")
	}
	local, domain := account[:at], account[at+1:]
	blob := []byte{digestSecretV2}
	blob = append(blob, digestURP(local, domain, password)...)
	blob = append(blob, digestURP(account, "", password)...)
	var seen []string
	for _, realm := range append([]string{domain}, realms...) {
		if realm == "" || slices.Contains(seen, realm) {
			continue
		}
		if len(realm) > 0xff {
			return nil, fmt.Errorf("sasl: deriveDigestMD5: realm %q longer than 255 octets", realm)
		}
		seen = append(seen, realm)
		blob = append(blob, byte(len(realm)))
		blob = append(blob, realm...)
		blob = append(blob, digestURP(account, realm, password)...)
	}
	return blob, nil
}

// digestHashes are the stored hashes of one account.
type digestHashes struct {
	version int
	local   []byte            // H({local:domain:password})
	address map[string][]byte // H({local@domain:realm:password}) by realm; "" for none
}

// parseDigestSecret reads a stored secret of the account in domain.
func parseDigestSecret(secret []byte, domain string) (digestHashes, error) {
	h := digestHashes{address: make(map[string][]byte)}
	switch {
	case len(secret) == digestSecretV1Len && secret[0] == digestSecretV1:
		h.version = digestSecretV1
		h.local = secret[1 : 1+md5.Size]
		h.address[domain] = secret[1+md5.Size : 1+2*md5.Size]
		h.address[""] = secret[1+2*md5.Size:]
		return h, nil
	case len(secret) < 1+2*md5.Size || secret[0] != digestSecretV2:
		return h, errors.New("unknown version or truncated")
	}
	h.version = digestSecretV2
	h.local = secret[1 : 1+md5.Size]
	h.address[""] = secret[1+md5.Size : 1+2*md5.Size]
	for rest := secret[1+2*md5.Size:]; len(rest) > 0; {
		n := int(rest[0])
		if n == 0 || len(rest) < 1+n+md5.Size {
			return h, errors.New("truncated realm entry")
		}
		h.address[string(rest[1:1+n])] = rest[1+n : 1+n+md5.Size]
		rest = rest[1+n+md5.Size:]
	}
	return h, nil
}

// digestURP returns H({username:realm:passwd}) of RFC 2831 §2.1.2.1, with each string in
// ISO 8859-1 when all its characters are in that set and in UTF-8 otherwise. The RFC's text
// ("if all the characters of either username-value or passwd are in ISO 8859-1") is known to
// be wrong; clients (Cyrus SASL, Java) convert each string on its own, and so do we.
func digestURP(username, realm, password string) []byte {
	h := md5.New()
	h.Write(latin1IfPossible(username))
	h.Write([]byte{':'})
	h.Write(latin1IfPossible(realm))
	h.Write([]byte{':'})
	h.Write(latin1IfPossible(password))
	return h.Sum(nil)
}

// latin1IfPossible returns s encoded in ISO 8859-1 if every character of s is in that set,
// and s as it is (UTF-8, or anything else) otherwise.
func latin1IfPossible(s string) []byte {
	if b, ok := toLatin1(s); ok {
		return b
	}
	return []byte(s)
}

// toLatin1 encodes the UTF-8 string s in ISO 8859-1, and reports whether it could.
func toLatin1(s string) ([]byte, bool) {
	if !utf8.ValidString(s) {
		return nil, false
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return nil, false
		}
		b = append(b, byte(r))
	}
	return b, true
}

// latin1ToUTF8 decodes ISO 8859-1 octets, which is what a client sends without charset=utf-8.
func latin1ToUTF8(s string) string {
	b := make([]byte, 0, len(s))
	for i := range len(s) {
		b = utf8.AppendRune(b, rune(s[i]))
	}
	return string(b)
}

// digestResponseValue computes a response-value of RFC 2831 §2.1.2.1 from urp, the stored
// H({username:realm:passwd}):
//
//	A1 = urp ":" nonce ":" cnonce [":" authzid]
//	response-value = HEX(H(HEX(H(A1)) ":" nonce ":" nc ":" cnonce ":" qop ":" HEX(H(A2))))
//
// with qop "auth". A2 is "AUTHENTICATE:" digest-uri for the client's response, and
// ":" digest-uri for the server's rspauth (§2.1.3).
func digestResponseValue(urp []byte, nonce, cnonce, nc, authzid, a2 string) string {
	h := md5.New()
	h.Write(urp)
	h.Write([]byte(":" + nonce + ":" + cnonce))
	if authzid != "" {
		h.Write([]byte(":" + authzid))
	}
	ha1 := hex.EncodeToString(h.Sum(nil))
	ha2 := md5.Sum([]byte(a2))
	kd := md5.Sum([]byte(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":auth:" + hex.EncodeToString(ha2[:])))
	return hex.EncodeToString(kd[:])
}

// NewDigestMD5Server returns the server half of DIGEST-MD5 for SMTP (service "smtp",
// digest-uri "smtp/" opts.Hostname). Next(nil) returns the challenge, offering opts.Realms; the
// answer is checked against the secret creds.Secret returns for SecretDigestMD5 (see
// deriveDigestMD5), looked up as username if it has an '@', else as username@realm, else as
// the bare username (which Credentials puts in the default domain). The authzid rule is
// PLAIN's (see NewPlainServer). Without opts.Hostname no digest-uri matches, and every
// exchange fails.
func NewDigestMD5Server(ctx context.Context, creds Credentials, opts ServerOptions) Server {
	return newDigestMD5Server(ctx, creds, opts, "smtp")
}

// newDigestMD5Server is NewDigestMD5Server for another service (serv-type of RFC 2831 §2.1.2),
// so that the RFC's IMAP example can be tested.
func newDigestMD5Server(ctx context.Context, creds Credentials, opts ServerOptions, service string) *digestMD5Server {
	return &digestMD5Server{ctx: ctx, creds: creds, opts: opts, service: service}
}

// digestMD5Server is the state of one DIGEST-MD5 exchange.
type digestMD5Server struct {
	ctx     context.Context
	creds   Credentials
	opts    ServerOptions
	service string // serv-type in digest-uri: "smtp"

	step     digestStep
	nonce    string // ours, sent in the challenge
	verified string // the identity, once the response checked out
	identity string // verified, once the exchange is over
}

type digestStep int

const (
	digestStart        digestStep = iota // nothing sent yet
	digestWantResponse                   // challenge sent
	digestWantEmpty                      // rspauth sent; waiting for the empty response
	digestDone                           // over, with success or failure
)

func (s *digestMD5Server) Next(response []byte) ([]byte, bool, error) {
	switch s.step {
	case digestStart:
		s.step = digestDone
		if response != nil {
			return nil, true, fmt.Errorf("%w: DIGEST-MD5: initial response (subsequent authentication) not supported", ErrProtocol)
		}
		challenge, err := s.challenge()
		if err != nil {
			return nil, true, err
		}
		s.step = digestWantResponse
		return challenge, false, nil
	case digestWantResponse:
		s.step = digestDone
		rspauth, identity, err := s.verify(response)
		if err != nil {
			return nil, true, err
		}
		s.verified = identity
		s.step = digestWantEmpty
		return rspauth, false, nil
	case digestWantEmpty:
		s.step = digestDone
		if len(response) != 0 {
			return nil, true, fmt.Errorf("%w: DIGEST-MD5: non-empty answer to rspauth", ErrProtocol)
		}
		s.identity = s.verified
		return nil, true, nil
	}
	return nil, true, fmt.Errorf("%w: DIGEST-MD5: exchange already over", ErrProtocol)
}

func (s *digestMD5Server) Identity() string { return s.identity }

// challenge makes a new nonce and returns the digest-challenge of RFC 2831 §2.1.1.
func (s *digestMD5Server) challenge() ([]byte, error) {
	r, err := optionsRandom(s.opts, digestNonceOctets)
	if err != nil {
		return nil, err
	}
	s.nonce = base64.StdEncoding.EncodeToString(r)
	tail := `nonce="` + s.nonce + `",qop="auth",charset=utf-8,algorithm=md5-sess`
	var b []byte
	for _, realm := range s.opts.Realms {
		d := "realm=" + quoteDigest(realm) + ","
		// The challenge must stay under 2048 octets (§2.1.1): with very many domains, the
		// later ones are not offered, but a client naming one is still accepted.
		if len(b)+len(d)+len(tail) >= maxDigestChallenge {
			break
		}
		b = append(b, d...)
	}
	return append(b, tail...), nil
}

// digestResponse is a parsed digest-response (RFC 2831 §2.1.2) that answers our challenge.
type digestResponse struct {
	username string // in UTF-8, whatever the charset on the wire
	realm    string // the same; "" when absent
	cnonce   string
	nc       string
	uri      string // digest-uri
	response string // 32 lower-case hex digits
	authzid  string // "" when absent
}

// parseResponse parses a digest-response and checks that it answers our challenge: syntax,
// nonce, nc, qop and charset are ErrProtocol; a realm or digest-uri that is not ours is
// ErrAuthFailed. The response value itself is verify's business.
func (s *digestMD5Server) parseResponse(response []byte) (digestResponse, error) {
	bad := func(format string, args ...any) (digestResponse, error) {
		return digestResponse{}, fmt.Errorf("%w: DIGEST-MD5: "+format, append([]any{ErrProtocol}, args...)...)
	}
	fail := func(format string, args ...any) (digestResponse, error) {
		return digestResponse{}, fmt.Errorf("%w: DIGEST-MD5: "+format, append([]any{ErrAuthFailed}, args...)...)
	}
	if len(response) >= maxDigestResponse {
		return bad("response of %d octets, limit %d", len(response), maxDigestResponse-1)
	}
	list, err := parseDigestDirectives(response)
	if err != nil {
		return bad("%v", err)
	}
	d, _, err := digestDirectiveMap(list, "")
	if err != nil {
		return bad("%v", err)
	}
	// Without charset=utf-8, user name and realm are ISO 8859-1 (§2.1.2, "charset").
	utf8Charset := false
	if cs, ok := d["charset"]; ok {
		if !strings.EqualFold(cs, "utf-8") {
			return bad("charset other than utf-8")
		}
		utf8Charset = true
	}
	text := func(name string) (string, bool) {
		if !utf8Charset {
			return latin1ToUTF8(d[name]), true
		}
		return d[name], utf8.ValidString(d[name])
	}
	r := digestResponse{cnonce: d["cnonce"], nc: d["nc"], response: d["response"]}
	var ok bool
	switch r.username, ok = text("username"); {
	case r.username == "":
		return bad("missing username")
	case !ok:
		return bad("username is not UTF-8")
	case len(r.username) > maxNameLen:
		return bad("username longer than %d octets", maxNameLen)
	}
	switch r.realm, ok = text("realm"); {
	case !ok:
		return bad("realm is not UTF-8")
	case r.realm != "" && !slices.Contains(s.opts.Realms, r.realm):
		return fail("realm %q is not one of ours", truncateForError([]byte(r.realm)))
	}
	switch {
	case d["nonce"] != s.nonce:
		return bad("nonce is not the one we sent")
	case r.cnonce == "":
		return bad("missing cnonce")
	case r.nc != "00000001":
		// §2.1.2: nc counts the responses with this nonce; we only take one.
		return bad("nc is not 00000001")
	}
	if qop, ok := d["qop"]; ok && !strings.EqualFold(qop, "auth") {
		return bad("qop other than auth (only auth is offered)")
	}
	switch r.uri, ok = d["digest-uri"]; {
	case !ok:
		return bad("missing digest-uri")
	case !digestURIMatches(r.uri, s.service, append([]string{s.opts.Hostname}, s.opts.Realms...)):
		// §2.1.2: the server checks that the digest-uri names it.
		return fail("digest-uri %q does not name this server (%s/%s)", truncateForError([]byte(r.uri)), s.service, s.opts.Hostname)
	}
	if len(r.response) != 2*md5.Size || strings.ContainsFunc(r.response, func(c rune) bool {
		return !('0' <= c && c <= '9' || 'a' <= c && c <= 'f')
	}) {
		return bad("response is not 32 lower-case hex digits")
	}
	r.authzid, ok = d["authzid"]
	switch {
	case ok && r.authzid == "":
		return bad("empty authzid")
	case !utf8.ValidString(r.authzid):
		return bad("authzid is not UTF-8")
	case len(r.authzid) > maxNameLen:
		return bad("authzid longer than %d octets", maxNameLen)
	}
	return r, nil
}

// verify checks a digest-response against the stored secret and returns the rspauth message
// (§2.1.3) and the identity.
func (s *digestMD5Server) verify(response []byte) (rspauth []byte, identity string, err error) {
	r, err := s.parseResponse(response)
	if err != nil {
		return nil, "", err
	}
	login := r.username
	if !strings.Contains(r.username, "@") && r.realm != "" {
		login = r.username + "@" + r.realm
	}
	account, secret, err := s.creds.Secret(s.ctx, login, SecretDigestMD5)
	if err != nil {
		return nil, "", credentialsError(err)
	}
	local, domain, _ := cutLast(account, "@")
	hashes, err := parseDigestSecret(secret, domain)
	if err != nil {
		return nil, "", fmt.Errorf("%w: corrupt %s secret (account %s): %v", ErrUnavailable, SecretDigestMD5, account, err)
	}
	urp, err := hashes.forLogin(r.username, r.realm, account, local, domain)
	if err != nil {
		return nil, "", err
	}
	want := digestResponseValue(urp, s.nonce, r.cnonce, r.nc, r.authzid, "AUTHENTICATE:"+r.uri)
	if subtle.ConstantTimeCompare([]byte(want), []byte(r.response)) != 1 {
		return nil, "", fmt.Errorf("%w: DIGEST-MD5: wrong response", ErrAuthFailed)
	}
	identity, err = authzIdentity(r.authzid, r.username, account, s.opts.AllowAuthzID)
	if err != nil {
		return nil, "", err
	}
	rspauth = []byte("rspauth=" + digestResponseValue(urp, s.nonce, r.cnonce, r.nc, r.authzid, ":"+r.uri))
	return rspauth, identity, nil
}

// forLogin returns the stored hash for the login form the client used (see the top of this
// file), or ErrAuthFailed saying why there is none.
func (h digestHashes) forLogin(username, realm, account, local, domain string) ([]byte, error) {
	switch {
	case username == local && realm == domain:
		return h.local, nil
	case username != account:
		return nil, fmt.Errorf("%w: DIGEST-MD5: no stored hash for this form of login (user name and realm)", ErrAuthFailed)
	}
	if urp := h.address[realm]; urp != nil {
		return urp, nil
	}
	// A local domain the secret does not know: it was added (or the password was set with
	// another list of domains) after the password was set. The admin must hear why.
	why := "not a local domain when the password was set"
	if h.version == digestSecretV1 {
		why = "the password was set before tern kept a hash per local domain"
	}
	return nil, fmt.Errorf("%w: DIGEST-MD5: no stored hash for %s in realm %q (%s): set the password again (tern user passwd) for DIGEST-MD5 clients that answer with this realm",
		ErrAuthFailed, account, truncateForError([]byte(realm)), why)
}

// digestURIMatches reports whether uri is service "/" host for a host that names this server:
// its host name or one of its realms (compared case-insensitively, as DNS names are), or an IP
// address. Real clients build the host from what they were told: curl from the realm offered,
// swaks, gsasl and msmtp from the address they connected to (127.0.0.1), so the host name alone
// would lock them out; the per-exchange nonce is what stops a response being replayed from
// another server. The optional "/" serv-name of §2.1.2 is refused: it is for replicated
// services, which SMTP submission is not.
func digestURIMatches(uri, service string, hosts []string) bool {
	rest, ok := strings.CutPrefix(uri, service+"/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return false
	}
	if _, err := netip.ParseAddr(rest); err == nil {
		return true
	}
	for _, h := range hosts {
		if h != "" && strings.EqualFold(rest, h) {
			return true
		}
	}
	return false
}

// cutLast is strings.Cut at the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// digestDirective is one "name=value" of an RFC 2831 message, the value unquoted.
type digestDirective struct {
	name  string // lower-cased
	value string
}

// parseDigestDirectives parses a digest-challenge or digest-response: a comma-separated list
// (RFC 2831 §7.1, the #rule of RFC 2616 §2.1: null elements and linear white space allowed)
// of token "=" (token | quoted-string). Quoted-pairs ("\" CHAR) are unescaped. It checks
// syntax only; digestDirectiveMap checks names.
func parseDigestDirectives(b []byte) ([]digestDirective, error) {
	var out []digestDirective
	i := skipDigestLWS(b, 0)
	for i < len(b) {
		if b[i] == ',' {
			i = skipDigestLWS(b, i+1)
			continue
		}
		start := i
		for i < len(b) && isDigestTokenChar(b[i]) {
			i++
		}
		if i == start {
			return nil, fmt.Errorf("expected a directive name at offset %d", i)
		}
		name := strings.ToLower(string(b[start:i]))
		i = skipDigestLWS(b, i)
		if i == len(b) || b[i] != '=' {
			return nil, fmt.Errorf("expected '=' at offset %d", i)
		}
		i = skipDigestLWS(b, i+1)
		var value []byte
		switch {
		case i < len(b) && b[i] == '"':
			i++
			closed := false
			for i < len(b) && !closed {
				switch c := b[i]; {
				case c == '"':
					closed = true
				case c == '\\':
					if i+1 == len(b) || isDigestCTL(b[i+1]) {
						return nil, fmt.Errorf("bad quoted-pair at offset %d", i)
					}
					i++
					value = append(value, b[i])
				case isDigestCTL(c) && c != '\t':
					return nil, fmt.Errorf("control character in quoted string at offset %d", i)
				default:
					value = append(value, c)
				}
				i++
			}
			if !closed {
				return nil, errors.New("unterminated quoted string")
			}
		default:
			start := i
			for i < len(b) && isDigestTokenChar(b[i]) {
				i++
			}
			if i == start {
				return nil, fmt.Errorf("expected a value at offset %d", i)
			}
			value = b[start:i]
		}
		out = append(out, digestDirective{name: name, value: string(value)})
		i = skipDigestLWS(b, i)
		if i < len(b) && b[i] != ',' {
			return nil, fmt.Errorf("expected ',' at offset %d", i)
		}
	}
	return out, nil
}

// digestNames are the directives RFC 2831 defines, in challenges and responses. Others are
// ignored, as §2.1.1 and §2.1.2 require ("auth-param").
var digestNames = []string{
	"realm", "nonce", "qop", "stale", "maxbuf", "charset", "algorithm", "cipher",
	"username", "cnonce", "nc", "digest-uri", "response", "authzid", "rspauth",
}

// digestDirectiveMap returns the known directives of list by name. Each may appear once,
// except repeatable (the challenge's "realm", §2.1.1), whose values are returned in order
// instead; unknown directives are dropped.
func digestDirectiveMap(list []digestDirective, repeatable string) (map[string]string, []string, error) {
	m := make(map[string]string)
	var repeated []string
	for _, d := range list {
		switch {
		case d.name == repeatable:
			repeated = append(repeated, d.value)
		case !slices.Contains(digestNames, d.name):
		default:
			if _, dup := m[d.name]; dup {
				return nil, nil, fmt.Errorf("directive %s appears twice", d.name)
			}
			m[d.name] = d.value
		}
	}
	return m, repeated, nil
}

// skipDigestLWS skips spaces and tabs from b[i:] and returns the next index. CR and LF (the
// line folding of RFC 2616's LWS) have no place in a SASL message and are refused as syntax.
func skipDigestLWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

// isDigestCTL reports whether c is a CTL of RFC 2616 §2.2.
func isDigestCTL(c byte) bool { return c < 0x20 || c == 0x7f }

// isDigestTokenChar reports whether c may appear in a token of RFC 2616 §2.2: a US-ASCII
// character other than a CTL or a separator.
func isDigestTokenChar(c byte) bool {
	return c < 0x80 && !isDigestCTL(c) && !strings.ContainsRune("()<>@,;:\\\"/[]?={} \t", rune(c))
}

// quoteDigest returns s as a quoted-string, escaping '"' and '\'.
func quoteDigest(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := range len(s) {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// NewDigestMD5Client returns the client half of DIGEST-MD5 for SMTP: digest-uri "smtp/" host,
// with realm, or if realm is "" the first realm the server offers (none if it offers none).
// It checks the server's rspauth, and fails if the server could not prove that it knows the
// password.
func NewDigestMD5Client(user, password, host string, realm string) Client {
	return newDigestMD5Client(user, password, "smtp", host, realm)
}

// newDigestMD5Client is NewDigestMD5Client for another service (see newDigestMD5Server).
func newDigestMD5Client(user, password, service, host, realm string) *digestMD5Client {
	return &digestMD5Client{user: user, password: password, service: service, host: host, realm: realm}
}

type digestMD5Client struct {
	user, password, service, host, realm string
	authzid                              string    // "" for none (DigestMD5Response sets it)
	rand                                 io.Reader // for the cnonce; nil means crypto/rand

	step    int    // 0: want the challenge, 1: want rspauth, 2: over
	rspauth string // the rspauth value the server must send
}

func (c *digestMD5Client) Start() (string, []byte, error) {
	if c.user == "" || c.password == "" || c.host == "" {
		return "", nil, errors.New("sasl: DIGEST-MD5: empty user name, password or host")
	}
	return DigestMD5, nil, nil
}

func (c *digestMD5Client) Next(challenge []byte) ([]byte, error) {
	switch c.step {
	case 0:
		c.step = 2
		r := c.rand
		if r == nil {
			r = rand.Reader
		}
		cnonce := make([]byte, digestCnonceOctets)
		if _, err := io.ReadFull(r, cnonce); err != nil {
			return nil, fmt.Errorf("sasl: DIGEST-MD5: reading random octets: %w", err)
		}
		resp, rspauth, err := c.respond(challenge, base64.StdEncoding.EncodeToString(cnonce))
		if err != nil {
			return nil, err
		}
		c.rspauth = rspauth
		c.step = 1
		return resp, nil
	case 1:
		c.step = 2
		list, err := parseDigestDirectives(challenge)
		if err != nil {
			return nil, fmt.Errorf("sasl: DIGEST-MD5: bad server response-auth: %w", err)
		}
		m, _, err := digestDirectiveMap(list, "")
		if err != nil {
			return nil, fmt.Errorf("sasl: DIGEST-MD5: bad server response-auth: %w", err)
		}
		// §2.1.3: rspauth shows that the server knows the password (or its stored hash).
		if subtle.ConstantTimeCompare([]byte(m["rspauth"]), []byte(c.rspauth)) != 1 {
			return nil, errors.New("sasl: DIGEST-MD5: wrong rspauth: the server did not prove that it knows the password")
		}
		return []byte{}, nil
	}
	return nil, errors.New("sasl: DIGEST-MD5: unexpected server challenge after rspauth")
}

// respond answers the digest-challenge with cnonce, and returns the response and the rspauth
// value expected from the server.
func (c *digestMD5Client) respond(challenge []byte, cnonce string) (resp []byte, rspauth string, err error) {
	bad := func(format string, args ...any) ([]byte, string, error) {
		return nil, "", fmt.Errorf("sasl: DIGEST-MD5: server challenge: "+format, args...)
	}
	if len(challenge) >= maxDigestChallenge {
		return bad("longer than %d octets", maxDigestChallenge-1)
	}
	list, err := parseDigestDirectives(challenge)
	if err != nil {
		return bad("%v", err)
	}
	d, realms, err := digestDirectiveMap(list, "realm")
	if err != nil {
		return bad("%v", err)
	}
	nonce := d["nonce"]
	switch {
	case nonce == "":
		return bad("no nonce")
	case !strings.EqualFold(d["algorithm"], "md5-sess"):
		// §2.1.1: algorithm=md5-sess is required.
		return bad("algorithm is not md5-sess")
	}
	if qop, ok := d["qop"]; ok && !slices.ContainsFunc(strings.Split(qop, ","), func(q string) bool {
		return strings.EqualFold(strings.Trim(q, " \t"), "auth")
	}) {
		return bad("qop=auth not offered")
	}
	utf8Charset := false
	if cs, ok := d["charset"]; ok {
		if !strings.EqualFold(cs, "utf-8") {
			return bad("charset other than utf-8")
		}
		utf8Charset = true
	}
	// Without charset=utf-8, the strings on the wire are ISO 8859-1 (§2.1.1, §2.1.2).
	realm := c.realm
	if realm == "" && len(realms) > 0 {
		realm = realms[0]
		if !utf8Charset {
			realm = latin1ToUTF8(realm)
		}
	}
	wireUser, wireRealm := []byte(c.user), []byte(realm)
	if !utf8Charset {
		var ok1, ok2, ok3 bool
		wireUser, ok1 = toLatin1(c.user)
		wireRealm, ok2 = toLatin1(realm)
		_, ok3 = toLatin1(c.password)
		if !ok1 || !ok2 || !ok3 {
			return bad("no charset=utf-8, and the user name, realm or password is not ISO 8859-1")
		}
	}
	uri := c.service + "/" + c.host
	urp := digestURP(c.user, realm, c.password)
	const nc = "00000001"
	b := []byte{}
	if utf8Charset {
		b = append(b, "charset=utf-8,"...)
	}
	b = append(b, "username="+quoteDigest(string(wireUser))+","...)
	if realm != "" {
		b = append(b, "realm="+quoteDigest(string(wireRealm))+","...)
	}
	b = append(b, "nonce="+quoteDigest(nonce)+",cnonce="+quoteDigest(cnonce)+",nc="+nc+
		",qop=auth,digest-uri="+quoteDigest(uri)...)
	if c.authzid != "" {
		// §2.1.2: authzid is UTF-8 whatever the charset, and enters A1 (§2.1.2.1).
		b = append(b, ",authzid="+quoteDigest(c.authzid)...)
	}
	b = append(b, ",response="+digestResponseValue(urp, nonce, cnonce, nc, c.authzid, "AUTHENTICATE:"+uri)...)
	if len(b) >= maxDigestResponse {
		return nil, "", errors.New("sasl: DIGEST-MD5: response would be too long")
	}
	return b, digestResponseValue(urp, nonce, cnonce, nc, c.authzid, ":"+uri), nil
}
