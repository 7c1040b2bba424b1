package sasl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/chksumtype"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// KerberosTickets is where the GSSAPI client half gets its service ticket: package krb5
// implements it over a credential cache or a keytab (and the KDC).
type KerberosTickets interface {
	// ServiceTicket returns a ticket for spn ("smtp/mx.example.com") and its session key.
	ServiceTicket(spn string) (messages.Ticket, types.EncryptionKey, error)
	// Client is the client principal and its realm.
	Client() (types.PrincipalName, string)
}

// GSSAPIClientOptions configure the client half of GSSAPI.
type GSSAPIClientOptions struct {
	// Tickets supply the service ticket.
	Tickets KerberosTickets
	// Service and Host name the server's principal, Service/Host ("smtp/mx.example.com",
	// RFC 4752 §3.1's "service@hostname"). Service "" means "smtp".
	Service, Host string
	// Authzid is sent in the security layer answer: the account to act as ("" for the
	// principal's own).
	Authzid string
	// Now is for tests; nil means time.Now.
	Now func() time.Time
}

// NewGSSAPIClient returns the client half of GSSAPI: it asks for mutual authentication, so the
// server must prove it holds the service key (an AP-REP) before the client answers its security
// layer offer, choosing no security layer.
func NewGSSAPIClient(o GSSAPIClientOptions) Client {
	if o.Service == "" {
		o.Service = "smtp"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &gssapiClient{o: o}
}

type gssapiClient struct {
	o       GSSAPIClientOptions
	step    int    // 0: not started; 1: AP-REQ sent; 2: AP-REP verified; 3: answered
	initial []byte // the initial token, again for a server that wanted no initial response
	resent  bool
	// The context (RFC 4121 §2): the ticket's session key, the authenticator's time, the key
	// the Wrap tokens use, and the sequence numbers.
	sessionKey     types.EncryptionKey
	ctime          time.Time
	cusec          int
	key            types.EncryptionKey
	acceptorSubkey bool
	sendSeq        uint64
}

// SPN is the service principal name the client asks a ticket for.
func (c *gssapiClient) SPN() string { return c.o.Service + "/" + c.o.Host }

func (c *gssapiClient) Start() (string, []byte, error) {
	if c.step != 0 {
		return "", nil, errors.New("sasl: GSSAPI: Start called twice")
	}
	if c.o.Tickets == nil || c.o.Host == "" {
		return "", nil, errors.New("sasl: GSSAPI: no Kerberos credentials or no server host name")
	}
	if strings.ContainsAny(c.o.Host+c.o.Service, "/@ ") {
		return "", nil, fmt.Errorf("sasl: GSSAPI: bad service principal %q", c.SPN())
	}
	tkt, key, err := c.o.Tickets.ServiceTicket(c.SPN())
	if err != nil {
		return "", nil, fmt.Errorf("sasl: GSSAPI: getting a ticket for %s: %w", c.SPN(), err)
	}
	if err := cfxEtype(key); err != nil {
		return "", nil, fmt.Errorf("sasl: GSSAPI: %v", err)
	}
	cname, crealm := c.o.Tickets.Client()
	au, err := types.NewAuthenticator(crealm, cname)
	if err != nil {
		return "", nil, fmt.Errorf("sasl: GSSAPI: %v", err)
	}
	now := c.o.Now().UTC()
	au.CTime = now.Truncate(time.Second)
	au.Cusec = now.Nanosecond() / 1000
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return "", nil, fmt.Errorf("sasl: GSSAPI: %v", err)
	}
	// A subkey of our own, as MIT's initiator makes: the Wrap tokens use it (RFC 4121 §2).
	if err := au.GenerateSeqNumberAndSubKey(key.KeyType, et.GetKeyByteSize()); err != nil {
		return "", nil, fmt.Errorf("sasl: GSSAPI: %v", err)
	}
	// RFC 4121 §4.1.1: Lgth 16, no channel bindings, the context flags.
	sum := make([]byte, 24)
	binary.LittleEndian.PutUint32(sum, 16)
	binary.LittleEndian.PutUint32(sum[20:], gssMutual|gssInteg)
	au.Cksum = types.Checksum{CksumType: chksumtype.GSSAPI, Checksum: sum}
	req, err := messages.NewAPReq(tkt, key, au)
	if err != nil {
		return "", nil, fmt.Errorf("sasl: GSSAPI: %v", err)
	}
	types.SetFlag(&req.APOptions, flags.APOptionMutualRequired)
	b, err := req.Marshal()
	if err != nil {
		return "", nil, fmt.Errorf("sasl: GSSAPI: %v", err)
	}
	c.sessionKey, c.key = key, au.SubKey
	c.ctime, c.cusec = au.CTime, au.Cusec
	c.sendSeq = uint64(au.SeqNumber)
	c.initial = frameToken(tokAPReq, b)
	c.step = 1
	return GSSAPI, c.initial, nil
}

