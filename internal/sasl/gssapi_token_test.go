package sasl

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// GSSAPI tokens: the generic framing, the security layer messages and their description.

// TestGSSAPIFraming checks the generic token framing of RFC 2743 §3.1.
func TestGSSAPIFraming(t *testing.T) {
	for _, n := range []int{0, 1, 100, 114, 115, 116, 300, 70000} {
		msg := bytes.Repeat([]byte{0xab}, n)
		tok := frameToken(tokAPReq, msg)
		id, got, err := unframeToken(tok)
		switch {
		case n+13 > maxGSSAPIToken:
			if err == nil {
				t.Errorf("%d octets: no error", n)
			}
		case err != nil || id != tokAPReq || !bytes.Equal(got, msg):
			t.Errorf("%d octets: %04x, %d octets, %v", n, id, len(got), err)
		}
	}
	// The lengths: short form up to 127, then 0x81 and 0x82 (X.690 §8.1.3).
	for _, tc := range []struct {
		n    int
		want string
	}{{116, "6074"}, {128, "608180"}, {300, "6082012c"}} {
		if got := hex.EncodeToString(frameToken(tokAPReq, make([]byte, tc.n-13))[:len(tc.want)/2]); got != tc.want {
			t.Errorf("inner length %d: header %s, want %s", tc.n, got, tc.want)
		}
	}
	oid := hex.EncodeToString(krb5OID)
	for _, tc := range []struct{ name, hex, want string }{
		{"empty", "", "starts with 0x60"},
		{"wrong tag", "30030102", "starts with 0x60"},
		{"length too long", "6005" + oid[:4], "octets follow"},
		{"trailing octets", "600d" + oid + "0100" + "00", "octets follow"},
		{"indefinite length", "6080" + oid + "0100", "bad DER length"},
		{"non-minimal length", "60810d" + oid + "0100", "non-minimal"},
		{"other mechanism", "600d06092a864886f712010203" + "0100", "not Kerberos V5"},
		{"no TOK_ID", "600c" + oid + "01", "before its TOK_ID"},
	} {
		b, _ := hex.DecodeString(tc.hex)
		if _, _, err := unframeToken(b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestGSSAPIWrapVectors: the security layer messages of RFC 4752 as a real Kerberos server
// and client wrapped them (gokrb5's gssapi/wrapToken_test.go vectors, AES-128, RFC 4121
// §4.2.6.2 integrity-only Wrap tokens).
func TestGSSAPIWrapVectors(t *testing.T) {
	kv, _ := hex.DecodeString("14f9bde6b50ec508201a97f74c4e5bd3")
	key := types.EncryptionKey{KeyType: etypeID.AES128_CTS_HMAC_SHA1_96, KeyValue: kv}
	fromAcceptor, _ := hex.DecodeString("050401ff000c000000000000575e85d601010000853b728d5268525a1386c19f")
	fromInitiator, _ := hex.DecodeString("050400ff000c000000000000000000000101000079a033510b6f127212242b97")

	u, err := unwrapToken(key, keyusage.GSSAPI_ACCEPTOR_SEAL, true, fromAcceptor)
	if err != nil {
		t.Fatal(err)
	}
	if u.seq != 0x575e85d6 || u.flags != wrapSentByAcceptor || !bytes.Equal(u.payload, []byte{1, 1, 0, 0}) {
		t.Fatalf("acceptor token: seq %x flags %x payload %x", u.seq, u.flags, u.payload)
	}
	got, err := wrapToken(key, keyusage.GSSAPI_INITIATOR_SEAL, 0, 0, []byte{1, 1, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, fromInitiator) {
		t.Fatalf("initiator token\n got %x\nwant %x", got, fromInitiator)
	}
	got, err = wrapToken(key, keyusage.GSSAPI_ACCEPTOR_SEAL, wrapSentByAcceptor, 0x575e85d6, []byte{1, 1, 0, 0})
	if err != nil || !bytes.Equal(got, fromAcceptor) {
		t.Fatalf("acceptor token\n got %x\nwant %x (%v)", got, fromAcceptor, err)
	}
	// The same tokens, read as the wrong side, or with the wrong usage, or changed.
	if _, err := unwrapToken(key, keyusage.GSSAPI_ACCEPTOR_SEAL, false, fromAcceptor); err == nil {
		t.Error("acceptor token taken as the initiator's")
	}
	if _, err := unwrapToken(key, keyusage.GSSAPI_INITIATOR_SEAL, true, fromAcceptor); err == nil {
		t.Error("acceptor token verified with the initiator's key usage")
	}
	for i := range fromAcceptor {
		if i == 6 || i == 7 {
			// RRC: not covered by the checksum (RFC 4121 §4.2.5); a rotation by a multiple of
			// the data's length (16 octets here) is no rotation.
			continue
		}
		bad := bytes.Clone(fromAcceptor)
		bad[i] ^= 0x10
		if _, err := unwrapToken(key, keyusage.GSSAPI_ACCEPTOR_SEAL, true, bad); err == nil {
			t.Errorf("changed octet %d: accepted", i)
		}
	}
}

// TestGSSAPIWrapForms: rotated (RRC) and sealed Wrap tokens, which RFC 4121 §4.2.5 lets a peer
// send, are read as well as the plain ones tern writes; for every AES type.
func TestGSSAPIWrapForms(t *testing.T) {
	payload := []byte("\x01\x00\x00\x00alice@example.test")
	for _, id := range []int32{etypeID.AES128_CTS_HMAC_SHA1_96, etypeID.AES256_CTS_HMAC_SHA1_96,
		etypeID.AES128_CTS_HMAC_SHA256_128, etypeID.AES256_CTS_HMAC_SHA384_192} {
		et, err := crypto.GetEtype(id)
		if err != nil {
			t.Fatal(err)
		}
		// gokrb5 says AES-256-SHA384 keys have 24 octets (GetKeyByteSize) and then wants 32
		// (RFC 8009 §3), so types.GenerateEncryptionKey makes unusable ones.
		size := et.GetKeyByteSize()
		if id == etypeID.AES256_CTS_HMAC_SHA384_192 {
			size = 32
		}
		key := types.EncryptionKey{KeyType: id, KeyValue: make([]byte, size)}
		if _, err := rand.Read(key.KeyValue); err != nil {
			t.Fatal(err)
		}
		usage := uint32(keyusage.GSSAPI_INITIATOR_SEAL)
		plain, err := wrapToken(key, usage, 0, 42, payload)
		if err != nil {
			t.Fatal(err)
		}
		rotate := func(tok []byte, rrc int) []byte {
			out := bytes.Clone(tok[:16])
			binary.BigEndian.PutUint16(out[6:], uint16(rrc))
			data := tok[16:]
			r := rrc % len(data)
			return append(append(out, data[len(data)-r:]...), data[:len(data)-r]...)
		}
		// sealed encrypts plaintext | EC filler | header (RRC 0), RFC 4121 §4.2.4.
		sealed := func(ec int) []byte {
			hdr := wrapHeader(wrapSealed, uint16(ec), 0, 42)
			msg := append(append(bytes.Clone(payload), make([]byte, ec)...), hdr...)
			_, ct, err := et.EncryptMessage(key.KeyValue, msg, usage)
			if err != nil {
				t.Fatal(err)
			}
			return append(hdr, ct...)
		}
		for _, tc := range []struct {
			name string
			tok  []byte
		}{
			{"plain", plain},
			{"rotated 12", rotate(plain, 12)},
			{"rotated 28", rotate(plain, 28)},
			{"rotated past the end", rotate(plain, 1000)},
			{"sealed", sealed(0)},
			{"sealed with filler", sealed(3)},
			{"sealed and rotated 28", rotate(sealed(0), 28)},
		} {
			u, err := unwrapToken(key, usage, false, tc.tok)
			if err != nil || !bytes.Equal(u.payload, payload) || u.seq != 42 {
				t.Errorf("etype %d, %s: %q, seq %d, %v", id, tc.name, u.payload, u.seq, err)
			}
		}
		// A sealed token whose encrypted header copy differs from the one sent.
		bad := sealed(0)
		bad[8] ^= 1
		if _, err := unwrapToken(key, usage, false, bad); err == nil {
			t.Errorf("etype %d: sealed token with a changed header accepted", id)
		}
		if _, err := unwrapToken(key, usage, false, sealed(0)[:30]); err == nil {
			t.Errorf("etype %d: truncated sealed token accepted", id)
		}
	}
	rc4 := types.EncryptionKey{KeyType: etypeID.RC4_HMAC, KeyValue: make([]byte, 16)}
	if _, err := wrapToken(rc4, 24, 0, 0, payload); err == nil {
		t.Error("RC4 wrap token made")
	}
}

func TestDescribeGSSAPIToken(t *testing.T) {
	g := newGSSSetup(t)
	c := g.client(fakeKDC{client: "alice"}, "bob@example.test")
	_, ir, err := c.Start()
	if err != nil {
		t.Fatal(err)
	}
	s := g.server(t, gssCreds{}, true)
	rep, _, err := s.Next(ir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Next(rep); err != nil {
		t.Fatal(err)
	}
	offer, _, err := s.Next([]byte{})
	if err != nil {
		t.Fatal(err)
	}
	answer, err := c.Next(offer)
	if err != nil {
		t.Fatal(err)
	}
	ke := messages.NewKRBError(types.NewPrincipalName(nametype.KRB_NT_SRV_HST, krbSPN), krbRealm, 32, "")
	keb, _ := ke.Marshal()
	for _, tc := range []struct {
		tok  []byte
		want string
	}{
		{ir, "GSSAPI AP-REQ (RFC 4121 §4.1): a ticket for smtp/mx.example.test@TERN.TEST, aes256-cts-hmac-sha1-96, kvno 2; mutual authentication asked for"},
		{rep, "GSSAPI AP-REP (RFC 4121 §4.1): the server's proof that it holds the service key"},
		{offer, "GSSAPI Wrap token (RFC 4121 §4.2.6.2) from the server, seq "},
		{offer, ": security layers offered none, max size 0 (RFC 4752 §3.1)"},
		{answer, `from the client, seq `},
		{answer, `: security layer chosen none, max size 0 (RFC 4752 §3.1), authzid "bob@example.test"`},
		{frameToken(tokKRBError, keb), "GSSAPI KRB-ERROR: (32) KRB_AP_ERR_TKT_EXPIRED Ticket expired"},
	} {
		got, ok := DescribeGSSAPIToken(tc.tok)
		if !ok || !strings.Contains(got, tc.want) {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	for _, b := range [][]byte{nil, []byte("hello"), {0x60, 0x01}} {
		if got, ok := DescribeGSSAPIToken(b); ok {
			t.Errorf("%q: %q", b, got)
		}
	}
}
