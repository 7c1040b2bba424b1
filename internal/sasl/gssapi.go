package sasl

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"
	"github.com/jcmturner/gokrb5/v8/iana/chksumtype"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// GSSAPI is Kerberos V5 through the GSS-API (RFC 4752), as desktops in a Kerberos realm log in
// without a password prompt. The exchange:
//
//	C: AUTH GSSAPI <initial context token: the AP-REQ, RFC 4121 §4.1>
//	S: 334 <the AP-REP>           only when the client asked for mutual authentication
//	C: <empty>
//	S: 334 <Wrap(layers offered, max size)>   RFC 4752 §3.1; tern offers "no security layer"
//	C: <Wrap(layer chosen, max size, authzid)>
//	S: 235
//
// The server half verifies the ticket with the service's keytab (the KDC vouched for the
// client; no password or secret of the account store is involved), maps the client principal
// to an account (GSSAPIOptions.Map) and asks Credentials, which must implement AccountChecker,
// whether that account exists. tern offers no security layer: TLS protects the session.
const GSSAPI = "GSSAPI"

// AccountChecker is implemented by Credentials that can tell whether an account exists
// without checking a password or secret: GSSAPI needs only that, the KDC having verified the
// client already.
type AccountChecker interface {
	// Account resolves login as CheckPassword and Secret do and returns the account, or
	// ErrAuthFailed when there is no such account.
	Account(ctx context.Context, login string) (account string, err error)
}

// GSS-API context flags in the authenticator checksum (RFC 4121 §4.1.1.1).
const (
	gssMutual = 0x02
	gssInteg  = 0x20
	gssDeleg  = 0x01
)

// RFC 4752 §3.3 security layers.
const (
	layerNone      = 0x01
	layerIntegrity = 0x02
	layerConf      = 0x04
)

// DefaultClockSkew is how far a client's clock, and a ticket's lifetime, may be off: MIT's
// default clockskew (krb5.conf(5)).
const DefaultClockSkew = 5 * time.Minute

// GSSAPIOptions configure the server half of GSSAPI.
type GSSAPIOptions struct {
	// Keytab is the content of the keytab file (MIT format, what kadmin's ktadd writes) with the
	// service principal's keys. It is parsed once, in NewGSSAPIAcceptor.
	Keytab []byte
	// Principal is the service principal without its realm, "smtp/mx.example.com": tickets
	// for any other principal are refused, even one whose key is in the keytab.
	Principal string
	// Realm is the service principal's realm; "" takes the realm of the keytab's entries for
	// Principal (when they name exactly one).
	Realm string
	// ClockSkew bounds the difference between the client's clock and ours, and how long a
	// ticket is taken after it expired; 0 means DefaultClockSkew.
	ClockSkew time.Duration
	// Map turns the client principal into the login name that Credentials resolve.
	Map PrincipalMap
}

// PrincipalMap maps a Kerberos client principal ("alice@EXAMPLE.COM") to a login name.
type PrincipalMap struct {
	// Table maps whole principals to logins (an address, or a name in the default domain);
	// it is consulted first. A principal mapped to "" is refused.
	Table map[string]string
	// Local maps a principal name@REALM with a single component, REALM being the service's
	// own realm, to the login name, which Credentials take in the default domain. Principals
	// of other realms, and name/instance principals, map only through Table.
	Local bool
}

// Login returns the login for principal, given the service's realm, and false when it maps to
// none.
func (m PrincipalMap) Login(principal, serviceRealm string) (string, bool) {
	if l, ok := m.Table[principal]; ok {
		return l, l != ""
	}
	name, realm, ok := strings.Cut(principal, "@")
	if !ok || !m.Local || serviceRealm == "" || realm != serviceRealm || name == "" || strings.ContainsAny(name, "/@") {
		return "", false
	}
	return name, true
}

// ParsePrincipalMap reads a principal map file: one "principal login" pair per line, blank
// lines and lines starting with '#' ignored.
func ParsePrincipalMap(text string) (map[string]string, error) {
	m := make(map[string]string)
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 || !strings.Contains(f[0], "@") {
			return nil, fmt.Errorf("line %d: want \"principal@REALM login\"", i+1)
		}
		if _, dup := m[f[0]]; dup {
			return nil, fmt.Errorf("line %d: %s mapped twice", i+1, f[0])
		}
		m[f[0]] = f[1]
	}
	return m, nil
}

