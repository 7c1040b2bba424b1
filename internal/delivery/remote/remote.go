// Package remote delivers mail to other servers over SMTP: by MX (RFC 5321 §5.1) or through a
// configured smarthost (relayhost), with the TLS policy the destination calls for. It is a
// delivery.BatchDeliverer: the queue hands it the recipients of one destination domain at a time
// and gets one Outcome per recipient. It owns routing (DNS), TLS policy (the operator's table,
// MTA-STS, DANE, REQUIRETLS), the SMTP conversation and DKIM signing. It does not retry,
// write bounces or keep state across calls besides the MTA-STS policy cache: the queue does the
// rest.
//
// # Routing
//
// Without a relayhost, the MX records of the recipient domain are looked up with the configured
// DNS server (Options.Resolver) and sorted by preference, equal preferences in random order. A
// domain without MX records is its own MX (the implicit MX of RFC 5321 §5.1). A null MX (RFC
// 7505) fails every recipient at once with 556 5.1.10, a domain that does not exist with 550
// 5.1.2, one without MX and address records with 550 5.4.4; a DNS failure is temporary (4.4.3),
// and so is an MX host without an address (4.4.4), since DNS gets fixed. If tern itself is one
// of the MX hosts (by name, or by one of Options.LocalAddrs), it and every host of the same or a
// lower priority are dropped (RFC 5321 §5.1); when nothing is left, or a server greets us with
// our own name, the mail would loop and fails with 554 5.4.6, as Postfix does. An address
// literal (user@[192.0.2.1]) goes to that address.
//
// Each host is tried in turn, and each of its addresses (IPv6 first), at most maxAttempts
// connections per call. A connection failure, a refusal of the greeting or EHLO, a 4xx to MAIL,
// a failed AUTH with the relayhost, or a TLS requirement the host does not meet moves on to the
// next address. Replies to RCPT are per-recipient outcomes: a 5xx fails
// that recipient, a 4xx leaves it for the next host (as Postfix does, so that a backup MX can
// take it). A 5xx to MAIL or to the data fails every recipient of that transaction. When no host
// took a recipient, it gets its last error, which is temporary unless every failure on the way
// was permanent: a host that was down may take the message later.
//
// # TLS
//
// For each host (see tlsPlan):
//
//   - DANE (RFC 7672) decides when the MX answer (for the relayhost or an implicit MX, nothing
//     above the host), the host's address answers and a non-empty TLSA RRset for
//     _PORT._tcp.HOST all came back with the AD bit: TLS is required and the certificate must
//     match a DANE-EE(3) record, or chain to a DANE-TA(2) one with the host's or the domain's
//     name. With TLSA records but none usable, TLS is required without authentication. A TLSA
//     lookup that fails makes the host unusable (RFC 7672 §2.2.3).
//   - Otherwise an MTA-STS (RFC 8461) policy in mode enforce requires the host to match its mx
//     patterns and its certificate to verify (PKIX with Options.RootCAs) for the host's name;
//     mode testing only logs what would have failed.
//   - Otherwise, or if stricter, the operator's Options.TLSPolicy: "may" (the default: STARTTLS
//     when offered, any certificate; a failed handshake is retried on a new connection without
//     TLS, as Postfix does), "encrypt" (TLS required, any certificate) or "verify" (TLS
//     required, certificate verified for the host's name).
//
// A TLS requirement a host does not meet is a temporary failure of that host (4.7.4 when it
// offers no TLS, 4.7.5 when the handshake or the certificate check fails). A message for which
// Options.RequireTLS is true (REQUIRETLS, RFC 8689) needs at least "verify" (or DANE), an MX
// answer that was DNSSEC-validated or matched against an enforced MTA-STS policy, and a server
// that offers REQUIRETLS; when no host can give that, it fails with 550 5.7.30 at once (RFC 8689
// §4.2.1): a host's TLS failure is then final for that host, not temporary. When some other
// host failed only for now (unreachable, a 4xx), or through the relayhost, the message is
// retried with 451 4.7.30 (delivery.EnhRequireTLSTemp), which the queue reports as 5.7.30 at
// expiry. A handshake cut by the connection (EOF, reset, timeout) is a lost connection (4.4.2),
// not a TLS failure.
//
// # TLS reports
//
// With Options.TLSReports, each session with an MX host of a recipient domain where TLS was
// tried or required gives a tlsrpt.Outcome (RFC 8460) for that domain: the policy (sts with
// the MTA-STS policy's lines and mx patterns, tlsa with the TLSA records, or no-policy-found),
// and success or the failure's result type (§4.3: the x509 findings as certificate-expired,
// -host-mismatch or -not-trusted; tlsa-invalid when no TLSA record matches or none is usable;
// starttls-not-supported when TLS was required or tried and not had) with the session's
// addresses, the MX's name and greeting and the error. A failed MTA-STS policy fetch is one
// sts-policy-fetch-error, sts-policy-invalid or sts-webpki-invalid per delivery to the domain;
// an MX the enforced policy does not list (validation-failure) and a failed TLSA lookup
// (dnssec-invalid) one per host. A policy in mode testing is judged as if enforced. Plain
// SMTP without any policy, the plaintext retry after a failed handshake, the relayhost and
// address literals are not recorded (see tlsreport.go).
//
// # What the message needs
//
// PIPELINING and SIZE are used when offered (smtpclient). BODY=8BITMIME goes to servers that
// offer 8BITMIME. A message declared 8BITMIME whose text really has 8-bit octets is converted
// for a server without it (RFC 6152 §3 forbids sending it as it is), as Postfix does: each 8-bit
// MIME part becomes quoted-printable or base64 (internal/sevenbit, streamed from the queue with a
// bounded buffer); what cannot be converted (an 8-bit header, 8 bits outside any part) is
// refused with 554 5.6.3 "Conversion required but not supported".
// BINARYMIME needs CHUNKING and BINARYMIME (else 554 5.6.3). A message that needs SMTPUTF8
// (non-ASCII addresses or header) fails with 553 5.6.7 at a server without it (RFC 6531 §3.2).
// A message over the server's SIZE fails with 552 5.3.4 before anything is sent (RFC 1870 §6).
// These are final at once, without trying other hosts, since a domain's MX hosts are alike.
// DSN parameters (RFC 3461) go to servers that offer DSN; to one that does not, a delivered
// recipient with NOTIFY=SUCCESS is reported as Relayed.
//
// # DKIM
//
// With Options.DKIM, each message is signed as it is sent to a host: after any conversion to 7
// bits, so that the signature covers what the server gets. The signer (package dkim's
// MessageSigner) picks the keys by the From domain and returns nothing for a domain without
// keys. The message as queued is signed once per call and domain, a converted one at each
// attempt that converts it. A signing failure is logged and the message goes unsigned (see
// sign).
//
// # Failures and logs
//
// Every failure is a *delivery.Error. When the remote server refused, its Code, Enh and Msg
// are the server's reply, RemoteReply is set and RemoteMTA is its name, so that the DSN quotes
// what the server said; every other failure is tern's own finding, in its own words;
// the detail (address, command, TLS error) is in Err, for logs only. Options.Logger gets one
// line per connection ("remote: connection", with remote as host[ip]:port, tls, policy, code
// and result), one per recipient outcome ("remote: outcome", with rcpt, status and code), and
// the SMTP dialogue at debug level, AUTH redacted.
package remote

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/idna"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/mtasts"
	"github.com/tern-mail/tern/internal/sasl"
	"github.com/tern-mail/tern/internal/smtp"
	"github.com/tern-mail/tern/internal/tlsrpt"
)

