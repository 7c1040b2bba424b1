package accounts

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

func TestPhcPrefixMatchesLibrary(t *testing.T) {
	if want := fmt.Sprintf("$argon2id$v=%d$", argon2.Version); phcPrefix != want {
		t.Fatalf("phcPrefix = %q, library version gives %q", phcPrefix, want)
	}
}

func TestHashPasswordFormat(t *testing.T) {
	// OWASP parameters, 16-octet salt (22 base64 chars), 32-octet key (43 base64 chars).
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	h1, err := HashPassword("secret")
	if err != nil {
		t.Fatal(err)
	}
	if !re.MatchString(h1) {
		t.Errorf("hash %q does not match %v", h1, re)
	}
	h2, err := HashPassword("secret")
	if err != nil {
		t.Fatal(err)
	}
	if h1 == h2 {
		t.Errorf("two hashes of the same password are equal (%q): salt not random", h1)
	}
	if strings.Contains(h1, "secret") {
		t.Errorf("hash %q contains the password", h1)
	}
}

func TestHashPasswordEmpty(t *testing.T) {
	if h, err := HashPassword(""); !errors.Is(err, ErrEmptyPassword) {
		t.Fatalf(`HashPassword("") = %q, %v; want ErrEmptyPassword`, h, err)
	}
}

func TestCheckPassword(t *testing.T) {
	enc, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	// A hash with other parameters, as a later version might write: CheckPassword must use
	// the parameters in the string, not the current defaults.
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte("old pw"), salt, 3, 64, 2, 16)
	other := fmt.Sprintf("$argon2id$v=19$m=64,t=3,p=2$%s$%s",
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))

	tests := []struct {
		name, enc, pw string
		want          bool
	}{
		{"right", enc, "correct horse", true},
		{"wrong", enc, "correct horse!", false},
		{"case differs", enc, "Correct horse", false},
		{"empty", enc, "", false},
		{"other params right", other, "old pw", true},
		{"other params wrong", other, "old pw ", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckPassword(tc.enc, tc.pw)
			if err != nil {
				t.Fatalf("CheckPassword: %v", err)
			}
			if got != tc.want {
				t.Errorf("CheckPassword(%q) = %v, want %v", tc.pw, got, tc.want)
			}
		})
	}
}

func TestCheckPasswordMalformed(t *testing.T) {
	const (
		salt = "MDEyMzQ1Njc4OWFiY2RlZg"                      // 16 octets
		key  = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA" // 32 octets
	)
	ok := "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key
	if _, err := CheckPassword(ok, "x"); err != nil {
		t.Fatalf("control case %q: %v", ok, err)
	}
	tests := []struct{ name, enc string }{
		{"empty", ""},
		{"plaintext", "secret"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"version 16", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"missing hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt},
		{"extra field", ok + "$x"},
		{"params order", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key},
		{"extra param", "$argon2id$v=19$m=64,t=1,p=1,keyid=x$" + salt + "$" + key},
		{"zero time", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key},
		{"zero threads", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key},
		{"zero memory", "$argon2id$v=19$m=0,t=1,p=1$" + salt + "$" + key},
		{"huge memory", "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key},
		{"huge time", "$argon2id$v=19$m=64,t=1000000,p=1$" + salt + "$" + key},
		{"threads over uint8", "$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key},
		{"negative", "$argon2id$v=19$m=-64,t=1,p=1$" + salt + "$" + key},
		{"plus sign", "$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key},
		{"leading zero", "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key},
		{"padded salt", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key},
		{"bad base64", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:42] + "!"},
		{"non-canonical base64", "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZh$" + key},
		{"short salt", "$argon2id$v=19$m=64,t=1,p=1$MDEy$" + key},
		{"short key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$MDEy"},
		{"too long", ok + strings.Repeat("A", 600)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckPassword(tc.enc, "x")
			if !errors.Is(err, ErrBadHash) {
				t.Fatalf("CheckPassword(%q) = %v, %v; want ErrBadHash", tc.enc, got, err)
			}
			if got {
				t.Errorf("CheckPassword(%q) reported a match with its error", tc.enc)
			}
		})
	}
}

func TestDecoy(t *testing.T) {
	var d Decoy
	for i := range 3 {
		if err := d.Check("anything"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if _, err := parsePHC(d.encoded); err != nil {
		t.Fatalf("decoy hash %q: %v", d.encoded, err)
	}
}

// FuzzParsePHC fuzzes the stored-hash parser alone: CheckPassword would run argon2 with
// whatever cost the fuzzer invents.
func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA")
	f.Add("$argon2id$v=19$m=64,t=3,p=2$MDEyMzQ1Njc4OWFiY2RlZg$q83vEjRWeJCrze8SNFZ4kA")
	f.Add("$argon2id$v=19$m=,t=,p=$$")
	f.Fuzz(func(t *testing.T, in string) {
		p, err := parsePHC(in)
		if err != nil {
			if !errors.Is(err, ErrBadHash) {
				t.Fatalf("parsePHC(%q) error %v does not wrap ErrBadHash", in, err)
			}
			return
		}
		if p.memory == 0 || p.memory > maxArgonMemory || p.time == 0 || p.time > maxArgonTime || p.threads == 0 {
			t.Fatalf("parsePHC(%q) accepted parameters %+v", in, p)
		}
		// One encoding per hash: what we parsed is what we would write.
		if got := p.String(); got != in {
			t.Fatalf("parsePHC(%q) re-encodes as %q", in, got)
		}
	})
}
