package sasl

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// pwStore is the Credentials of the tests of PLAIN, LOGIN, CRAM and DIGEST-MD5: a map of
// account to password, a login without '@' taken into example.test, secrets derived on the
// fly. With wrong set, every password is a different one: a server that accepts an exchange
// made for the real password with a wrong store has a hole.
type pwStore struct {
	wrong bool
}

// Accounts of pwStore. brokenAccount's store fails; corruptAccount's secrets are garbage.
const (
	brokenAccount  = "broken@example.test"
	corruptAccount = "corrupt@example.test"
)

func (pwStore) passwords() map[string]string {
	return map[string]string{
		"kenneth.burgener@example.test": "ImBB1999!",              // the seeds' PLAIN and LOGIN user
		"tim@example.test":              "tanstaaftanstaaf",       // RFC 2195 §2
		"postmaster@example.com":        "pass",                   // the seeds' indimail CRAM-MD5
		"chris@elwood.innosoft.com":     "secret",                 // RFC 2831 §4
		"bjørn@exämple.test":            "pässwörd",               // ISO 8859-1 characters
		"zoë@example.test":              "密码",                     // not ISO 8859-1
		"long@example.test":             strings.Repeat("k", 100), // longer than a hash block
		corruptAccount:                  "corrupt",
	}
}

// pwStoreRealms are the local domains pwStore's DIGEST-MD5 secrets were derived for; the
// tests' servers offer these or some of them.
func pwStoreRealms() []string {
	return []string{"example.test", "other.test", "exämple.test", "example.com", "elwood.innosoft.com"}
}

// resolve returns the account of login, as a real store would: lower-cased, in the default
// domain if it has none.
func (s pwStore) resolve(login string) (account, password string, err error) {
	account = strings.ToLower(login)
	if !strings.Contains(account, "@") {
		account += "@example.test"
	}
	if account == brokenAccount {
		return "", "", fmt.Errorf("%w: test store is down", ErrUnavailable)
	}
	password, ok := s.passwords()[account]
	if !ok {
		return "", "", fmt.Errorf("%w: no such user", ErrAuthFailed)
	}
	if s.wrong {
		password += "!"
	}
	return account, password, nil
}

func (s pwStore) CheckPassword(ctx context.Context, login, password string) (string, error) {
	account, want, err := s.resolve(login)
	if err != nil {
		return "", err
	}
	if password != want {
		return "", fmt.Errorf("%w: wrong password", ErrAuthFailed)
	}
	return account, nil
}

func (s pwStore) Secret(ctx context.Context, login, kind string) (string, []byte, error) {
	account, password, err := s.resolve(login)
	if err != nil {
		return "", nil, err
	}
	if account == corruptAccount {
		return account, []byte{9, 9, 9}, nil
	}
	var secret []byte
	switch kind {
	case SecretCRAMMD5, SecretCRAMSHA1:
		secret, err = deriveCRAM(kind, password)
	case SecretDigestMD5:
		secret, err = deriveDigestMD5(account, password, pwStoreRealms())
	default:
		return "", nil, fmt.Errorf("%w: no %s secret", ErrAuthFailed, kind)
	}
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return account, secret, nil
}

// runExchange runs a client against a server to the end and returns the server's identity,
// the number of server steps, and the first error of either side.
func runExchange(t *testing.T, c Client, s Server) (identity string, steps int, err error) {
	t.Helper()
	_, ir, err := c.Start()
	if err != nil {
		return "", 0, fmt.Errorf("client start: %w", err)
	}
	msg := ir
	for steps = 1; steps < 10; steps++ {
		challenge, done, err := s.Next(msg)
		if done {
			if err == nil && s.Identity() == "" {
				t.Errorf("success without an identity")
			}
			if err != nil && s.Identity() != "" {
				t.Errorf("identity %q after failure", s.Identity())
			}
			return s.Identity(), steps, err
		}
		if err != nil {
			t.Fatalf("server error %v without done", err)
		}
		if s.Identity() != "" {
			t.Errorf("identity %q before the end", s.Identity())
		}
		if msg, err = c.Next(challenge); err != nil {
			return "", steps, fmt.Errorf("client: %w", err)
		}
	}
	t.Fatalf("exchange not over after %d steps", steps)
	return "", steps, nil
}