// GSSAPIAcceptor is the service side's long-lived state: the keys, the principal and the
// replay cache. Make one with NewGSSAPIAcceptor and hand it to every exchange in
// ServerOptions.GSSAPI.
type GSSAPIAcceptor struct {
	kt     *keytab.Keytab
	sname  types.PrincipalName
	realm  string
	skew   time.Duration
	mapper PrincipalMap
	replay replayCache
}

// NewGSSAPIAcceptor parses the keytab and checks the options.
func NewGSSAPIAcceptor(o GSSAPIOptions) (*GSSAPIAcceptor, error) {
	kt := keytab.New()
	if err := safely(func() error { return kt.Unmarshal(o.Keytab) }); err != nil {
		return nil, fmt.Errorf("sasl: GSSAPI: keytab: %v", err)
	}
	if o.Principal == "" || strings.Contains(o.Principal, "@") {
		return nil, fmt.Errorf("sasl: GSSAPI: service principal %q: want service/host, without the realm", o.Principal)
	}
	a := &GSSAPIAcceptor{
		kt:     kt,
		sname:  types.NewPrincipalName(nametype.KRB_NT_SRV_HST, o.Principal),
		realm:  o.Realm,
		skew:   o.ClockSkew,
		mapper: o.Map,
		replay: replayCache{seen: make(map[string]time.Time)},
	}
	if a.skew <= 0 {
		a.skew = DefaultClockSkew
	}
	if a.realm == "" {
		var realms []string
		for _, e := range kt.Entries {
			if slices.Equal(e.Principal.Components, a.sname.NameString) && !slices.Contains(realms, e.Principal.Realm) {
				realms = append(realms, e.Principal.Realm)
			}
		}
		if len(realms) > 1 {
			return nil, fmt.Errorf("sasl: GSSAPI: the keytab has %s in several realms (%s): configure the realm", o.Principal, strings.Join(realms, ", "))
		}
		if len(realms) == 0 {
			// No key for the principal (Check says so): the keytab's realm, if it has one,
			// names the principal in the log.
			for _, e := range kt.Entries {
				if !slices.Contains(realms, e.Principal.Realm) {
					realms = append(realms, e.Principal.Realm)
				}
			}
		}
		if len(realms) == 1 {
			a.realm = realms[0]
		}
	}
	return a, nil
}

// Principal is the service principal with its realm, as the log names it.
func (a *GSSAPIAcceptor) Principal() string {
	return a.sname.PrincipalNameString() + "@" + a.realm
}

// Check reports a configuration that fails every exchange: a keytab without a key for the
// service principal.
func (a *GSSAPIAcceptor) Check() error {
	for _, e := range a.kt.Entries {
		if e.Principal.Realm == a.realm && slices.Equal(e.Principal.Components, a.sname.NameString) {
			return nil
		}
	}
	var have []string
	for _, e := range a.kt.Entries {
		p := strings.Join(e.Principal.Components, "/") + "@" + e.Principal.Realm
		if !slices.Contains(have, p) {
			have = append(have, p)
		}
	}
	if len(have) == 0 {
		have = []string{"nothing"}
	}
	return fmt.Errorf("sasl: GSSAPI: the keytab has no key for %s (it has %s)", a.Principal(), strings.Join(have, ", "))
}

// replayCache remembers the authenticators accepted within the clock skew, so that an AP-REQ
// seen on the wire cannot be played again (RFC 4120 §3.2.3).
type replayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time // key -> when it can be forgotten
}

// check records key and reports whether it was new.
func (c *replayCache) check(key string, now, forget time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, t := range c.seen {
		if now.After(t) {
			delete(c.seen, k)
		}
	}
	if _, ok := c.seen[key]; ok {
		return false
	}
	c.seen[key] = forget
	return true
}

// NewGSSAPIServer returns the server half of GSSAPI for one exchange; opts.GSSAPI must be set.
func NewGSSAPIServer(ctx context.Context, creds Credentials, opts ServerOptions) Server {
	return &gssapiServer{ctx: ctx, acc: opts.GSSAPI, creds: creds, opts: opts}
}

