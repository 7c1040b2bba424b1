package policy

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/tern-mail/tern/internal/smtp"
)

// AuthLimits configure an AuthLimiter. Zero fields take the defaults below.
type AuthLimits struct {
	// MaxFailures is how many failed AUTH attempts from one client (IPv4 address or IPv6 /64),
	// or for one account, are allowed within Window before it is blocked for Block.
	MaxFailures int
	Window      time.Duration
	Block       time.Duration
	// BaseDelay is the wait before answering a failure; it doubles with each failure in the
	// window, up to MaxDelay, so that guessing gets slow long before the block.
	BaseDelay, MaxDelay time.Duration
}

// Defaults for AuthLimits.
const (
	DefaultAuthMaxFailures = 10
	DefaultAuthWindow      = 15 * time.Minute
	DefaultAuthBlock       = 15 * time.Minute
	DefaultAuthBaseDelay   = 250 * time.Millisecond
	DefaultAuthMaxDelay    = 5 * time.Second
)

// AuthLimiter slows down and then blocks password guessing, per client and per account.
type AuthLimiter struct {
	lim AuthLimits
	now func() time.Time

	mu       sync.Mutex
	clients  map[netip.Prefix]*failures
	accounts map[string]*failures
}

// failures is the recent failure count of one client or account.
type failures struct {
	n            int
	first        time.Time // start of the current window
	blockedUntil time.Time
}

// NewAuthLimiter returns a limiter; now is the clock (nil: time.Now).
func NewAuthLimiter(lim AuthLimits, now func() time.Time) *AuthLimiter {
	if lim.MaxFailures <= 0 {
		lim.MaxFailures = DefaultAuthMaxFailures
	}
	if lim.Window <= 0 {
		lim.Window = DefaultAuthWindow
	}
	if lim.Block <= 0 {
		lim.Block = DefaultAuthBlock
	}
	if lim.BaseDelay <= 0 {
		lim.BaseDelay = DefaultAuthBaseDelay
	}
	if lim.MaxDelay <= 0 {
		lim.MaxDelay = DefaultAuthMaxDelay
	}
	if now == nil {
		now = time.Now
	}
	return &AuthLimiter{lim: lim, now: now, clients: make(map[netip.Prefix]*failures), accounts: make(map[string]*failures)}
}

// replyBlocked is the answer to a blocked client or account; the session closes after it.
var replyBlocked = smtp.R(smtp.CodeUnavailable, smtp.EnhSecurityOther, "Error: too many failed authentications, try again later")

// Allow is asked before an AUTH exchange starts: a blocked client gets a 421 and ok false.
func (l *AuthLimiter) Allow(ip netip.Addr) (smtp.Reply, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.current(l.clients[clientKey(ip)]); f != nil && l.now().Before(f.blockedUntil) {
		return replyBlocked, false
	}
	return smtp.Reply{}, true
}

// Blocked reports whether an account is blocked; a successful AUTH for it is refused (with the
// 421 returned) until the block ends, or guessing from many clients would still work.
func (l *AuthLimiter) Blocked(account string) (smtp.Reply, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.current(l.accounts[strings.ToLower(account)]); f != nil && l.now().Before(f.blockedUntil) {
		return replyBlocked, true
	}
	return smtp.Reply{}, false
}

// Failed records a failed attempt from ip for account ("" when the client never named one) and
// returns how long to wait before answering, and, once a limit is reached, the 421 to send
// before closing (blocked true).
func (l *AuthLimiter) Failed(ip netip.Addr, account string) (delay time.Duration, reply smtp.Reply, blocked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep()
	n := count(l, l.clients, clientKey(ip))
	if account != "" {
		n = max(n, count(l, l.accounts, strings.ToLower(account)))
	}
	delay = l.lim.BaseDelay
	for i := 1; i < n && delay < l.lim.MaxDelay; i++ {
		delay *= 2
	}
	delay = min(delay, l.lim.MaxDelay)
	if n >= l.lim.MaxFailures {
		return delay, replyBlocked, true
	}
	return delay, smtp.Reply{}, false
}

// Succeeded forgets the failures of ip: a client that gets the password right after a typo is
// not punished for it. An account's failures are kept, since they may come from elsewhere.
func (l *AuthLimiter) Succeeded(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.clients, clientKey(ip))
}

// current returns f, or nil when its window and block have both passed.
func (l *AuthLimiter) current(f *failures) *failures {
	if f == nil {
		return nil
	}
	now := l.now()
	if now.Sub(f.first) > l.lim.Window && !now.Before(f.blockedUntil) {
		return nil
	}
	return f
}

// count adds a failure to m[key] and returns the failures in its window.
func count[K comparable](l *AuthLimiter, m map[K]*failures, key K) int {
	f := l.current(m[key])
	if f == nil {
		f = &failures{first: l.now()}
		m[key] = f
	}
	f.n++
	if f.n >= l.lim.MaxFailures {
		f.blockedUntil = l.now().Add(l.lim.Block)
	}
	return f.n
}

// sweep drops stale records now and then, so that the maps stay small under a spray of
// addresses.
func (l *AuthLimiter) sweep() {
	if len(l.clients)+len(l.accounts) < 4096 {
		return
	}
	for k, f := range l.clients {
		if l.current(f) == nil {
			delete(l.clients, k)
		}
	}
	for k, f := range l.accounts {
		if l.current(f) == nil {
			delete(l.accounts, k)
		}
	}
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