// checkErr fails the test unless err matches want (nil: no error).
func checkErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("error %v, want none", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("error %v, want %v", err, want)
	}
}

func TestPlainRoundTrip(t *testing.T) {
	tests := []struct {
		name                    string
		authzid, user, password string
		allowAuthzID            bool
		want                    string // identity
		wantErr                 error
	}{
		{"full address", "", "kenneth.burgener@example.test", "ImBB1999!", false, "kenneth.burgener@example.test", nil},
		{"no domain", "", "kenneth.burgener", "ImBB1999!", false, "kenneth.burgener@example.test", nil},
		{"other case", "", "Kenneth.Burgener@Example.Test", "ImBB1999!", false, "kenneth.burgener@example.test", nil},
		{"non-ASCII", "", "bjørn@exämple.test", "pässwörd", false, "bjørn@exämple.test", nil},
		{"authzid as typed", "KENNETH.BURGENER", "kenneth.burgener", "ImBB1999!", false, "kenneth.burgener@example.test", nil},
		{"authzid the account", "kenneth.burgener@example.test", "kenneth.burgener", "ImBB1999!", false, "kenneth.burgener@example.test", nil},
		{"authzid other", "tim@example.test", "kenneth.burgener", "ImBB1999!", false, "", ErrAuthFailed},
		{"authzid other allowed", "tim@example.test", "kenneth.burgener", "ImBB1999!", true, "tim@example.test", nil},
		{"authzid allowed wrong password", "tim@example.test", "kenneth.burgener", "x", true, "", ErrAuthFailed},
		{"wrong password", "", "kenneth.burgener", "ImBB1999", false, "", ErrAuthFailed},
		{"password other case", "", "kenneth.burgener", "imbb1999!", false, "", ErrAuthFailed},
		{"unknown user", "", "nobody", "ImBB1999!", false, "", ErrAuthFailed},
		{"store down", "", brokenAccount, "x", false, "", ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewPlainServer(t.Context(), pwStore{}, ServerOptions{AllowAuthzID: tt.allowAuthzID})
			id, steps, err := runExchange(t, NewPlainClient(tt.authzid, tt.user, tt.password), s)
			checkErr(t, err, tt.wantErr)
			if id != tt.want || steps != 1 {
				t.Errorf("identity %q after %d steps, want %q after 1", id, steps, tt.want)
			}
		})
	}
}

// The seeds' "AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh", as an initial response and
// after an empty challenge ("AUTH PLAIN", "334 ").
func TestPlainSeed(t *testing.T) {
	const seed = "AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh"
	msg, err := base64.StdEncoding.DecodeString(seed)
	if err != nil {
		t.Fatal(err)
	}
	_, ir, err := NewPlainClient("", "kenneth.burgener", "ImBB1999!").Start()
	if err != nil || !bytes.Equal(ir, msg) {
		t.Errorf("client's initial response %q, %v; want the seed's %q", ir, err, msg)
	}
	for _, withIR := range []bool{true, false} {
		t.Run(fmt.Sprintf("initial response %v", withIR), func(t *testing.T) {
			s := NewPlainServer(t.Context(), pwStore{}, ServerOptions{})
			if !withIR {
				challenge, done, err := s.Next(nil)
				if len(challenge) != 0 || done || err != nil {
					t.Fatalf("Next(nil) = %q, %v, %v; want an empty challenge", challenge, done, err)
				}
			}
			challenge, done, err := s.Next(msg)
			if challenge != nil || !done || err != nil || s.Identity() != "kenneth.burgener@example.test" {
				t.Fatalf("Next = %q, %v, %v, identity %q", challenge, done, err, s.Identity())
			}
		})
	}
	t.Run("wrong store", func(t *testing.T) {
		s := NewPlainServer(t.Context(), pwStore{wrong: true}, ServerOptions{})
		if _, _, err := s.Next(msg); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("error %v, want ErrAuthFailed", err)
		}
	})
}

