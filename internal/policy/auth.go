package policy

import (
	"cmp"
	"container/heap"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-mail/tern/internal/ratelimit"
	"github.com/tern-mail/tern/internal/smtp"
)

// AuthLimits configure an AuthLimiter. Zero fields take the defaults below.
type AuthLimits struct {
	// MaxFailures failed AUTH attempts from one client (IPv4 address or IPv6 /64) within Window
	// block that client for Block. The same number of failures for one account, from anywhere,
	// put the account under attack (see AuthLimiter).
	MaxFailures int
	Window      time.Duration
	Block       time.Duration
	// BaseDelay is the wait before answering a failure; it doubles with each failure in the
	// window, up to MaxDelay, so that guessing gets slow long before the block.
	BaseDelay, MaxDelay time.Duration
	// Account resolves a login as the client typed it to the account the credential store
	// would use ("bob" to "bob@example.test"); ok false when it names no possible account.
	// Failures are counted per account, so that every spelling shares one budget. It is
	// called for every attempt, so it must be quick (no store lookups). Nil: the login
	// lower-cased.
	Account func(login string) (account string, ok bool)
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// Logger gets one line when a block starts and one when it ends. Nil: discard.
	Logger *slog.Logger
	// Shared, when set, is a counter every node of a cluster shares (the account store's
	// database): a client blocked or an account under attack at one node is so at all of them
	// (see authshared.go). It is asked outside the limiter's lock; when it fails it should let
	// through (ok true), leaving the decision to this node's records. Nil: one node.
	Shared ratelimit.Counter
}

// Defaults for AuthLimits.
const (
	DefaultAuthMaxFailures = 10
	DefaultAuthWindow      = 15 * time.Minute
	DefaultAuthBlock       = 15 * time.Minute
	DefaultAuthBaseDelay   = 250 * time.Millisecond
	DefaultAuthMaxDelay    = 5 * time.Second
)

// maxLoginKey bounds the length of a login kept as a key (AUTH lines may carry 12 KB).
const maxLoginKey = 320

// AuthLimiter slows down and blocks password guessing without handing the guesser a way to
// lock the account's owner out. As Postfix's anvil and Dovecot's auth penalty do, it blocks
// the client, not the account:
//
//   - Per client (an IPv4 address or an IPv6 /64): each failure is answered after a delay that
//     doubles; MaxFailures failures within Window block the client for Block, whatever account
//     and password it tries next (Allow refuses it before the exchange). Then counting starts
//     over.
//   - Per account (the login resolved as the credential store resolves it, so "bob", "BOB" and
//     "bob@example.test" are one account): MaxFailures failures within Window, from anywhere,
//     put the account under attack until Block has passed since its last failure. Meanwhile
//     its failures are answered after the longest delay, and a client that failed for it is
//     refused even with the right password (answered exactly like a wrong one, so that a
//     guesser learns nothing from it); a client that has not failed for it logs in.
//
// A success forgets the client's failures for that account: a typo is not held against it.
// The start and end of each block are logged ("auth block started"/"auth block ended", with
// kind=client or kind=account); an end is noticed, and logged, at the limiter's next call.
type AuthLimiter struct {
	// lim are the limits in force (SetLimits replaces them): read outside the lock too, where
	// the shared counter is asked.
	lim atomic.Pointer[AuthLimits]
	now func() time.Time
	log *slog.Logger

	mu       sync.Mutex
	clients  map[netip.Prefix]*authClient
	accounts map[string]*authAccount
	blocks   blockHeap // the clients blocked and the accounts under attack, by end
	swept    time.Time // the last sweep of stale records
}

// authClient is the recent failures of one client.
type authClient struct {
	key          netip.Prefix
	last         netip.Addr // the address of its latest failure, for the log
	n            int        // failures in the window that began at first
	first        time.Time
	blockedUntil time.Time
	blocked      bool // a block was logged as started and not yet as ended
	// failedFor are the accounts it failed for lately: their failures and the time of the
	// latest, kept for Block after it.
	failedFor map[string]accountFailures
}

type accountFailures struct {
	n    int
	last time.Time
}

