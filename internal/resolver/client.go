// Package resolver asks DNS servers (the configured --resolver, or those of resolv.conf)
// through github.com/miekg/dns. Client is the shared core: delivery's MX, TLSA and MTA-STS
// lookups use it directly, since they need the AD bit. Resolver adds what mail
// authentication (SPF, later DKIM and DMARC) needs on top: answers cached for their TTL,
// negative answers too (RFC 2308), and timeouts told apart from other failures, since a
// timeout is an SPF temperror while a name that does not exist is not.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

// Client asks one or more DNS servers, in turn, with recursion desired. It is safe for
// concurrent use.
type Client struct {
	servers  []string
	udp, tcp *dns.Client
}

// EDNSSize is the UDP payload size we announce (the DNS flag day 2020 value, which avoids IP
// fragmentation).
const EDNSSize = 1232

// NewClient makes a client for server ("HOST:PORT"), or, when server is empty, for the servers
// of /etc/resolv.conf. timeout bounds each exchange with one server.
func NewClient(server string, timeout time.Duration) (*Client, error) {
	c := &Client{
		udp: &dns.Client{Net: "udp", Timeout: timeout, UDPSize: EDNSSize},
		tcp: &dns.Client{Net: "tcp", Timeout: timeout},
	}
	if server != "" {
		host, port, err := net.SplitHostPort(server)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || host == "" || n < 1 || n > 65535 {
			return nil, fmt.Errorf("resolver: bad HOST:PORT %q", server)
		}
		c.servers = []string{server}
		return c, nil
	}
	cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(cfg.Servers) == 0 {
		// As Go's own resolver does without a resolv.conf.
		c.servers = []string{"127.0.0.1:53", "[::1]:53"}
		return c, nil
	}
	for _, s := range cfg.Servers {
		c.servers = append(c.servers, net.JoinHostPort(s, cfg.Port))
	}
	return c, nil
}

// Servers is the addresses the client asks, in order.
func (c *Client) Servers() []string { return append([]string(nil), c.servers...) }

// ErrTimeout is the cause of an exchange that got no answer in time from any server.
var ErrTimeout = errors.New("timed out")

// Exchange asks for name's records of type qtype and returns the first answer whose RCODE is
// NOERROR or NXDOMAIN (a final word about the name). Any other RCODE, or no answer at all,
// moves on to the next server; when none gives a final word the error says why, and wraps
// ErrTimeout when the last server did not answer in time. AD and DO are set in the query
// (RFC 6840 §5.7), so that a validating resolver reports in the AD bit whether it validated the
// answer; a truncated answer over UDP is asked again over TCP.
func (c *Client) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.AuthenticatedData = true
	m.SetEdns0(EDNSSize, true)
	var lastErr error
	for _, srv := range c.servers {
		resp, _, err := c.udp.ExchangeContext(ctx, m, srv)
		if err == nil && resp.Truncated {
			resp, _, err = c.tcp.ExchangeContext(ctx, m, srv)
		}
		if err != nil {
			lastErr = err
			if isTimeout(err) {
				lastErr = fmt.Errorf("%w (%s)", ErrTimeout, srv)
			}
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError {
			return resp, nil
		}
		lastErr = errors.New(RcodeName(resp.Rcode))
	}
	return nil, lastErr
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// RcodeName is the mnemonic of a DNS RCODE ("SERVFAIL").
func RcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "RCODE " + strconv.Itoa(rc)
}
