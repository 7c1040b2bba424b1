package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// parseDomain checks a domain name given in the configuration (a local domain, the host name)
// and returns it in the form tern compares: lower-cased, without a trailing root dot. The
// syntax is RFC 5321 §4.1.2's Domain (dot-separated labels of letters, digits and inner
// hyphens, at most 63 octets each and 253 in all), where a label may be an IDNA U-label: the
// name must convert to A-labels under IDNA2008 (RFC 5891, with UTS #46's STD3 rules), as it must
// to be looked up in DNS. The returned form keeps the U-labels it was given: accounts and local
// domains are compared in that form (RCPT TO:<bob@bücher.example> under SMTPUTF8).
// Address literals and IP addresses are refused: a mail domain is a name.
func parseDomain(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty")
	}
	d := strings.ToLower(strings.TrimSuffix(s, "."))
	if d == "" || strings.HasSuffix(d, ".") {
		return "", errors.New("not a domain name: it ends with more than one dot")
	}
	if strings.HasPrefix(d, "[") {
		return "", errors.New("an address literal is not a domain name here: give a name")
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return "", errors.New("an IP address is not a domain name here: give a name")
	}
	for _, label := range strings.Split(d, ".") {
		if err := checkLabel(label); err != nil {
			return "", err
		}
	}
	if _, err := idna.Registration.ToASCII(d); err != nil {
		return "", fmt.Errorf("not a valid internationalized domain name (IDNA2008): %v", strings.TrimPrefix(err.Error(), "idna: "))
	}
	return d, nil
}

// checkLabel names the first thing wrong with one label, in words an administrator reads
// faster than IDNA's: a space, an underscore, a colon (a port), an empty label.
func checkLabel(l string) error {
	switch {
	case l == "":
		return errors.New("not a domain name: it has an empty label (two dots in a row, or a dot at the start)")
	case len(l) > 63:
		return fmt.Errorf("not a domain name: the label %.20q... is longer than 63 octets", l)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("not a domain name: the label %q starts or ends with a hyphen", l)
	}
	for _, r := range l {
		if r < 0x80 && !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("not a domain name: %q may not appear in one (letters, digits, hyphens and dots only)", r)
		}
	}
	return nil
}

// checkListen checks a listener address: HOST:PORT with a numeric port from 0 to 65535 (0: any
// free port) and a host that is empty (every interface), an IP address or a host name.
func checkListen(addr string) error {
	host, err := checkHostPort(addr, 0)
	if err != nil {
		return err
	}
	if host == "" {
		return nil
	}
	return checkHost(host)
}

// CheckRemote checks the address of a server tern connects to (the resolver, the relayhost):
// HOST:PORT with a port from 1 to 65535 and a host name or IP address.
func CheckRemote(addr string) error {
	host, err := checkHostPort(addr, 1)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("the host is missing: want HOST:PORT")
	}
	return checkHost(host)
}

// checkHostPort splits HOST:PORT and checks the port, which must be decimal digits (no service
// names: the port is part of what an administrator promises to firewalls and DNS).
func checkHostPort(addr string, minPort int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return "", fmt.Errorf("want HOST:PORT, like 127.0.0.1:25 or [::1]:25 (%v)", err)
	}
	if port == "" || strings.Trim(port, "0123456789") != "" {
		return "", fmt.Errorf("the port %q is not a number", port)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < minPort || n > 65535 {
		return "", fmt.Errorf("the port %s is not between %d and 65535", port, minPort)
	}
	return host, nil
}

// checkHost checks the host of an address: an IP address (with a zone for a link-local IPv6
// one) or a host name.
func checkHost(host string) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if strings.ContainsAny(host, ":%") {
		return fmt.Errorf("%q is not an IP address", host)
	}
	if _, err := parseDomain(host); err != nil {
		return fmt.Errorf("the host %q is neither an IP address nor a host name: %v", host, err)
	}
	return nil
}

// InvalidError is what Validate found wrong: every problem, each naming the setting (and its
// flag) and the value.
type InvalidError struct {
	Problems []error
}

func (e *InvalidError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid setting: " + e.Problems[0].Error()
	}
	var b strings.Builder
	b.WriteString("invalid settings:")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e *InvalidError) Unwrap() []error { return e.Problems }
