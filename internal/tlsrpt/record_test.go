package tlsrpt

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRecord(t *testing.T) {
	for _, c := range []struct {
		txt  string
		want string // the rua URIs joined with " ", or the error's text
	}{
		{"v=TLSRPTv1; rua=mailto:reports@example.com", "mailto:reports@example.com"},
		{"v=TLSRPTv1;rua=mailto:a@example.com,https://reports.example.com/v1;", "mailto:a@example.com https://reports.example.com/v1"},
		{"v=TLSRPTv1 ; rua=mailto:a@example.com , mailto:b@example.com ; ext=1", "mailto:a@example.com mailto:b@example.com"},
		{"v=TLSRPTv1; rua=MAILTO:a@example.com", "mailto:a@example.com"},
		{"v=TLSRPTv1; rua=mailto:a%2Cb@example.com", "mailto:a%2Cb@example.com"},
		{"v=TLSRPTv1;", "no rua"},
		{"v=TLSRPTv1; ext=x", "no rua"},
		{"v=TLSRPTv2; rua=mailto:a@example.com", "does not begin with v=TLSRPTv1"},
		{"v=TLSRPTv1x; rua=mailto:a@example.com", "does not begin with v=TLSRPTv1"},
		{"rua=mailto:a@example.com; v=TLSRPTv1", "does not begin with v=TLSRPTv1"},
		{"v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com", "rua given twice"},
		{"v=TLSRPTv1; rua=http://example.com/", "only mailto: and https:"},
		{"v=TLSRPTv1; rua=mailto:nobody", "is not a mailto: address"},
		{"v=TLSRPTv1; rua=mailto:a@b?subject=x", "is not a mailto: address"},
		{"v=TLSRPTv1; rua=https:///path", "has no host"},
		{"v=TLSRPTv1;; rua=mailto:a@example.com", "empty field"},
		{"v=TLSRPTv1; -x=1; rua=mailto:a@example.com", `field "-x=1"`},
		{"v=TLSRPTv1; rua", `field "rua"`},
		{"v=TLSRPTv1; rua=mailto:a@example.com; " + strings.Repeat("x", 5000), "longer than"},
	} {
		rec, err := ParseRecord(c.txt)
		var got string
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Errorf("%q: %v is not ErrBadRecord", c.txt, err)
			}
			got = err.Error()
		} else {
			var us []string
			for _, u := range rec.RUA {
				us = append(us, u.String())
			}
			got = strings.Join(us, " ")
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.txt, got, c.want)
		}
	}
}

func TestFindRecord(t *testing.T) {
	one := "v=TLSRPTv1; rua=mailto:r@example.com"
	for _, c := range []struct {
		name string
		txts []string
		want error
	}{
		{"one among others", []string{"v=spf1 -all", one}, nil},
		{"none", []string{"v=spf1 -all"}, ErrNoRecord},
		{"two", []string{one, "v=TLSRPTv1; rua=mailto:s@example.com"}, ErrNoRecord},
		{"one, broken", []string{"v=TLSRPTv1; rua=ftp://x"}, ErrBadRecord},
	} {
		_, err := FindRecord(c.txts)
		if !errors.Is(err, c.want) && (c.want != nil || err != nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestMailtoAddress(t *testing.T) {
	rec, err := ParseRecord("v=TLSRPTv1; rua=mailto:tls%2Breports@example.com,https://example.com/r")
	if err != nil {
		t.Fatal(err)
	}
	if a, err := MailtoAddress(rec.RUA[0]); err != nil || a != "tls+reports@example.com" {
		t.Errorf("address %q, %v", a, err)
	}
	if _, err := MailtoAddress(rec.RUA[1]); err == nil {
		t.Error("an https: URI has an address")
	}
}

// FuzzParseRecord: any TXT string gives a record or ErrBadRecord, never a panic, and a record
// has only mailto: and https: URIs.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"v=TLSRPTv1; rua=mailto:reports@example.com",
		"v=TLSRPTv1;rua=mailto:a@example.com,https://reports.example.com/v1;",
		"v=TLSRPTv1 ; rua=mailto:a@example.com , mailto:b@example.com ; ext=1",
		"v=TLSRPTv1; rua=mailto:%zz@x",
		"v=TLSRPTv1;;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rec, err := ParseRecord(s)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if len(rec.RUA) == 0 {
			t.Fatalf("%q: a record without rua", s)
		}
		for _, u := range rec.RUA {
			if u.Scheme != "mailto" && u.Scheme != "https" {
				t.Fatalf("%q: scheme %q", s, u.Scheme)
			}
		}
	})
}