func TestPlainServerMalformed(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name    string
		msg     string
		wantErr error
	}{
		{"empty", "", ErrProtocol},
		{"one NUL", "kenneth.burgener\x00ImBB1999!", ErrProtocol},
		{"no NUL", "kenneth.burgener ImBB1999!", ErrProtocol},
		{"three NULs", "\x00kenneth.burgener\x00ImBB1999!\x00", ErrProtocol},
		{"empty authcid", "kenneth.burgener\x00\x00ImBB1999!", ErrProtocol},
		{"empty password", "\x00kenneth.burgener\x00", ErrProtocol},
		{"authcid not UTF-8", "\x00kenneth\xff\x00ImBB1999!", ErrProtocol},
		{"authzid not UTF-8", "\xc3\x00kenneth.burgener\x00ImBB1999!", ErrProtocol},
		{"password not UTF-8", "\x00kenneth.burgener\x00ImBB1999\xff", ErrProtocol},
		{"authzid too long", long(321) + "\x00kenneth.burgener\x00ImBB1999!", ErrProtocol},
		{"authcid too long", "\x00" + long(321) + "\x00ImBB1999!", ErrProtocol},
		{"password too long", "\x00kenneth.burgener\x00" + long(1025), ErrProtocol},
		{"whole too long", long(5000), ErrProtocol},
		// At the limits the message is well-formed, and it is the check that fails.
		{"longest authcid", "\x00" + long(320) + "\x00ImBB1999!", ErrAuthFailed},
		{"longest password", "\x00kenneth.burgener\x00" + long(1024), ErrAuthFailed},
		{"longest authzid", long(320) + "\x00kenneth.burgener\x00ImBB1999!", ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewPlainServer(t.Context(), pwStore{}, ServerOptions{})
			challenge, done, err := s.Next([]byte(tt.msg))
			if challenge != nil || !done {
				t.Errorf("Next = %q, %v; want nil, true", challenge, done)
			}
			checkErr(t, err, tt.wantErr)
			if strings.Contains(err.Error(), "ImBB1999") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// Every call after the end of an exchange, successful or not, is a protocol error.
func TestPlainServerSequence(t *testing.T) {
	good := []byte("\x00kenneth.burgener\x00ImBB1999!")
	tests := []struct {
		name  string
		steps [][]byte
		last  error // the error of the last step
	}{
		{"after success", [][]byte{good, good}, ErrProtocol},
		{"after empty challenge and success", [][]byte{nil, good, nil}, ErrProtocol},
		{"after failure", [][]byte{[]byte("\x00kenneth.burgener\x00x"), good}, ErrProtocol},
		{"nil after empty challenge", [][]byte{nil, nil}, ErrProtocol},
		{"empty initial response", [][]byte{{}}, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewPlainServer(t.Context(), pwStore{}, ServerOptions{})
			var err error
			for _, step := range tt.steps {
				_, _, err = s.Next(step)
			}
			checkErr(t, err, tt.last)
		})
	}
}

func TestPlainClient(t *testing.T) {
	for _, tt := range []struct{ name, authzid, user, password string }{
		{"empty user", "", "", "pw"},
		{"empty password", "", "user", ""},
		{"NUL in user", "", "us\x00er", "pw"},
		{"NUL in authzid", "a\x00", "user", "pw"},
		{"NUL in password", "", "user", "p\x00w"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := NewPlainClient(tt.authzid, tt.user, tt.password).Start(); err == nil {
				t.Errorf("Start succeeded")
			}
		})
	}
	t.Run("empty challenge", func(t *testing.T) {
		c := NewPlainClient("", "user", "pw")
		resp, err := c.Next([]byte{})
		if err != nil || string(resp) != "\x00user\x00pw" {
			t.Errorf("Next(empty) = %q, %v", resp, err)
		}
		if _, err := c.Next([]byte{}); err == nil {
			t.Errorf("second Next succeeded")
		}
	})
	t.Run("non-empty challenge", func(t *testing.T) {
		if _, err := NewPlainClient("", "user", "pw").Next([]byte("?")); err == nil {
			t.Errorf("Next succeeded")
		}
	})
}

