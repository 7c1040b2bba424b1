package dkim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// mapResolver is a Resolver over fixed records; a name it lacks does not exist, and the name
// "down" in a lookup is a DNS failure.
type mapResolver map[string][]string

func (m mapResolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	if strings.Contains(name, "down") {
		return nil, errors.New("i/o timeout")
	}
	txt, ok := m[strings.TrimSuffix(name, ".")]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, ErrNoRecord)
	}
	return txt, nil
}

// RFC 8463 §A.2's keys, as published.
var rfc8463Keys = mapResolver{
	"brisbane._domainkey.football.example.com": {"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
	"test._domainkey.football.example.com":     {"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB"},
}

func statuses(v Verification) string {
	var s []string
	for _, r := range v.Results {
		s = append(s, fmt.Sprintf("%s %s %s", r.Status, r.Selector, r.Algorithm))
	}
	return strings.Join(s, "; ")
}

func mustVerify(t *testing.T, msg []byte, res Resolver) Verification {
	t.Helper()
	v, err := Verify(context.Background(), bytes.NewReader(msg), res)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return v
}

func TestVerifyRFC8463(t *testing.T) {
	msg, err := os.ReadFile("testdata/rfc8463.eml")
	if err != nil {
		t.Fatal(err)
	}
	v := mustVerify(t, msg, rfc8463Keys)
	if got, want := statuses(v), "pass brisbane ed25519-sha256; pass test rsa-sha256"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if r := v.Results[0]; r.Domain != "football.example.com" || r.HeaderB != "/gCrinpcQOoI" || r.Identifier != "@football.example.com" {
		t.Errorf("result %+v", r)
	}
	// The same message changed after signing: the body, then a signed header.
	for _, c := range []struct{ from, to, want string }{
		{"hungry yet?", "hungry now?", "fail brisbane ed25519-sha256; fail test rsa-sha256"},
		{"Subject: Is dinner ready?", "Subject: Is lunch ready?", "fail brisbane ed25519-sha256; fail test rsa-sha256"},
		// Whitespace that relaxed canonicalisation (RFC 6376 §3.4.2, §3.4.4) ignores.
		{"Subject: Is dinner ready?", "SUBJECT:   Is  dinner\r\n\tready?  ", "pass brisbane ed25519-sha256; pass test rsa-sha256"},
		{"We lost the game.  Are", "We lost the game. \t Are", "pass brisbane ed25519-sha256; pass test rsa-sha256"},
		{"Joe.\r\n", "Joe.   \r\n\r\n\r\n", "pass brisbane ed25519-sha256; pass test rsa-sha256"},
		// An unsigned header may be added; a second From may not (it is oversigned).
		{"Subject:", "X-Added: yes\r\nSubject:", "pass brisbane ed25519-sha256; pass test rsa-sha256"},
		{"Subject:", "From: Mallory <m@example.net>\r\nSubject:", "fail brisbane ed25519-sha256; fail test rsa-sha256"},
	} {
		changed := strings.Replace(string(msg), c.from, c.to, 1)
		if got := statuses(mustVerify(t, []byte(changed), rfc8463Keys)); got != c.want {
			t.Errorf("%q -> %q: got %q, want %q", c.from, c.to, got, c.want)
		}
	}
}

func TestVerifyResults(t *testing.T) {
	msg, err := os.ReadFile("testdata/rfc8463.eml")
	if err != nil {
		t.Fatal(err)
	}
	m := string(msg)
	tests := []struct {
		name   string
		msg    string
		res    mapResolver
		want   string
		reason string
	}{
		{"no signature", m[strings.Index(m, "From:"):], rfc8463Keys, "none  ", "no signature"},
		{"no key", m, mapResolver{}, "permerror brisbane ed25519-sha256; permerror test rsa-sha256", "no key"},
		{"revoked", m, mapResolver{"brisbane._domainkey.football.example.com": {"v=DKIM1; k=ed25519; p="}, "test._domainkey.football.example.com": {"v=DKIM1; p="}},
			"permerror brisbane ed25519-sha256; permerror test rsa-sha256", "revoked"},
		{"dns down", strings.ReplaceAll(m, "football.example.com;", "down.example.com;"), rfc8463Keys,
			"temperror brisbane ed25519-sha256; temperror test rsa-sha256", "key unavailable"},
		{"sha1", strings.Replace(m, "a=rsa-sha256", "a=rsa-sha1", 1), rfc8463Keys,
			"pass brisbane ed25519-sha256; permerror test rsa-sha1", "too weak"},
		{"rsa key of 512 bits", m, mapResolver{"brisbane._domainkey.football.example.com": rfc8463Keys["brisbane._domainkey.football.example.com"],
			"test._domainkey.football.example.com": {smallRSARecord(t)}},
			"pass brisbane ed25519-sha256; permerror test rsa-sha256", "too short"},
		{"body length", strings.Replace(m, "s=test;", "s=test; l=10;", 1), rfc8463Keys,
			"pass brisbane ed25519-sha256; neutral test rsa-sha256", "l="},
		{"malformed", "DKIM-Signature: v=1; a\r\n" + m, rfc8463Keys,
			"permerror  ; pass brisbane ed25519-sha256; pass test rsa-sha256", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustVerify(t, []byte(tt.msg), tt.res)
			if got := statuses(v); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			last := v.Results[len(v.Results)-1]
			if tt.name == "malformed" {
				last = v.Results[0]
			}
			if !strings.Contains(last.Reason, tt.reason) {
				t.Errorf("reason %q, want it to mention %q", last.Reason, tt.reason)
			}
		})
	}
}