// authAccount is the recent failures of one account.
type authAccount struct {
	name        string
	n           int // failures in the window that began at first
	first       time.Time
	attackUntil time.Time
	attacked    bool // an attack was logged as started and not yet as ended
}

// withDefaults returns lim with each unset field (zero, or a negative number) at its default.
func (lim AuthLimits) withDefaults() AuthLimits {
	// cmp.Or(max(v, 0), def): def unless v is positive.
	lim.MaxFailures = cmp.Or(max(lim.MaxFailures, 0), DefaultAuthMaxFailures)
	lim.Window = cmp.Or(max(lim.Window, 0), DefaultAuthWindow)
	lim.Block = cmp.Or(max(lim.Block, 0), DefaultAuthBlock)
	lim.BaseDelay = cmp.Or(max(lim.BaseDelay, 0), DefaultAuthBaseDelay)
	lim.MaxDelay = cmp.Or(max(lim.MaxDelay, 0), DefaultAuthMaxDelay)
	if lim.Now == nil {
		lim.Now = time.Now
	}
	if lim.Logger == nil {
		lim.Logger = slog.New(slog.DiscardHandler)
	}
	return lim
}

// NewAuthLimiter returns a limiter.
func NewAuthLimiter(lim AuthLimits) *AuthLimiter {
	lim = lim.withDefaults()
	l := &AuthLimiter{now: lim.Now, log: lim.Logger,
		clients: make(map[netip.Prefix]*authClient), accounts: make(map[string]*authAccount)}
	l.lim.Store(&lim)
	return l
}

// SetLimits changes the limits (a reload): the failures counted stay counted against the new
// MaxFailures and Window, and the blocks in force run to the end they were given. The clock,
// the logger, the account resolver and the shared counter stay those NewAuthLimiter was given.
func (l *AuthLimiter) SetLimits(lim AuthLimits) {
	old := l.limits()
	lim.Now, lim.Logger, lim.Account, lim.Shared = old.Now, old.Logger, old.Account, old.Shared
	lim = lim.withDefaults()
	l.lim.Store(&lim)
}

// limits are the limits in force.
func (l *AuthLimiter) limits() *AuthLimits { return l.lim.Load() }

// replyBlocked is the answer to a blocked client; the session closes after it.
var replyBlocked = smtp.R(smtp.CodeUnavailable, smtp.EnhSecurityOther, "Error: too many failed authentications, try again later")

// Allow is asked before an AUTH exchange starts: a blocked client gets a 421 and ok false.
func (l *AuthLimiter) Allow(ip netip.Addr) (smtp.Reply, bool) {
	st := l.sharedCheck(ip, "")
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.expire(now)
	if !st.clientUntil.IsZero() {
		l.client(ip).adoptBlock(st.clientUntil)
	}
	if c := l.clients[clientKey(ip)]; c != nil && now.Before(c.blockedUntil) {
		return replyBlocked, false
	}
	return smtp.Reply{}, true
}

// Failed records a failed attempt from ip with login as the client typed it ("" when it named
// none), and returns how long to wait before answering and, when this failure blocks the
// client, the 421 to send before closing (blocked true).
func (l *AuthLimiter) Failed(ip netip.Addr, login string) (delay time.Duration, reply smtp.Reply, blocked bool) {
	acct := l.account(login)
	st := l.sharedFailed(ip, acct)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.expire(now)
	l.sweep(now)
	c := l.client(ip)
	key := c.key
	c.last = ip.Unmap()
	if now.Sub(c.first) > l.limits().Window {
		c.n, c.first = 0, now
	}
	c.n++
	n, attacked := c.n, false
	if acct != "" {
		c.failed(acct, now, l.limits().Block, 2*l.limits().MaxFailures+8)
		var an int
		an, attacked = l.accountFailed(acct, ip, now, st)
		n = max(n, an)
	}
	if !st.clientUntil.IsZero() {
		// Blocked at another node since Allow: refused, logged there.
		c.adoptBlock(st.clientUntil)
		blocked = true
	} else if (c.n >= l.limits().MaxFailures || st.clientOver) && !now.Before(c.blockedUntil) {
		c.blockedUntil = now.Add(l.limits().Block)
		c.n, c.first = 0, now // counting starts over after the block
		if !c.blocked {
			c.blocked = true
			heap.Push(&l.blocks, &blockEntry{until: c.blockedUntil, client: c})
		}
		l.log.Warn("auth block started", "kind", "client", "remote", c.last, "client", prefixString(key),
			"failures", l.limits().MaxFailures, "until", c.blockedUntil.UTC().Format(time.RFC3339))
		blocked = true
	}
	delay = l.limits().BaseDelay
	for i := 1; i < n && delay < l.limits().MaxDelay; i++ {
		delay *= 2
	}
	delay = min(delay, l.limits().MaxDelay)
	if attacked {
		delay = l.limits().MaxDelay
	}
	if blocked {
		return delay, replyBlocked, true
	}
	return delay, smtp.Reply{}, false
}

