// Package dnsrecords builds the DNS records an administrator must publish for a local domain
// (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, the submission SRV records of RFC 6186), writes them
// in zone-file syntax, and checks them against what DNS serves, and the MTA-STS policy file
// against what mta-sts.DOMAIN serves. It holds no policy of its own beyond these defaults and
// does no I/O but through the writer, the Lookuper and the PolicyFetcher it is given.
package dnsrecords

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/dkim"
)

// Kind says what a record is for, and so how Check compares it with DNS.
type Kind string

// The kinds of record.
const (
	KindMX          Kind = "MX"
	KindAddress     Kind = "address"
	KindSPF         Kind = "SPF"
	KindHostSPF     Kind = "host SPF"
	KindDKIM        Kind = "DKIM"
	KindDMARC       Kind = "DMARC"
	KindDMARCReport Kind = "DMARC report authorization"
	KindMTASTS      Kind = "MTA-STS"
	KindTLSRPT      Kind = "TLS-RPT"
	KindSRV         Kind = "SRV"
)

// DKIMKey is a key record of the domain: its selector and TXT value (dkim.TXTValue).
type DKIMKey struct {
	Selector string
	Value    string
	Retired  bool // kept published a while after a rotation, for mail still on its way
}

// Params is what the records are made of. Domain and Hostname are normalized names without a
// final dot.
type Params struct {
	Domain   string
	Hostname string   // the MX host
	IPs      []net.IP // the host's public addresses, if known (else a reminder is printed)
	// Relayhost is the smarthost (HOST:PORT) all remote mail leaves through, or "".
	Relayhost string
	DKIM      []DKIMKey
	// DMARCReports and TLSReports are the rua addresses (default dmarc-reports@ and
	// tls-reports@ the domain).
	DMARCReports, TLSReports string
	MTASTSMode               string // testing (default) or enforce
	MTASTSMaxAge             int    // seconds (default DefaultMaxAge)
	// Submission and Submissions say whether the ports 587 and 465 are served, for the SRV
	// records of RFC 6186 and RFC 8314 §5.1.
	Submission, Submissions bool
}

// DefaultMaxAge is the MTA-STS max_age: a week, as RFC 8461 §3.2 suggests weeks for a
// policy in force; a mistake in testing mode costs nothing.
const DefaultMaxAge = 604800

// Record is one record to publish.
type Record struct {
	Kind    Kind
	Name    string // absolute, with the final dot
	Type    uint16
	Data    string // the zone-file rdata, as printed
	Text    string // for TXT: the value, strings joined
	Comment string // printed before it, "; " per line
	// Optional records may be missing: a retired DKIM key's, once the mail signed with it has
	// arrived.
	Optional bool
}

// Zone is a record as one zone-file line.
func (r Record) Zone() string {
	return fmt.Sprintf("%s IN %s %s", r.Name, dns.TypeToString[r.Type], r.Data)
}

// Set is every record of a domain, and the MTA-STS policy file to serve.
type Set struct {
	Params  Params
	Records []Record
	Policy  string // contents of https://mta-sts.DOMAIN/.well-known/mta-sts.txt
	Notes   []string
}

