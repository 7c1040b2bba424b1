package sasl

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cramOpts returns server options that make the CRAM challenge <random.unix@host>.
func cramOpts(random uint64, unix int64, host string) ServerOptions {
	return ServerOptions{
		Hostname: host,
		Rand:     bytes.NewReader(binary.BigEndian.AppendUint64(nil, random)),
		Now:      func() time.Time { return time.Unix(unix, 0) },
	}
}

// cramReference is the client's answer computed with crypto/hmac.
func cramReference(newHash func() hash.Hash, user, password, challenge string) string {
	mac := hmac.New(newHash, []byte(password))
	mac.Write([]byte(challenge))
	return fmt.Sprintf("%s %x", user, mac.Sum(nil))
}

// Test vectors: RFC 2195 §2, and the seeds' indimail exchange (challenge
// PDIwMTM3LjEyNjc1ODUxMDBAaW5kaW1haWwub3JnPg==, response cG9zdG1hc3RlckBleGFtcGxlLmNvbSBjZWU4
// Mzk3YWIxMjNhMGQ0ZjNhN2ZkZGJiOWNiODcxOQ==, password "pass"), which does verify. CRAM-SHA1
// has no published vector; its expected answers come from crypto/hmac.
func TestCRAMVectors(t *testing.T) {
	b64 := func(s string) string {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name      string
		mech      string
		opts      ServerOptions
		challenge string
		user      string
		password  string
		response  string
		want      string // identity
	}{
		{
			"RFC 2195", CRAMMD5, cramOpts(1896, 697170952, "postoffice.reston.mci.net"),
			"<1896.697170952@postoffice.reston.mci.net>", "tim", "tanstaaftanstaaf",
			"tim b913a602c7eda7a495b4e6e7334d3890", "tim@example.test",
		},
		{
			"indimail seed", CRAMMD5, cramOpts(20137, 1267585100, "indimail.org"),
			b64("PDIwMTM3LjEyNjc1ODUxMDBAaW5kaW1haWwub3JnPg=="), "postmaster@example.com", "pass",
			b64("cG9zdG1hc3RlckBleGFtcGxlLmNvbSBjZWU4Mzk3YWIxMjNhMGQ0ZjNhN2ZkZGJiOWNiODcxOQ=="),
			"postmaster@example.com",
		},
		{
			"RFC 2195 with SHA-1", CRAMSHA1, cramOpts(1896, 697170952, "postoffice.reston.mci.net"),
			"<1896.697170952@postoffice.reston.mci.net>", "tim", "tanstaaftanstaaf",
			cramReference(sha1.New, "tim", "tanstaaftanstaaf", "<1896.697170952@postoffice.reston.mci.net>"),
			"tim@example.test",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewCRAMServer(t.Context(), tt.mech, pwStore{}, tt.opts)
			challenge, done, err := s.Next(nil)
			if string(challenge) != tt.challenge || done || err != nil {
				t.Fatalf("Next(nil) = %q, %v, %v; want %q", challenge, done, err, tt.challenge)
			}
			resp, err := NewCRAMClient(tt.mech, tt.user, tt.password).Next(challenge)
			if string(resp) != tt.response || err != nil {
				t.Fatalf("client answers %q, %v; want %q", resp, err, tt.response)
			}
			if _, done, err := s.Next(resp); !done || err != nil || s.Identity() != tt.want {
				t.Fatalf("Next(response) = %v, %v, identity %q", done, err, s.Identity())
			}
		})
	}
}

