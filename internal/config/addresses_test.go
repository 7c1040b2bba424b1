package config

import (
	"strings"
	"testing"
)

func TestAddressesValidate(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*Addresses)
		want   string // "": valid
	}{
		{func(*Addresses) {}, ""},
		{func(a *Addresses) { a.SubaddressSeparator = "" }, ""},
		{func(a *Addresses) { a.SubaddressSeparator = "-" }, ""},
		{func(a *Addresses) { a.SubaddressSeparator = "@" }, "addresses.subaddress_separator"},
		{func(a *Addresses) { a.SubaddressSeparator = "++" }, "addresses.subaddress_separator"},
		{func(a *Addresses) { a.AliasDepth = 0 }, "addresses.alias_depth"},
		{func(a *Addresses) { a.SRSMaxAge = 0 }, "addresses.srs_max_age"},
		{func(a *Addresses) { a.SRSDomain = "forwarder.example" }, ""},
		{func(a *Addresses) { a.SRSDomain = "bad domain" }, "addresses.srs_domain"},
	} {
		a := DefaultAddresses()
		tc.mutate(&a)
		errs := a.validate()
		switch {
		case tc.want == "" && len(errs) > 0:
			t.Errorf("%+v: %v", a, errs)
		case tc.want != "" && (len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tc.want)):
			t.Errorf("%+v: %v, want one error about %s", a, errs, tc.want)
		}
	}
}
