package app

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/accounts/sqlite"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
)

// nopMailbox takes every message and stores nothing.
type nopMailbox struct{}

func (nopMailbox) Deliver(context.Context, *envelope.Envelope, int, io.Reader) error { return nil }

type stringBody string

func (b stringBody) Open() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(string(b))), nil
}
func (b stringBody) Size() int64 { return int64(len(b)) }

// BenchmarkRouterLocal is the router's part of delivering a message to one account on the
// SQLite store, as the server wires it (account lookups, alias expansion for non-accounts),
// with a mailbox that stores nothing.
func BenchmarkRouterLocal(b *testing.B) {
	ctx := context.Background()
	store, err := sqlite.Open(filepath.Join(b.TempDir(), "accounts.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	if err := store.Add(ctx, "user1@a.test", "pw"); err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	cfg.Domains = []string{"a.test"}
	aliases := newAliases(cfg, store)
	r := &delivery.Router{
		IsLocal:      aliases.IsLocal,
		Exists:       store.Exists,
		IsBadAddress: func(err error) bool { return errors.Is(err, accounts.ErrBadAddress) },
		Mailbox:      nopMailbox{},
		Postmaster:   "postmaster@a.test",
		Expand: func(ctx context.Context, addr string) ([]string, error) {
			x, err := aliases.Expand(ctx, addr)
			return x.Targets, err
		},
	}
	env := &envelope.Envelope{ID: "ABCDEF0123", From: "s@remote.test", Rcpts: []envelope.Recipient{{Addr: "user1@a.test"}}}
	b.ReportAllocs()
	for b.Loop() {
		if out := r.DeliverBatch(ctx, env, []int{0}, stringBody("body")); out[0].Err != nil {
			b.Fatal(out[0].Err)
		}
	}
}