// TLSMode is an operator's TLS policy for a destination (Options.TLSPolicy).
type TLSMode string

const (
	// TLSMay is opportunistic TLS: STARTTLS when the server offers it, any certificate, and
	// plaintext when it does not (RFC 7435: unauthenticated encryption still beats none).
	TLSMay TLSMode = "may"
	// TLSEncrypt requires TLS but accepts any certificate.
	TLSEncrypt TLSMode = "encrypt"
	// TLSVerify requires TLS and a certificate that verifies for the server's host name (the MX
	// host name, or the relayhost's).
	TLSVerify TLSMode = "verify"
)

// RelayAuth are the credentials for the relayhost's AUTH (RFC 4954).
type RelayAuth struct {
	// Mechanism is the SASL mechanism to use; "" picks the best one the relayhost offers:
	// SCRAM (with channel binding over TLS) before PLAIN and LOGIN.
	Mechanism string
	// User and Password are the relayhost account's.
	User, Password string
}

// Timeouts bound each step. A zero field takes its default.
type Timeouts struct {
	// Connect bounds a TCP connection. Default: 30 seconds.
	Connect time.Duration
	// Command bounds each SMTP command and its reply, and a TLS handshake. Default: 5 minutes
	// (RFC 5321 §4.5.3.2).
	Command time.Duration
	// Data bounds the wait for the reply to the end of the message. Default: 10 minutes.
	Data time.Duration
	// DNS bounds each DNS query. Default: 10 seconds.
	DNS time.Duration
	// PolicyFetch bounds the HTTPS fetch of an MTA-STS policy. Default: 30 seconds.
	PolicyFetch time.Duration
}