// gssapiServer is the state of one exchange.
type gssapiServer struct {
	ctx   context.Context
	acc   *GSSAPIAcceptor
	creds Credentials
	opts  ServerOptions

	step       int // 0: want the AP-REQ; 1: AP-REP sent, want empty; 2: offer sent; 3: over
	challenged bool
	key        types.EncryptionKey // the context key: the initiator's subkey, or the session key
	sendSeq    uint64              // our sequence number (RFC 4121 §4.2.6.2 SND_SEQ)
	principal  string              // the client, name@REALM
	login      string              // what it maps to
	account    string              // what Credentials resolved that to
	identity   string
}

func (s *gssapiServer) Identity() string { return s.identity }

func (s *gssapiServer) Next(response []byte) ([]byte, bool, error) {
	switch s.step {
	case 0:
		if response == nil && !s.challenged {
			// No initial response: RFC 4422 §5 has the server send an empty challenge.
			s.challenged = true
			return []byte{}, false, nil
		}
		rep, err := s.accept(response)
		if err != nil {
			s.step = 3
			return nil, true, err
		}
		if rep != nil {
			// RFC 4752 §3.1: the AP-REP goes in a challenge, the client answers it with nothing.
			s.step = 1
			return rep, false, nil
		}
		return s.offer()
	case 1:
		if len(response) != 0 {
			s.step = 3
			return nil, true, fmt.Errorf("%w: GSSAPI: the answer to the AP-REP must be empty (RFC 4752 §3.1)", ErrProtocol)
		}
		return s.offer()
	case 2:
		s.step = 3
		if err := s.answer(response); err != nil {
			return nil, true, err
		}
		return nil, true, nil
	}
	return nil, true, fmt.Errorf("%w: GSSAPI: exchange already over", ErrProtocol)
}

// offer sends the security layers (RFC 4752 §3.1): only "none", with a maximum size of 0.
func (s *gssapiServer) offer() ([]byte, bool, error) {
	tok, err := wrapToken(s.key, keyusage.GSSAPI_ACCEPTOR_SEAL, wrapSentByAcceptor, s.sendSeq, []byte{layerNone, 0, 0, 0})
	if err != nil {
		s.step = 3
		return nil, true, fmt.Errorf("%w: GSSAPI: wrapping the security layer offer: %v", ErrAuthFailed, err)
	}
	s.step = 2
	return tok, false, nil
}

// answer checks the client's choice (RFC 4752 §3.1): layer "none" and an optional authzid.
func (s *gssapiServer) answer(tok []byte) error {
	u, err := unwrapToken(s.key, keyusage.GSSAPI_INITIATOR_SEAL, false, tok)
	if err != nil {
		return fmt.Errorf("%w: GSSAPI: the client's security layer answer: %v", ErrAuthFailed, err)
	}
	if u.flags&wrapAcceptorSubkey != 0 {
		return fmt.Errorf("%w: GSSAPI: the client's answer claims an acceptor subkey, and tern sent none", ErrAuthFailed)
	}
	if len(u.payload) < 4 {
		return fmt.Errorf("%w: GSSAPI: security layer answer of %d octets, want at least 4", ErrProtocol, len(u.payload))
	}
	if u.payload[0] != layerNone {
		return fmt.Errorf("%w: GSSAPI: the client chose security layer %#02x; tern offers only none (1)", ErrProtocol, u.payload[0])
	}
	// The maximum size (octets 2 to 4) means nothing without a security layer; some clients
	// send one anyway, so it is not checked.
	authzid := u.payload[4:]
	if len(authzid) > maxNameLen || !utf8.Valid(authzid) || slices.Contains(authzid, 0) {
		return fmt.Errorf("%w: GSSAPI: authorization identity is not a UTF-8 name of at most %d octets", ErrProtocol, maxNameLen)
	}
	z := string(authzid)
	if strings.EqualFold(z, s.principal) {
		z = ""
	}
	id, err := authzIdentity(z, s.login, s.account, s.opts.AllowAuthzID)
	if err != nil {
		return err
	}
	s.identity = id
	return nil
}

