package sasl

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/chksumtype"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// The GSSAPI tests play the KDC with gokrb5: messages.NewTicket encrypts a ticket in a key of a
// keytab, as the KDC does with the service's key. The real MIT KDC, kinit and MIT's GSS-API
// clients are test/gssapi_test.go's business.

const (
	krbRealm = "TERN.TEST"
	krbSPN   = "smtp/mx.example.test"
)

// krbNow is the tests' clock: tickets are issued at it and servers run at it.
var krbNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// testKeytab returns a keytab with one entry per principal (password = principal + "-pw",
// kvno 2, AES-256 and AES-128 keys), and its file form.
func testKeytab(t testing.TB, principals ...string) (*keytab.Keytab, []byte) {
	t.Helper()
	kt := keytab.New()
	for _, p := range principals {
		for _, et := range []int32{etypeID.AES256_CTS_HMAC_SHA1_96, etypeID.AES128_CTS_HMAC_SHA1_96} {
			if err := kt.AddEntry(p, krbRealm, p+"-pw", krbNow.Add(-time.Hour), 2, et); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := kt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return kt, b
}

// fakeKDC hands out service tickets encrypted with the keys of its keytab, for client.
type fakeKDC struct {
	kt         *keytab.Keytab
	client     string        // the client principal's name ("alice")
	issued     time.Time     // the ticket's start; zero: krbNow
	life       time.Duration // zero: 10h
	etype      int32         // zero: AES-256
	sname      string        // the ticket's server, whatever was asked; "": the SPN asked for
	ticketFlag int           // a ticket flag to set (flags.Invalid), or 0
}

func (k fakeKDC) ServiceTicket(spn string) (messages.Ticket, types.EncryptionKey, error) {
	if k.sname != "" {
		spn = k.sname
	}
	issued, life, et := k.issued, k.life, k.etype
	if issued.IsZero() {
		issued = krbNow
	}
	if life == 0 {
		life = 10 * time.Hour
	}
	if et == 0 {
		et = etypeID.AES256_CTS_HMAC_SHA1_96
	}
	fl := types.NewKrbFlags()
	if k.ticketFlag != 0 {
		types.SetFlag(&fl, k.ticketFlag)
	}
	cname, realm := k.Client()
	return messages.NewTicket(cname, realm, types.NewPrincipalName(nametype.KRB_NT_SRV_HST, spn), krbRealm,
		fl, k.kt, et, 2, issued, issued, issued.Add(life), issued.Add(life))
}

func (k fakeKDC) Client() (types.PrincipalName, string) {
	return types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, k.client), krbRealm
}

// gssCreds is an account store of three accounts, without passwords: GSSAPI only asks whether
// an account exists. "broken" is a store failure.
type gssCreds struct{}

func (gssCreds) resolve(login string) (string, error) {
	a := strings.ToLower(login)
	if !strings.Contains(a, "@") {
		a += "@example.test"
	}
	switch a {
	case "alice@example.test", "bob@example.test", "postmaster@example.test":
		return a, nil
	case "broken@example.test":
		return "", fmt.Errorf("%w: test store is down", ErrUnavailable)
	}
	return "", fmt.Errorf("%w: no such account %s", ErrAuthFailed, a)
}

func (c gssCreds) Account(_ context.Context, login string) (string, error) { return c.resolve(login) }
func (gssCreds) CheckPassword(context.Context, string, string) (string, error) {
	return "", errors.New("GSSAPI must not check passwords")
}
func (gssCreds) Secret(context.Context, string, string) (string, []byte, error) {
	return "", nil, errors.New("GSSAPI must not read secrets")
}

// noChecker hides Account.
type noChecker struct{ Credentials }

// gssSetup is one server configuration and what the KDC knows.
type gssSetup struct {
	kdcKeytab    *keytab.Keytab // the KDC's keys
	serverKeytab []byte         // what the server was given
	opts         GSSAPIOptions
}

func newGSSSetup(t testing.TB) gssSetup {
	t.Helper()
	kt, b := testKeytab(t, krbSPN, "smtp/other.example.test")
	return gssSetup{kdcKeytab: kt, serverKeytab: b, opts: GSSAPIOptions{
		Principal: krbSPN,
		Map:       PrincipalMap{Local: true},
	}}
}

func (g gssSetup) server(t testing.TB, creds Credentials, allowAuthzID bool) Server {
	t.Helper()
	o := g.opts
	o.Keytab = g.serverKeytab
	acc, err := NewGSSAPIAcceptor(o)
	if err != nil {
		t.Fatal(err)
	}
	return NewGSSAPIServer(context.Background(), creds, ServerOptions{
		GSSAPI: acc, AllowAuthzID: allowAuthzID, Now: func() time.Time { return krbNow },
	})
}

func (g gssSetup) client(kdc fakeKDC, authzid string) Client {
	kdc.kt = g.kdcKeytab
	return NewGSSAPIClient(GSSAPIClientOptions{
		Tickets: kdc, Host: "mx.example.test", Authzid: authzid, Now: func() time.Time { return krbNow },
	})
}

// runGSSAPI runs client against server and returns the number of challenges, and the server's
// error and the client's (the first that failed).
func runGSSAPI(t testing.TB, c Client, s Server) (rounds int, serverErr, clientErr error) {
	t.Helper()
	mech, resp, err := c.Start()
	if err != nil {
		return 0, nil, err
	}
	if mech != GSSAPI {
		t.Fatalf("mechanism %q", mech)
	}
	for rounds = 0; rounds < 10; rounds++ {
		challenge, done, err := s.Next(resp)
		if done || err != nil {
			if !done {
				t.Fatalf("error %v but not done", err)
			}
			return rounds, err, nil
		}
		if resp, err = c.Next(challenge); err != nil {
			return rounds, nil, err
		}
	}
	t.Fatal("no end after 10 rounds")
	return rounds, nil, nil
}

func TestGSSAPIRoundTrip(t *testing.T) {
	g := newGSSSetup(t)
	for _, tc := range []struct {
		name, client, authzid string
		allowAuthzID          bool
		etype                 int32
		want                  string
	}{
		{name: "AES-256", client: "alice", want: "alice@example.test"},
		{name: "AES-128", client: "alice", etype: etypeID.AES128_CTS_HMAC_SHA1_96, want: "alice@example.test"},
		{name: "authzid is the account", client: "alice", authzid: "alice@example.test", want: "alice@example.test"},
		{name: "authzid is the principal", client: "alice", authzid: "alice@TERN.TEST", want: "alice@example.test"},
		{name: "authzid is the login", client: "alice", authzid: "Alice", want: "alice@example.test"},
		{name: "other authzid allowed", client: "alice", authzid: "bob@example.test", allowAuthzID: true, want: "bob@example.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := g.server(t, gssCreds{}, tc.allowAuthzID)
			rounds, serr, cerr := runGSSAPI(t, g.client(fakeKDC{client: tc.client, etype: tc.etype}, tc.authzid), s)
			if serr != nil || cerr != nil {
				t.Fatalf("server: %v; client: %v", serr, cerr)
			}
			if rounds != 2 {
				t.Errorf("%d challenges, want 2 (AP-REP, offer)", rounds)
			}
			if s.Identity() != tc.want {
				t.Errorf("identity %q, want %q", s.Identity(), tc.want)
			}
		})
	}
}

