package app

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tern-mail/tern/internal/accounts/sqlite"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/smtp"
)

// BenchmarkRcptCheck is the policy path of one RCPT TO on the SQLite store with 100 accounts
// and 1000 aliases: relay control before aliases (the store's Exists: "accounts only"), and
// with alias expansion for each form; "commit" is the expansion again when the message is
// queued (aliasSpool), for one recipient; "rcpt+commit" both in one transaction, as the server
// runs them (the expansion made at RCPT kept for the commit): what the account store costs one
// recipient of one message on the session side.
func BenchmarkRcptCheck(b *testing.B) {
	ctx := context.Background()
	store, err := sqlite.Open(filepath.Join(b.TempDir(), "accounts.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	for i := range 1000 {
		if err := store.AddAlias(ctx, fmt.Sprintf("alias%d@a.test", i), fmt.Sprintf("user%d@a.test", i%100)); err != nil {
			b.Fatal(err)
		}
	}
	// 100 accounts: each costs a password hash to make, and the index lookup hardly depends on
	// how many there are.
	for i := range 100 {
		if err := store.Add(ctx, fmt.Sprintf("user%d@a.test", i), "pw"); err != nil {
			b.Fatal(err)
		}
	}
	if err := store.AddAlias(ctx, "@b.test", "user1@a.test"); err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	cfg.Domains = []string{"a.test", "b.test"}
	aliases := newAliases(cfg, store)
	withAliases := policy.NewRelay(cfg.Domains, aliases)
	accountsOnly := policy.NewRelay(cfg.Domains, store)
	for _, bc := range []struct {
		name  string
		relay *policy.Relay
		rcpt  string
	}{
		{"accounts only/account", accountsOnly, "user1@a.test"},
		{"accounts only/unknown", accountsOnly, "nobody@a.test"},
		{"aliases/account", withAliases, "user1@a.test"},
		{"aliases/alias", withAliases, "alias1@a.test"},
		{"aliases/subaddress", withAliases, "user1+tag@a.test"},
		{"aliases/catch-all", withAliases, "anyone@b.test"},
		{"aliases/unknown", withAliases, "nobody@a.test"},
	} {
		addr, err := smtp.ParseForwardPath(bc.rcpt)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if r := bc.relay.CheckRcpt(ctx, policy.Client{}, addr); r.Code == 0 {
					b.Fatal("no reply")
				}
			}
		})
	}
	relay, server := newServerRelay(cfg, b.TempDir(), store)
	for _, rcpt := range []string{"user1@a.test", "alias1@a.test"} {
		addr, err := smtp.ParseForwardPath(rcpt)
		if err != nil {
			b.Fatal(err)
		}
		rcpts := []envelope.Recipient{{Addr: rcpt}}
		b.Run("rcpt+commit/"+rcpt, func(b *testing.B) {
			for b.Loop() {
				tx := withExpansionMemo(ctx)
				if r := relay.CheckRcpt(tx, policy.Client{}, addr); !r.Positive() {
					b.Fatal(r)
				}
				if _, err := expandRcpts(tx, server.now(), rcpts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("commit/alias", func(b *testing.B) {
		rcpts := []envelope.Recipient{{Addr: "alias1@a.test"}}
		for b.Loop() {
			if _, err := expandRcpts(ctx, aliases, rcpts); err != nil {
				b.Fatal(err)
			}
		}
	})
}
