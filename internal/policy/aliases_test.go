package policy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/smtp"
)

// fakeAliases is an account store of accounts and aliases in maps.
type fakeAliases struct {
	accounts map[string]bool
	aliases  map[string][]string
	fail     string // an address whose lookups fail
	lookups  int
}

func (f *fakeAliases) Exists(_ context.Context, addr string) (bool, error) {
	f.lookups++
	if addr == f.fail {
		return false, errors.New("store down")
	}
	return f.accounts[addr], nil
}

func (f *fakeAliases) AliasTargets(_ context.Context, addr string) ([]string, error) {
	f.lookups++
	if addr == f.fail {
		return nil, errors.New("store down")
	}
	return f.aliases[addr], nil
}

// resolvingAliases is fakeAliases with both first questions in one lookup (AddressResolver).
type resolvingAliases struct{ *fakeAliases }

func (r resolvingAliases) Resolve(_ context.Context, addr string) ([]string, bool, error) {
	r.lookups++
	if addr == r.fail {
		return nil, false, errors.New("store down")
	}
	return r.aliases[addr], r.accounts[addr] && len(r.aliases[addr]) == 0, nil
}

func testAliases() *fakeAliases {
	return &fakeAliases{
		accounts: map[string]bool{"bob@a.test": true, "alice@a.test": true, "kenneth.burgener@oeey.com": true, "carol@b.test": true},
		aliases: map[string][]string{
			"postmaster@a.test": {"bob@a.test"},
			"team@a.test":       {"alice@a.test", "bob@a.test", "list@a.test"},
			"list@a.test":       {"bob@a.test", "friend@ext.test"},
			"kenneth@oeey.com":  {"kenneth.burgener@oeey.com"},
			"copy@a.test":       {"bob@a.test"},
			"bob@a.test":        {"bob@a.test", "bob@ext.test"}, // keep a copy and forward
			"loop1@a.test":      {"loop2@a.test"},
			"loop2@a.test":      {"loop1@a.test"},
			"halfloop@a.test":   {"loop1@a.test", "alice@a.test"},
			"self@a.test":       {"self@a.test"},
			"deep0@a.test":      {"deep1@a.test"},
			"@a.org":            {"@a.test"},
			"@b.test":           {"carol@b.test"},
			"@c.test":           {"@a.test"},
			"typo@a.test":       {"alice@a.test", "bbo@a.test", "nobody@a.org"},
			"onlytypo@a.test":   {"bbo@a.test"},
		},
	}
}

func TestAliasesExpand(t *testing.T) {
	f := testAliases()
	for i := 1; i < 12; i++ {
		f.aliases[fmt.Sprintf("deep%d@a.test", i)] = []string{fmt.Sprintf("deep%d@a.test", i+1)}
	}
	f.accounts["deep12@a.test"] = true
	t.Run("two queries", func(t *testing.T) { testAliasesExpand(t, f) })
	t.Run("resolver", func(t *testing.T) { testAliasesExpand(t, resolvingAliases{f}) })
	// The resolver asks once for an account where the two queries ask twice.
	counts := map[string]int{}
	for _, l := range []AliasLookup{f, resolvingAliases{f}} {
		f.lookups = 0
		a := &Aliases{IsLocal: func(d string) bool { return d != "ext.test" }, Lookup: l}
		if x, err := a.Expand(context.Background(), "alice@a.test"); err != nil || len(x.Targets) != 1 {
			t.Fatalf("Expand(alice@a.test) = %v, %v", x, err)
		}
		counts[fmt.Sprintf("%T", l)] = f.lookups
	}
	if want := map[string]int{"*policy.fakeAliases": 2, "policy.resolvingAliases": 1}; !maps.Equal(counts, want) {
		t.Errorf("lookups for an account: %v, want %v", counts, want)
	}
}