// accept verifies the initial context token and returns the framed AP-REP when the client
// asked for mutual authentication (nil otherwise). The checks follow RFC 4120 §3.2.3 and
// RFC 4121 §4.1.1; each failure says which, for the log.
func (s *gssapiServer) accept(tok []byte) ([]byte, error) {
	if s.acc == nil {
		return nil, fmt.Errorf("%w: GSSAPI: not configured (no keytab)", ErrUnavailable)
	}
	fail := func(format string, args ...any) ([]byte, error) {
		return nil, fmt.Errorf("%w: GSSAPI: "+format, append([]any{ErrAuthFailed}, args...)...)
	}
	if len(tok) == 0 {
		return nil, fmt.Errorf("%w: GSSAPI: empty initial context token", ErrProtocol)
	}
	tokID, msg, err := unframeToken(tok)
	if err != nil {
		return nil, fmt.Errorf("%w: GSSAPI: %v", ErrProtocol, err)
	}
	if tokID != tokAPReq {
		return nil, fmt.Errorf("%w: GSSAPI: initial token has TOK_ID %04x, want an AP-REQ (0100)", ErrProtocol, tokID)
	}
	var req messages.APReq
	if err := safely(func() error { return req.Unmarshal(msg) }); err != nil {
		return nil, fmt.Errorf("%w: GSSAPI: malformed AP-REQ: %v", ErrProtocol, err)
	}
	t := &req.Ticket
	want := s.acc.Principal()
	got := t.SName.PrincipalNameString() + "@" + t.Realm
	if !slices.Equal(t.SName.NameString, s.acc.sname.NameString) || t.Realm != s.acc.realm {
		return fail("the ticket is for %s, not for this server's %s", got, want)
	}
	if types.IsFlagSet(&req.APOptions, flags.APOptionUseSessionKey) {
		return fail("user-to-user authentication (use-session-key) is not supported")
	}
	key, kvno, err := s.acc.kt.GetEncryptionKey(s.acc.sname, s.acc.realm, t.EncPart.KVNO, t.EncPart.EType)
	if err != nil {
		return fail("the keytab has no key for %s (kvno %d, encryption type %d): the keytab is not this server's, or out of date", want, t.EncPart.KVNO, t.EncPart.EType)
	}
	if err := safely(func() error { return t.Decrypt(key) }); err != nil {
		return fail("the ticket does not decrypt with the keytab's key for %s (kvno %d): the keytab is out of date", want, kvno)
	}
	ep := &t.DecryptedEncPart
	if err := safely(func() error { return req.DecryptAuthenticator(ep.Key) }); err != nil {
		return fail("the authenticator does not decrypt with the ticket's session key (a forged or damaged AP-REQ)")
	}
	au := &req.Authenticator
	client := au.CName.PrincipalNameString() + "@" + au.CRealm
	if !au.CName.Equal(ep.CName) || au.CRealm != ep.CRealm {
		return fail("the authenticator's client %s is not the ticket's %s@%s", client, ep.CName.PrincipalNameString(), ep.CRealm)
	}
	s.principal = client
	now := optionsNow(s.opts).UTC()
	skew := s.acc.skew
	start := ep.StartTime
	if start.IsZero() {
		start = ep.AuthTime
	}
	switch {
	case now.After(ep.EndTime.Add(skew)):
		return fail("the ticket of %s expired at %s", client, ep.EndTime.Format(time.RFC3339))
	case start.Sub(now) > skew:
		return fail("the ticket of %s is not valid before %s", client, start.Format(time.RFC3339))
	case types.IsFlagSet(&ep.Flags, flags.Invalid):
		return fail("the ticket of %s is marked invalid (a postdated ticket not yet validated)", client)
	}
	ctime := au.CTime.Add(time.Duration(au.Cusec) * time.Microsecond)
	if d := now.Sub(ctime); d > skew || -d > skew {
		return fail("the authenticator of %s is %v off our clock, more than the allowed skew of %v", client, d.Round(time.Second), skew)
	}
	// RFC 4121 §4.1.1: the checksum carries the channel bindings and the context flags.
	if au.Cksum.CksumType != chksumtype.GSSAPI || len(au.Cksum.Checksum) < 24 ||
		binary.LittleEndian.Uint32(au.Cksum.Checksum) != 16 {
		return fail("the authenticator has no GSS-API checksum (RFC 4121 §4.1.1)")
	}
	gssFlags := binary.LittleEndian.Uint32(au.Cksum.Checksum[20:])
	// Bindings (octets 4 to 20) are not checked: SASL has none to compare them with, and an
	// acceptor without bindings ignores the initiator's (RFC 2744 §3.11, as MIT does).
	if !s.acc.replay.check(fmt.Sprintf("%s|%d|%d|%x", client, au.CTime.Unix(), au.Cusec, req.EncryptedAuthenticator.Cipher),
		now, ctime.Add(skew)) {
		return fail("replayed authenticator of %s", client)
	}
	login, ok := s.acc.mapper.Login(client, s.acc.realm)
	if !ok {
		return fail("the principal %s maps to no account (auth.gssapi_map)", client)
	}
	s.login = login
	ac, isChecker := s.creds.(AccountChecker)
	if !isChecker {
		return nil, fmt.Errorf("%w: GSSAPI: the account store cannot check accounts", ErrUnavailable)
	}
	account, err := ac.Account(s.ctx, login)
	if err != nil {
		if errors.Is(err, ErrAuthFailed) {
			return fail("the principal %s maps to %s, which is not an account: %w", client, login, err)
		}
		return nil, credentialsError(err)
	}
	s.account = account

	// The context key: RFC 4121 §2 uses the initiator's subkey when it sent one (MIT always
	// does), or the ticket's session key. tern sends no acceptor subkey.
	s.key = ep.Key
	if len(au.SubKey.KeyValue) > 0 {
		s.key = au.SubKey
	}
	if err := cfxEtype(s.key); err != nil {
		return fail("%v", err)
	}
	initSeq := uint64(au.SeqNumber) & 0xffffffff
	mutual := gssFlags&gssMutual != 0 || types.IsFlagSet(&req.APOptions, flags.APOptionMutualRequired)
	if !mutual {
		// Without an AP-REP the acceptor has told the initiator no sequence number of its own:
		// both sides use the initiator's (as MIT's gss_accept_sec_context does).
		s.sendSeq = initSeq
		return nil, nil
	}
	rep, seq, err := s.apRep(ep.Key, au.CTime, au.Cusec)
	if err != nil {
		return nil, fmt.Errorf("%w: GSSAPI: making the AP-REP: %v", ErrUnavailable, err)
	}
	s.sendSeq = seq
	return rep, nil
}

