package remote

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/resolver"
	"github.com/tern-mail/tern/internal/smtp"
)

// route is where a domain's mail goes: its MX hosts in order, or the relayhost.
type route struct {
	domain   string // the next-hop domain in ASCII (A-labels), or the relayhost's host
	port     int
	relay    bool // via the relayhost
	literal  bool // an address literal: user@[192.0.2.1]
	mxSecure bool // the MX answer (or its absence) was DNSSEC-validated
	hosts    []*host
}

// host is one server of a route.
type host struct {
	name       string // host name without the final dot, or an address literal's address
	pref       int    // MX preference
	addrs      []netip.Addr
	addrSecure bool            // the A and AAAA answers were DNSSEC-validated
	err        *delivery.Error // why the host cannot be used (no address); nil if it can
}

// route finds the hosts for domain ("" with a relayhost).
func (d *Deliverer) route(ctx context.Context, domain string) (*route, *delivery.Error) {
	if d.relayHost != "" {
		rt := &route{domain: d.relayHost, port: d.relayPort, relay: true}
		h := &host{name: d.relayHost}
		d.resolveHost(ctx, h)
		rt.hosts = []*host{h}
		return d.dropSelf(rt)
	}
	if lit, ok := strings.CutPrefix(domain, "["); ok {
		// RFC 5321 §4.1.3 address literal: deliver to that address, no MX.
		lit = strings.TrimSuffix(lit, "]")
		lit = strings.TrimPrefix(strings.TrimPrefix(lit, "IPv6:"), "ipv6:")
		ip, err := netip.ParseAddr(lit)
		if err != nil {
			return nil, &delivery.Error{Permanent: true, Code: smtp.CodeMailboxUnavailable, Enh: smtp.EnhBadDestSystem,
				Msg: "bad address literal " + domain, Err: err}
		}
		rt := &route{domain: domain, port: d.opts.Port, literal: true,
			hosts: []*host{{name: ip.String(), addrs: []netip.Addr{ip.Unmap()}}}}
		return d.dropSelf(rt)
	}
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil || ascii == "" {
		return nil, &delivery.Error{Permanent: true, Code: smtp.CodeMailboxUnavailable, Enh: smtp.EnhBadDestSystem,
			Msg: "bad destination domain " + domain, Err: err}
	}
	rt := &route{domain: ascii, port: d.opts.Port}
	mx, err := d.dns.lookup(ctx, ascii, dns.TypeMX)
	if err != nil {
		return nil, dnsFailure(ascii, err)
	}
	rt.mxSecure = mx.secure
	if len(mx.rrs) == 0 {
		// RFC 5321 §5.1: no MX, so the domain is its own mail server (the implicit MX).
		h := &host{name: ascii}
		d.resolveHost(ctx, h)
		if h.err != nil {
			if h.err.Enh == smtp.EnhDNSFailure {
				return nil, h.err // the DNS failed: try again later
			}
			// The domain exists but has neither MX nor address records: nothing can ever
			// take its mail.
			return nil, &delivery.Error{Permanent: true, Code: smtp.CodeMailboxUnavailable, Enh: smtp.EnhNoRoute,
				Msg: "no mail server for " + ascii + " (no MX, A or AAAA records)", Err: h.err.Err}
		}
		rt.hosts = []*host{h}
		return d.dropSelf(rt)
	}
	var records []*dns.MX
	for _, rr := range mx.rrs {
		records = append(records, rr.(*dns.MX))
	}
	if len(records) == 1 && records[0].Mx == "." {
		// RFC 7505 §3.2: a null MX; the domain takes no mail.
		return nil, &delivery.Error{Permanent: true, Code: smtp.CodeDomainNoMail, Enh: smtp.EnhNullMX,
			Msg: "recipient domain " + ascii + " does not accept mail (null MX)"}
	}
	// Equal preferences in random order (RFC 5321 §5.1), then by preference.
	rand.Shuffle(len(records), func(i, j int) { records[i], records[j] = records[j], records[i] })
	slices.SortStableFunc(records, func(a, b *dns.MX) int { return int(a.Preference) - int(b.Preference) })
	for _, r := range records {
		name := strings.ToLower(strings.TrimSuffix(r.Mx, "."))
		if name == "" {
			continue // a null MX among real ones (RFC 7505 §3: it must not be): ignore it
		}
		if len(rt.hosts) == maxMXHosts {
			break
		}
		rt.hosts = append(rt.hosts, &host{name: name, pref: int(r.Preference)})
	}
	if len(rt.hosts) == 0 {
		return nil, &delivery.Error{Permanent: true, Code: smtp.CodeMailboxUnavailable, Enh: smtp.EnhNoRoute,
			Msg: "no usable MX host for " + ascii}
	}
	for _, h := range rt.hosts {
		d.resolveHost(ctx, h)
	}
	return d.dropSelf(rt)
}