// TestGSSAPIServerFailures: each refusal is ErrAuthFailed (535) or ErrProtocol (501) or
// ErrUnavailable (454), with a reason for the log.
func TestGSSAPIServerFailures(t *testing.T) {
	g := newGSSSetup(t)
	staleKeytab := func() []byte { // same principal, another key
		kt := keytab.New()
		for _, et := range []int32{etypeID.AES256_CTS_HMAC_SHA1_96, etypeID.AES128_CTS_HMAC_SHA1_96} {
			if err := kt.AddEntry(krbSPN, krbRealm, "rekeyed", krbNow, 2, et); err != nil {
				t.Fatal(err)
			}
		}
		b, err := kt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()
	_, otherKeytab := testKeytab(t, "smtp/other.example.test")
	_, oldKvno := func() (*keytab.Keytab, []byte) {
		kt := keytab.New()
		if err := kt.AddEntry(krbSPN, krbRealm, krbSPN+"-pw", krbNow, 1, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
			t.Fatal(err)
		}
		b, _ := kt.Marshal()
		return kt, b
	}()
	for _, tc := range []struct {
		name    string
		kdc     fakeKDC
		keytab  []byte
		opts    func(*GSSAPIOptions)
		creds   Credentials
		authzid string
		want    error
		reason  string
	}{
		{name: "ticket for another service", kdc: fakeKDC{client: "alice", sname: "smtp/other.example.test"},
			want: ErrAuthFailed, reason: "the ticket is for smtp/other.example.test@TERN.TEST, not for this server's smtp/mx.example.test@TERN.TEST"},
		{name: "keytab of another service", kdc: fakeKDC{client: "alice"}, keytab: otherKeytab,
			want: ErrAuthFailed, reason: "the keytab has no key for smtp/mx.example.test@TERN.TEST (kvno 2, encryption type 18)"},
		{name: "keytab with an old kvno", kdc: fakeKDC{client: "alice"}, keytab: oldKvno,
			want: ErrAuthFailed, reason: "the keytab has no key for smtp/mx.example.test@TERN.TEST (kvno 2"},
		{name: "keytab with another key", kdc: fakeKDC{client: "alice"}, keytab: staleKeytab,
			want: ErrAuthFailed, reason: "the ticket does not decrypt with the keytab's key"},
		{name: "expired ticket", kdc: fakeKDC{client: "alice", issued: krbNow.Add(-2 * time.Hour), life: time.Hour},
			want: ErrAuthFailed, reason: "the ticket of alice@TERN.TEST expired at 2026-03-04T04:06:07Z"},
		{name: "expired within the skew", kdc: fakeKDC{client: "alice", issued: krbNow.Add(-time.Hour - 4*time.Minute), life: time.Hour},
			want: nil},
		{name: "expired, short skew", kdc: fakeKDC{client: "alice", issued: krbNow.Add(-time.Hour - 4*time.Minute), life: time.Hour},
			opts: func(o *GSSAPIOptions) { o.ClockSkew = time.Minute }, want: ErrAuthFailed, reason: "expired at"},
		{name: "ticket from the future", kdc: fakeKDC{client: "alice", issued: krbNow.Add(time.Hour)},
			want: ErrAuthFailed, reason: "is not valid before"},
		{name: "invalid ticket", kdc: fakeKDC{client: "alice", ticketFlag: flags.Invalid},
			want: ErrAuthFailed, reason: "marked invalid"},
		{name: "no local map", kdc: fakeKDC{client: "alice"}, opts: func(o *GSSAPIOptions) { o.Map.Local = false },
			want: ErrAuthFailed, reason: "the principal alice@TERN.TEST maps to no account"},
		{name: "principal with an instance", kdc: fakeKDC{client: "alice/admin"},
			want: ErrAuthFailed, reason: "the principal alice/admin@TERN.TEST maps to no account"},
		{name: "mapped by table", kdc: fakeKDC{client: "alice/admin"},
			opts: func(o *GSSAPIOptions) { o.Map.Table = map[string]string{"alice/admin@TERN.TEST": "postmaster"} }},
		{name: "table refuses", kdc: fakeKDC{client: "alice"},
			opts: func(o *GSSAPIOptions) { o.Map.Table = map[string]string{"alice@TERN.TEST": ""} },
			want: ErrAuthFailed, reason: "maps to no account"},
		{name: "no such account", kdc: fakeKDC{client: "carol"},
			want: ErrAuthFailed, reason: "the principal carol@TERN.TEST maps to carol, which is not an account"},
		{name: "store down", kdc: fakeKDC{client: "broken"}, want: ErrUnavailable},
		{name: "store cannot check accounts", kdc: fakeKDC{client: "alice"}, creds: noChecker{gssCreds{}}, want: ErrUnavailable},
		{name: "authzid of another account", kdc: fakeKDC{client: "alice"}, authzid: "bob@example.test",
			want: ErrAuthFailed, reason: "authorization identity differs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := g
			if tc.keytab != nil {
				g.serverKeytab = tc.keytab
			}
			if tc.opts != nil {
				tc.opts(&g.opts)
			}
			creds := tc.creds
			if creds == nil {
				creds = gssCreds{}
			}
			s := g.server(t, creds, false)
			_, serr, cerr := runGSSAPI(t, g.client(tc.kdc, tc.authzid), s)
			if cerr != nil {
				t.Fatalf("client: %v", cerr)
			}
			switch {
			case tc.want == nil && serr != nil:
				t.Fatalf("refused: %v", serr)
			case tc.want != nil && !errors.Is(serr, tc.want):
				t.Fatalf("error %v, want %v", serr, tc.want)
			case serr != nil && !strings.Contains(serr.Error(), tc.reason):
				t.Fatalf("error %q lacks %q", serr, tc.reason)
			}
		})
	}
}

