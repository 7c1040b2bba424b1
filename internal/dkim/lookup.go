package dkim

import (
	"context"
	"io"
)

// Verifier verifies messages with keys from its Resolver (Verify as a method, for the server).
type Verifier struct{ Resolver Resolver }

// Verify is Verify(ctx, r, v.Resolver).
func (v Verifier) Verify(ctx context.Context, r io.Reader) (Verification, error) {
	return Verify(ctx, r, v.Resolver)
}