// smallRSARecord is a key record of a 512-bit RSA key, under RFC 8301's floor. Go no longer
// makes such keys, and a record only needs the modulus: any odd 512-bit number will do.
func smallRSARecord(t *testing.T) string {
	t.Helper()
	n := new(big.Int).Lsh(big.NewInt(1), 511)
	n.Add(n, big.NewInt(12345))
	der, err := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: n, E: 65537})
	if err != nil {
		t.Fatal(err)
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
}

// A loop of 50 signatures costs at most MaxSignatures lookups and passes.
func TestVerifyTooMany(t *testing.T) {
	msg, err := os.ReadFile("testdata/rfc8463.eml")
	if err != nil {
		t.Fatal(err)
	}
	sig := string(msg[:bytes.Index(msg, []byte("From:"))])
	loop := strings.Repeat(sig, 25) + string(msg[bytes.Index(msg, []byte("From:")):])
	var lookups atomic.Int32
	res := countingResolver{rfc8463Keys, &lookups}
	v := mustVerify(t, []byte(loop), res)
	if len(v.Results) != MaxSignatures || v.Skipped != 50-MaxSignatures || lookups.Load() != MaxSignatures {
		t.Errorf("%d results, %d skipped, %d lookups", len(v.Results), v.Skipped, lookups.Load())
	}
}

type countingResolver struct {
	mapResolver
	n *atomic.Int32
}

func (c countingResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	c.n.Add(1)
	return c.mapResolver.LookupTXT(ctx, name)
}

const testMessage = "From: Bob <bob@example.test>\r\n" +
	"To: alice@example.net\r\n" +
	"Subject: lunch\r\n" +
	"Date: Sat, 5 Dec 2026 05:00:00 +0000\r\n" +
	"Message-ID: <1@example.test>\r\n" +
	"List-Id: <lunch.example.test>\r\n" +
	"X-Mailer: none of your business\r\n" +
	"\r\n" +
	"Shall we?\r\n"