// Default values of Options.
const (
	DefaultPort               = 25
	DefaultConnectTimeout     = 30 * time.Second
	DefaultDNSTimeout         = 10 * time.Second
	DefaultPolicyFetchTimeout = 30 * time.Second
)

// maxAttempts bounds the connections one DeliverBatch call opens for one domain (Postfix's
// smtp_mx_address_limit is 5; a domain with two dual-stack MX hosts already has four).
const maxAttempts = 10

// maxMXHosts bounds how many MX hosts of a domain are resolved and tried.
const maxMXHosts = 10

// Options configure a Deliverer.
type Options struct {
	// Hostname is tern's host name: what EHLO sends, and what a server that greets us with it
	// is taken to be (ourselves: a mail loop). Required.
	Hostname string
	// Resolver is the DNS server to ask ("HOST:PORT"). It should be a validating resolver on
	// this machine: its AD bit is what enables DANE. Default: the servers of /etc/resolv.conf.
	Resolver string
	// Port is the port of MX hosts. Default: 25.
	Port int
	// Relayhost, "HOST:PORT", is a smarthost that takes all mail instead of the MX hosts.
	// Default: none (deliver by MX).
	Relayhost string
	// RelayImplicitTLS, with a Relayhost, starts TLS as soon as the connection is open
	// instead of with STARTTLS: the submissions port, 465 (RFC 8314). The TLS policy for the
	// relayhost's name still says which certificate will do.
	RelayImplicitTLS bool
	// RelayAuth, with a Relayhost, authenticates to it. PLAIN and LOGIN are only used over
	// TLS. Default: no AUTH.
	RelayAuth *RelayAuth
	// TLSPolicy maps a destination domain (the relayhost's host name with a relayhost) to its
	// TLS mode; a key with a leading dot (".example.com") covers the subdomains. DANE and an
	// enforced MTA-STS policy still apply on top. Default: TLSMay for every domain.
	TLSPolicy map[string]TLSMode
	// RootCAs verify certificates for TLSVerify, MTA-STS (the SMTP servers' and the policy
	// host's) and DANE-TA. Default: the system's roots.
	RootCAs *x509.CertPool
	// HTTPClient fetches MTA-STS policies; redirects are never followed (RFC 8461 §3.3).
	// Default: a client that trusts RootCAs and looks up the policy host's address through
	// Resolver, like every other name of a delivery.
	HTTPClient *http.Client
	// PolicyPort is the port the default HTTPClient connects to for an MTA-STS policy (the
	// URL stays https://mta-sts.<domain>/...). Default: 443.
	PolicyPort int
	// RequireTLS reports whether a message must only leave over verified TLS (REQUIRETLS,
	// RFC 8689). Default: the envelope's RequireTLS (MAIL FROM's REQUIRETLS parameter).
	RequireTLS func(*envelope.Envelope) bool
	// LocalAddrs are the addresses tern's SMTP listeners are bound to: a destination on one
	// of them is tern itself. An unspecified address (0.0.0.0:25) covers the loopback and
	// interface addresses on its port. Default: none (loops are still caught by the greeting).
	LocalAddrs []netip.AddrPort
	// Timeouts bound each step.
	Timeouts Timeouts
	// DeadHostTTL is how long an address that could not be reached (refused, timed out, no
	// greeting) is skipped: deliveries to it are deferred at once, with the error that marked
	// it. After that, one delivery at a time tries it again. Keep it below the queue's
	// shortest retry interval, so that a message's own retry always tries. Default:
	// DefaultDeadHostTTL; negative: never skip.
	DeadHostTTL time.Duration
	// DKIM signs what is sent (after any conversion to 7 bits): its fields go in front of the
	// message. Default: nothing is signed.
	DKIM Signer
	// Logger gets one line per connection and one per recipient outcome. Default: discard.
	Logger *slog.Logger
	// Now is the clock for certificate validity and the MTA-STS cache. Default: time.Now.
	Now func() time.Time
	// TLSReports records the TLS outcome of each session with an MX host, for SMTP TLS
	// Reporting (RFC 8460; see the package doc, TLS reports). It is called from the delivery
	// goroutines, and must be cheap and never block. Default: nothing is recorded.
	TLSReports TLSRecorder
}