// accountFailed counts a failure for acct from ip and returns the account's failures in the
// window, and whether it was already under attack (its failures then wait the longest).
func (l *AuthLimiter) accountFailed(acct string, ip netip.Addr, now time.Time, st sharedState) (n int, attacked bool) {
	a := l.accounts[acct]
	if a == nil {
		a = &authAccount{name: acct}
		l.accounts[acct] = a
	}
	if now.Sub(a.first) > l.limits().Window {
		a.n, a.first = 0, now
	}
	a.n++
	if st.accountUntil.After(a.attackUntil) {
		a.attackUntil = st.accountUntil // under attack at another node
	}
	switch {
	case now.Before(a.attackUntil):
		a.attackUntil = now.Add(l.limits().Block) // the attack goes on
		return a.n, true
	case a.n >= l.limits().MaxFailures || st.accountOver:
		a.attackUntil = now.Add(l.limits().Block)
		if !a.attacked {
			a.attacked = true
			heap.Push(&l.blocks, &blockEntry{until: a.attackUntil, account: a})
		}
		l.log.Warn("auth block started", "kind", "account", "user", acct, "remote", ip.Unmap(),
			"failures", a.n, "until", a.attackUntil.UTC().Format(time.RFC3339))
	}
	return a.n, false
}

// Succeeded is asked when a client proved the right credentials for account. It is refused
// (ok false, with the reason for the log) when the client is blocked, or failed for the account
// while the account is under attack; the session then answers as to a wrong password and calls
// Failed. Otherwise the client's failures for that account are forgotten.
func (l *AuthLimiter) Succeeded(ip netip.Addr, account string) (reason string, ok bool) {
	acct := l.account(account)
	st := l.sharedCheck(ip, acct)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.expire(now)
	if !st.clientUntil.IsZero() {
		l.client(ip).adoptBlock(st.clientUntil)
	}
	c := l.clients[clientKey(ip)]
	if c == nil {
		return "", true
	}
	if now.Before(c.blockedUntil) {
		return "client blocked", false
	}
	f, failed := c.failedFor[acct]
	if !failed {
		return "", true
	}
	if now.Sub(f.last) < l.limits().Block {
		if a := l.accounts[acct]; (a != nil && now.Before(a.attackUntil)) || now.Before(st.accountUntil) {
			return "the account is under attack and this client failed for it", false
		}
	}
	delete(c.failedFor, acct)
	c.n = max(0, c.n-f.n)
	return "", true
}

// client returns ip's record, made when there is none.
func (l *AuthLimiter) client(ip netip.Addr) *authClient {
	key := clientKey(ip)
	c := l.clients[key]
	if c == nil {
		c = &authClient{key: key, last: ip.Unmap(), failedFor: make(map[string]accountFailures)}
		l.clients[key] = c
	}
	return c
}

// account is the key failures of login are counted under: the account it resolves to, or the
// login lower-cased when it resolves to none.
func (l *AuthLimiter) account(login string) string {
	if login == "" {
		return ""
	}
	if l.limits().Account != nil {
		if acct, ok := l.limits().Account(login); ok {
			login = acct
		}
	}
	login = strings.ToLower(login)
	if len(login) > maxLoginKey {
		login = login[:maxLoginKey]
	}
	return login
}