// apReq makes an initial context token by hand, for what the client half never sends.
type apReqParams struct {
	mutual    bool
	checksum  []byte // nil: a GSS checksum with the mutual flag as given
	cksumType int32  // 0: GSS-API (0x8003)
	ctime     time.Time
	subkey    bool
	cname     string
	mangle    func(*messages.APReq) // changes the AP-REQ before it is encoded
}

func (g gssSetup) apReq(t testing.TB, p apReqParams) []byte {
	t.Helper()
	if p.cname == "" {
		p.cname = "alice"
	}
	tkt, key, err := fakeKDC{kt: g.kdcKeytab, client: p.cname}.ServiceTicket(krbSPN)
	if err != nil {
		t.Fatal(err)
	}
	au, err := types.NewAuthenticator(krbRealm, types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, p.cname))
	if err != nil {
		t.Fatal(err)
	}
	if p.ctime.IsZero() {
		p.ctime = krbNow
	}
	au.CTime, au.Cusec = p.ctime, 0
	if p.subkey {
		if err := au.GenerateSeqNumberAndSubKey(key.KeyType, 32); err != nil {
			t.Fatal(err)
		}
	}
	sum := p.checksum
	if sum == nil {
		sum = make([]byte, 24)
		binary.LittleEndian.PutUint32(sum, 16)
		if p.mutual {
			binary.LittleEndian.PutUint32(sum[20:], gssMutual)
		}
	}
	ct := p.cksumType
	if ct == 0 {
		ct = chksumtype.GSSAPI
	}
	au.Cksum = types.Checksum{CksumType: ct, Checksum: sum}
	req, err := messages.NewAPReq(tkt, key, au)
	if err != nil {
		t.Fatal(err)
	}
	if p.mangle != nil {
		p.mangle(&req)
	}
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return frameToken(tokAPReq, b)
}