// testKeys makes one key of each algorithm for example.test, and the records that publish them.
func testKeys(t *testing.T) ([]SigningKey, mapResolver) {
	t.Helper()
	res := mapResolver{}
	var keys []SigningKey
	for _, a := range []Algorithm{RSA, Ed25519} {
		k, blob, err := GenerateKey(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseKey(a, blob); err != nil {
			t.Fatalf("ParseKey of a fresh %s key: %v", a, err)
		}
		txt, err := TXTValue(k)
		if err != nil {
			t.Fatal(err)
		}
		sel := "s" + string(a)
		res[RecordName(sel, "example.test")] = []string{txt}
		keys = append(keys, SigningKey{Domain: "example.test", Selector: sel, Signer: k})
	}
	return keys, res
}

func TestSignBothAlgorithms(t *testing.T) {
	keys, res := testKeys(t)
	sigs, err := Sign(strings.NewReader(testMessage), keys)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(sigs, "DKIM-Signature:"); n != 2 || !strings.HasSuffix(sigs, "\r\n") {
		t.Fatalf("signatures %q", sigs)
	}
	for _, want := range []string{"a=rsa-sha256", "a=ed25519-sha256", "c=relaxed/relaxed", "d=example.test"} {
		if !strings.Contains(sigs, want) {
			t.Errorf("signatures lack %s: %q", want, sigs)
		}
	}
	h := regexpTag(sigs, "h")
	if want := "From:From:To:Subject:Date:Message-ID:List-Id"; stripSpace(h) != want {
		t.Errorf("h=%s, want %s", h, want)
	}
	v := mustVerify(t, []byte(sigs+testMessage), res)
	if got, want := statuses(v), "pass srsa rsa-sha256; pass sed25519 ed25519-sha256"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	changed := strings.Replace(sigs+testMessage, "Shall we?", "Shall we not?", 1)
	if got, want := statuses(mustVerify(t, []byte(changed), res)), "fail srsa rsa-sha256; fail sed25519 ed25519-sha256"; got != want {
		t.Errorf("changed body: got %q, want %q", got, want)
	}
}

// regexpTag returns the value of tag in the first signature of sigs.
func regexpTag(sigs, tag string) string {
	_, v, _ := strings.Cut(sigs, ":")
	v, _, _ = strings.Cut(v, "\r\nDKIM-Signature:")
	tags, err := parseTags(strings.ReplaceAll(v, "\r\n", ""))
	if err != nil {
		return err.Error()
	}
	return tags[tag]
}

func TestSignRefuses(t *testing.T) {
	keys, _ := testKeys(t)
	if _, err := Sign(strings.NewReader("Subject: x\r\n\r\nbody\r\n"), keys); err == nil {
		t.Error("signed a message without From")
	}
	if _, err := Sign(strings.NewReader(testMessage), nil); err == nil {
		t.Error("signed without keys")
	}
	long := "From: a@example.test\r\nX: " + strings.Repeat("a", maxHeader) + "\r\n\r\n"
	if _, err := Sign(strings.NewReader(long), keys); !errors.Is(err, ErrHeaderTooLong) {
		t.Errorf("huge header: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	k, blob, err := GenerateKey(Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseKey(RSA, blob); !errors.Is(err, ErrBadKey) {
		t.Errorf("an ed25519 key read as rsa: %v", err)
	}
	if _, err := ParseKey(Ed25519, blob[:10]); !errors.Is(err, ErrBadKey) {
		t.Errorf("a cut key: %v", err)
	}
	var _ crypto.Signer = k
}

func TestZoneStrings(t *testing.T) {
	v := "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 392)
	z := ZoneStrings(v)
	parts := strings.Split(z, `" "`)
	if len(parts) != 2 || len(parts[0]) != 256 || strings.Join(parts, "") != `"`+v+`"` {
		t.Errorf("ZoneStrings: %s", z)
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{"Example.TEST.": "example.test", "xn--bcher-kva.example": "xn--bcher-kva.example"} {
		if got, err := NormalizeDomain(in); err != nil || got != want {
			t.Errorf("NormalizeDomain(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "example", "a..b", "-a.b", "a b.c", "bücher.example", strings.Repeat("a", 64) + ".b"} {
		if _, err := NormalizeDomain(bad); err == nil {
			t.Errorf("NormalizeDomain(%q) took it", bad)
		}
	}
	for _, bad := range []string{"", "a;b", "a=b", "a.", strings.Repeat("a", 64)} {
		if CheckSelector(bad) == nil {
			t.Errorf("CheckSelector(%q) took it", bad)
		}
	}
	if err := CheckSelector("20261205-rsa.tern"); err != nil {
		t.Error(err)
	}
}