// failed notes a failure for acct; the oldest entries go first past limit (a client is blocked
// long before it fails for that many accounts, so this only bounds memory).
func (c *authClient) failed(acct string, now time.Time, keep time.Duration, limit int) {
	f := c.failedFor[acct]
	f.n++
	f.last = now
	c.failedFor[acct] = f
	for len(c.failedFor) > limit {
		oldest := ""
		for k, v := range c.failedFor {
			if now.Sub(v.last) >= keep {
				delete(c.failedFor, k)
				continue
			}
			if oldest == "" || v.last.Before(c.failedFor[oldest].last) {
				oldest = k
			}
		}
		if len(c.failedFor) > limit {
			delete(c.failedFor, oldest)
		}
	}
}

// expire logs the end of the blocks and attacks that are over.
func (l *AuthLimiter) expire(now time.Time) {
	for len(l.blocks) > 0 && !now.Before(l.blocks[0].until) {
		e := heap.Pop(&l.blocks).(*blockEntry)
		switch {
		case e.client != nil && now.Before(e.client.blockedUntil):
			e.until = e.client.blockedUntil
			heap.Push(&l.blocks, e)
		case e.client != nil:
			e.client.blocked = false
			l.log.Info("auth block ended", "kind", "client", "remote", e.client.last, "client", prefixString(e.client.key))
		case now.Before(e.account.attackUntil):
			e.until = e.account.attackUntil // failures went on: the attack lasts longer
			heap.Push(&l.blocks, e)
		default:
			e.account.attacked = false
			e.account.n = 0
			l.log.Info("auth block ended", "kind", "account", "user", e.account.name)
		}
	}
}

// sweep drops stale records now and then, so that the maps stay small under a spray of
// addresses and logins.
func (l *AuthLimiter) sweep(now time.Time) {
	if len(l.clients)+len(l.accounts) < 4096 || now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	for k, c := range l.clients {
		for a, f := range c.failedFor {
			if now.Sub(f.last) >= l.limits().Block {
				delete(c.failedFor, a)
			}
		}
		if !c.blocked && now.Sub(c.first) > l.limits().Window && len(c.failedFor) == 0 {
			delete(l.clients, k)
		}
	}
	for k, a := range l.accounts {
		if !a.attacked && now.Sub(a.first) > l.limits().Window {
			delete(l.accounts, k)
		}
	}
}

// prefixString shows a client key: the address for IPv4, the /64 for IPv6.
func prefixString(p netip.Prefix) string {
	if p.Addr().Is4() {
		return p.Addr().String()
	}
	return p.String()
}

// blockEntry is a blocked client or an account under attack, in the heap of block ends.
type blockEntry struct {
	until   time.Time
	client  *authClient
	account *authAccount
}

type blockHeap []*blockEntry

func (h blockHeap) Len() int           { return len(h) }
func (h blockHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h blockHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *blockHeap) Push(x any)        { *h = append(*h, x.(*blockEntry)) }
func (h *blockHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// CheckSender decides whether an authenticated account may use from as its envelope sender:
// its own address, the same with a "+detail" subaddress, or the null sender (for bounces and
// receipts). Anything else is the 553 Postfix's reject_sender_login_mismatch gives.
func CheckSender(account string, from smtp.Address) smtp.Reply {
	if from.Local == "" && from.Domain == "" {
		return smtp.R(smtp.CodeOK, smtp.EnhSenderOK, "Ok")
	}
	local, domain, _ := strings.Cut(strings.ToLower(account), "@")
	fl := strings.ToLower(from.Local)
	base, _, _ := strings.Cut(fl, "+")
	if (fl == local || base == local) && strings.EqualFold(from.Domain, domain) {
		return smtp.R(smtp.CodeOK, smtp.EnhSenderOK, "Ok")
	}
	return smtp.R(smtp.CodeMailboxNameInvalid, smtp.EnhNotAuthorized,
		"<"+from.String()+">: Sender address rejected: not owned by user "+account)
}