// TLSRecorder takes the TLS outcomes of remote delivery (Options.TLSReports).
type TLSRecorder interface {
	RecordTLS(tlsrpt.Outcome)
}

// Deliverer delivers to remote servers. It is safe for concurrent use.
type Deliverer struct {
	opts      Options
	log       *slog.Logger
	dns       *dnsResolver
	sts       *stsCache
	http      *http.Client
	relayHost string // Relayhost's host, "" without one
	relayPort int
	policy    map[string]TLSMode   // TLSPolicy, keys lower-cased
	self      atomic.Pointer[self] // Hostname and LocalAddrs, as SetSelf last set them
	hosts     *hostStates
}

// self is who tern is: the name EHLO sends, and what a destination that is tern looks like.
type self struct {
	hostname string
	addrs    []netip.AddrPort // LocalAddrs, with unspecified ones expanded
}

// SetSelf changes tern's host name and listening addresses (Options.Hostname and LocalAddrs:
// a reload of the configuration) for the attempts that start from now on.
func (d *Deliverer) SetSelf(hostname string, local []netip.AddrPort) error {
	if err := checkHostname(hostname); err != nil {
		return err
	}
	d.self.Store(&self{hostname: hostname, addrs: expandLocalAddrs(local)})
	return nil
}

// Self is who tern is now, as SetSelf (or New) last set it: the host name, and the addresses
// (with unspecified ones expanded) where a destination is tern.
func (d *Deliverer) Self() (hostname string, addrs []netip.AddrPort) {
	me := d.self.Load()
	return me.hostname, slices.Clone(me.addrs)
}

// checkHostname refuses a host name EHLO cannot send.
func checkHostname(h string) error {
	if h == "" || strings.ContainsAny(h, " \t\r\n") {
		return fmt.Errorf("remote: a host name without spaces is required, got %q", h)
	}
	return nil
}

var _ delivery.BatchDeliverer = (*Deliverer)(nil)

// Destination names where mail for domain goes, for the queue's per-destination concurrency:
// the relayhost, or the domain.
func (d *Deliverer) Destination(domain string) string {
	if d.relayHost != "" {
		return "relayhost"
	}
	return "domain:" + strings.ToLower(domain)
}

// ForgetDeadHosts makes the next deliveries try the servers found down lately (see
// Options.DeadHostTTL), when someone says they are back: for domain "" all of them (tern queue
// flush); otherwise only those met for that domain (and its subdomains, if asked), or the
// relayhost when there is one (ETRN, tern queue flush @domain). A client's ETRN thus cannot
// make tern hammer every server it knows to be down. It returns how many it forgot.
func (d *Deliverer) ForgetDeadHosts(domain string, subdomains bool) int {
	switch {
	case domain == "":
	case d.relayHost != "":
		domain, subdomains = d.relayHost, false
	default:
		ascii, err := idna.Lookup.ToASCII(strings.TrimSuffix(domain, "."))
		if err != nil || ascii == "" {
			return 0
		}
		domain = strings.ToLower(ascii)
	}
	return d.hosts.forget(domain, subdomains)
}

