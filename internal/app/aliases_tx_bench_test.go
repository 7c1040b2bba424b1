package app

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tern-mail/tern/internal/accounts/sqlite"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
)

// BenchmarkRcptAndCommit is what the account store costs one recipient of one message on the
// session side: relay control's check at RCPT TO and the alias expansion at the commit, in one
// transaction (with the memo the server gives it), on the SQLite store.
func BenchmarkRcptAndCommit(b *testing.B) {
	ctx := context.Background()
	store, err := sqlite.Open(filepath.Join(b.TempDir(), "accounts.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	if err := store.Add(ctx, "user1@a.test", "pw"); err != nil {
		b.Fatal(err)
	}
	if err := store.AddAlias(ctx, "alias1@a.test", "user1@a.test"); err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	cfg.Domains = []string{"a.test"}
	relay, aliases := newServerRelay(cfg, b.TempDir(), store)
	for _, rcpt := range []string{"user1@a.test", "alias1@a.test"} {
		addr, err := smtp.ParseForwardPath(rcpt)
		if err != nil {
			b.Fatal(err)
		}
		rcpts := []envelope.Recipient{{Addr: rcpt}}
		b.Run(rcpt, func(b *testing.B) {
			for b.Loop() {
				tx := withExpansionMemo(ctx)
				if r := relay.CheckRcpt(tx, policy.Client{}, addr); !r.Positive() {
					b.Fatal(r)
				}
				if _, err := expandRcpts(tx, aliases.now(), rcpts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
