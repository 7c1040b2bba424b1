package policy

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/ratelimit"
	"github.com/tern-mail/tern/internal/smtp"
)

// RateLimits configure a Rate. An Off limit (zero count) is not checked.
type RateLimits struct {
	// Per client (IPv4 address or IPv6 /64), Postfix's smtpd_client_*_rate_limit: new
	// connections, MAIL commands and RCPT commands.
	ClientConnections, ClientMessages, ClientRecipients ratelimit.Limit
	// Exempt are the networks the client limits do not apply to.
	Exempt []netip.Prefix
	// Per authenticated account, over two windows (an hour and a day by default): messages and
	// recipients. They apply from every address, exempt or not.
	AccountMessages, AccountRecipients, AccountDayMessages, AccountDayRecipients ratelimit.Limit
	// ExemptAccounts are the accounts the account limits do not apply to.
	ExemptAccounts []string
	// Logger gets one line per refusal. Nil: discard.
	Logger *slog.Logger
	// Refused is told of each refusal by the limit's name (one of the Rate*, never its key),
	// for metrics. Nil: nobody.
	Refused func(limit string)
}

// Rate decides on connections, messages and recipients by their rate (Postfix's anvil), over
// the counters it is handed: one node's in memory, or shared by several. Each check counts what
// it lets through; a refusal counts nothing. Counter keys are "<limit> <who>", the form tern
// limits show lists them in.
type Rate struct {
	c      ratelimit.Counter
	lim    RateLimits
	exempt map[string]bool
	log    *slog.Logger
}

// Names of the limits, the first word of their counter keys.
const (
	RateConnections       = "connections"
	RateMessages          = "messages"
	RateRecipients        = "recipients"
	RateAccountMessages   = "account-messages"
	RateAccountRecipients = "account-recipients"
	RateDayMessages       = "account-day-messages"
	RateDayRecipients     = "account-day-recipients"
	RateOutbound          = "outbound"
)

// NewRate returns the rate policy over c.
func NewRate(c ratelimit.Counter, lim RateLimits) *Rate {
	r := &Rate{c: c, lim: lim, exempt: map[string]bool{}, log: lim.Logger}
	for _, a := range lim.ExemptAccounts {
		r.exempt[strings.ToLower(a)] = true
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r
}

// rateCheck is one limit to take from.
type rateCheck struct {
	name, who string
	lim       ratelimit.Limit
}

// Connect decides on a new connection from ip: 421 4.7.0 past the client's connection rate,
// answered before the greeting.
func (r *Rate) Connect(ip netip.Addr) (smtp.Reply, bool) {
	if !r.clientLimited(ip) {
		return smtp.Reply{}, true
	}
	who := prefixString(clientKey(ip))
	if name, lim, ok := r.take(ip, "", rateCheck{RateConnections, who, r.lim.ClientConnections}); !ok {
		return smtp.R(smtp.CodeUnavailable, smtp.EnhSecurityOther,
			fmt.Sprintf("Too many connections from %s: %s, try again later", who, rateText(name, lim))), false
	}
	return smtp.Reply{}, true
}

// Mail decides on a MAIL command of c: 450 4.7.1 past the message rate of its address or of
// its account. Postfix answers its rate limits 450 too (smtpd_client_event_limit_exceeded_code);
// X.7.1 because the refusal is policy, not the message.
func (r *Rate) Mail(c Client) (smtp.Reply, bool) {
	return r.check(c, "Message", RateMessages, r.lim.ClientMessages,
		rateCheck{RateAccountMessages, c.User, r.lim.AccountMessages},
		rateCheck{RateDayMessages, c.User, r.lim.AccountDayMessages})
}

// Rcpt decides on a RCPT command of c, before the recipient is looked up (so that guessing
// addresses counts as well): 450 4.7.1 past the recipient rate of its address or its account.
// Not 452 4.5.3 (too many recipients for this message, RFC 5321 §4.5.3.1.10), which tells a
// client to send the rest in another transaction at once; a 450 has it queue them for later.
func (r *Rate) Rcpt(c Client) (smtp.Reply, bool) {
	return r.check(c, "Recipient", RateRecipients, r.lim.ClientRecipients,
		rateCheck{RateAccountRecipients, c.User, r.lim.AccountRecipients},
		rateCheck{RateDayRecipients, c.User, r.lim.AccountDayRecipients})
}

// check takes one event from the client limit and the two account limits that apply to c.
func (r *Rate) check(c Client, what, clientName string, client ratelimit.Limit, hour, day rateCheck) (smtp.Reply, bool) {
	checks := make([]rateCheck, 0, 3)
	if r.clientLimited(c.IP) {
		checks = append(checks, rateCheck{clientName, prefixString(clientKey(c.IP)), client})
	}
	if c.User != "" && !r.exempt[strings.ToLower(c.User)] {
		checks = append(checks, hour, day)
	}
	name, lim, ok := r.take(c.IP, c.User, checks...)
	if ok {
		return smtp.Reply{}, true
	}
	who := c.User
	if name == clientName {
		who = prefixString(clientKey(c.IP))
	}
	return smtp.R(smtp.CodeMailboxBusy, smtp.EnhNotAuthorized,
		fmt.Sprintf("%s rate limit exceeded for %s: %s", what, who, rateText(name, lim))), false
}

// take takes one event from each check in turn and stops at the first refused, which it logs.
// What the checks before it took stays taken (the Counter has no refund, to stay one
// operation per key for a shared store): the order is the client's limit, then the shorter
// window, then the longer, so that a refusal of the short-lived limits never eats into the day.
func (r *Rate) take(ip netip.Addr, user string, checks ...rateCheck) (string, ratelimit.Limit, bool) {
	for _, ch := range checks {
		if ch.lim.Off() {
			continue
		}
		if ok, retry := r.c.Take(ch.name+" "+ch.who, 1, ch.lim); !ok {
			r.log.Info("rate limit exceeded", "limit", ch.name, "key", ch.who, "remote", ip.Unmap().String(), "user", user,
				"max", ch.lim.N, "window", ch.lim.Window, "retry_after", retry.Round(time.Millisecond))
			if r.lim.Refused != nil {
				r.lim.Refused(ch.name)
			}
			return ch.name, ch.lim, false
		}
	}
	return "", ratelimit.Limit{}, true
}

// clientLimited reports whether the client limits apply to ip.
func (r *Rate) clientLimited(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range r.lim.Exempt {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// Outbound takes one message for domain under lim, the domain's outbound limit; when it does
// not fit, it returns how long until it would.
func (r *Rate) Outbound(domain string, lim ratelimit.Limit) (time.Duration, bool) {
	if lim.Off() {
		return 0, true
	}
	ok, retry := r.c.Take(RateOutbound+" "+strings.ToLower(domain), 1, lim)
	return retry, ok
}

// rateText says a limit in words: "100 messages per hour".
func rateText(name string, lim ratelimit.Limit) string {
	unit := name[strings.LastIndexByte(name, '-')+1:]
	return fmt.Sprintf("%d %s per %s", lim.N, unit, WindowText(lim.Window))
}

// WindowText names a window: "minute", "hour", "day", or the duration ("2s", "90m0s").
func WindowText(d time.Duration) string {
	switch d {
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	return d.String()
}