// New checks opts and returns a Deliverer.
func New(opts Options) (*Deliverer, error) {
	if err := checkHostname(opts.Hostname); err != nil {
		return nil, err
	}
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if opts.Port < 1 || opts.Port > 65535 {
		return nil, fmt.Errorf("remote: bad port %d", opts.Port)
	}
	t := &opts.Timeouts
	t.Connect = orDefault(t.Connect, DefaultConnectTimeout)
	t.DNS = orDefault(t.DNS, DefaultDNSTimeout)
	t.PolicyFetch = orDefault(t.PolicyFetch, DefaultPolicyFetchTimeout)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RequireTLS == nil {
		opts.RequireTLS = func(env *envelope.Envelope) bool { return env.RequireTLS }
	}
	if opts.DeadHostTTL == 0 {
		opts.DeadHostTTL = DefaultDeadHostTTL
	}
	d := &Deliverer{opts: opts, log: opts.Logger, sts: newSTSCache(), hosts: newHostStates(opts.DeadHostTTL, opts.Now)}
	if opts.Relayhost != "" {
		host, port, err := splitHostPort(opts.Relayhost)
		if err != nil {
			return nil, fmt.Errorf("remote: relayhost: %w", err)
		}
		d.relayHost, d.relayPort = host, port
	}
	if opts.RelayAuth != nil {
		if opts.Relayhost == "" {
			return nil, errors.New("remote: relay credentials without a relayhost")
		}
		if m := opts.RelayAuth.Mechanism; m != "" && !slices.Contains(authMechanisms, strings.ToUpper(m)) {
			return nil, fmt.Errorf("remote: relayhost AUTH mechanism %q is not one of %s", m, strings.Join(authMechanisms, ", "))
		}
	}
	d.policy = make(map[string]TLSMode, len(opts.TLSPolicy))
	for k, v := range opts.TLSPolicy {
		switch v {
		case TLSMay, TLSEncrypt, TLSVerify:
		default:
			return nil, fmt.Errorf("remote: TLS policy for %q: unknown mode %q (may, encrypt, verify)", k, v)
		}
		d.policy[strings.TrimSuffix(strings.ToLower(k), ".")] = v
	}
	var err error
	if d.dns, err = newResolver(opts.Resolver, t.DNS); err != nil {
		return nil, err
	}
	d.http = mtasts.NewClient(opts.HTTPClient, d.lookupPolicyHost, opts.PolicyPort, opts.RootCAs)
	if err := d.SetSelf(opts.Hostname, opts.LocalAddrs); err != nil {
		return nil, err
	}
	return d, nil
}

func orDefault(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}

// splitHostPort parses "HOST:PORT" with a numeric port.
func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 || host == "" {
		return "", 0, fmt.Errorf("bad HOST:PORT %q", s)
	}
	return strings.TrimSuffix(strings.ToLower(host), "."), port, nil
}

// DeliverBatch implements delivery.BatchDeliverer. Recipients are grouped by domain (all in
// one group with a relayhost), and each group is delivered in one pass over its hosts.
func (d *Deliverer) DeliverBatch(ctx context.Context, env *envelope.Envelope, rcpts []int, body delivery.Body) []delivery.Outcome {
	out := make([]delivery.Outcome, len(rcpts))
	var order []string
	groups := map[string][]int{} // domain -> positions in rcpts
	for i, r := range rcpts {
		dom := ""
		if d.relayHost == "" {
			dom = envelope.Domain(env.Rcpts[r].Addr)
		}
		if _, ok := groups[dom]; !ok {
			order = append(order, dom)
		}
		groups[dom] = append(groups[dom], i)
	}
	for _, dom := range order {
		pos := groups[dom]
		idx := make([]int, len(pos))
		for i, p := range pos {
			idx[i] = rcpts[p]
		}
		res := d.deliverDomain(ctx, env, dom, idx, body)
		for i, p := range pos {
			out[p] = res[i]
		}
	}
	return out
}

// logOutcomes writes one line per recipient.
func (d *Deliverer) logOutcomes(env *envelope.Envelope, idx []int, out []delivery.Outcome) {
	for i, o := range out {
		status, code := "delivered", smtp.CodeOK
		if o.Relayed {
			status = "relayed"
		}
		var de *delivery.Error
		if errors.As(o.Err, &de) {
			status, code = "deferred", de.Code
			if de.Permanent {
				status = "bounced"
			}
		}
		attrs := []any{"msgid", env.ID, "rcpt", env.Rcpts[idx[i]].Addr, "remote", o.RemoteMTA, "status", status, "code", code}
		if de != nil {
			attrs = append(attrs, "enhanced", de.Enhanced(), "err", de.Error())
		}
		d.log.Info("remote: outcome", attrs...)
	}
}

// authMechanisms are the relayhost AUTH mechanisms, best first.
var authMechanisms = []string{
	sasl.ScramSHA256Plus, sasl.ScramSHA1Plus, sasl.ScramSHA256, sasl.ScramSHA1, sasl.Plain, sasl.Login,
}
