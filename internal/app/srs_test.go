package app

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/srs"
)

// The secret is made (0600) by the first forward, never by a reverse; which senders are
// rewritten; and what a second keeper on the same directory (a restart) reverses.
func TestSRSKeeper(t *testing.T) {
	data := t.TempDir()
	cfg := config.Default()
	cfg.Domains = []string{"a.test", "b.test"}
	isLocal := func(d string) bool { return d == "a.test" || d == "b.test" }
	k := newSRSKeeper(cfg, data, isLocal)

	if _, isSRS, err := k.Reverse("SRS0=abcd=AA=x.example=y@a.test"); !isSRS || !errors.Is(err, srs.ErrBadHash) {
		t.Errorf("reverse without a secret: %v %v", isSRS, err)
	}
	if _, isSRS, err := k.Reverse("bob@a.test"); isSRS || err != nil {
		t.Errorf("reverse of a plain address: %v %v", isSRS, err)
	}
	if _, err := os.Stat(srsSecretPath(data)); !os.IsNotExist(err) {
		t.Fatalf("a reverse made the secret (%v)", err)
	}
	for _, tc := range []struct {
		env  envelope.Envelope
		want string // "": unchanged
	}{
		{envelope.Envelope{From: ""}, ""},
		{envelope.Envelope{From: "alice@b.test"}, ""},
		{envelope.Envelope{From: "x@remote.example", AuthUser: "alice@a.test"}, ""},
		{envelope.Envelope{From: "x@remote.example"}, "SRS0="},
	} {
		got, err := k.forward(&tc.env)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case tc.want == "" && got.From != tc.env.From:
			t.Errorf("forward %+v rewrote the sender to %s", tc.env, got.From)
		case tc.want != "" && (!strings.HasPrefix(got.From, tc.want) || !strings.HasSuffix(got.From, "=remote.example=x@a.test")):
			t.Errorf("forward %+v = %s", tc.env, got.From)
		case tc.want != "" && tc.env.From != "x@remote.example":
			t.Errorf("forward changed the queue's envelope")
		}
		if tc.want != "" {
			back, isSRS, err := newSRSKeeper(cfg, data, isLocal).Reverse(got.From)
			if !isSRS || err != nil || back != "x@remote.example" {
				t.Errorf("reverse after a restart: %q %v %v", back, isSRS, err)
			}
		}
	}
	st, err := os.Stat(srsSecretPath(data))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret: %v %v", st, err)
	}
	if m, _ := filepath.Glob(filepath.Join(data, ".srs.secret-*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}
