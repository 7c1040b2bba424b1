package sasl

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestLoginRoundTrip(t *testing.T) {
	tests := []struct {
		name           string
		user, password string
		want           string
		wantErr        error
	}{
		{"full address", "kenneth.burgener@example.test", "ImBB1999!", "kenneth.burgener@example.test", nil},
		{"no domain", "kenneth.burgener", "ImBB1999!", "kenneth.burgener@example.test", nil},
		{"non-ASCII", "BJØRN@exämple.test", "pässwörd", "bjørn@exämple.test", nil},
		{"wrong password", "kenneth.burgener", "ImBB1999?", "", ErrAuthFailed},
		{"unknown user", "kenneth", "ImBB1999!", "", ErrAuthFailed},
		{"store down", brokenAccount, "x", "", ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewLoginServer(t.Context(), pwStore{}, ServerOptions{})
			id, steps, err := runExchange(t, NewLoginClient(tt.user, tt.password), s)
			checkErr(t, err, tt.wantErr)
			if id != tt.want || steps != 3 {
				t.Errorf("identity %q after %d steps, want %q after 3", id, steps, tt.want)
			}
		})
	}
}

// The seeds' exchange: "334 VXNlcm5hbWU6", "a2VubmV0aC5idXJnZW5lcg==", "334 UGFzc3dvcmQ6",
// "SW1CQjE5OTkh", "235"; and the same with the user name as initial response
// ("AUTH LOGIN a2VubmV0aC5idXJnZW5lcg==", RFC 4954 §4).
func TestLoginSeed(t *testing.T) {
	b64 := base64.StdEncoding
	user, err := b64.DecodeString("a2VubmV0aC5idXJnZW5lcg==")
	if err != nil {
		t.Fatal(err)
	}
	password, err := b64.DecodeString("SW1CQjE5OTkh")
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		in        []byte
		challenge string // base64, as the SMTP layer sends it
		done      bool
	}
	for name, steps := range map[string][]step{
		"prompted": {{nil, "VXNlcm5hbWU6", false}, {user, "UGFzc3dvcmQ6", false}, {password, "", true}},
		"initial":  {{user, "UGFzc3dvcmQ6", false}, {password, "", true}},
	} {
		t.Run(name, func(t *testing.T) {
			s := NewLoginServer(t.Context(), pwStore{}, ServerOptions{})
			for i, st := range steps {
				challenge, done, err := s.Next(st.in)
				if err != nil || done != st.done || b64.EncodeToString(challenge) != st.challenge {
					t.Fatalf("step %d: Next = %q, %v, %v; want %s, %v", i, challenge, done, err, st.challenge, st.done)
				}
			}
			if s.Identity() != "kenneth.burgener@example.test" {
				t.Errorf("identity %q", s.Identity())
			}
		})
	}
	t.Run("client", func(t *testing.T) {
		c := NewLoginClient(string(user), string(password))
		for _, tt := range []struct{ challenge, want string }{
			{"VXNlcm5hbWU6", "a2VubmV0aC5idXJnZW5lcg=="},
			{"UGFzc3dvcmQ6", "SW1CQjE5OTkh"},
		} {
			challenge, _ := b64.DecodeString(tt.challenge)
			resp, err := c.Next(challenge)
			if err != nil || b64.EncodeToString(resp) != tt.want {
				t.Errorf("Next(%s) = %q, %v; want %s", tt.challenge, resp, err, tt.want)
			}
		}
	})
}

