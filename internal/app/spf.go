package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/tern-mail/tern/internal/resolver"
	"github.com/tern-mail/tern/internal/spf"
)

// SPFCheckRequest is what tern spf check evaluates: a client at IP that said HELO Helo and
// MAIL FROM:<From> (empty: the null sender, whose HELO is checked).
type SPFCheckRequest struct {
	IP       net.IP
	Helo     string
	From     string
	Resolver string        // HOST:PORT, or empty for resolv.conf's servers
	Timeout  time.Duration // the whole evaluation (0: spf.DefaultTimeout)
}

// spfQueryTimeout bounds each DNS exchange of tern spf check, so that a server that does
// not answer leaves time for the next one (and for temperror) within the evaluation's bound.
const spfQueryTimeout = 5 * time.Second

// SPFCheckCommand evaluates SPF as the MX listener will, and writes the result, the identity
// checked (as Authentication-Results names it), the domain and the reason, one a line.
func SPFCheckCommand(ctx context.Context, r SPFCheckRequest, w io.Writer) error {
	qt := spfQueryTimeout
	if r.Timeout > 0 {
		qt = min(qt, r.Timeout)
	}
	c, err := resolver.NewClient(r.Resolver, qt)
	if err != nil {
		return err
	}
	o := spf.New(resolver.New(c, resolver.Options{}), r.Timeout).Check(ctx, r.IP, r.Helo, r.From)
	identity := "smtp.mailfrom=" + o.MailFrom
	if o.Helo != "" {
		identity = "smtp.helo=" + o.Helo
	}
	reason := o.Reason
	if reason == "" {
		reason = "no term matched"
	}
	_, err = fmt.Fprintf(w, "result: %s\nidentity: %s\ndomain: %s\nreason: %s\n", o.Result, identity, o.Domain, reason)
	return err
}