// TestGSSAPINoMutual: without mutual authentication there is no AP-REP, the first challenge is
// the offer, wrapped in the session key (no subkey) with the initiator's sequence number.
func TestGSSAPINoMutual(t *testing.T) {
	g := newGSSSetup(t)
	for _, subkey := range []bool{false, true} {
		t.Run(fmt.Sprintf("subkey=%v", subkey), func(t *testing.T) {
			s := g.server(t, gssCreds{}, false)
			offer, done, err := s.Next(g.apReq(t, apReqParams{subkey: subkey}))
			if err != nil || done {
				t.Fatalf("Next: %v, done %v", err, done)
			}
			if offer[0] != 0x05 || offer[1] != 0x04 {
				t.Fatalf("first challenge %x is not a Wrap token", offer)
			}
			key := s.(*gssapiServer).key
			u, err := unwrapToken(key, keyusage.GSSAPI_ACCEPTOR_SEAL, true, offer)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(u.payload, []byte{1, 0, 0, 0}) {
				t.Fatalf("offer %x, want 01000000", u.payload)
			}
			ans, err := wrapToken(key, keyusage.GSSAPI_INITIATOR_SEAL, 0, u.seq, []byte{1, 0, 0, 0})
			if err != nil {
				t.Fatal(err)
			}
			if _, done, err := s.Next(ans); !done || err != nil {
				t.Fatalf("answer: done %v, %v", done, err)
			}
			if s.Identity() != "alice@example.test" {
				t.Fatalf("identity %q", s.Identity())
			}
		})
	}
}