func testAliasesExpand(t *testing.T, l AliasLookup) {
	a := &Aliases{IsLocal: func(d string) bool { return d != "ext.test" }, Lookup: l, Separator: "+"}
	for _, tc := range []struct {
		addr, want string // want: the targets, space-separated; "-" none
		loop, all  bool
		unknown    string
	}{
		{addr: "bob@a.test", want: "bob@a.test bob@ext.test"},
		{addr: "Alice@A.test", want: "alice@a.test"},
		{addr: "kenneth@oeey.com", want: "kenneth.burgener@oeey.com"},
		{addr: "postmaster@a.test", want: "bob@a.test bob@ext.test"},
		{addr: "team@a.test", want: "alice@a.test bob@a.test bob@ext.test friend@ext.test"},
		{addr: "alice+news@a.test", want: "alice@a.test"},
		{addr: "kenneth+x+y@oeey.com", want: "kenneth.burgener@oeey.com"},
		{addr: "+x@a.test", want: "-"},
		{addr: "nobody@a.test", want: "-"},
		{addr: "nobody+x@a.test", want: "-"},
		{addr: "loop1@a.test", want: "-", loop: true},
		{addr: "self@a.test", want: "-", loop: true},
		{addr: "halfloop@a.test", want: "alice@a.test", loop: true},
		{addr: "deep0@a.test", want: "-", loop: true},
		{addr: "deep3@a.test", want: "deep12@a.test"},
		{addr: "alice@a.org", want: "alice@a.test"},
		{addr: "alice+x@a.org", want: "alice@a.test"},
		{addr: "team@a.org", want: "alice@a.test bob@a.test bob@ext.test friend@ext.test"},
		{addr: "nobody@a.org", want: "-", unknown: "nobody@a.test"},
		{addr: "anyone@b.test", want: "carol@b.test", all: true},
		{addr: "carol@b.test", want: "carol@b.test"},
		{addr: "alice@c.test", want: "alice@a.test"},
		{addr: "someone@ext.test", want: "someone@ext.test"},
		{addr: "typo@a.test", want: "alice@a.test", unknown: "bbo@a.test nobody@a.test"},
		{addr: "onlytypo@a.test", want: "-", unknown: "bbo@a.test"},
		{addr: "not an address", want: "-"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			x, err := a.Expand(context.Background(), tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(x.Targets, " ")
			if got == "" {
				got = "-"
			}
			want := strings.Fields(tc.want)
			slices.Sort(want)
			ts := slices.Sorted(slices.Values(x.Targets))
			if tc.want != "-" && !slices.Equal(ts, want) || tc.want == "-" && got != "-" {
				t.Errorf("Expand(%s) = %s, want %s", tc.addr, got, tc.want)
			}
			if u := strings.Join(x.Unknown, " "); u != tc.unknown {
				t.Errorf("Expand(%s): unknown %q, want %q", tc.addr, u, tc.unknown)
			}
			if x.Loop != tc.loop || x.CatchAll != tc.all {
				t.Errorf("Expand(%s): loop %v catch-all %v, want %v %v", tc.addr, x.Loop, x.CatchAll, tc.loop, tc.all)
			}
			ok, err := a.Exists(context.Background(), tc.addr)
			if err != nil || ok != (tc.want != "-") {
				t.Errorf("Exists(%s) = %v, %v", tc.addr, ok, err)
			}
		})
	}
}

func TestAliasesLookupFails(t *testing.T) {
	f := testAliases()
	f.fail = "list@a.test"
	a := &Aliases{IsLocal: func(d string) bool { return d != "ext.test" }, Lookup: f}
	if _, err := a.Expand(context.Background(), "team@a.test"); err == nil {
		t.Fatal("a failed lookup on the way gave no error")
	}
	// Without a separator, a "+" is part of the name.
	if x, _ := a.Expand(context.Background(), "alice+x@a.test"); len(x.Targets) != 0 {
		t.Errorf("no subaddressing: got %v", x.Targets)
	}
}