// apRep makes the framed KRB_AP_REP (RFC 4120 §5.5.2, §3.2.4): the client's time from the
// authenticator and our initial sequence number, encrypted in the ticket's session key. No
// subkey: the initiator's stays the context key. gokrb5 only reads AP-REPs, so this is built
// from its types here.
func (s *gssapiServer) apRep(sessionKey types.EncryptionKey, ctime time.Time, cusec int) ([]byte, uint64, error) {
	r := s.opts.Rand
	if r == nil {
		r = rand.Reader
	}
	n, err := rand.Int(r, big.NewInt(1<<30-1))
	if err != nil {
		return nil, 0, err
	}
	seq := n.Int64() + 1 // non-zero, since a zero seq-number is left out of the encoding
	part := messages.EncAPRepPart{CTime: ctime.UTC().Truncate(time.Second), Cusec: cusec, SequenceNumber: seq}
	b, err := asn1.Marshal(part)
	if err != nil {
		return nil, 0, err
	}
	ed, err := crypto.GetEncryptedData(asn1tools.AddASNAppTag(b, asnAppTag.EncAPRepPart), sessionKey, keyusage.AP_REP_ENCPART, 0)
	if err != nil {
		return nil, 0, err
	}
	rep := messages.APRep{PVNO: 5, MsgType: msgtype.KRB_AP_REP, EncPart: ed}
	b, err = asn1.Marshal(rep)
	if err != nil {
		return nil, 0, err
	}
	return frameToken(tokAPRep, asn1tools.AddASNAppTag(b, asnAppTag.APREP)), uint64(seq), nil
}

// safely runs f, turning a panic into an error. gokrb5 slices what it decodes and decrypts
// without always checking lengths first (a ticket whose ciphertext is shorter than its
// checksum panics in crypto.DecryptMessage), and its input here is the network's: a crafted
// token must fail the exchange, not the session.
func safely(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed input (%v)", r)
		}
	}()
	return f()
}
