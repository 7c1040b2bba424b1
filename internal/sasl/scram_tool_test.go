package sasl

import (
	"testing"
)

// NewScramClientNonce reproduces RFC 5802 §5 and RFC 7677 §3.
func TestScramClientNonceVectors(t *testing.T) {
	for _, tt := range []struct {
		mech, nonce                                        string
		clientFirst, serverFirst, clientFinal, serverFinal string
	}{{
		ScramSHA1, "fyko+d2lbbFgONRv9qkxdawL",
		"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	}, {
		ScramSHA256, "rOprNGfwEbeRWgbNEkqO",
		"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
		"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	}} {
		t.Run(tt.mech, func(t *testing.T) {
			c := NewScramClientNonce(tt.mech, "", "user", "pencil", tt.nonce)
			if mech, ir, err := c.Start(); err != nil || mech != tt.mech || string(ir) != tt.clientFirst {
				t.Fatalf("Start = %q, %q, %v", mech, ir, err)
			}
			if final, err := c.Next([]byte(tt.serverFirst)); err != nil || string(final) != tt.clientFinal {
				t.Fatalf("Next(server-first) = %q, %v; want %q", final, err, tt.clientFinal)
			}
			if last, err := c.Next([]byte(tt.serverFinal)); err != nil || last == nil || len(last) != 0 {
				t.Fatalf("Next(server-final) = %q, %v", last, err)
			}
		})
	}
}

func TestScramClientNonceRefused(t *testing.T) {
	for _, tt := range []struct{ name, mech, nonce string }{
		{"empty nonce", ScramSHA256, ""},
		{"comma", ScramSHA256, "ab,c"},
		{"space", ScramSHA256, "ab c"},
		{"non-ASCII", ScramSHA256, "abé"},
		{"-PLUS", ScramSHA256Plus, "abc"},
		{"not SCRAM", Plain, "abc"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := NewScramClientNonce(tt.mech, "", "user", "pencil", tt.nonce)
			if _, ir, err := c.Start(); err == nil {
				t.Errorf("Start = %q, want an error", ir)
			}
		})
	}
}
