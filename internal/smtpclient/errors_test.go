package smtpclient

import (
	"testing"

	"github.com/tern-mail/tern/internal/smtp"
)

// TestErrorReply: the reply an Error holds comes back in smtp.Reply's form, whose Enhanced is
// the code the server sent.
func TestErrorReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *Error
		want smtp.Reply
	}{
		{"enhanced", &Error{Code: 550, Enhanced: "5.1.1", Text: "no such user"}, smtp.R(550, smtp.EnhBadDestMailbox, "no such user")},
		{"without enhanced", &Error{Code: 451, Text: "later"}, smtp.R(451, "", "later")},
		{"no reply", &Error{Command: CmdConnect}, smtp.Reply{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.err.Reply()
			if got != tc.want || got.Enhanced() != tc.err.Enhanced {
				t.Errorf("Reply() = %+v, want %+v", got, tc.want)
			}
		})
	}
}
