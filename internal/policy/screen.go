package policy

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"

	"github.com/tern-mail/tern/internal/dnsbl"
	"github.com/tern-mail/tern/internal/smtp"
)

// Screen judges the clients of the smtp listener on what DNS says of them (Postfix's
// postscreen DNSBL test and smtpd's reject_rbl_client and reject_unknown_client_hostname) and
// greylists them. Authenticated clients are never judged. Every part is off at its zero value.
type Screen struct {
	// Lists are the DNS lists (nil or no sites: none). A client whose score reaches Threshold
	// is refused at RCPT; one whose score is at or below AllowThreshold (when that is negative)
	// is allow-listed: never greylisted nor refused for its name.
	Lists          *dnsbl.Lists
	Threshold      int
	AllowThreshold int
	// Resolver finds client names; nil: no reverse lookup.
	Resolver dnsbl.Resolver
	// RejectUnknownClient refuses a client without a forward-confirmed name (RFC 7372's
	// X.7.25): 450 when a lookup failed, 550 when there is no such name.
	RejectUnknownClient bool
	// Greylist delays new triplets; nil: no greylisting.
	Greylist *Greylist
	// Exempt are the client networks no check applies to (their names are still looked up).
	Exempt []netip.Prefix
	// Logger gets the lookups that failed. Nil: discard.
	Logger *slog.Logger
	// Refused is told of each recipient refused, by the check's name (one of the Screen*),
	// for metrics. Nil: nobody.
	Refused func(check string)
}

// Names of the checks of a Screen, given to Screen.Refused.
const (
	ScreenDNSBL    = "dnsbl"
	ScreenRDNS     = "rdns"
	ScreenGreylist = "greylist"
)

// refused tells Refused of a refusal by check and returns r.
func (s *Screen) refused(check string, r smtp.Reply) smtp.Reply {
	if s.Refused != nil {
		s.Refused(check)
	}
	return r
}

// ClientReport is what the lookups at connect found out about a client.
type ClientReport struct {
	IP    netip.Addr
	Lists dnsbl.Result
	// Name is its reverse DNS; Looked says the lookup was made.
	Name   dnsbl.Name
	Looked bool
	// Exempt says the client is in an exempt network: not looked up in the lists, never refused.
	Exempt bool
}

// LogAttrs are the report's fields for a log line.
func (r ClientReport) LogAttrs() []any {
	attrs := []any{"dnsbl_score", r.Lists.Score}
	if r.Exempt {
		attrs = []any{"exempt", true}
	}
	if z := r.Lists.Blocked(); len(z) > 0 {
		attrs = append(attrs, "dnsbl", strings.Join(z, ","))
	}
	if r.Looked {
		attrs = append(attrs, "name", cmp.Or(r.Name.Name, "unknown"))
		if r.Name.Name == "" && r.Name.PTR != "" {
			attrs = append(attrs, "ptr", r.Name.PTR)
		}
	}
	return attrs
}

// Active reports whether the screen does anything at all.
func (s *Screen) Active() bool {
	return s != nil && (s.Lists != nil && len(s.Lists.Sites) > 0 || s.Resolver != nil || s.Greylist != nil)
}

// Look makes the lookups of a new client: the DNS lists and the reverse name, in parallel.
// A lookup that fails counts as no listing (the client is not blocked) and is logged.
func (s *Screen) Look(ctx context.Context, ip netip.Addr) ClientReport {
	rep := ClientReport{IP: ip.Unmap()}
	for _, p := range s.Exempt {
		rep.Exempt = rep.Exempt || p.Contains(rep.IP)
	}
	var wg sync.WaitGroup
	if s.Resolver != nil {
		rep.Looked = true
		wg.Add(1)
		// Owned by Look, which waits for it.
		go func() {
			defer wg.Done()
			defer func() { _ = recover() }() // a panic leaves the name unknown, as a failed lookup
			rep.Name = dnsbl.ReverseLookup(ctx, s.Resolver, rep.IP)
		}()
	}
	if s.Lists != nil && len(s.Lists.Sites) > 0 && !rep.Exempt {
		rep.Lists = s.Lists.Check(ctx, rep.IP)
	}
	wg.Wait()
	if s.Logger != nil {
		for _, err := range rep.Lists.Errors {
			s.Logger.Warn("dnsbl lookup failed, not counted", "remote", rep.IP.String(), "err", err)
		}
	}
	return rep
}

// allowed reports whether the DNS lists allow-list the client.
func (s *Screen) allowed(r ClientReport) bool {
	return s.AllowThreshold < 0 && s.Lists != nil && len(s.Lists.Sites) > 0 && r.Lists.Score <= s.AllowThreshold
}

// CheckRcpt decides on a recipient that relay control accepted from c, given what the lookups
// found: a listed client gets 554 5.7.1 naming the lists (smtpd's reject_rbl_client reply);
// a client without a confirmed name 450/550 4.7.25 when asked for; a new triplet 450 4.7.1.
func (s *Screen) CheckRcpt(c Client, r ClientReport, from, rcpt smtp.Address) smtp.Reply {
	ok := smtp.R(smtp.CodeOK, smtp.EnhDestOK, "Ok")
	if c.Authenticated || r.Exempt {
		return ok
	}
	allowed := s.allowed(r)
	if s.Lists != nil && r.Lists.Score >= s.Threshold && len(s.Lists.Sites) > 0 && !allowed {
		return s.refused(ScreenDNSBL, smtp.R(smtp.CodeTransactionFailed, smtp.EnhNotAuthorized,
			fmt.Sprintf("Service unavailable; client [%s] blocked using %s", c.IP, strings.Join(r.Lists.Blocked(), ", "))))
	}
	if s.RejectUnknownClient && r.Looked && r.Name.Name == "" && !allowed {
		text := fmt.Sprintf("Client host rejected: cannot find your hostname, [%s]", c.IP)
		if r.Name.Temporary {
			return s.refused(ScreenRDNS, smtp.R(smtp.CodeMailboxBusy, smtp.EnhReverseDNS, text))
		}
		return s.refused(ScreenRDNS, smtp.R(smtp.CodeMailboxUnavailable, smtp.EnhReverseDNS, text))
	}
	if s.Greylist != nil && !allowed {
		if wait, pass := s.Greylist.Check(c.IP, from.String(), rcpt.String()); !pass {
			return s.refused(ScreenGreylist, smtp.R(smtp.CodeMailboxBusy, smtp.EnhNotAuthorized,
				fmt.Sprintf("<%s>: Recipient address rejected: Greylisted, try again in %d seconds", rcpt, int(wait.Seconds()+0.999))))
		}
	}
	return ok
}
