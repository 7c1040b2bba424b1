package metrics

import (
	"regexp"
	"testing"

	"github.com/tern-mail/tern/internal/smtp"
)

// boundedLabel is every value ReplyLabel may give: a label never carries what a peer chose.
var boundedLabel = regexp.MustCompile(`^([45][0-9]{2}( [45]\.[0-7]\.[0-9]{1,2})?|[45]xx|other)$`)

// FuzzLabels: whatever reply a filter or a checker gives, the labels stay in their fixed sets.
func FuzzLabels(f *testing.F) {
	f.Add(550, "7.1", "pass")
	f.Add(451, "4.3.0", "sts-policy-fetch-error")
	f.Add(554, "", "Pass x@example.test")
	f.Add(250, "0.0", "")
	f.Fuzz(func(t *testing.T, code int, enh, result string) {
		if l := ReplyLabel(smtp.R(code, enh, "text")); !boundedLabel.MatchString(l) {
			t.Errorf("ReplyLabel(%d, %q) = %q", code, enh, l)
		}
		if w := word(result); w != "other" && !resultWord.MatchString(w) {
			t.Errorf("word(%q) = %q", result, w)
		}
	})
}
