package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/resolver"
	"github.com/tern-mail/tern/internal/testutil"
)

// dkimDNS joins a record's strings; a missing name or record is dkim.ErrNoRecord (permerror),
// a failing server anything else (temperror).
func TestDKIMDNS(t *testing.T) {
	z := testutil.StartDNS(t, `s._domainkey.example.test. TXT "v=DKIM1; k=ed25519; " "p=abc"`, "a.example.test. A 127.0.0.2")
	z.Fail("bad._domainkey.example.test", dns.RcodeServerFailure)
	c, err := resolver.NewClient(z.Addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	d := dkimDNS{resolver.New(c, resolver.Options{})}
	ctx := context.Background()
	if got, err := d.LookupTXT(ctx, "s._domainkey.example.test"); err != nil || len(got) != 1 || got[0] != "v=DKIM1; k=ed25519; p=abc" {
		t.Errorf("LookupTXT = %q, %v", got, err)
	}
	for _, name := range []string{"missing._domainkey.example.test", "a.example.test"} {
		if _, err := d.LookupTXT(ctx, name); !errors.Is(err, dkim.ErrNoRecord) {
			t.Errorf("%s: %v, want ErrNoRecord", name, err)
		}
	}
	if _, err := d.LookupTXT(ctx, "bad._domainkey.example.test"); err == nil || errors.Is(err, dkim.ErrNoRecord) {
		t.Errorf("SERVFAIL: %v, want a temporary error", err)
	}
}