func TestLoginServerMalformed(t *testing.T) {
	good := []byte("kenneth.burgener")
	tests := []struct {
		name    string
		steps   [][]byte // the first is the initial response
		wantErr error    // of the last step
	}{
		{"empty user", [][]byte{nil, {}}, ErrProtocol},
		{"empty initial user", [][]byte{{}}, ErrProtocol},
		{"nil user", [][]byte{nil, nil}, ErrProtocol},
		{"user too long", [][]byte{nil, []byte(strings.Repeat("u", 321))}, ErrProtocol},
		{"user not UTF-8", [][]byte{[]byte("kenneth\xff")}, ErrProtocol},
		{"NUL in user", [][]byte{[]byte("kenneth\x00burgener")}, ErrProtocol},
		{"empty password", [][]byte{good, {}}, ErrProtocol},
		{"password too long", [][]byte{good, []byte(strings.Repeat("p", 1025))}, ErrProtocol},
		{"longest user", [][]byte{[]byte(strings.Repeat("u", 320)), []byte("x")}, ErrAuthFailed},
		{"longest password", [][]byte{good, []byte(strings.Repeat("p", 1024))}, ErrAuthFailed},
		{"password not UTF-8", [][]byte{good, []byte("ImBB1999!\xff")}, ErrAuthFailed},
		{"after success", [][]byte{good, []byte("ImBB1999!"), nil}, ErrProtocol},
		{"after failure", [][]byte{good, []byte("x"), []byte("ImBB1999!")}, ErrProtocol},
		{"after protocol error", [][]byte{{}, good}, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewLoginServer(t.Context(), pwStore{}, ServerOptions{})
			var (
				done bool
				err  error
			)
			for _, step := range tt.steps {
				_, done, err = s.Next(step)
			}
			if !done {
				t.Errorf("not done")
			}
			checkErr(t, err, tt.wantErr)
			if strings.Contains(err.Error(), "ImBB") || strings.Contains(err.Error(), "ppp") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestLoginClient(t *testing.T) {
	tests := []struct {
		name       string
		challenges []string
		want       []string // responses; "" where an error is expected, and the end
	}{
		{"usual", []string{"Username:", "Password:"}, []string{"u", "p"}},
		{"draft prompts", []string{"User Name\x00", "Password\x00"}, []string{"u", "p"}},
		{"other case", []string{"username:", "PASSWORD:"}, []string{"u", "p"}},
		{"unknown prompt", []string{"Login:"}, []string{""}},
		{"third challenge", []string{"Username:", "Password:", "Password:"}, []string{"u", "p", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewLoginClient("u", "p")
			if mech, ir, err := c.Start(); mech != Login || ir != nil || err != nil {
				t.Fatalf("Start = %q, %q, %v", mech, ir, err)
			}
			for i, ch := range tt.challenges {
				resp, err := c.Next([]byte(ch))
				if string(resp) != tt.want[i] || (err == nil) != (tt.want[i] != "") {
					t.Errorf("Next(%q) = %q, %v; want %q", ch, resp, err, tt.want[i])
				}
			}
		})
	}
	if _, _, err := NewLoginClient("", "p").Start(); err == nil {
		t.Errorf("Start with an empty user name succeeded")
	}
}

// FuzzLoginServer runs LOGIN exchanges with fuzzed answers, with and without initial
// response. The server must not panic, must only ever send the two prompts, and must never
// accept the same answers with the right store and with the wrong one, whose password differs
// (the fuzzer does find the wrong store's password: testdata/fuzz/FuzzLoginServer).
func FuzzLoginServer(f *testing.F) {
	f.Add(true, []byte("kenneth.burgener"), []byte("ImBB1999!"))
	f.Add(false, []byte("kenneth.burgener@example.test"), []byte("ImBB1999!"))
	f.Add(false, []byte("bjørn@exämple.test"), []byte("pässwörd"))
	f.Add(true, []byte(""), []byte("x"))
	f.Add(false, []byte("a\x00b"), []byte(""))
	f.Fuzz(func(t *testing.T, initial bool, user, password []byte) {
		// nil is "no initial response"; an empty answer is not nil.
		user, password = append([]byte{}, user...), append([]byte{}, password...)
		var accepted [2]bool // by the right store, by the wrong one
		for k, store := range []pwStore{{}, {wrong: true}} {
			s := NewLoginServer(context.Background(), store, ServerOptions{})
			first := user
			if !initial {
				first = nil
			}
			steps := [][]byte{first, password, user}
			if !initial {
				steps = [][]byte{nil, user, password, user}
			}
			over := false
			for _, step := range steps {
				challenge, done, err := s.Next(step)
				switch {
				case over:
					if !errors.Is(err, ErrProtocol) {
						t.Fatalf("Next after the end: %v", err)
					}
				case done && err == nil:
					accepted[k] = true
					if account, _, _ := store.resolve(string(user)); s.Identity() != account {
						t.Fatalf("identity %q for %q", s.Identity(), user)
					}
				case !done && (string(challenge) != "Username:" && string(challenge) != "Password:"):
					t.Fatalf("challenge %q", challenge)
				}
				over = over || done
			}
		}
		if accepted[0] && accepted[1] {
			t.Fatalf("the right and the wrong password both accepted %q / %q", user, password)
		}
	})
}
