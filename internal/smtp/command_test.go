package smtp_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/tern-mail/tern/internal/smtp"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name, line, verb, arg string
	}{
		{"HELO", "HELO host.example.com", "HELO", "host.example.com"},
		{"lower-case verb", "ehlo trogdor", "EHLO", "trogdor"},
		{"mixed-case verb", "MaIl FROM:<a@b>", "MAIL", "FROM:<a@b>"},
		{"seed MAIL with space", "MAIL FROM: <kenneth@oeey.com>", "MAIL", "FROM: <kenneth@oeey.com>"},
		{"no argument", "QUIT", "QUIT", ""},
		{"trailing space", "DATA ", "DATA", ""},
		{"argument trimmed", "NOOP   hello \t ", "NOOP", "hello"},
		{"argument keeps inner spaces", "AUTH PLAIN  AHRlc3QAdGVzdA==", "AUTH", "PLAIN  AHRlc3QAdGVzdA=="},
		{"empty line", "", "", ""},
		{"HTTP verb", "GET / HTTP/1.1", "GET", "/ HTTP/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verb, arg := smtp.ParseCommand(tt.line)
			if verb != tt.verb || arg != tt.arg {
				t.Errorf("ParseCommand(%q) = (%q, %q), want (%q, %q)", tt.line, verb, arg, tt.verb, tt.arg)
			}
		})
	}
}

func TestParsePathArg(t *testing.T) {
	p := func(k, v string) smtp.Param { return smtp.Param{Key: k, Value: v, HasValue: true} }
	tests := []struct {
		name, arg, keyword string
		path               string
		params             []smtp.Param
		err                error
	}{
		{name: "plain", arg: "FROM:<a@b>", keyword: "FROM:", path: "a@b"},
		{name: "lower-case keyword", arg: "from:<a@b> SIZE=10 BODY=8BITMIME", keyword: "FROM:", path: "a@b",
			params: []smtp.Param{p("SIZE", "10"), p("BODY", "8BITMIME")}},
		{name: "space after colon", arg: "FROM: <kenneth@oeey.com>", keyword: "FROM:", path: "kenneth@oeey.com"},
		{name: "seed RCPT", arg: "TO: <bob@example.com>", keyword: "TO:", path: "bob@example.com"},
		{name: "several spaces after colon", arg: "TO:   <bob@example.com>", keyword: "TO:", path: "bob@example.com"},
		{name: "bare address", arg: "FROM:a@b", keyword: "FROM:", path: "a@b"},
		{name: "seed bare address with space", arg: "from: me@mydomain.com", keyword: "FROM:", path: "me@mydomain.com"},
		{name: "bare address with params", arg: "FROM:a@b SIZE=10", keyword: "FROM:", path: "a@b", params: []smtp.Param{p("SIZE", "10")}},
		{name: "null path", arg: "FROM:<>", keyword: "FROM:", path: ""},
		{name: "null path with params", arg: "FROM:<> SIZE=0", keyword: "FROM:", path: "", params: []smtp.Param{p("SIZE", "0")}},
		{name: "source route", arg: "from:<@relay.example:kenneth@oeey.com>", keyword: "FROM:", path: "@relay.example:kenneth@oeey.com"},
		{name: "quoted local part with >", arg: `FROM:<"a>b"@x>`, keyword: "FROM:", path: `"a>b"@x`},
		{name: "quoted local part with escaped quote and >", arg: `TO:<"a\">b"@x> NOTIFY=NEVER`, keyword: "TO:", path: `"a\">b"@x`,
			params: []smtp.Param{p("NOTIFY", "NEVER")}},
		{name: "seed DSN params", arg: `FROM:<"john doe"@oeey.com> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=QQ+2B1`, keyword: "FROM:", path: `"john doe"@oeey.com`,
			params: []smtp.Param{p("SIZE", "1000"), p("BODY", "8BITMIME"), p("RET", "HDRS"), p("ENVID", "QQ+2B1")}},
		{name: "keyword without value", arg: "FROM:<kenneth@oeey.com> BODY=BINARYMIME SMTPUTF8", keyword: "FROM:", path: "kenneth@oeey.com",
			params: []smtp.Param{p("BODY", "BINARYMIME"), {Key: "SMTPUTF8"}}},
		{name: "params separated by several spaces", arg: "TO:<a@b>  ORCPT=rfc822;a@b   NOTIFY=SUCCESS,FAILURE ", keyword: "TO:", path: "a@b",
			params: []smtp.Param{p("ORCPT", "rfc822;a@b"), p("NOTIFY", "SUCCESS,FAILURE")}},
		{name: "missing >", arg: "FROM:<kenneth@oeey.com", keyword: "FROM:", err: smtp.ErrSyntax},
		{name: "> only inside quotes", arg: `FROM:<"a>b@x`, keyword: "FROM:", err: smtp.ErrSyntax},
		{name: "junk after >", arg: "FROM:<a@b>x", keyword: "FROM:", err: smtp.ErrSyntax},
		{name: "param glued to >", arg: "FROM:<a@b>SIZE=10", keyword: "FROM:", err: smtp.ErrSyntax},
		{name: "wrong keyword", arg: "TO:<kenneth@oeey.com>", keyword: "FROM:", err: smtp.ErrSyntax},
		{name: "keyword without colon", arg: "FROM <a@b>", keyword: "FROM:", err: smtp.ErrSyntax},
		{name: "short argument", arg: "FR", keyword: "FROM:", err: smtp.ErrSyntax},
		{name: "empty argument", arg: "", keyword: "TO:", err: smtp.ErrSyntax},
		{name: "nothing after colon", arg: "FROM:", keyword: "FROM:", err: smtp.ErrSyntax},
		{name: "only spaces after colon", arg: "TO:   ", keyword: "TO:", err: smtp.ErrSyntax},
		{name: "param keyword only", arg: "FROM:<a@b> SIZE", keyword: "FROM:", path: "a@b", params: []smtp.Param{{Key: "SIZE"}}},
		{name: "duplicate param", arg: "FROM:<a@b> SIZE=1 size=2", keyword: "FROM:", err: smtp.ErrBadParam},
		{name: "bad param keyword", arg: "FROM:<a@b> -X=1", keyword: "FROM:", err: smtp.ErrBadParam},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pa, err := smtp.ParsePathArg(tt.arg, tt.keyword)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParsePathArg(%q) = (%+v, %v), want %v", tt.arg, pa, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePathArg(%q): %v", tt.arg, err)
			}
			if pa.Path != tt.path {
				t.Errorf("Path = %q, want %q", pa.Path, tt.path)
			}
			if len(pa.Params) != 0 || len(tt.params) != 0 {
				if !reflect.DeepEqual(pa.Params, tt.params) {
					t.Errorf("Params = %+v, want %+v", pa.Params, tt.params)
				}
			}
		})
	}
}