// The stored states give HMAC for any password, short, block-sized or longer than a block
// (then the key is hashed first), and any challenge.
func TestDeriveCRAM(t *testing.T) {
	for _, kind := range []struct {
		name    string
		newHash func() hash.Hash
	}{{SecretCRAMMD5, md5.New}, {SecretCRAMSHA1, sha1.New}} {
		for _, n := range []int{1, 16, 63, 64, 65, 200} {
			password := strings.Repeat("p", n-1) + "é"
			secret, err := deriveCRAM(kind.name, password)
			if err != nil {
				t.Fatal(err)
			}
			for _, challenge := range []string{"", "<1.2@h>", strings.Repeat("c", 1000)} {
				inner, outer, err := cramStates(kind.newHash, kind.name, secret)
				if err != nil {
					t.Fatal(err)
				}
				mac := hmac.New(kind.newHash, []byte(password))
				mac.Write([]byte(challenge))
				if got, want := cramDigest(inner, outer, []byte(challenge)), mac.Sum(nil); !bytes.Equal(got, want) {
					t.Errorf("%s, password of %d octets, challenge %.10q: %x, want %x", kind.name, len(password), challenge, got, want)
				}
			}
		}
	}
	for _, tt := range []struct{ kind, password string }{
		{SecretCRAMMD5, ""},
		{SecretDigestMD5, "x"},
		{CRAMMD5, "x"}, // a mechanism name, not a secret kind
	} {
		if _, err := deriveCRAM(tt.kind, tt.password); err == nil {
			t.Errorf("deriveCRAM(%q, %q) succeeded", tt.kind, tt.password)
		}
	}
}

// A secret that does not parse is a store problem, visible as ErrUnavailable: never a silent
// authentication failure.
func TestCRAMCorruptSecret(t *testing.T) {
	md5Secret, err := deriveCRAM(SecretCRAMMD5, "x")
	if err != nil {
		t.Fatal(err)
	}
	sha1Secret, err := deriveCRAM(SecretCRAMSHA1, "x")
	if err != nil {
		t.Fatal(err)
	}
	digestSecret, err := deriveDigestMD5("a@b", "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	version := append([]byte{2}, md5Secret[1:]...)
	tests := []struct {
		name   string
		kind   string
		secret []byte
	}{
		{"empty", SecretCRAMMD5, nil},
		{"version", SecretCRAMMD5, version},
		{"SHA-1 for MD5", SecretCRAMMD5, sha1Secret},
		{"MD5 for SHA-1", SecretCRAMSHA1, md5Secret},
		{"DIGEST-MD5 for MD5", SecretCRAMMD5, digestSecret},
		{"truncated", SecretCRAMMD5, md5Secret[:len(md5Secret)-1]},
		{"trailing", SecretCRAMMD5, append(md5Secret[:len(md5Secret):len(md5Secret)], 0)},
		{"bad state", SecretCRAMMD5, append(md5Secret[:2:2], bytes.Repeat([]byte{'x'}, len(md5Secret)-2)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newHash, _ := cramKind(tt.kind)
			if _, _, err := cramStates(newHash, tt.kind, tt.secret); !errors.Is(err, ErrUnavailable) {
				t.Errorf("cramStates: %v, want ErrUnavailable", err)
			}
		})
	}
	t.Run("server", func(t *testing.T) {
		s := NewCRAMServer(t.Context(), CRAMMD5, pwStore{}, ServerOptions{})
		challenge, _, _ := s.Next(nil)
		resp := cramReference(md5.New, corruptAccount, "corrupt", string(challenge))
		if _, _, err := s.Next([]byte(resp)); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrAuthFailed) {
			t.Errorf("error %v, want ErrUnavailable", err)
		}
	})
}

func TestCRAMRoundTrip(t *testing.T) {
	tests := []struct {
		name           string
		user, password string
		want           string
		wantErr        error
	}{
		{"full address", "kenneth.burgener@example.test", "ImBB1999!", "kenneth.burgener@example.test", nil},
		{"no domain", "kenneth.burgener", "ImBB1999!", "kenneth.burgener@example.test", nil},
		{"long password", "long", strings.Repeat("k", 100), "long@example.test", nil},
		{"non-ASCII", "zoë@example.test", "密码", "zoë@example.test", nil},
		{"wrong password", "kenneth.burgener", "ImBB1999", "", ErrAuthFailed},
		{"unknown user", "nobody", "ImBB1999!", "", ErrAuthFailed},
		{"store down", brokenAccount, "x", "", ErrUnavailable},
	}
	for _, mech := range []string{CRAMMD5, CRAMSHA1} {
		for _, tt := range tests {
			t.Run(mech+" "+tt.name, func(t *testing.T) {
				t.Parallel()
				s := NewCRAMServer(t.Context(), mech, pwStore{}, ServerOptions{Hostname: "mx.example.test"})
				id, steps, err := runExchange(t, NewCRAMClient(mech, tt.user, tt.password), s)
				checkErr(t, err, tt.wantErr)
				if id != tt.want || steps != 2 {
					t.Errorf("identity %q after %d steps, want %q after 2", id, steps, tt.want)
				}
			})
		}
	}
}