func TestSendersFollowAliases(t *testing.T) {
	a := &Aliases{IsLocal: func(d string) bool { return d != "ext.test" }, Lookup: testAliases(), Separator: "+"}
	s := &Senders{Aliases: a}
	for _, tc := range []struct {
		account, from string
		code          int
	}{
		{"kenneth.burgener@oeey.com", "kenneth@oeey.com", 250},
		{"kenneth.burgener@oeey.com", "KENNETH+tag@oeey.com", 250},
		{"kenneth.burgener@oeey.com", "kenneth.burgener@oeey.com", 250},
		{"alice@a.test", "team@a.test", 250},
		{"alice@a.test", "alice@a.org", 250},
		{"alice@a.test", "bob@a.test", 553},
		{"bob@a.test", "copy@a.test", 250},
		{"carol@b.test", "anyone@b.test", 553}, // a catch-all owns no sender
		{"bob@a.test", "friend@ext.test", 553},
		{"alice@a.test", "loop1@a.test", 553},
	} {
		from := addr(t, tc.from)
		if r := s.CheckSender(context.Background(), tc.account, from); r.Code != tc.code {
			t.Errorf("%s as %s: %d %s, want %d", tc.account, tc.from, r.Code, r.Text, tc.code)
		}
	}
	f := testAliases()
	f.fail = "team@a.test"
	s = &Senders{Aliases: &Aliases{IsLocal: a.IsLocal, Lookup: f}}
	if r := s.CheckSender(context.Background(), "alice@a.test", addr(t, "team@a.test")); r.Code != 451 {
		t.Errorf("store down: %d %s, want 451", r.Code, r.Text)
	}
}

func addr(t *testing.T, s string) smtp.Address {
	t.Helper()
	a, err := smtp.ParseForwardPath(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// fakeSRS reverses SRS0=ok=<local>=<domain> addresses and refuses every other SRS address.
type fakeSRS struct{}

func (fakeSRS) Reverse(addr string) (string, bool, error) {
	local, _, _ := strings.Cut(addr, "@")
	if !strings.HasPrefix(strings.ToUpper(local), "SRS0=") {
		return "", false, nil
	}
	f := strings.Split(local, "=")
	if len(f) != 4 || f[1] != "ok" {
		return "", true, errors.New("srs: hash invalid in SRS address: \"" + addr + "\"")
	}
	return f[2] + "@" + f[3], true, nil
}

// An SRS address in a local domain expands to the address it stands for; one that does not
// verify is refused at RCPT with the reason, 550 5.1.1.
func TestAliasesSRS(t *testing.T) {
	a := &Aliases{IsLocal: func(d string) bool { return d == "a.test" }, Lookup: testAliases(), SRS: fakeSRS{}}
	x, err := a.Expand(context.Background(), "SRS0=ok=carol=b.test@a.test")
	if err != nil || fmt.Sprint(x.Targets) != "[carol@b.test]" {
		t.Errorf("Expand = %v, %v", x.Targets, err)
	}
	relay := NewRelay([]string{"a.test"}, a)
	for _, tc := range []struct{ rcpt, want string }{
		{"SRS0=ok=carol=b.test@a.test", "250 2.1.5 Ok"},
		{"SRS0=no/t=carol=b.test@a.test", "550 5.1.1 <SRS0=no/t=carol=b.test@a.test>: Recipient address rejected: hash invalid in SRS address"},
		{"SRS0=no=carol=b.test@elsewhere.test", "554 5.7.1 <SRS0=no=carol=b.test@elsewhere.test>: Relay access denied"},
	} {
		r := relay.CheckRcpt(context.Background(), Client{}, addr(t, tc.rcpt))
		if got := fmt.Sprintf("%d %s %s", r.Code, smtp.Enhanced(r.Code, r.Enh), r.Text); got != tc.want {
			t.Errorf("RCPT %s: %s, want %s", tc.rcpt, got, tc.want)
		}
	}
}

// FuzzAliasesExpand: any address through the expansion, with every form in the store: no
// panic, and every target is an address in normalized form, once.
func FuzzAliasesExpand(f *testing.F) {
	for _, s := range []string{"team@a.test", "alice+x@a.org", "SRS0=ok=carol=b.test@a.test", "x@b.test", "+@a.test", "a+b+c@c.test", "@a.test", "loop1@a.test"} {
		f.Add(s)
	}
	a := &Aliases{IsLocal: func(d string) bool { return d != "ext.test" }, Lookup: testAliases(), Separator: "+", SRS: fakeSRS{}}
	f.Fuzz(func(t *testing.T, addr string) {
		x, err := a.Expand(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, tg := range x.Targets {
			if seen[tg] {
				t.Fatalf("Expand(%q): %s twice", addr, tg)
			}
			seen[tg] = true
			if !strings.Contains(tg, "@") {
				t.Fatalf("Expand(%q): target %q is no address", addr, tg)
			}
		}
	})
}
