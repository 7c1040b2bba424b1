package webadmin

import (
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// voidElements have no end tag (HTML §13.1.2).
var voidElements = []string{"meta", "link", "input", "br", "img", "hr"}

// wellFormed returns what is wrong with the nesting of page: an end tag that closes another
// element than the last opened, or an element never closed.
func wellFormed(page string) []string {
	var problems, open []string
	z := html.NewTokenizer(strings.NewReader(page))
	for {
		switch z.Next() {
		case html.ErrorToken:
			if z.Err() != io.EOF {
				problems = append(problems, z.Err().Error())
			}
			for _, e := range open {
				problems = append(problems, "<"+e+"> never closed")
			}
			return problems
		case html.StartTagToken:
			name, _ := z.TagName()
			if !slices.Contains(voidElements, string(name)) {
				open = append(open, string(name))
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			if len(open) == 0 || open[len(open)-1] != string(name) {
				problems = append(problems, "</"+string(name)+"> closes "+strings.Join(open, ">"))
				continue
			}
			open = open[:len(open)-1]
		}
	}
}

// TestPagesWellFormed renders every page, with data in each, and checks its nesting.
func TestPagesWellFormed(t *testing.T) {
	f := newFixture(t, false)
	id := f.add("a@example.test", "x@example.org")
	b := f.loggedIn()
	b.post("/queue", "/queue", url.Values{"action": {"hold"}, "id": {id}}) // a flash on the next page
	for _, p := range []string{"/login", "/", "/queue", "/queue?state=held", "/queue/message?id=" + id, "/queue/message?id=nosuch",
		"/accounts", "/domains", "/domains/records?domain=example.test", "/domains/records?domain=example.test&check=1",
		"/sessions", "/log"} {
		r := b.do("GET", p, nil)
		for _, pr := range wellFormed(r.body) {
			t.Errorf("%s: %s", p, pr)
		}
	}
	if got := wellFormed("<p><b>x</p></b>"); len(got) == 0 {
		t.Error("wellFormed finds nothing wrong with <p><b>x</p></b>")
	}
}
