package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
)

// LookupFunc returns the addresses of host: the caller's resolver, so that the policy host is
// found where the TXT record was (see NewClient).
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// NewClient returns an HTTP client for Fetch: a copy of base if it is not nil, else a client
// whose transport trusts roots (nil: the system's) and connects to the addresses lookup gives
// for the policy host, at port (0: the URL's, 443). Either way it never follows a redirect
// (RFC 8461 §3.3). Only the address comes from lookup: the certificate is still verified
// against the URL's host name.
//
// lookup exists because the system's resolver may not know the name, or may give other
// answers than the resolver that found the TXT record: an enforced policy the admin's resolver
// points at would then be skipped without a word (RFC 8461 allows delivery without a policy).
func NewClient(base *http.Client, lookup LookupFunc, port int, roots *x509.CertPool) *http.Client {
	var c http.Client
	if base != nil {
		c = *base
	} else {
		dial := (&net.Dialer{}).DialContext
		if lookup != nil {
			dial = dialer(lookup, port)
		}
		c.Transport = &http.Transport{
			DialContext:       dial,
			TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		}
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// dialer connects to each address lookup gives in turn, until one answers.
func dialer(lookup LookupFunc, port int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		name, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if port != 0 {
			p = strconv.Itoa(port)
		}
		addrs, err := lookup(ctx, name)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("mtasts: %s has no address", name)
		}
		var d net.Dialer
		var errs []error
		for _, ip := range addrs {
			c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), p))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		return nil, errors.Join(errs...)
	}
}

// Fetch gets domain's policy with c (from NewClient) as RFC 8461 §3.3 asks: a 200 with
// text/plain, no redirect, at most MaxPolicySize octets. A policy that is there but invalid
// (its syntax, its media type) is an ErrPolicy; a certificate that does not verify is one
// IsCertificateError recognizes; anything else is a failure to fetch. The caller bounds the
// time with ctx.
func Fetch(ctx context.Context, c *http.Client, domain string) (*Policy, error) {
	url := URL(domain)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }() // only read: a failed Close loses nothing
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{URL: url, Code: resp.StatusCode, Status: resp.Status, Location: resp.Header.Get("Location")}
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != mediaType {
			return nil, fmt.Errorf("%w: GET %s: content type %q, want %s", ErrPolicy, url, ct, mediaType)
		}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return Parse(b)
}

// StatusError is a policy host's answer other than 200 OK.
type StatusError struct {
	URL      string
	Code     int    // the HTTP status code
	Status   string // and its text, "404 Not Found"
	Location string // where a redirect pointed
}

func (e *StatusError) Error() string {
	if e.Location != "" {
		return fmt.Sprintf("GET %s: %s to %s (RFC 8461 §3.3: redirects are not followed)", e.URL, e.Status, e.Location)
	}
	return fmt.Sprintf("GET %s: %s", e.URL, e.Status)
}

// IsCertificateError reports whether err is a certificate that did not verify (RFC 8460's
// sts-webpki-invalid for the policy host), rather than a failure to connect or a bad policy.
func IsCertificateError(err error) bool {
	var (
		cv *tls.CertificateVerificationError
		he x509.HostnameError
		ua x509.UnknownAuthorityError
		ci x509.CertificateInvalidError
	)
	return errors.As(err, &cv) || errors.As(err, &he) || errors.As(err, &ua) || errors.As(err, &ci)
}
