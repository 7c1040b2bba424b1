package policy

import (
	"net/netip"
	"time"

	"github.com/tern-mail/tern/internal/ratelimit"
)

// The AuthLimiter's shared state (AuthLimits.Shared), for nodes that share one account store.
// It is asked before the limiter locks (a shared counter may be a database round trip) and only
// adds to what the node's own records decide: a client blocked, or an account under attack, at
// any node is so at this one. Which accounts a client failed for stays per node, so a client
// that never failed for an account still logs in to it anywhere (a guesser cannot lock its
// owner out), and one that failed for it is refused on the node where it failed.
//
// Keys: "auth-client:CLIENT" and "auth-account:ACCOUNT" count failures (a GCRA of MaxFailures-1
// per Window: the MaxFailures-th does not fit); "auth-block:CLIENT" and "auth-attack:ACCOUNT"
// are set for Block by taking their one event, and probed with a one-nanosecond limit, which
// fits (and leaves a mark of a nanosecond) when no block is set, and is refused for about as
// long as the block lasts when one is.

// probeLimit fits when the key's time has passed: a probe tells whether a block is set.
var probeLimit = ratelimit.Limit{N: 1, Window: time.Nanosecond}

// probeSlack is how much a refused probe may have left and still find no block (the marks
// that probes leave), and so how much longer than Block a block is set for.
const probeSlack = time.Millisecond

// setBlock sets key's block for Block unless one is set: it takes all but one probeSlack of
// a bucket of Block+probeSlack, which fits when no more than the probes' marks are in it.
func (l *AuthLimiter) setBlock(key string) {
	n := int((l.limits().Block + probeSlack) / probeSlack)
	l.limits().Shared.Take(key, n-1, ratelimit.Limit{N: n, Window: l.limits().Block + probeSlack})
}

// sharedState is what the shared counter says about one attempt.
type sharedState struct {
	clientUntil  time.Time // a client block set at some node ends then (zero: none)
	clientOver   bool      // this failure is the client's MaxFailures-th across the nodes
	accountUntil time.Time // the account is under attack until then (zero: not)
	accountOver  bool      // this failure is the account's MaxFailures-th across the nodes
}

// sharedBlocked probes whether key's block is set, and until when.
func (l *AuthLimiter) sharedBlocked(key string, now time.Time) time.Time {
	if ok, retry := l.limits().Shared.Take(key, 1, probeLimit); !ok && retry > probeSlack {
		return now.Add(retry)
	}
	return time.Time{}
}

// sharedCheck probes the client's block and, when acct is set, the account's attack.
func (l *AuthLimiter) sharedCheck(ip netip.Addr, acct string) sharedState {
	var st sharedState
	if l.limits().Shared == nil {
		return st
	}
	now := l.now()
	st.clientUntil = l.sharedBlocked("auth-block:"+prefixString(clientKey(ip)), now)
	if acct != "" && st.clientUntil.IsZero() {
		st.accountUntil = l.sharedBlocked("auth-attack:"+acct, now)
	}
	return st
}

// sharedFailed counts a failure from ip for acct ("" when none) in the shared counter, and
// sets the client's block or the account's attack when this failure starts one.
func (l *AuthLimiter) sharedFailed(ip netip.Addr, acct string) sharedState {
	if l.limits().Shared == nil {
		return sharedState{}
	}
	st := l.sharedCheck(ip, acct)
	client := prefixString(clientKey(ip))
	st.clientOver = l.sharedOver("auth-client:" + client)
	if st.clientOver && st.clientUntil.IsZero() {
		l.setBlock("auth-block:" + client)
	}
	if acct != "" {
		st.accountOver = l.sharedOver("auth-account:" + acct)
		if st.accountOver && st.accountUntil.IsZero() {
			l.setBlock("auth-attack:" + acct)
		}
	}
	return st
}

// sharedOver counts one failure under key and reports whether it is the MaxFailures-th (or
// later) within the window.
func (l *AuthLimiter) sharedOver(key string) bool {
	if l.limits().MaxFailures <= 1 {
		return true
	}
	ok, _ := l.limits().Shared.Take(key, 1, ratelimit.Limit{N: l.limits().MaxFailures - 1, Window: l.limits().Window})
	return !ok
}

// adoptBlock notes on this node a block the shared state holds for c.
func (c *authClient) adoptBlock(until time.Time) {
	if until.After(c.blockedUntil) {
		c.blockedUntil = until
	}
}
