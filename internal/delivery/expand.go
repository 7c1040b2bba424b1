package delivery

import (
	"context"
	"errors"
	"strings"

	"github.com/tern-mail/tern/internal/envelope"
)

// expand replaces each local recipient that is not an account by what it expands to (Router.
// Expand): the queue's recipients are mailboxes already (the server expands before queueing),
// but a report the queue makes goes to the sender as given, which may be an alias. It returns
// the envelope and recipients to deliver, and merge, which turns their outcomes into those of
// the recipients given: a recipient is done when each of its targets is, and otherwise gets the
// first temporary failure of its targets (then the first permanent one).
func (r *Router) expand(ctx context.Context, env *envelope.Envelope, rcpts []int, known accountsSeen) (*envelope.Envelope, []int, func([]Outcome) []Outcome) {
	var xenv *envelope.Envelope
	var xrcpts []int
	var owner []int // owner[n]: the position in rcpts of xrcpts[n]
	failed := map[int]error{}
	for k, i := range rcpts {
		addr := env.Rcpts[i].Addr
		targets, err := r.targets(ctx, addr, known)
		if err != nil {
			failed[k] = Temporary("alias lookup failed", err)
			continue
		}
		if targets == nil {
			xrcpts, owner = append(xrcpts, i), append(owner, k)
			continue
		}
		if xenv == nil {
			xenv = env.Clone()
		}
		for n, t := range targets {
			j := i
			if n > 0 {
				j = len(xenv.Rcpts)
				xenv.Rcpts = append(xenv.Rcpts, xenv.Rcpts[i])
			}
			xenv.Rcpts[j].Addr = t
			if xenv.Rcpts[j].ORcpt == "" {
				xenv.Rcpts[j].ORcpt = "rfc822;" + addr
			}
			xrcpts, owner = append(xrcpts, j), append(owner, k)
		}
	}
	if xenv == nil && len(failed) == 0 {
		return env, rcpts, func(out []Outcome) []Outcome { return out }
	}
	if xenv == nil {
		xenv = env
	}
	return xenv, xrcpts, func(out []Outcome) []Outcome {
		merged := make([]Outcome, len(rcpts))
		set := make([]bool, len(rcpts))
		for k, err := range failed {
			merged[k].Err, set[k] = err, true
		}
		for n, o := range out {
			k := owner[n]
			switch {
			case !set[k]:
				merged[k], set[k] = o, true
			case o.Err != nil && (merged[k].Err == nil || isPermanent(merged[k].Err) && !isPermanent(o.Err)):
				merged[k] = o
			}
		}
		return merged
	}
}

// targets is what a local recipient that is not an account expands to; nil to deliver it as
// it is (an account, an address in another domain, no expansion; a failed account lookup,
// which delivery then reports).
func (r *Router) targets(ctx context.Context, addr string, known accountsSeen) ([]string, error) {
	if r.Expand == nil || !r.IsLocal(envelope.Domain(addr)) {
		return nil, nil
	}
	if ok, err := r.exists(ctx, addr, known); ok || err != nil {
		return nil, nil
	}
	targets, err := r.Expand(ctx, addr)
	if err != nil || len(targets) == 0 || len(targets) == 1 && strings.EqualFold(targets[0], addr) {
		return nil, err
	}
	return targets, nil
}

func isPermanent(err error) bool {
	var de *Error
	return errors.As(err, &de) && de.Permanent
}
