package mtasts

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// TestFetch serves policies from a loopback HTTPS server, found through the LookupFunc (the
// name exists nowhere else) and trusted through roots.
func TestFetch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		trusted bool   // the server's certificate is in roots
		want    string // the mode, or "policy" (ErrPolicy), "cert" (IsCertificateError), or another error's text
	}{
		{name: "served", trusted: true, want: "enforce", handler: serve("text/plain; charset=utf-8", enforce)},
		{name: "no content type", trusted: true, want: "enforce", handler: serve("", enforce)},
		{name: "untrusted certificate", want: "cert", handler: serve("text/plain", enforce)},
		{name: "not found", trusted: true, want: "404 Not Found", handler: http.NotFound},
		{name: "redirect not followed", trusted: true, want: "redirects are not followed", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.test/policy.txt", http.StatusMovedPermanently)
		}},
		{name: "HTML", trusted: true, want: "policy", handler: serve("text/html", enforce)},
		{name: "invalid", trusted: true, want: "policy", handler: serve("text/plain", "version: STSv1\nmode: enforce\n")},
		{name: "too big", trusted: true, want: "policy", handler: serve("text/plain", enforce+strings.Repeat("x: y\n", MaxPolicySize/5+1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Host != "mta-sts.dest.test" || r.URL.Path != Path {
					http.Error(w, "wrong URL "+r.Host+r.URL.Path, http.StatusBadRequest)
					return
				}
				tc.handler(w, r)
			}))
			srv.EnableHTTP2 = false
			srv.StartTLS()
			t.Cleanup(srv.Close)
			// httptest's certificate is for example.com: a client that trusts it checks
			// the name against it, so the trusted cases take the name check off with a
			// base client (VerifyPeerCertificate would do too); the untrusted one uses
			// NewClient's own transport, as delivery does.
			ap := netip.MustParseAddrPort(srv.Listener.Addr().String())
			lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
				if host != "mta-sts.dest.test" {
					return nil, errors.New("unknown host " + host)
				}
				return []netip.Addr{ap.Addr()}, nil
			}
			var c *http.Client
			if tc.trusted {
				base := srv.Client()
				tr := base.Transport.(*http.Transport).Clone()
				tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, ap.String())
				}
				tr.TLSClientConfig.ServerName = "example.com"
				c = NewClient(&http.Client{Transport: tr}, nil, 0, nil)
			} else {
				c = NewClient(nil, lookup, int(ap.Port()), x509.NewCertPool())
			}
			p, err := Fetch(context.Background(), c, "dest.test")
			switch tc.want {
			case "enforce":
				if err != nil || p.Mode != ModeEnforce || strings.Join(p.Lines, "\n")+"\n" != enforce {
					t.Errorf("Fetch = %+v, %v; want the enforce policy", p, err)
				}
			case "policy":
				if !errors.Is(err, ErrPolicy) {
					t.Errorf("Fetch = %+v, %v; want an ErrPolicy", p, err)
				}
			case "cert":
				if !IsCertificateError(err) || errors.Is(err, ErrPolicy) {
					t.Errorf("Fetch = %+v, %v; want a certificate error", p, err)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tc.want) || IsCertificateError(err) || errors.Is(err, ErrPolicy) {
					t.Errorf("Fetch = %+v, %v; want an error with %q", p, err, tc.want)
				}
			}
		})
	}
}

func serve(ctype, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if ctype != "" {
			w.Header().Set("Content-Type", ctype)
		} else {
			w.Header()["Content-Type"] = nil // no sniffing: no Content-Type at all
		}
		_, _ = w.Write([]byte(body)) // a failed write shows as the fetch failing
	}
}
