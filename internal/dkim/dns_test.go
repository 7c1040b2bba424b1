package dkim

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/tern-mail/tern/internal/testutil"
)

// wireResolver asks a DNS server over UDP with miekg/dns, as tern's resolver (the one
// --resolver configures) does: the shape of the adapter the server will use. The strings of a
// record are joined (RFC 6376 §3.6.2.2); NXDOMAIN and NODATA are ErrNoRecord, anything else
// a temporary failure.
type wireResolver struct{ addr string }

func (r wireResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	resp, _, err := new(dns.Client).ExchangeContext(ctx, m, r.addr)
	switch {
	case err != nil:
		return nil, err
	case resp.Rcode == dns.RcodeNameError:
		return nil, fmt.Errorf("%s: %w", name, ErrNoRecord)
	case resp.Rcode != dns.RcodeSuccess:
		return nil, fmt.Errorf("%s: %s", name, dns.RcodeToString[resp.Rcode])
	}
	var txts []string
	for _, rr := range resp.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			txts = append(txts, strings.Join(txt.Txt, ""))
		}
	}
	if len(txts) == 0 {
		return nil, fmt.Errorf("%s: no TXT: %w", name, ErrNoRecord)
	}
	return txts, nil
}

// TestRecordsOverDNS: the zone line tern prints (a 2048-bit key's record in several strings)
// loads into a DNS server, and verification through it passes; a failing server gives
// temperror, a missing record permerror.
func TestRecordsOverDNS(t *testing.T) {
	keys, res := testKeys(t)
	z := testutil.StartDNS(t)
	for name, v := range res {
		z.Add(t, name+". 300 IN TXT "+ZoneStrings(v[0]))
	}
	sigs, err := Sign(strings.NewReader(testMessage), keys)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(sigs + testMessage)
	r := wireResolver{z.Addr}
	if got, want := statuses(mustVerify(t, msg, r)), "pass srsa rsa-sha256; pass sed25519 ed25519-sha256"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	z.Fail(RecordName("srsa", "example.test"), dns.RcodeServerFailure)
	z.Replace(t, RecordName("sed25519", "example.test"))
	if got, want := statuses(mustVerify(t, msg, r)), "temperror srsa rsa-sha256; permerror sed25519 ed25519-sha256"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
