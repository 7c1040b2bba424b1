package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/dnsrecords"
	"github.com/tern-mail/tern/internal/mtasts"
	"github.com/tern-mail/tern/internal/resolver"
	"github.com/tern-mail/tern/internal/spf"
)

// DNSRecordsRequest is what tern dns records asks for.
type DNSRecordsRequest struct {
	Domain     string
	Hostname   string   // the MX host ("": the configuration's hostname)
	IPs        []net.IP // its public addresses, if given
	MTASTSMode string   // testing or enforce ("": testing)
	// DMARCReports and TLSReports are the report addresses ("": at the domain).
	DMARCReports, TLSReports string
	PolicyOnly               bool   // print only the MTA-STS policy file
	Check                    bool   // ask DNS instead of printing the records
	Resolver                 string // HOST:PORT for Check ("": the configuration's delivery.resolver)
}

// dnsQueryTimeout bounds each DNS exchange of tern dns records --check, and
// policyFetchTimeout its fetch of the MTA-STS policy file.
const (
	dnsQueryTimeout    = 5 * time.Second
	policyFetchTimeout = 30 * time.Second
)

// DNSRecords prints the records a local domain must publish or, with Check, how DNS serves
// them; ok is false when a checked record is missing, differs or could not be looked up.
func DNSRecords(ctx context.Context, cfg config.Config, req DNSRecordsRequest, w io.Writer) (ok bool, err error) {
	p, err := dnsParams(cfg, req)
	if err != nil {
		return false, err
	}
	err = withDKIM(cfg, func(s accounts.Store) error {
		keys, err := s.DKIMKeys(ctx, p.Domain)
		if err != nil {
			return err
		}
		for _, k := range keys {
			signer, err := dkim.ParseKey(dkim.Algorithm(k.Algorithm), k.Private)
			if err != nil {
				return errorf(err, "the DKIM key %s of %s is unusable: %v", k.Selector, k.Domain, err)
			}
			v, err := dkim.TXTValue(signer)
			if err != nil {
				return err
			}
			p.DKIM = append(p.DKIM, dnsrecords.DKIMKey{Selector: k.Selector, Value: v, Retired: k.State == accounts.DKIMRetired})
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	set := dnsrecords.Build(p)
	switch {
	case req.PolicyOnly:
		_, err := io.WriteString(w, set.Policy)
		return true, err
	case !req.Check:
		return true, dnsrecords.Write(w, set)
	}
	server := req.Resolver
	if server == "" {
		server = cfg.Delivery.Resolver
	}
	c, err := resolver.NewClient(server, dnsQueryTimeout)
	if err != nil {
		return false, err
	}
	r := resolver.New(c, resolver.Options{})
	checker := spf.New(r, 0)
	eval := func(ctx context.Context, ip net.IP, helo, domain string) (string, string) {
		o := checker.Check(ctx, ip, helo, "postmaster@"+domain)
		return string(o.Result), o.Reason
	}
	// The policy host is looked up through the same resolver, and reached on
	// delivery.mta_sts_port, as delivery does; its certificate must verify against the
	// system's roots (SSL_CERT_FILE, for tests).
	client := mtasts.NewClient(nil, dnsrecords.AddrLookup(r), cfg.Delivery.MTASTSPort, nil)
	fetch := func(ctx context.Context, domain string) (*mtasts.Policy, error) {
		ctx, cancel := context.WithTimeout(ctx, policyFetchTimeout)
		defer cancel()
		return mtasts.Fetch(ctx, client, domain)
	}
	ok, err = dnsrecords.WriteResults(w, dnsrecords.Check(ctx, r, set, dnsrecords.Checkers{SPF: eval, Policy: fetch}))
	if err == nil && !ok {
		_, err = fmt.Fprintf(w, "Some records of %s are not as they should be: tern dns records %s prints them all.\n", p.Domain, p.Domain)
	}
	return ok, err
}

// dnsParams checks the request against the configuration: the domain must be local.
func dnsParams(cfg config.Config, req DNSRecordsRequest) (dnsrecords.Params, error) {
	var p dnsrecords.Params
	domain, err := dkim.NormalizeDomain(req.Domain)
	if err != nil {
		return p, errorf(err, "%v", strings.TrimPrefix(err.Error(), "dkim: "))
	}
	local := slices.ContainsFunc(cfg.Domains, func(d string) bool { return strings.EqualFold(strings.TrimSuffix(d, "."), domain) })
	if !local {
		return p, errorf(nil, "%s is not a local domain (the configuration's domains, or --domain: %s)", domain, strings.Join(cfg.Domains, ", "))
	}
	host := req.Hostname
	if host == "" {
		host = cfg.Hostname
	}
	if host == "" {
		return p, errorf(nil, "no hostname: the MX record needs one (hostname in the configuration, or --hostname)")
	}
	if host, err = dkim.NormalizeDomain(host); err != nil {
		return p, errorf(err, "the hostname (hostname in the configuration, or --hostname): %v: the MX needs a host name in DNS",
			strings.TrimPrefix(strings.TrimPrefix(err.Error(), "dkim: "), "bad domain "))
	}
	switch req.MTASTSMode {
	case "", "testing", "enforce":
	default:
		return p, errorf(nil, "MTA-STS mode %q: want testing or enforce", req.MTASTSMode)
	}
	for _, a := range []string{req.DMARCReports, req.TLSReports} {
		if err := checkReportAddress(a); err != nil {
			return p, err
		}
	}
	return dnsrecords.Params{
		Domain: domain, Hostname: host, IPs: req.IPs, Relayhost: cfg.Delivery.Relayhost,
		DMARCReports: req.DMARCReports, TLSReports: req.TLSReports, MTASTSMode: req.MTASTSMode,
		Submission: hasRole(cfg, config.RoleSubmission), Submissions: hasRole(cfg, config.RoleSubmissions),
	}, nil
}

// checkReportAddress takes an address that fits a mailto: URI in a TXT record as it is:
// nothing that URI or tag syntax treats specially.
func checkReportAddress(a string) error {
	if a == "" {
		return nil
	}
	local, domain, found := strings.Cut(a, "@")
	if !found || local == "" || strings.ContainsAny(a, " \t;,!\"\\<>%?") {
		return errorf(nil, "report address %q: want a plain address, local@domain", a)
	}
	if _, err := dkim.NormalizeDomain(domain); err != nil {
		return errorf(err, "report address %q: %v", a, strings.TrimPrefix(err.Error(), "dkim: "))
	}
	return nil
}