// resolveHost looks up h's addresses (IPv6 first) and sets h.err when there are none.
func (d *Deliverer) resolveHost(ctx context.Context, h *host) {
	if ip, err := netip.ParseAddr(h.name); err == nil {
		h.addrs = []netip.Addr{ip.Unmap()}
		return
	}
	secure := true
	var errs []error
	for _, qt := range []uint16{dns.TypeAAAA, dns.TypeA} {
		a, err := d.dns.lookup(ctx, h.name, qt)
		if err != nil {
			errs = append(errs, err)
			secure = false
			continue
		}
		secure = secure && a.secure
		for _, rr := range a.rrs {
			if addr, ok := resolver.Addr(rr); ok {
				h.addrs = append(h.addrs, addr)
			}
		}
	}
	h.addrSecure = secure
	if len(h.addrs) > 0 {
		return
	}
	// No address: a temporary failure of the host, so that a DNS fix in time still gets the
	// mail through (the queue's lifetime bounds the wait). For the implicit MX, route makes
	// an NXDOMAIN permanent.
	var err error
	switch len(errs) {
	case 0:
		err = fmt.Errorf("remote: %s has no A or AAAA records", h.name)
	case 1:
		err = errs[0]
	default:
		err = fmt.Errorf("%w; %w", errs[0], errs[1])
	}
	h.err = &delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhNoRoute, Msg: "host " + h.name + " has no address", Err: err}
	for _, e := range errs {
		if !isNXDomain(e) {
			h.err.Enh = smtp.EnhDNSFailure // the DNS failed, not the data
			h.err.Msg = "cannot look up the address of " + h.name
		}
	}
}

// dnsFailure classifies a failed MX lookup of domain.
func dnsFailure(domain string, err error) *delivery.Error {
	if isNXDomain(err) {
		return &delivery.Error{Permanent: true, Code: smtp.CodeMailboxUnavailable, Enh: smtp.EnhBadDestSystem,
			Msg: "recipient domain " + domain + " does not exist", Err: err}
	}
	return &delivery.Error{Code: smtp.CodeLocalError, Enh: smtp.EnhDNSFailure,
		Msg: "cannot look up the mail servers of " + domain, Err: err}
}

// dropSelf applies RFC 5321 §5.1: if tern is one of the hosts, that host and every host of the
// same or a lower priority are dropped, since we are already as close to the destination as
// they are. If nothing is left, the mail would loop.
func (d *Deliverer) dropSelf(rt *route) (*route, *delivery.Error) {
	cut := -1
	for i, h := range rt.hosts {
		if d.isSelf(h, rt.port) {
			cut = i
			break
		}
	}
	if cut < 0 {
		return rt, nil
	}
	pref := rt.hosts[cut].pref
	keep := rt.hosts[:0]
	for _, h := range rt.hosts {
		if h.pref < pref && !d.isSelf(h, rt.port) {
			keep = append(keep, h)
		}
	}
	if len(keep) == 0 {
		return nil, errLoop(rt.domain, rt.hosts[cut].name)
	}
	rt.hosts = keep
	return rt, nil
}

// isSelf reports whether h is tern: its name is our Hostname, or one of its addresses is one
// we listen on.
func (d *Deliverer) isSelf(h *host, port int) bool {
	me := d.self.Load()
	if strings.EqualFold(h.name, strings.TrimSuffix(me.hostname, ".")) {
		return true
	}
	for _, a := range h.addrs {
		if slices.Contains(me.addrs, netip.AddrPortFrom(a, uint16(port))) {
			return true
		}
	}
	return false
}

// expandLocalAddrs replaces an unspecified listener address by the loopback and interface
// addresses it listens on.
func expandLocalAddrs(in []netip.AddrPort) []netip.AddrPort {
	var out []netip.AddrPort
	var ifaces []netip.Addr
	loaded := false
	for _, ap := range in {
		a := ap.Addr().Unmap()
		if !a.IsUnspecified() {
			out = append(out, netip.AddrPortFrom(a, ap.Port()))
			continue
		}
		if !loaded {
			loaded = true
			ifaces = interfaceAddrs()
		}
		for _, ia := range ifaces {
			// 0.0.0.0 covers IPv4, [::] covers both (Linux's default dual stack).
			if a.Is4() && !ia.Is4() {
				continue
			}
			out = append(out, netip.AddrPortFrom(ia, ap.Port()))
		}
	}
	return out
}

// interfaceAddrs returns this machine's addresses, loopback included.
func interfaceAddrs() []netip.Addr {
	out := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}
