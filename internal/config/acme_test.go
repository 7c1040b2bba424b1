package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestACMEValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*ACME)
		err  string
	}{
		{"off, anything goes", func(a *ACME) { a.Challenge = "dns-01" }, ""},
		{"defaults", func(a *ACME) { a.Enabled = true }, ""},
		{"http-01", func(a *ACME) { a.Enabled, a.Challenge, a.HTTPListen = true, ChallengeHTTP, "0.0.0.0:80" }, ""},
		{"http-01 without listener", func(a *ACME) { a.Enabled, a.Challenge = true, ChallengeHTTP }, "needs acme.http_listen"},
		{"http-01 bad listener", func(a *ACME) { a.Enabled, a.Challenge, a.HTTPListen = true, ChallengeHTTP, "80" }, "acme.http_listen"},
		{"dns-01", func(a *ACME) { a.Enabled, a.Challenge = true, "dns-01" }, `want "tls-alpn-01" or "http-01"`},
		{"http directory", func(a *ACME) { a.Enabled, a.DirectoryURL = true, "http://ca.example/dir" }, "want an https URL"},
		{"bad domain", func(a *ACME) { a.Enabled, a.Domains = true, []string{"mx..example"} }, "acme.domains"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := defaultACME()
			tc.edit(&a)
			errs := a.validate()
			switch {
			case tc.err == "" && len(errs) > 0:
				t.Fatalf("errors %v", errs)
			case tc.err != "" && (len(errs) == 0 || !strings.Contains(errs[0].Error(), tc.err)):
				t.Fatalf("errors %v, want %q", errs, tc.err)
			}
		})
	}
}

func TestACMENames(t *testing.T) {
	a := defaultACME()
	if got := a.Names("mx.example.com"); !reflect.DeepEqual(got, []string{"mx.example.com"}) {
		t.Errorf("no domains: %v, want the hostname", got)
	}
	a.Domains = []string{"MX.Example.com.", "smtp.example.org"}
	if got := a.Names("h"); !reflect.DeepEqual(got, []string{"mx.example.com", "smtp.example.org"}) {
		t.Errorf("Names = %v", got)
	}
}
