package dmarc

import (
	"errors"
	"strings"
	"testing"
)

func TestFromDomain(t *testing.T) {
	tests := []struct {
		name   string
		fields []string
		want   string
		err    error // nil: want holds; errAny: any error
	}{
		{"plain", []string{" sender@example.com"}, "example.com", nil},
		{"display name", []string{` "Joe Q. Public" <john.q.public@Example.COM>`}, "example.com", nil},
		{"folded", []string{" Joe Q. Public\r\n <john.q.public@example.com>\r\n"}, "example.com", nil},
		// RFC 5322 Appendix A.5: comments everywhere.
		{"comments", []string{` Pete(A nice \) chap) <pete(his account)@silly.test(his host)>`}, "silly.test", nil},
		{"trailing comment", []string{" jdoe@machine.example (John Doe)"}, "machine.example", nil},
		{"RFC 2047 name", []string{" =?utf-8?q?J=C3=B6rg_=3Cevil=40x.test=3E?= <jorg@example.com>"}, "example.com", nil},
		{"unknown charset", []string{" =?x-unknown?b?AAAA?= <jorg@example.com>"}, "example.com", nil},
		{"quoted local part with @", []string{` "a@evil.test"@example.com`}, "example.com", nil},
		{"quoted name with <>", []string{` "Bob <bob@evil.test>" <bob@example.com>`}, "example.com", nil},
		{"group", []string{" A Group:Ed Jones <c@a.test>,joe@a.test;"}, "a.test", nil},
		{"obs-route", []string{" <@route.test,@other.test:user@example.com>"}, "example.com", nil},
		{"same domain twice", []string{" a@example.com, B <b@EXAMPLE.com>"}, "example.com", nil},
		{"trailing comma", []string{" a@example.com,"}, "example.com", nil},
		{"trailing dot", []string{" a@example.com."}, "example.com", nil},
		{"idn", []string{" ö@bücher.example"}, "xn--bcher-kva.example", nil},
		{"obs spaces in domain", []string{" a@ example . com"}, "example.com", nil},
		{"no field", nil, "", ErrNoFrom},
		{"two fields", []string{" a@example.com", " a@example.com"}, "", ErrSeveralFrom},
		{"two domains", []string{" a@example.com, b@example.net"}, "", ErrSeveralAuthor},
		{"empty group", []string{" Undisclosed recipients:;"}, "", ErrNoAuthor},
		{"empty", []string{""}, "", ErrNoAuthor},
		{"no at", []string{" foo"}, "", ErrNoAuthor},
		{"no local part", []string{" @example.com"}, "", ErrNoAuthor},
		{"no domain", []string{" a@"}, "", ErrNoAuthor},
		{"domain literal", []string{" a@[192.0.2.1]"}, "", errAny},
		{"unterminated quote", []string{` "a <a@example.com>`}, "", errAny},
		{"unterminated comment", []string{` a@example.com (x`}, "", errAny},
		{"unterminated angle", []string{` <a@example.com`}, "", errAny},
		{"stray angle", []string{` a@example.com>`}, "", errAny},
		{"stray bracket", []string{` a]b@example.com`}, "", errAny},
		{"bad domain", []string{` a@exa!mple.com`}, "", errAny},
		{"empty label", []string{` a@example..com`}, "", errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromDomain(tc.fields)
			switch {
			case tc.err == nil && (err != nil || got != tc.want):
				t.Errorf("FromDomain(%q) = %q, %v; want %q", tc.fields, got, err, tc.want)
			case tc.err == errAny && err == nil, tc.err != nil && tc.err != errAny && !errors.Is(err, tc.err):
				t.Errorf("FromDomain(%q) = %q, %v; want error %v", tc.fields, got, err, tc.err)
			}
		})
	}
}

var errAny = errors.New("any error")

// FuzzFrom: any From field gives a lower-case domain name or an error, never a panic; and a
// field made of an address in a known domain, with the fuzzed text as display name in a
// quoted string or a comment, still gives that domain.
func FuzzFrom(f *testing.F) {
	for _, s := range []string{
		`"Joe Q. Public" <john.q.public@example.com>`,
		`Pete(A nice \) chap) <pete(his account)@silly.test(his host)>`,
		`A Group:Ed Jones <c@a.test>,joe@where.test;`,
		`=?utf-8?q?J=C3=B6rg?= <jorg@example.com>`,
		`<@route.test:user@example.com>`, `((((`, `"\`, `a@[1.2.3.4]`, `ö@bücher.example`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := FromDomain([]string{s})
		if err == nil && (d == "" || d != strings.ToLower(d) || !isDomain(d)) {
			t.Fatalf("FromDomain(%q) = %q", s, d)
		}
		quoted := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `" <a@example.com>`
		if d, err := FromDomain([]string{quoted}); err != nil || d != "example.com" {
			t.Fatalf("FromDomain(%q) = %q, %v", quoted, d, err)
		}
		comment := `a@example.com (` + strings.NewReplacer(`\`, `\\`, `(`, `\(`, `)`, `\)`).Replace(s) + `)`
		if d, err := FromDomain([]string{comment}); err != nil || d != "example.com" {
			t.Fatalf("FromDomain(%q) = %q, %v", comment, d, err)
		}
	})
}
