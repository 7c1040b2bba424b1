package dkim

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// bench5K is a 5 KB message, the size the issue measures signing and verifying at.
var bench5K = testMessage + strings.Repeat("A line of about seventy characters, as mail bodies have them, ok.\r\n", 75)

func BenchmarkSign(b *testing.B) {
	for _, alg := range []Algorithm{RSA, Ed25519} {
		b.Run(string(alg), func(b *testing.B) {
			k, _, err := GenerateKey(alg)
			if err != nil {
				b.Fatal(err)
			}
			keys := []SigningKey{{Domain: "example.test", Selector: "s", Signer: k}}
			b.SetBytes(int64(len(bench5K)))
			for b.Loop() {
				if _, err := Sign(strings.NewReader(bench5K), keys); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, alg := range []Algorithm{RSA, Ed25519} {
		b.Run(string(alg), func(b *testing.B) {
			k, _, err := GenerateKey(alg)
			if err != nil {
				b.Fatal(err)
			}
			txt, err := TXTValue(k)
			if err != nil {
				b.Fatal(err)
			}
			res := mapResolver{RecordName("s", "example.test"): {txt}}
			sig, err := Sign(strings.NewReader(bench5K), []SigningKey{{Domain: "example.test", Selector: "s", Signer: k}})
			if err != nil {
				b.Fatal(err)
			}
			msg := []byte(sig + bench5K)
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				v, err := Verify(context.Background(), bytes.NewReader(msg), res)
				if err != nil || v.Results[0].Status != Pass {
					b.Fatalf("%v %+v", err, v)
				}
			}
		})
	}
}
