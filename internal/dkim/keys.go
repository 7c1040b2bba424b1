package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Algorithm is a key algorithm, the k= tag of a key record (RFC 6376 §3.6.1, RFC 8463 §3).
type Algorithm string

const (
	// RSA keys sign with rsa-sha256 (RFC 6376 §3.3.1); tern makes them 2048 bits long.
	RSA Algorithm = "rsa"
	// Ed25519 keys sign with ed25519-sha256 (RFC 8463).
	Ed25519 Algorithm = "ed25519"
)

// RSABits is the size of the RSA keys tern makes: RFC 8301 §3.2 asks signers for at least
// 1024 bits and recommends 2048; 4096-bit keys do not fit a single TXT string and some
// resolvers and verifiers handle them badly.
const RSABits = 2048

// minRSABits is RFC 8301 §3.2's floor: a smaller key is refused when signing and verifying.
const minRSABits = 1024

// ErrBadKey is the cause of a stored key blob that cannot be used.
var ErrBadKey = errors.New("dkim: bad private key")

// ParseAlgorithm reads an algorithm name as the command line gives it.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch a := Algorithm(strings.ToLower(s)); a {
	case RSA, Ed25519:
		return a, nil
	}
	return "", fmt.Errorf("dkim: unknown algorithm %q (rsa or ed25519)", s)
}

// GenerateKey makes a new private key of the algorithm a and returns it with its stored form,
// PKCS #8 DER (what MarshalKey gives).
func GenerateKey(a Algorithm) (crypto.Signer, []byte, error) {
	var k crypto.Signer
	var err error
	switch a {
	case RSA:
		k, err = rsa.GenerateKey(rand.Reader, RSABits)
	case Ed25519:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, nil, fmt.Errorf("dkim: unknown algorithm %q", a)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("dkim: generate %s key: %w", a, err)
	}
	blob, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, fmt.Errorf("dkim: %w", err)
	}
	return k, blob, nil
}

// ParseKey reads a stored private key (PKCS #8 DER) and checks that it is of algorithm a and,
// for RSA, at least RFC 8301's 1024 bits. Its errors wrap ErrBadKey.
func ParseKey(a Algorithm, blob []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(blob)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if a != RSA {
			return nil, fmt.Errorf("%w: an RSA key stored as %s", ErrBadKey, a)
		}
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("%w: RSA key of %d bits (RFC 8301 asks for 1024 at least)", ErrBadKey, k.N.BitLen())
		}
		return k, nil
	case ed25519.PrivateKey:
		if a != Ed25519 {
			return nil, fmt.Errorf("%w: an Ed25519 key stored as %s", ErrBadKey, a)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: key of type %T", ErrBadKey, k)
}

// TXTValue is the value of the key record to publish at Selector._domainkey.Domain for the
// public half of k (RFC 6376 §3.6.1): an RSA key as SubjectPublicKeyInfo, which every verifier
// reads (RFC 6376 §3.6.1's p= example), and an Ed25519 key as its 32 raw octets (RFC 8463 §4.2).
func TXTValue(k crypto.Signer) (string, error) {
	var alg Algorithm
	var p []byte
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", fmt.Errorf("dkim: %w", err)
		}
		alg, p = RSA, der
	case ed25519.PublicKey:
		alg, p = Ed25519, pub
	default:
		return "", fmt.Errorf("dkim: public key of type %T", pub)
	}
	return fmt.Sprintf("v=DKIM1; k=%s; p=%s", alg, base64.StdEncoding.EncodeToString(p)), nil
}

// RecordName is the DNS name of the key record of selector in domain (RFC 6376 §3.6.2.1).
func RecordName(selector, domain string) string {
	return selector + "._domainkey." + domain
}

// ZoneStrings splits a TXT value into the quoted strings of a zone file line: one TXT string
// holds at most 255 octets (RFC 1035 §3.3.14), and verifiers join the strings of one record
// without a separator (RFC 6376 §3.6.2.2). The value is printable ASCII without quotes or
// backslashes (base64 and tags), so nothing needs escaping.
func ZoneStrings(value string) string {
	var parts []string
	for len(value) > 255 {
		parts = append(parts, `"`+value[:255]+`"`)
		value = value[255:]
	}
	parts = append(parts, `"`+value+`"`)
	return strings.Join(parts, " ")
}