func TestParseReversePath(t *testing.T) {
	tests := []struct {
		name, path string
		want       smtp.Address
		ok         bool
	}{
		{"null path", "", smtp.Address{}, true},
		{"address", "kenneth@oeey.com", smtp.Address{Local: "kenneth", Domain: "oeey.com"}, true},
		{"source route", "@a,@b:u@c", smtp.Address{Local: "u", Domain: "c"}, true},
		{"one-hop source route", "@relay.example:kenneth@oeey.com", smtp.Address{Local: "kenneth", Domain: "oeey.com"}, true},
		{"quoted", `"john doe"@oeey.com`, smtp.Address{Local: "john doe", Domain: "oeey.com"}, true},
		{"postmaster without domain", "postmaster", smtp.Address{}, false},
		{"route without colon", "@a,@b", smtp.Address{}, false},
		{"double @", "kenneth@@oeey.com", smtp.Address{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := smtp.ParseReversePath(tt.path)
			if (err == nil) != tt.ok || a != tt.want {
				t.Fatalf("ParseReversePath(%q) = (%+v, %v), want %+v ok=%v", tt.path, a, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseForwardPath(t *testing.T) {
	tests := []struct {
		name, path string
		want       smtp.Address
		ok         bool
	}{
		{"address", "bob@example.com", smtp.Address{Local: "bob", Domain: "example.com"}, true},
		{"Postmaster without domain", "Postmaster", smtp.Address{Local: "postmaster"}, true},
		{"POSTMASTER without domain", "POSTMASTER", smtp.Address{Local: "postmaster"}, true},
		{"postmaster with domain keeps case", "PostMaster@Example.COM", smtp.Address{Local: "PostMaster", Domain: "example.com"}, true},
		{"source route", "@a,@b:u@c", smtp.Address{Local: "u", Domain: "c"}, true},
		{"null path refused", "", smtp.Address{}, false},
		{"other local part without domain", "bob", smtp.Address{}, false},
		{"bad domain", "bob@-x.com", smtp.Address{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := smtp.ParseForwardPath(tt.path)
			if (err == nil) != tt.ok || a != tt.want {
				t.Fatalf("ParseForwardPath(%q) = (%+v, %v), want %+v ok=%v", tt.path, a, err, tt.want, tt.ok)
			}
			if err != nil && !errors.Is(err, smtp.ErrBadAddress) {
				t.Errorf("error %v does not wrap ErrBadAddress", err)
			}
		})
	}
}

func TestParseParams(t *testing.T) {
	tests := []struct {
		name, in string
		want     []smtp.Param
		ok       bool
	}{
		{"none", "", nil, true},
		{"spaces only", "   ", nil, true},
		{"two", "SIZE=10 BODY=8BITMIME", []smtp.Param{{"SIZE", "10", true}, {"BODY", "8BITMIME", true}}, true},
		{"keyword upper-cased, value kept", "body=8bitmime", []smtp.Param{{"BODY", "8bitmime", true}}, true},
		{"keyword without value", "SMTPUTF8", []smtp.Param{{"SMTPUTF8", "", false}}, true},
		{"keyword with hyphen and digits", "X-TERN1=y", []smtp.Param{{"X-TERN1", "y", true}}, true},
		{"xtext value", "ENVID=QQ+2B1", []smtp.Param{{"ENVID", "QQ+2B1", true}}, true},
		{"UTF-8 value", "X=bjørn", []smtp.Param{{"X", "bjørn", true}}, true},
		{"tab separated", "SIZE=1\tRET=FULL", []smtp.Param{{"SIZE", "1", true}, {"RET", "FULL", true}}, true},
		{"duplicate", "SIZE=1 SIZE=2", nil, false},
		{"duplicate in other case", "size=1 Size=2", nil, false},
		{"duplicate without value", "SMTPUTF8 smtputf8", nil, false},
		{"leading hyphen", "-SIZE=1", nil, false},
		{"bad keyword char", "SI_ZE=1", nil, false},
		{"empty keyword", "=1", nil, false},
		{"empty value", "SIZE=", nil, false},
		{"value with =", "AUTH=a=b", nil, false},
		{"control char in value", "X=a\x01b", nil, false},
		{"DEL in value", "X=a\x7fb", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := smtp.ParseParams(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseParams(%q) = (%+v, %v), want ok=%v", tt.in, got, err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, smtp.ErrBadParam) {
					t.Errorf("error %v does not wrap ErrBadParam", err)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseParams(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestXtext(t *testing.T) {
	tests := []struct {
		name, xtext, plain string
		ok                 bool
	}{
		{"plain", "QQ1", "QQ1", true},
		{"RFC 3461 plus", "+2B", "+", true},
		{"seed ENVID", "QQ+2B1", "QQ+1", true},
		{"equals", "a+3Db", "a=b", true},
		{"space", "john+20doe@oeey.com", "john doe@oeey.com", true},
		{"ORCPT", "rfc822;bob+2Blists@example.com", "rfc822;bob+lists@example.com", true},
		{"escape at the end", "ab+2B", "ab+", true},
		{"non-ASCII octets", "+C3+B8", "ø", true},
		{"empty", "", "", true},
		{"lower-case hex", "+2b", "", false},
		{"non-hex", "+2G", "", false},
		{"short escape", "+2", "", false},
		{"lone plus", "+", "", false},
		{"raw equals", "a=b", "", false},
		{"raw space", "a b", "", false},
		{"raw space after escape", "+2B b", "", false},
		{"raw control char", "a\x00", "", false},
		{"raw non-ASCII", "ø", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := smtp.DecodeXtext(tt.xtext)
			if (err == nil) != tt.ok || got != tt.plain {
				t.Fatalf("DecodeXtext(%q) = (%q, %v), want %q ok=%v", tt.xtext, got, err, tt.plain, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, smtp.ErrBadParam) {
					t.Errorf("error %v does not wrap ErrBadParam", err)
				}
				return
			}
			// Every valid case above is in canonical form, so encoding gives it back.
			if enc := smtp.EncodeXtext(tt.plain); enc != tt.xtext {
				t.Errorf("EncodeXtext(%q) = %q, want %q", tt.plain, enc, tt.xtext)
			}
		})
	}
}

func TestXtextRoundTrip(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, s := range []string{"", string(all), "+++===", "john doe@oeey.com", "bjørn@exämple.test", "\r\n.\r\n"} {
		enc := smtp.EncodeXtext(s)
		for i := 0; i < len(enc); i++ {
			if c := enc[i]; c < 33 || c > 126 || c == '=' {
				t.Fatalf("EncodeXtext(%q) = %q holds octet %#x", s, enc, c)
			}
		}
		dec, err := smtp.DecodeXtext(enc)
		if err != nil || dec != s {
			t.Errorf("DecodeXtext(EncodeXtext(%q)) = (%q, %v)", s, dec, err)
		}
	}
}
