package mtasts

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const enforce = "version: STSv1\nmode: enforce\nmx: *.dest.test\nmax_age: 86400\n"

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		mode   string
		mx     []string
		maxAge time.Duration
		err    bool
	}{
		{in: enforce, mode: "enforce", mx: []string{"*.dest.test"}, maxAge: 86400 * time.Second},
		{in: "version: STSv1\r\nmode: testing\r\nmx: MX1.Example.COM.\r\nmx: *.example.net\r\nmax_age: 0\r\n", mode: "testing", mx: []string{"mx1.example.com", "*.example.net"}},
		{in: "version: STSv1\nmode: none\nmax_age: 31557600", mode: "none", maxAge: 31557600 * time.Second},
		{in: "version:STSv1\nmode:\tenforce \nmx:mx.example.com\nmax_age:60\nextension: whatever\n", mode: "enforce", mx: []string{"mx.example.com"}, maxAge: time.Minute},
		{in: "version: STSv1\nmode: enforce\nmode: testing\nmx: a.example\nmax_age: 1\n", mode: "enforce", mx: []string{"a.example"}, maxAge: time.Second},
		{in: "", err: true},
		{in: "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", err: true},
		{in: "version: STSv1\nmode: enforce\nmax_age: 1\n", err: true},                                                  // no mx
		{in: "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", err: true},                                    // bad mode
		{in: "version: STSv1\nmode: enforce\nmx: a.example\n", err: true},                                               // no max_age
		{in: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", err: true},                            // too long
		{in: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", err: true},                                  // negative
		{in: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 99999999999\n", err: true},                         // 11 digits
		{in: "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n", err: true},                                 // two wildcards
		{in: "version: STSv1\nmode: enforce\nmx: a.example:25\nmax_age: 1\n", err: true},                                // a port
		{in: "version: STSv1\nmode enforce\nmx: a.example\nmax_age: 1\n", err: true},                                    // no colon
		{in: "version: STSv1\n mode: enforce\nmx: a.example\nmax_age: 1\n", err: true},                                  // space before key
		{in: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n" + strings.Repeat("x: y\n", 20000), err: true}, // too big
	}
	for _, tc := range tests {
		p, err := Parse([]byte(tc.in))
		if tc.err {
			if err == nil {
				t.Errorf("Parse(%q) = %+v, want an error", tc.in, p)
			} else if !errors.Is(err, ErrPolicy) {
				t.Errorf("Parse(%q): error %v is not ErrPolicy", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if p.Mode != tc.mode || strings.Join(p.MX, ",") != strings.Join(tc.mx, ",") || p.MaxAge != tc.maxAge {
			t.Errorf("Parse(%q) = %+v, want mode %s mx %v max_age %v", tc.in, p, tc.mode, tc.mx, tc.maxAge)
		}
	}
}

func TestMatches(t *testing.T) {
	t.Parallel()
	p := &Policy{MX: []string{"mail.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mail.example.com": true, "MAIL.example.com.": true, "x.mail.example.com": false,
		"mx.example.net": true, "example.net": false, "a.b.example.net": false, ".example.net": false,
		"other.test": false,
	} {
		if got := p.Matches(host); got != want {
			t.Errorf("matches(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestParseRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		id      string
		isSTS   bool
		wantErr bool
	}{
		{"v=STSv1; id=20160831085700Z;", "20160831085700Z", true, false},
		{"v=STSv1;id=abc", "abc", true, false},
		{"v=STSv1; id=abc; ext=1", "abc", true, false},
		{"v=spf1 -all", "", false, false},
		{"v=STSv10; id=1", "", false, false},
		{"v=STSv1;", "", true, true},
		{"v=STSv1; id=a-b", "", true, true},
		{"v=STSv1; id=" + strings.Repeat("a", 33), "", true, true},
		{"v=STSv1; junk", "", true, true},
	}
	for _, tc := range tests {
		id, ok, err := ParseRecord(tc.in)
		if id != tc.id || ok != tc.isSTS || (err != nil) != tc.wantErr {
			t.Errorf("ParseRecord(%q) = %q, %v, %v; want %q, %v, error %v", tc.in, id, ok, err, tc.id, tc.isSTS, tc.wantErr)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(enforce))
	f.Add([]byte("version: STSv1\r\nmode: testing\r\nmx: mx1.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n"))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 0"))
	f.Add([]byte("version:STSv1\nmode:enforce\nmx:*.*\nmax_age:1e9\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrPolicy) {
				t.Fatalf("error %v is not ErrPolicy", err)
			}
			return
		}
		switch {
		case p.Mode != ModeEnforce && p.Mode != ModeTesting && p.Mode != ModeNone:
			t.Fatalf("mode %q", p.Mode)
		case p.Mode != ModeNone && len(p.MX) == 0:
			t.Fatalf("mode %s without mx", p.Mode)
		case p.MaxAge < 0 || p.MaxAge > MaxMaxAge*time.Second:
			t.Fatalf("max_age %v", p.MaxAge)
		}
		for _, m := range p.MX {
			if m == "" || strings.ToLower(m) != m || strings.Count(m, "*") > 1 || strings.Contains(m, "*") && !strings.HasPrefix(m, "*.") {
				t.Fatalf("mx pattern %q", m)
			}
			// A pattern must match the names it names.
			host := m
			if rest, ok := strings.CutPrefix(m, "*."); ok {
				host = "x." + rest
			}
			if !p.Matches(host) {
				t.Fatalf("pattern %q does not match %q", m, host)
			}
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1;id=1;x=y")
	f.Add("v=spf1 -all")
	f.Fuzz(func(t *testing.T, s string) {
		id, ok, err := ParseRecord(s)
		if err == nil && ok && (id == "" || len(id) > maxIDLen || !isAlnum(id)) {
			t.Fatalf("accepted id %q", id)
		}
		if !ok && (id != "" || err != nil) {
			t.Fatalf("not a record, yet id %q err %v", id, err)
		}
	})
}