func TestCRAMChallenge(t *testing.T) {
	re := regexp.MustCompile(`^<[0-9]+\.[0-9]+@mx\.example\.test>$`)
	seen := map[string]bool{}
	for range 10 {
		c, _, err := NewCRAMServer(t.Context(), CRAMMD5, pwStore{}, ServerOptions{Hostname: "mx.example.test"}).Next(nil)
		if err != nil || !re.Match(c) || seen[string(c)] {
			t.Fatalf("challenge %q, %v", c, err)
		}
		seen[string(c)] = true
	}
	if c, _, err := NewCRAMServer(t.Context(), CRAMMD5, pwStore{}, cramOpts(0, 0, "")).Next(nil); string(c) != "<0.0@localhost>" || err != nil {
		t.Errorf("without hostname: %q, %v", c, err)
	}
	_, _, err := NewCRAMServer(t.Context(), CRAMMD5, pwStore{}, ServerOptions{Rand: strings.NewReader("short")}).Next(nil)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("failing random source: %v, want ErrUnavailable", err)
	}
}

func TestCRAMServerMalformed(t *testing.T) {
	const challenge = "<1896.697170952@postoffice.reston.mci.net>"
	good := cramReference(md5.New, "tim", "tanstaaftanstaaf", challenge)
	digest := good[len("tim "):]
	tests := []struct {
		name     string
		response string
		wantErr  error
	}{
		{"good", good, nil},
		{"wrong digest", "tim " + strings.Repeat("0", 32), ErrAuthFailed},
		{"other user", "kenneth.burgener " + digest, ErrAuthFailed},
		{"SHA-1 length", "tim " + digest + "00000000", ErrProtocol},
		{"no space", "tim" + digest, ErrProtocol},
		{"empty", "", ErrProtocol},
		{"empty user", " " + digest, ErrProtocol},
		{"two spaces", "tim  " + digest, ErrProtocol},
		{"space in user", "t im " + digest, ErrProtocol},
		{"tab in user", "t\tim " + digest, ErrProtocol},
		{"NUL in user", "t\x00im " + digest, ErrProtocol},
		{"user not UTF-8", "tim\xff " + digest, ErrProtocol},
		{"upper-case hex", "tim " + strings.ToUpper(digest), ErrProtocol},
		{"short digest", "tim " + digest[1:], ErrProtocol},
		{"trailing space", good + " ", ErrProtocol},
		{"trailing CRLF", good + "\r\n", ErrProtocol},
		{"user too long", strings.Repeat("u", 321) + " " + digest, ErrProtocol},
		{"longest user", strings.Repeat("u", 320) + " " + digest, ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewCRAMServer(t.Context(), CRAMMD5, pwStore{}, cramOpts(1896, 697170952, "postoffice.reston.mci.net"))
			if c, _, err := s.Next(nil); string(c) != challenge || err != nil {
				t.Fatalf("challenge %q, %v", c, err)
			}
			_, done, err := s.Next([]byte(tt.response))
			if !done {
				t.Errorf("not done")
			}
			checkErr(t, err, tt.wantErr)
			if err != nil && strings.Contains(err.Error(), digest[:8]) {
				t.Errorf("error %q shows the response", err)
			}
			if _, _, err := s.Next([]byte(good)); !errors.Is(err, ErrProtocol) {
				t.Errorf("Next after the end: %v, want ErrProtocol", err)
			}
		})
	}
}