// Build makes the records of p, with the defaults filled in.
func Build(p Params) Set {
	if p.DMARCReports == "" {
		p.DMARCReports = "dmarc-reports@" + p.Domain
	}
	if p.TLSReports == "" {
		p.TLSReports = "tls-reports@" + p.Domain
	}
	if p.MTASTSMode == "" {
		p.MTASTSMode = "testing"
	}
	if p.MTASTSMaxAge <= 0 {
		p.MTASTSMaxAge = DefaultMaxAge
	}
	d, h := p.Domain+".", p.Hostname+"."
	s := Set{Params: p}
	add := func(k Kind, name string, t uint16, data, comment string) {
		s.Records = append(s.Records, Record{Kind: k, Name: name, Type: t, Data: data, Comment: comment})
	}
	txt := func(k Kind, name, value, comment string) {
		s.Records = append(s.Records, Record{Kind: k, Name: name, Type: dns.TypeTXT, Data: dkim.ZoneStrings(value), Text: value, Comment: comment})
	}

	add(KindMX, d, dns.TypeMX, "10 "+h, "MX: mail for "+p.Domain+" goes to "+p.Hostname+".")
	if len(p.IPs) == 0 {
		s.Notes = append(s.Notes, p.Hostname+" needs its A and AAAA records (its public addresses; tern does not know them: --ip prints them), "+
			"and each address a PTR record back to "+p.Hostname+".")
	}
	for i, ip := range p.IPs {
		c := ""
		if i == 0 {
			c = "The MX host's addresses; each also needs a PTR record back to " + p.Hostname + " (ask whoever runs the address block)."
		}
		if ip4 := ip.To4(); ip4 != nil {
			add(KindAddress, h, dns.TypeA, ip4.String(), c)
		} else {
			add(KindAddress, h, dns.TypeAAAA, ip.String(), c)
		}
	}

	spfComment := "SPF (RFC 7208): the MX hosts send the domain's mail; everything else fails."
	if p.Relayhost != "" {
		host, _, err := net.SplitHostPort(p.Relayhost)
		if err != nil {
			host = p.Relayhost
		}
		spfComment += "\nMail leaves through the relayhost " + host + ", not the MX: add what its provider says to the record\n" +
			"(an include:, like include:_spf.provider.example), or a:" + host + " if that host itself sends."
	}
	txt(KindSPF, d, "v=spf1 mx -all", spfComment)
	if p.Hostname != p.Domain {
		txt(KindHostSPF, h, "v=spf1 a -all", "SPF of the host itself: its bounces (DSNs) have the null sender, whose SPF check is of the\n"+
			"HELO name, "+p.Hostname+" (RFC 7208 §2.3). One record for the host, whatever the number of domains.")
	}

	for i, k := range p.DKIM {
		c := ""
		if i == 0 {
			c = "DKIM (RFC 6376): the public keys tern signs with (tern dkim list)."
		}
		if k.Retired {
			c = strings.TrimPrefix(c+"\n", "\n") + "Selector " + k.Selector + " is retired: keep it a few days after the rotation, then remove it."
		}
		txt(KindDKIM, dkim.RecordName(k.Selector, d), k.Value, c)
		s.Records[len(s.Records)-1].Optional = k.Retired
	}

	txt(KindDMARC, "_dmarc."+d, "v=DMARC1; p=quarantine; rua=mailto:"+p.DMARCReports,
		"DMARC (RFC 7489): mail failing SPF and DKIM alignment goes to junk; aggregate reports to "+p.DMARCReports+" (it must reach someone).")
	if rd := addrDomain(p.DMARCReports); rd != "" && rd != p.Domain {
		txt(KindDMARCReport, p.Domain+"._report._dmarc."+rd+".", "v=DMARC1",
			"In the zone of "+rd+": it agrees to take the DMARC reports of "+p.Domain+" (RFC 7489 §7.1).")
	}

	s.Policy = fmt.Sprintf("version: STSv1\nmode: %s\nmx: %s\nmax_age: %d\n", p.MTASTSMode, p.Hostname, p.MTASTSMaxAge)
	txt(KindMTASTS, "_mta-sts."+d, "v=STSv1; id="+PolicyID(s.Policy),
		"MTA-STS (RFC 8461): senders must use TLS to "+p.Hostname+" (mode "+p.MTASTSMode+"). The id follows the policy\n"+
			"file's contents: publish the new record whenever the file changes. mta-sts."+p.Domain+" must serve the file\n"+
			"over HTTPS with a valid certificate (its A/AAAA or CNAME record is yours to add).")
	txt(KindTLSRPT, "_smtp._tls."+d, "v=TLSRPTv1; rua=mailto:"+p.TLSReports,
		"TLS-RPT (RFC 8460): senders report TLS failures to "+p.TLSReports+".")

	c := "Submission SRV records (RFC 6186, RFC 8314 §5.1), for mail clients that configure themselves."
	if p.Submissions {
		add(KindSRV, "_submissions._tcp."+d, dns.TypeSRV, "0 1 465 "+h, c)
		c = ""
	}
	if p.Submission {
		add(KindSRV, "_submission._tcp."+d, dns.TypeSRV, "0 1 587 "+h, c)
	}
	return s
}

// PolicyID is the MTA-STS id (RFC 8461 §3.1: 1 to 32 letters and digits) of a policy: a hash
// of its contents, so that it changes exactly when the policy does.
func PolicyID(policy string) string {
	sum := sha256.Sum256([]byte(policy))
	return hex.EncodeToString(sum[:10])
}

func addrDomain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
}
