package dkim

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// FuzzParseKey: a stored key blob, however damaged, gives a key or ErrBadKey, never a panic.
func FuzzParseKey(f *testing.F) {
	for _, a := range []Algorithm{Ed25519, RSA} {
		_, blob, err := GenerateKey(a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(a), blob)
	}
	f.Add("rsa", []byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, alg string, blob []byte) {
		k, err := ParseKey(Algorithm(alg), blob)
		if err != nil {
			return
		}
		if _, err := TXTValue(k); err != nil {
			t.Errorf("a parsed key has no TXT record: %v", err)
		}
	})
}

// FuzzNames: what NormalizeDomain and CheckSelector take makes a record name that is a valid
// DNS name of LDH labels.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"example.test", "Example.TEST.", "a-b.c", "xn--bcher-kva.example", "a..b", "-a", "bücher.de", "20261205-rsa"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, domain, selector string) {
		d, err := NormalizeDomain(domain)
		if err != nil || CheckSelector(selector) != nil {
			return
		}
		name := RecordName(selector, d)
		if len(name) > 253+64+len("._domainkey.") || checkName(strings.Replace(name, "._domainkey.", ".domainkey.", 1), 400) != nil || strings.ToLower(d) != d {
			t.Errorf("NormalizeDomain(%q), CheckSelector(%q) gave %q", domain, selector, name)
		}
	})
}

// FuzzVerify: any header section (malformed signatures, signature loops, odd folding) gives a
// result per signature or an error, never a panic.
func FuzzVerify(f *testing.F) {
	msg, err := os.ReadFile("testdata/rfc8463.eml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg)
	f.Add([]byte("DKIM-Signature: v=1; a=rsa-sha256; d=; s=; h=from; bh=; b=\r\nFrom: a\r\n\r\n"))
	f.Add([]byte("DKIM-Signature:\r\n \r\n\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		v, err := Verify(context.Background(), bytes.NewReader(msg), rfc8463Keys)
		if err != nil {
			return
		}
		if len(v.Results) == 0 || len(v.Results) > MaxSignatures {
			t.Errorf("%d results", len(v.Results))
		}
	})
}

// FuzzFromDomain: any header section gives one domain the message is signed for (lower-case
// A-labels), none, or an error, never a panic.
func FuzzFromDomain(f *testing.F) {
	for _, s := range []string{
		"From: Alice <alice@Example.ORG>\r\n\r\n",
		"From: a@x.test, \"B, b\" <b@x.test>\r\nFrom: c@y.test\r\n\r\n",
		"From: =?utf-8?q?caf=C3=A9?= <a@x.test>\r\n\r\n",
		"from:\r\n\tgroup: a@x.test, b@y.test;\r\n\r\n",
		"From: a@\r\n\r\n",
		"From: \"a@b\"@c.test.\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		fields, _, err := readHeader(bufio.NewReader(bytes.NewReader(msg)))
		if err != nil {
			return
		}
		d, err := fromDomain(fields)
		if err != nil || d == "" {
			return
		}
		if strings.ToLower(d) != d || strings.Trim(d, "abcdefghijklmnopqrstuvwxyz0123456789-._") != "" {
			t.Errorf("fromDomain gave %q for %q", d, msg)
		}
	})
}
