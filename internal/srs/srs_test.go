package srs

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// day0 is the day the vectors below were made with Debian's postsrsd 1.10 (secret
// "tern-test-secret", domain forwarder.test); TestPostSRSd checks against the daemon itself.
var day0 = time.Date(2026, 12, 5, 7, 0, 0, 0, time.UTC)

func newTest(t testing.TB, now time.Time, secrets ...string) *SRS {
	t.Helper()
	if len(secrets) == 0 {
		secrets = []string{"tern-test-secret"}
	}
	var bs [][]byte
	for _, s := range secrets {
		bs = append(bs, []byte(s))
	}
	s, err := New(Options{Secrets: bs, Domain: "forwarder.test", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestForward(t *testing.T) {
	s := newTest(t, day0)
	for _, tc := range []struct{ in, want string }{
		{"alice@example.com", "SRS0=C54H=JY=example.com=alice@forwarder.test"},
		{"SRS0=abcd=AB=example.com=alice@first.test", "SRS1=AwaO=first.test==abcd=AB=example.com=alice@forwarder.test"},
		// An SRS1 address stays guarded by its first forwarder; only the hash is ours.
		{"SRS1=AwaO=first.test==abcd=AB=example.com=alice@second.test", "SRS1=AwaO=first.test==abcd=AB=example.com=alice@forwarder.test"},
		{"bob@Forwarder.TEST", "bob@Forwarder.TEST"},
	} {
		got, err := s.Forward(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Forward(%s) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "alice", "@example.com", "alice@", "SRS1=x@first.test", "SRS1=h=first.test@x.test"} {
		if got, err := s.Forward(bad); err == nil {
			t.Errorf("Forward(%q) = %q, want an error", bad, got)
		}
	}
}

func TestReverse(t *testing.T) {
	s := newTest(t, day0)
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"SRS0=C54H=JY=example.com=alice@forwarder.test", "alice@example.com", nil},
		{"srs0=c54h=jy=EXAMPLE.com=alice@forwarder.test", "alice@EXAMPLE.com", nil}, // case folded
		{"SRS0=C54H=JY=example.com=al=ice@forwarder.test", "", ErrBadHash},
		{"SRS0=XXXX=JY=example.com=alice@forwarder.test", "", ErrBadHash},
		{"SRS0=C54=JY=example.com=alice@forwarder.test", "", ErrBadHash},
		{"SRS0=C54H=AB=example.com=alice@forwarder.test", "", ErrExpired},
		{"SRS0=C54H=J=example.com=alice@forwarder.test", "", ErrExpired},
		{"SRS0=C54H=J1=example.com=alice@forwarder.test", "", ErrSyntax},
		{"SRS0=C54H=JY=example.com@forwarder.test", "", ErrSyntax},
		{"SRS0=@forwarder.test", "", ErrSyntax},
		{"SRS1=AwaO=first.test==abcd=AB=example.com=alice@forwarder.test", "SRS0=abcd=AB=example.com=alice@first.test", nil},
		{"SRS1=AwaX=first.test==abcd=AB=example.com=alice@forwarder.test", "", ErrBadHash},
		{"SRS1=AwaO@forwarder.test", "", ErrSyntax},
		{"alice@forwarder.test", "", ErrNotSRS},
		{"SRS2=x=y@forwarder.test", "", ErrNotSRS},
		{strings.Repeat("SRS0=", 300) + "@x", "", ErrSyntax},
	} {
		got, err := s.Reverse(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("Reverse(%s) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// An address lives MaxAge days, across the wrap of the 1024-day stamp, and a second secret
// verifies what the old one signed.
func TestExpiry(t *testing.T) {
	for _, start := range []time.Time{day0, time.Unix(1023*day, 0), time.Unix(1024*day-1, 0)} {
		fwd, err := newTest(t, start).Forward("alice@example.com")
		if err != nil {
			t.Fatal(err)
		}
		for days, want := range map[int]error{0: nil, 1: nil, 21: nil, 22: ErrExpired, 1000: ErrExpired} {
			s := newTest(t, start.Add(time.Duration(days)*24*time.Hour), "new secret", "tern-test-secret")
			if _, err := s.Reverse(fwd); !errors.Is(err, want) || (want == nil) != (err == nil) {
				t.Errorf("from %v, %d days later: %v, want %v", start, days, err, want)
			}
		}
	}
}

func TestNew(t *testing.T) {
	for _, o := range []Options{
		{Domain: "a.test"},
		{Secrets: [][]byte{{}}, Domain: "a.test"},
		{Secrets: [][]byte{[]byte("s")}},
		{Secrets: [][]byte{[]byte("s")}, Domain: "a@b"},
		{Secrets: [][]byte{[]byte("s")}, Domain: "a.test", Separator: '/'},
		{Secrets: [][]byte{[]byte("s")}, Domain: "a.test", HashLength: 28},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) gave no error", o)
		}
	}
}

func FuzzReverse(f *testing.F) {
	s := newTest(f, day0)
	for _, seed := range []string{"SRS0=C54H=JY=example.com=alice@forwarder.test",
		"SRS1=AwaO=first.test==abcd=AB=example.com=alice@forwarder.test", "SRS0=", "srs1-x=y=z"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		orig, err := s.Reverse(addr)
		if err != nil {
			return
		}
		// Whatever verifies names an address, and forwarding that again gives an address that
		// reverses to it (Forward and Reverse agree on the format).
		if !strings.Contains(orig, "@") {
			t.Fatalf("Reverse(%q) = %q: no domain", addr, orig)
		}
		if fwd, err := s.Forward(orig); err == nil && fwd != orig {
			if back, err := s.Reverse(fwd); err != nil || back != orig {
				t.Fatalf("Reverse(%q) = %q, forwarded %q, reversed to %q, %v", addr, orig, fwd, back, err)
			}
		}
	})
}