func TestCRAMServerSequence(t *testing.T) {
	for name, ir := range map[string][]byte{"initial response": []byte("tim 00"), "empty initial response": {}} {
		t.Run(name, func(t *testing.T) {
			s := NewCRAMServer(t.Context(), CRAMMD5, pwStore{}, ServerOptions{})
			if _, done, err := s.Next(ir); !done || !errors.Is(err, ErrProtocol) {
				t.Errorf("Next(%q) = %v, %v; want ErrProtocol", ir, done, err)
			}
			if _, _, err := s.Next(nil); !errors.Is(err, ErrProtocol) {
				t.Errorf("Next after the end: %v, want ErrProtocol", err)
			}
		})
	}
	t.Run("unknown mechanism", func(t *testing.T) {
		s := NewCRAMServer(t.Context(), "CRAM-SHA256", pwStore{}, ServerOptions{})
		if _, done, err := s.Next(nil); !done || err == nil {
			t.Errorf("Next = %v, %v; want an error", done, err)
		}
		if _, _, err := NewCRAMClient("CRAM-SHA256", "u", "p").Start(); err == nil {
			t.Errorf("client Start succeeded")
		}
	})
}

func TestCRAMClient(t *testing.T) {
	c := NewCRAMClient(CRAMMD5, "tim", "tanstaaftanstaaf")
	if mech, ir, err := c.Start(); mech != CRAMMD5 || ir != nil || err != nil {
		t.Fatalf("Start = %q, %q, %v", mech, ir, err)
	}
	if _, err := c.Next(nil); err == nil {
		t.Errorf("empty challenge accepted")
	}
	if _, err := c.Next([]byte("<1@h>")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Next([]byte("<1@h>")); err == nil {
		t.Errorf("second challenge accepted")
	}
	if _, _, err := NewCRAMClient(CRAMMD5, "", "p").Start(); err == nil {
		t.Errorf("empty user name accepted")
	}
}

// FuzzCRAMServer answers a fixed challenge with fuzzed responses. The server must not panic;
// with the right store it may only accept exactly what crypto/hmac computes for the user and
// password, and with the wrong store nothing.
func FuzzCRAMServer(f *testing.F) {
	const challenge = "<1896.697170952@postoffice.reston.mci.net>"
	for _, acct := range []struct{ user, password string }{
		{"tim", "tanstaaftanstaaf"}, {"kenneth.burgener@example.test", "ImBB1999!"},
		{"long", strings.Repeat("k", 100)}, {corruptAccount, "corrupt"}, {brokenAccount, "x"},
	} {
		f.Add([]byte(cramReference(md5.New, acct.user, acct.password, challenge)), false)
		f.Add([]byte(cramReference(sha1.New, acct.user, acct.password, challenge)), true)
	}
	f.Add([]byte("tim b913a602c7eda7a495b4e6e7334d3890"), false)
	f.Add([]byte(" "), false)
	f.Fuzz(func(t *testing.T, response []byte, useSHA1 bool) {
		mech, newHash := CRAMMD5, md5.New
		if useSHA1 {
			mech, newHash = CRAMSHA1, sha1.New
		}
		for _, store := range []pwStore{{}, {wrong: true}} {
			s := NewCRAMServer(context.Background(), mech, store, cramOpts(1896, 697170952, "postoffice.reston.mci.net"))
			if c, _, err := s.Next(nil); string(c) != challenge || err != nil {
				t.Fatalf("challenge %q, %v", c, err)
			}
			_, done, err := s.Next(response)
			if !done {
				t.Fatalf("not done")
			}
			if err != nil {
				continue
			}
			if store.wrong {
				t.Fatalf("wrong store accepted %q", response)
			}
			user, _, _ := strings.Cut(string(response), " ")
			account, password, err := store.resolve(user)
			if err != nil || s.Identity() != account || cramReference(newHash, user, password, challenge) != string(response) {
				t.Fatalf("accepted %q as %q", response, s.Identity())
			}
		}
	})
}