// TestGSSAPIProtocolErrors: malformed or out-of-sequence messages.
func TestGSSAPIProtocolErrors(t *testing.T) {
	g := newGSSSetup(t)
	good := func() []byte { return g.apReq(t, apReqParams{mutual: true, subkey: true}) }
	// afterRep returns a server that has sent the AP-REP.
	afterRep := func(t *testing.T) Server {
		s := g.server(t, gssCreds{}, false)
		if _, done, err := s.Next(good()); done || err != nil {
			t.Fatalf("AP-REQ: %v", err)
		}
		return s
	}
	// afterOffer returns a server that has sent its offer, and the context key.
	afterOffer := func(t *testing.T) (Server, types.EncryptionKey, uint64) {
		s := afterRep(t)
		offer, done, err := s.Next([]byte{})
		if done || err != nil {
			t.Fatalf("empty answer: %v", err)
		}
		key := s.(*gssapiServer).key
		u, err := unwrapToken(key, keyusage.GSSAPI_ACCEPTOR_SEAL, true, offer)
		if err != nil {
			t.Fatal(err)
		}
		return s, key, u.seq
	}
	wrap := func(t *testing.T, key types.EncryptionKey, fl byte, msg []byte) []byte {
		tok, err := wrapToken(key, keyusage.GSSAPI_INITIATOR_SEAL, fl, 7, msg)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	expect := func(t *testing.T, err, want error, reason string) {
		t.Helper()
		if !errors.Is(err, want) || !strings.Contains(fmt.Sprint(err), reason) {
			t.Fatalf("error %v, want %v with %q", err, want, reason)
		}
	}
	t.Run("empty initial token", func(t *testing.T) {
		_, _, err := g.server(t, gssCreds{}, false).Next([]byte{})
		expect(t, err, ErrProtocol, "empty initial context token")
	})
	t.Run("empty challenge then token", func(t *testing.T) {
		s := g.server(t, gssCreds{}, false)
		if c, done, err := s.Next(nil); len(c) != 0 || done || err != nil {
			t.Fatalf("Next(nil) = %x, %v, %v", c, done, err)
		}
		if _, done, err := s.Next(good()); done || err != nil {
			t.Fatalf("AP-REQ after the empty challenge: %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		_, _, err := g.server(t, gssCreds{}, false).Next([]byte("hello"))
		expect(t, err, ErrProtocol, "not a GSS-API initial context token")
	})
	t.Run("SPNEGO instead of Kerberos", func(t *testing.T) {
		spnego := []byte{0x60, 0x08, 0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02}
		_, _, err := g.server(t, gssCreds{}, false).Next(spnego)
		expect(t, err, ErrProtocol, "not Kerberos V5")
	})
	t.Run("AP-REP as the first token", func(t *testing.T) {
		_, _, err := g.server(t, gssCreds{}, false).Next(frameToken(tokAPRep, []byte{0x30, 0}))
		expect(t, err, ErrProtocol, "want an AP-REQ")
	})
	t.Run("malformed AP-REQ", func(t *testing.T) {
		_, _, err := g.server(t, gssCreds{}, false).Next(frameToken(tokAPReq, []byte{0x6e, 0x02, 0x30, 0x00}))
		expect(t, err, ErrProtocol, "malformed AP-REQ")
	})
	t.Run("oversize", func(t *testing.T) {
		big := frameToken(tokAPReq, make([]byte, maxGSSAPIToken))
		_, _, err := g.server(t, gssCreds{}, false).Next(big)
		expect(t, err, ErrProtocol, "more than")
	})
	t.Run("ticket ciphertext shorter than its checksum", func(t *testing.T) {
		// gokrb5's decryption panics on this; the exchange must fail instead.
		short := g.apReq(t, apReqParams{mangle: func(r *messages.APReq) { r.Ticket.EncPart.Cipher = []byte{1, 2, 3} }})
		_, _, err := g.server(t, gssCreds{}, false).Next(short)
		expect(t, err, ErrAuthFailed, "the ticket does not decrypt")
	})
	t.Run("authenticator shorter than its checksum", func(t *testing.T) {
		short := g.apReq(t, apReqParams{mangle: func(r *messages.APReq) { r.EncryptedAuthenticator.Cipher = []byte{1} }})
		_, _, err := g.server(t, gssCreds{}, false).Next(short)
		expect(t, err, ErrAuthFailed, "the authenticator does not decrypt")
	})
	t.Run("user-to-user", func(t *testing.T) {
		u2u := g.apReq(t, apReqParams{mangle: func(r *messages.APReq) { types.SetFlag(&r.APOptions, flags.APOptionUseSessionKey) }})
		_, _, err := g.server(t, gssCreds{}, false).Next(u2u)
		expect(t, err, ErrAuthFailed, "user-to-user")
	})
	t.Run("no GSS checksum", func(t *testing.T) {
		_, _, err := g.server(t, gssCreds{}, false).Next(g.apReq(t, apReqParams{cksumType: chksumtype.HMAC_SHA1_96_AES256}))
		expect(t, err, ErrAuthFailed, "no GSS-API checksum")
	})
	t.Run("short GSS checksum", func(t *testing.T) {
		_, _, err := g.server(t, gssCreds{}, false).Next(g.apReq(t, apReqParams{checksum: []byte{16, 0, 0, 0}}))
		expect(t, err, ErrAuthFailed, "no GSS-API checksum")
	})
	t.Run("clock skew", func(t *testing.T) {
		_, _, err := g.server(t, gssCreds{}, false).Next(g.apReq(t, apReqParams{ctime: krbNow.Add(-10 * time.Minute)}))
		expect(t, err, ErrAuthFailed, "the authenticator of alice@TERN.TEST is 10m0s off our clock")
	})
	t.Run("replay", func(t *testing.T) {
		o := g.opts
		o.Keytab = g.serverKeytab
		acc, err := NewGSSAPIAcceptor(o)
		if err != nil {
			t.Fatal(err)
		}
		tok := good()
		for i, want := range []error{nil, ErrAuthFailed} {
			s := NewGSSAPIServer(context.Background(), gssCreds{}, ServerOptions{GSSAPI: acc, Now: func() time.Time { return krbNow }})
			_, _, err := s.Next(tok)
			if !errors.Is(err, want) || (want != nil && !strings.Contains(err.Error(), "replayed authenticator")) {
				t.Fatalf("use %d: %v, want %v", i+1, err, want)
			}
		}
	})
	t.Run("answer to the AP-REP not empty", func(t *testing.T) {
		_, _, err := afterRep(t).Next([]byte{1})
		expect(t, err, ErrProtocol, "must be empty")
	})
	t.Run("integrity layer chosen", func(t *testing.T) {
		s, key, _ := afterOffer(t)
		_, _, err := s.Next(wrap(t, key, 0, []byte{layerIntegrity, 0, 0x10, 0}))
		expect(t, err, ErrProtocol, "chose security layer 0x02")
	})
	t.Run("answer too short", func(t *testing.T) {
		s, key, _ := afterOffer(t)
		_, _, err := s.Next(wrap(t, key, 0, []byte{layerNone, 0}))
		expect(t, err, ErrProtocol, "want at least 4")
	})
	t.Run("answer not wrapped", func(t *testing.T) {
		s, _, _ := afterOffer(t)
		_, _, err := s.Next([]byte{1, 0, 0, 0})
		expect(t, err, ErrAuthFailed, "not an RFC 4121 Wrap token")
	})
	t.Run("answer in another key", func(t *testing.T) {
		s, key, _ := afterOffer(t)
		other := types.EncryptionKey{KeyType: key.KeyType, KeyValue: bytes.Repeat([]byte{7}, len(key.KeyValue))}
		_, _, err := s.Next(wrap(t, other, 0, []byte{1, 0, 0, 0}))
		expect(t, err, ErrAuthFailed, "checksum does not verify")
	})
	t.Run("offer reflected", func(t *testing.T) {
		s := afterRep(t)
		offer, _, err := s.Next([]byte{})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = s.Next(offer)
		expect(t, err, ErrAuthFailed, "SentByAcceptor")
	})
	t.Run("answer claims an acceptor subkey", func(t *testing.T) {
		s, key, _ := afterOffer(t)
		_, _, err := s.Next(wrap(t, key, wrapAcceptorSubkey, []byte{1, 0, 0, 0}))
		expect(t, err, ErrAuthFailed, "acceptor subkey")
	})
	t.Run("authzid with NUL", func(t *testing.T) {
		s, key, _ := afterOffer(t)
		_, _, err := s.Next(wrap(t, key, 0, []byte("\x01\x00\x00\x00bob\x00")))
		expect(t, err, ErrProtocol, "authorization identity")
	})
	t.Run("extra step", func(t *testing.T) {
		s, key, _ := afterOffer(t)
		if _, done, err := s.Next(wrap(t, key, 0, []byte{1, 0, 0, 0})); !done || err != nil {
			t.Fatalf("answer: %v", err)
		}
		_, done, err := s.Next([]byte{})
		if !done {
			t.Fatal("not done")
		}
		expect(t, err, ErrProtocol, "already over")
	})
	t.Run("not configured", func(t *testing.T) {
		s := NewGSSAPIServer(context.Background(), gssCreds{}, ServerOptions{})
		_, _, err := s.Next(good())
		expect(t, err, ErrUnavailable, "not configured")
		if _, err := NewServer(context.Background(), GSSAPI, gssCreds{}, ServerOptions{}); err == nil {
			t.Fatal("NewServer without a keytab")
		}
	})
}

// TestGSSAPIClientFailures: the client refuses a server that does not prove itself, or wants a
// security layer.
func TestGSSAPIClientFailures(t *testing.T) {
	g := newGSSSetup(t)
	start := func(t *testing.T) (Client, Server, []byte) {
		c := g.client(fakeKDC{client: "alice"}, "")
		_, ir, err := c.Start()
		if err != nil {
			t.Fatal(err)
		}
		s := g.server(t, gssCreds{}, false)
		rep, _, err := s.Next(ir)
		if err != nil {
			t.Fatal(err)
		}
		return c, s, rep
	}
	t.Run("AP-REP in another key", func(t *testing.T) {
		c, _, _ := start(t)
		// The AP-REP of another exchange: its session key is not ours.
		_, _, rep := start(t)
		if _, err := c.Next(rep); err == nil || !strings.Contains(err.Error(), "does not hold the service key") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("no AP-REP", func(t *testing.T) {
		c, s, _ := start(t)
		offer, _, err := s.Next([]byte{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Next(offer); err == nil || !strings.Contains(err.Error(), "skipped mutual authentication") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("KRB-ERROR", func(t *testing.T) {
		c, _, _ := start(t)
		ke := messages.NewKRBError(types.NewPrincipalName(nametype.KRB_NT_SRV_HST, krbSPN), krbRealm, 37, "clock skew too great")
		b, err := ke.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Next(frameToken(tokKRBError, b)); err == nil || !strings.Contains(err.Error(), "KRB_AP_ERR_SKEW") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("security layer required", func(t *testing.T) {
		c, s, rep := start(t)
		if _, err := c.Next(rep); err != nil {
			t.Fatal(err)
		}
		gs := s.(*gssapiServer)
		offer, err := wrapToken(gs.key, keyusage.GSSAPI_ACCEPTOR_SEAL, wrapSentByAcceptor, gs.sendSeq, []byte{layerConf, 0, 0x10, 0})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Next(offer); err == nil || !strings.Contains(err.Error(), "requires a security layer") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("empty challenge resends the token", func(t *testing.T) {
		c := g.client(fakeKDC{client: "alice"}, "")
		_, ir, err := c.Start()
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.Next([]byte{})
		if err != nil || !bytes.Equal(again, ir) {
			t.Fatalf("Next(empty) = %x, %v; want the initial token", again, err)
		}
	})
	t.Run("no ticket", func(t *testing.T) {
		c := NewGSSAPIClient(GSSAPIClientOptions{Tickets: fakeKDC{kt: keytab.New(), client: "alice"}, Host: "mx.example.test"})
		if _, _, err := c.Start(); err == nil || !strings.Contains(err.Error(), "getting a ticket for smtp/mx.example.test") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("RC4 session key", func(t *testing.T) {
		kt := keytab.New()
		if err := kt.AddEntry(krbSPN, krbRealm, "pw", krbNow, 2, etypeID.RC4_HMAC); err != nil {
			t.Fatal(err)
		}
		c := NewGSSAPIClient(GSSAPIClientOptions{Tickets: fakeKDC{kt: kt, client: "alice", etype: etypeID.RC4_HMAC}, Host: "mx.example.test"})
		if _, _, err := c.Start(); err == nil || !strings.Contains(err.Error(), "only the AES types") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestPrincipalMap(t *testing.T) {
	table, err := ParsePrincipalMap("# admins\n\nalice/admin@TERN.TEST  postmaster\nbob@OTHER.TEST bob@example.org\nmallory@TERN.TEST -\n")
	if err != nil {
		t.Fatal(err)
	}
	table["eve@TERN.TEST"] = ""
	m := PrincipalMap{Local: true, Table: table}
	for _, tc := range []struct {
		principal, want string
		ok              bool
	}{
		{"alice@TERN.TEST", "alice", true},
		{"alice/admin@TERN.TEST", "postmaster", true},
		{"bob@OTHER.TEST", "bob@example.org", true},
		{"carol@OTHER.TEST", "", false},
		{"alice@tern.test", "", false}, // realms are case-sensitive (RFC 4120 §6.1)
		{"eve@TERN.TEST", "", false},   // mapped to nothing: refused
		{"mallory@TERN.TEST", "-", true},
		{"host/mx@TERN.TEST", "", false},
		{"@TERN.TEST", "", false},
		{"alice", "", false},
	} {
		if got, ok := m.Login(tc.principal, "TERN.TEST"); got != tc.want || ok != tc.ok {
			t.Errorf("%s: %q %v, want %q %v", tc.principal, got, ok, tc.want, tc.ok)
		}
	}
	if got, ok := (PrincipalMap{}).Login("alice@TERN.TEST", "TERN.TEST"); ok {
		t.Errorf("empty map: %q", got)
	}
	for _, bad := range []string{"alice@TERN.TEST", "alice bob", "a@R x\na@R y", "a@R x y"} {
		if _, err := ParsePrincipalMap(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestGSSAPIAcceptorConfig(t *testing.T) {
	_, b := testKeytab(t, krbSPN)
	acc, err := NewGSSAPIAcceptor(GSSAPIOptions{Keytab: b, Principal: krbSPN})
	if err != nil {
		t.Fatal(err)
	}
	if acc.Principal() != "smtp/mx.example.test@TERN.TEST" || acc.Check() != nil {
		t.Fatalf("principal %s, check %v", acc.Principal(), acc.Check())
	}
	_, other := testKeytab(t, "smtp/other.example.test")
	acc, err = NewGSSAPIAcceptor(GSSAPIOptions{Keytab: other, Principal: krbSPN, Realm: krbRealm})
	if err != nil {
		t.Fatal(err)
	}
	if err := acc.Check(); err == nil || !strings.Contains(err.Error(), "no key for smtp/mx.example.test@TERN.TEST (it has smtp/other.example.test@TERN.TEST)") {
		t.Fatalf("check: %v", err)
	}
	for _, o := range []GSSAPIOptions{
		{Keytab: []byte("not a keytab"), Principal: krbSPN},
		{Keytab: b, Principal: ""},
		{Keytab: b, Principal: krbSPN + "@TERN.TEST"},
	} {
		if _, err := NewGSSAPIAcceptor(o); err == nil {
			t.Errorf("%+v: no error", o.Principal)
		}
	}
}

func FuzzGSSAPIServer(f *testing.F) {
	g := newGSSSetup(f)
	f.Add(g.apReq(f, apReqParams{mutual: true, subkey: true}), []byte{}, []byte{})
	f.Add(g.apReq(f, apReqParams{}), []byte{5, 4, 0, 0xff, 0, 12, 0, 0}, []byte{})
	f.Add(frameToken(tokAPReq, []byte{0x6e, 0x82, 0x01, 0x00}), []byte(nil), []byte(nil))
	f.Add([]byte{0x60, 0x80}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, first, second, third []byte) {
		s := g.server(t, gssCreds{}, false)
		for i, msg := range [][]byte{first, second, third} {
			_, done, err := s.Next(msg)
			if done {
				if err == nil && s.Identity() == "" {
					t.Fatal("success without an identity")
				}
				if err == nil && i < 1 {
					t.Fatalf("success after %d messages", i+1)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v but not done", err)
			}
		}
	})
}