// An error of Credentials that is neither ErrAuthFailed nor ErrUnavailable becomes
// ErrUnavailable, keeping the original for errors.Is.
func TestCredentialsError(t *testing.T) {
	errDisk := errors.New("disk on fire")
	for _, tt := range []struct {
		in   error
		want []error
	}{
		{fmt.Errorf("%w: x", ErrAuthFailed), []error{ErrAuthFailed}},
		{fmt.Errorf("%w: x", ErrUnavailable), []error{ErrUnavailable}},
		{errDisk, []error{ErrUnavailable, errDisk}},
		{context.Canceled, []error{ErrUnavailable, context.Canceled}},
	} {
		got := credentialsError(tt.in)
		for _, w := range tt.want {
			if !errors.Is(got, w) {
				t.Errorf("credentialsError(%v) = %v, not %v", tt.in, got, w)
			}
		}
	}
}

// The client's initial response is what goes, base64-encoded, on the AUTH line (RFC 4954 §4).
func ExampleNewPlainClient() {
	c := NewPlainClient("", "kenneth.burgener", "ImBB1999!")
	mech, ir, err := c.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("AUTH %s %s\n", mech, base64.StdEncoding.EncodeToString(ir))
	// Output:
	// AUTH PLAIN AGtlbm5ldGguYnVyZ2VuZXIASW1CQjE5OTkh
}

// plainSeeds are realistic PLAIN messages for the fuzzer.
var plainSeeds = []string{
	"\x00kenneth.burgener\x00ImBB1999!",
	"kenneth.burgener\x00kenneth.burgener\x00ImBB1999!",
	"tim@example.test\x00kenneth.burgener@example.test\x00ImBB1999!",
	"\x00bjørn@exämple.test\x00pässwörd",
	"\x00postmaster@example.com\x00pass",
	"\x00jms1@jms1.net\x00not.my.real.password",
	"\x00\x00",
	"",
}

// FuzzPlainServer feeds messages to PLAIN servers, as initial response and after the empty
// challenge. The server must not panic, must answer every call after the end with
// ErrProtocol, and must never accept the same message with the right store and with the
// wrong one, whose password differs.
func FuzzPlainServer(f *testing.F) {
	for _, s := range plainSeeds {
		f.Add([]byte(s), false, false)
		f.Add([]byte(s), true, true)
	}
	f.Fuzz(func(t *testing.T, msg []byte, emptyChallenge, allowAuthzID bool) {
		var accepted [2]bool // by the right store, by the wrong one
		for k, store := range []pwStore{{}, {wrong: true}} {
			s := NewPlainServer(context.Background(), store, ServerOptions{AllowAuthzID: allowAuthzID})
			if emptyChallenge {
				if c, done, err := s.Next(nil); len(c) != 0 || done || err != nil {
					t.Fatalf("Next(nil) = %q, %v, %v", c, done, err)
				}
			}
			_, done, err := s.Next(msg)
			if !done {
				t.Fatalf("not done after the message")
			}
			if err == nil {
				accepted[k] = true
				fields := strings.Split(string(msg), "\x00")
				account, _, _ := store.resolve(fields[1])
				if s.Identity() != account && !(allowAuthzID && s.Identity() == fields[0]) {
					t.Fatalf("identity %q for %q", s.Identity(), msg)
				}
			}
			if _, _, err := s.Next(msg); !errors.Is(err, ErrProtocol) {
				t.Fatalf("Next after the end: %v", err)
			}
		}
		if accepted[0] && accepted[1] {
			t.Fatalf("the right and the wrong password both accepted %q", msg)
		}
	})
}
