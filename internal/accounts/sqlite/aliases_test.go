package sqlite

import (
	"context"
	"fmt"
	"testing"
)

func BenchmarkAliasTargets(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	for i := range 1000 {
		if err := s.AddAlias(ctx, fmt.Sprintf("alias%d@a.test", i), fmt.Sprintf("user%d@a.test", i)); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; b.Loop(); i++ {
		if _, err := s.AliasTargets(ctx, fmt.Sprintf("alias%d@a.test", i%1000)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResolve is the lookup alias expansion makes first at every RCPT TO: an account, an
// alias, and an address that is neither.
func BenchmarkResolve(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	if err := s.Add(ctx, "alice@example.test", "pw"); err != nil {
		b.Fatal(err)
	}
	if err := s.AddAlias(ctx, "info@example.test", "alice@example.test"); err != nil {
		b.Fatal(err)
	}
	for _, addr := range []string{"alice@example.test", "info@example.test", "nobody@example.test"} {
		b.Run(addr, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := s.Resolve(ctx, addr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
