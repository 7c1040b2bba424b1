package app

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/accounts/sqlite"
	"github.com/tern-mail/tern/internal/sasl"
)

func TestCredentials(t *testing.T) {
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = store.Close() // the test failed before its own Close, which it checks
		}
	})
	ctx := context.Background()
	if err := store.Add(ctx, "kenneth.burgener@example.test", "ImBB1999!", accounts.Secret{Kind: sasl.SecretNTLM, Value: []byte("nt")}); err != nil {
		t.Fatal(err)
	}
	c := newCredentials(store, "example.test")
	for _, tc := range []struct {
		login, password string
		want            string
		err             error
	}{
		{"kenneth.burgener", "ImBB1999!", "kenneth.burgener@example.test", nil},
		{"Kenneth.Burgener@EXAMPLE.test", "ImBB1999!", "kenneth.burgener@example.test", nil},
		{"kenneth.burgener", "wrong", "", sasl.ErrAuthFailed},
		{"nobody", "ImBB1999!", "", sasl.ErrAuthFailed},
		{"../etc", "x", "", sasl.ErrAuthFailed},
	} {
		got, err := c.CheckPassword(ctx, tc.login, tc.password)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("CheckPassword(%q): %q, %v", tc.login, got, err)
		}
	}
	if acct, v, err := c.Secret(ctx, "kenneth.burgener", sasl.SecretNTLM); err != nil || acct != "kenneth.burgener@example.test" || string(v) != "nt" {
		t.Errorf("Secret: %q %q %v", acct, v, err)
	}
	// The log says what to run when the account exists but the secret does not.
	if _, _, err := c.Secret(ctx, "kenneth.burgener", sasl.SecretCRAMMD5); !errors.Is(err, sasl.ErrAuthFailed) ||
		!strings.Contains(err.Error(), "no cram-md5 secret for kenneth.burgener@example.test (") ||
		!strings.Contains(err.Error(), ": tern user passwd kenneth.burgener@example.test stores one)") {
		t.Errorf("missing secret: %v", err)
	}
	if _, _, err := c.Secret(ctx, "nobody", sasl.SecretCRAMMD5); !errors.Is(err, sasl.ErrAuthFailed) || !strings.HasSuffix(err.Error(), ": no account nobody@example.test") {
		t.Errorf("missing account: %v", err)
	}
	for _, tc := range []struct {
		login, want string
		err         error
	}{
		{"kenneth.burgener", "kenneth.burgener@example.test", nil},
		{"KENNETH.BURGENER@example.test", "kenneth.burgener@example.test", nil},
		{"nobody", "", sasl.ErrAuthFailed},
		{"../etc", "", sasl.ErrAuthFailed},
	} {
		if got, err := c.Account(ctx, tc.login); got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("Account(%q): %q, %v", tc.login, got, err)
		}
	}
	// A disabled account logs in with no mechanism, GSSAPI's included; the log says why.
	if err := store.SetDisabled(ctx, "kenneth.burgener@example.test", true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CheckPassword(ctx, "kenneth.burgener", "ImBB1999!"); !errors.Is(err, sasl.ErrAuthFailed) {
		t.Errorf("disabled: CheckPassword: %v", err)
	}
	if _, _, err := c.Secret(ctx, "kenneth.burgener", sasl.SecretNTLM); !errors.Is(err, sasl.ErrAuthFailed) || !strings.HasSuffix(err.Error(), "account kenneth.burgener@example.test is disabled") {
		t.Errorf("disabled: Secret: %v", err)
	}
	if _, err := c.Account(ctx, "kenneth.burgener"); !errors.Is(err, sasl.ErrAuthFailed) || !strings.HasSuffix(err.Error(), "is disabled") {
		t.Errorf("disabled: Account: %v", err)
	}
	closed = true
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Account(ctx, "kenneth.burgener"); !errors.Is(err, sasl.ErrUnavailable) {
		t.Errorf("closed store: Account: %v, want ErrUnavailable", err)
	}
	if _, err := c.CheckPassword(ctx, "kenneth.burgener", "ImBB1999!"); !errors.Is(err, sasl.ErrUnavailable) {
		t.Errorf("closed store: %v, want ErrUnavailable", err)
	}
}
