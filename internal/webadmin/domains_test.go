package webadmin

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fakeDomains has one domain with a key; its records check fails.
type fakeDomains struct{}

func (fakeDomains) List() []string { return []string{"example.test"} }

func (fakeDomains) DKIMKeys(context.Context) ([]DKIMKey, error) {
	return []DKIMKey{{Domain: "example.test", Selector: "s1", Algorithm: "ed25519", State: "active", Created: time.Unix(0, 0)}}, nil
}

func (fakeDomains) Records(_ context.Context, domain string, check bool) (string, bool, error) {
	if check {
		return "MX " + domain + ": missing <none>\n", false, nil
	}
	return domain + ". MX 10 mx." + domain + ".\n", true, nil
}

func TestDomains(t *testing.T) {
	f := newFixture(t, false)
	b := f.loggedIn()
	for _, tc := range []struct {
		path string
		code int
		want []string
	}{
		{"/domains", 200, []string{`<h2 id="d-example.test">example.test</h2>`, "<td>s1</td><td>ed25519</td><td>active</td><td>1970-01-01 00:00:00Z</td>",
			`href="/domains/records?domain=example.test&amp;check=1"`}},
		{"/domains/records?domain=example.test", 200, []string{"example.test. MX 10 mx.example.test."}},
		{"/domains/records?domain=example.test&check=1", 200, []string{`<p id="check-result" class="error">Some records are missing or differ.</p>`, "missing &lt;none&gt;"}},
		{"/domains/records?domain=other.example", 404, []string{"other.example is not a local domain"}},
	} {
		r := b.do("GET", tc.path, nil)
		if r.code != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.path, r.code, tc.code)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.body, w) {
				t.Errorf("GET %s lacks %q:\n%s", tc.path, w, r.body)
			}
		}
	}
	wantLog(t, f.logs.String(), `msg="webadmin: dns check" admin=alice remote=127.0.0.1 domain=example.test ok=false`)
	if r := f.browser().do("GET", "/domains", nil); r.code != http.StatusSeeOther {
		t.Errorf("domains page before login: %d", r.code)
	}
}