func (c *gssapiClient) Next(challenge []byte) ([]byte, error) {
	switch c.step {
	case 1:
		if len(challenge) == 0 && !c.resent {
			// The server wanted no initial response (RFC 4422 §5): the token goes now.
			c.resent = true
			return c.initial, nil
		}
		if err := c.verifyAPRep(challenge); err != nil {
			return nil, err
		}
		c.step = 2
		// RFC 4752 §3.1: the context is complete and there is no output token.
		return []byte{}, nil
	case 2:
		u, err := unwrapToken(c.key, keyusage.GSSAPI_ACCEPTOR_SEAL, true, challenge)
		if err != nil {
			return nil, fmt.Errorf("sasl: GSSAPI: the server's security layer offer: %v", err)
		}
		if (u.flags&wrapAcceptorSubkey != 0) != c.acceptorSubkey {
			return nil, errors.New("sasl: GSSAPI: the server's offer has the wrong AcceptorSubkey flag")
		}
		if len(u.payload) != 4 {
			return nil, fmt.Errorf("sasl: GSSAPI: security layer offer of %d octets, want 4 (RFC 4752 §3.1)", len(u.payload))
		}
		if u.payload[0]&layerNone == 0 {
			return nil, fmt.Errorf("sasl: GSSAPI: the server requires a security layer (offers %#02x), and tern has only TLS", u.payload[0])
		}
		msg := append([]byte{layerNone, 0, 0, 0}, c.o.Authzid...)
		fl := byte(0)
		if c.acceptorSubkey {
			fl = wrapAcceptorSubkey
		}
		tok, err := wrapToken(c.key, keyusage.GSSAPI_INITIATOR_SEAL, fl, c.sendSeq, msg)
		if err != nil {
			return nil, fmt.Errorf("sasl: GSSAPI: %v", err)
		}
		c.step = 3
		return tok, nil
	}
	return nil, errors.New("sasl: GSSAPI: unexpected server challenge")
}

// verifyAPRep checks the server's AP-REP (RFC 4120 §3.2.5): it decrypts with the session key
// and carries back our authenticator's time, so the server holds the service key. Its subkey,
// when it sends one, becomes the context key (RFC 4121 §2).
func (c *gssapiClient) verifyAPRep(tok []byte) error {
	if len(tok) > 0 && tok[0] == 0x05 {
		return errors.New("sasl: GSSAPI: the server skipped mutual authentication (no AP-REP)")
	}
	tokID, msg, err := unframeToken(tok)
	if err != nil {
		return fmt.Errorf("sasl: GSSAPI: the server's token: %v", err)
	}
	switch tokID {
	case tokAPRep:
	case tokKRBError:
		var ke messages.KRBError
		if err := safely(func() error { return ke.Unmarshal(msg) }); err != nil {
			return fmt.Errorf("sasl: GSSAPI: the server sent a malformed KRB-ERROR: %v", err)
		}
		return fmt.Errorf("sasl: GSSAPI: the server refused the ticket: %s", strings.TrimSpace(errorcode.Lookup(ke.ErrorCode)+" "+ke.EText))
	default:
		return fmt.Errorf("sasl: GSSAPI: the server's token has TOK_ID %04x, want an AP-REP (0200)", tokID)
	}
	var rep messages.APRep
	if err := safely(func() error { return rep.Unmarshal(msg) }); err != nil {
		return fmt.Errorf("sasl: GSSAPI: malformed AP-REP: %v", err)
	}
	var plain []byte
	if err := safely(func() (err error) {
		plain, err = crypto.DecryptEncPart(rep.EncPart, c.sessionKey, keyusage.AP_REP_ENCPART)
		return err
	}); err != nil {
		return errors.New("sasl: GSSAPI: the server's AP-REP does not decrypt: it does not hold the service key")
	}
	var part messages.EncAPRepPart
	if err := safely(func() error { return part.Unmarshal(plain) }); err != nil {
		return fmt.Errorf("sasl: GSSAPI: malformed AP-REP: %v", err)
	}
	if !part.CTime.Equal(c.ctime) || part.Cusec != c.cusec {
		return errors.New("sasl: GSSAPI: the server's AP-REP answers another authenticator")
	}
	if len(part.Subkey.KeyValue) > 0 {
		if err := cfxEtype(part.Subkey); err != nil {
			return fmt.Errorf("sasl: GSSAPI: the server's subkey: %v", err)
		}
		c.key, c.acceptorSubkey = part.Subkey, true
	}
	return nil
}
