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
