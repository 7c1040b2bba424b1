package app

import (
	"context"
	"testing"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// openAll is a filter that would filter every session.
type openAll struct{ smtpserver.FilterSession }

func (openAll) Open(context.Context, smtpserver.FilterConn) smtpserver.FilterSession {
	return openAll{}
}

// TestByListener: a milter's listeners name listeners, or with smtp, submission and
// submissions every listener of that role.
func TestByListener(t *testing.T) {
	for _, tc := range []struct {
		names    []string
		listener string
		role     smtpserver.Role
		want     bool
	}{
		{[]string{"mx2"}, "mx2", smtpserver.RoleMX, true},
		{[]string{"mx2"}, "mx", smtpserver.RoleMX, false},
		{[]string{"smtp"}, "mx", smtpserver.RoleMX, true},
		{[]string{"smtp"}, "smtp", smtpserver.RoleMX, true},
		{[]string{"smtp"}, "submission", smtpserver.RoleSubmission, false},
		{[]string{"submission"}, "users", smtpserver.RoleSubmission, true},
	} {
		f := byListener{Filter: openAll{}, names: tc.names}
		got := f.Open(context.Background(), smtpserver.FilterConn{Listener: tc.listener, Role: tc.role}) != nil
		if got != tc.want {
			t.Errorf("listeners %v, session on %s (%v): filtered %v, want %v", tc.names, tc.listener, tc.role, got, tc.want)
		}
	}
}

// TestServerListener: what a configured listener becomes for the server.
func TestServerListener(t *testing.T) {
	c := config.Default()
	c.Listeners = []config.Listener{{Name: "mx2", Address: "127.0.0.2:25", Role: "mx", TLS: "required", MessageSize: 2000}}
	c.Listen = config.Listen{}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	l := serverListener(c.EffectiveListeners()[0])
	if l.Name != "mx2" || l.Role != smtpserver.RoleMX || !l.RequireTLS || l.NoTLS || l.RequireAuth || l.MaxMessageSize != 2000 {
		t.Errorf("got %+v", l)
	}
}
