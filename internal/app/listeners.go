package app

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// listener is one bound listening socket and the service it is for.
type listener struct {
	ln   net.Listener
	l    smtpserver.Listener
	desc string
	sock socket // what it was bound as: a reload keeps it while its config is the same
	// retired says a reload closed it: its accept loop's end is no failure.
	retired atomic.Bool
}

// roleOf maps a configured role to the server's.
func roleOf(r string) smtpserver.Role {
	switch r {
	case config.RoleSubmission:
		return smtpserver.RoleSubmission
	case config.RoleSubmissions:
		return smtpserver.RoleSubmissions
	}
	return smtpserver.RoleMX
}

// serverListener is what a configured listener changes of the server's options.
func serverListener(c config.Listener) smtpserver.Listener {
	return smtpserver.Listener{
		Name:           c.Name,
		Role:           roleOf(c.Role),
		NoTLS:          c.TLS == config.TLSNone,
		RequireTLS:     c.TLS == config.TLSRequired,
		RequireAuth:    *c.AuthRequired,
		Mechanisms:     slices.Clone(c.Mechanisms),
		MaxMessageSize: c.MessageSize,
		MaxRcpts:       c.Recipients,
		IdleTimeout:    c.IdleTimeout.Duration,
		DataTimeout:    c.DataTimeout.Duration,
	}
}

// describe words a listener for the startup lines: "smtp (MX, STARTTLS)" for the implicit ones,
// as before; the name, role and TLS mode for the others.
func describe(c config.Listener, implicit bool) string {
	if implicit {
		switch c.Name {
		case "smtp":
			return "smtp (MX, STARTTLS)"
		case "submission":
			return "submission (STARTTLS)"
		case "submissions":
			return "submissions (implicit TLS)"
		}
	}
	d := fmt.Sprintf("%s (%s, TLS %s", c.Name, c.Role, c.TLS)
	if c.ProxyProtocol {
		d += ", PROXY protocol"
	}
	return d + ")"
}

// listen binds the listeners the config names, and returns their addresses.
func (s *Server) listen() ([]netip.AddrPort, error) {
	s.release = append(s.release, func() {
		s.lnMu.Lock()
		defer s.lnMu.Unlock()
		for _, l := range s.lns {
			_ = l.ln.Close() // best effort: Shutdown has closed them when the server ran
		}
	})
	implicit := len(s.cfg.Listeners) == 0
	for _, c := range s.cfg.EffectiveListeners() {
		l, err := s.bindListener(c, implicit) // relisten.go
		if err != nil {
			return nil, err
		}
		s.lns = append(s.lns, l)
	}
	return localAddrs(s.lns), nil
}

// localAddrs are the addresses lns are bound to: remote delivery refuses mail that would loop
// back to one of them.
func localAddrs(lns []*listener) []netip.AddrPort {
	var local []netip.AddrPort
	for _, l := range lns {
		if ta, ok := l.ln.Addr().(*net.TCPAddr); ok {
			local = append(local, ta.AddrPort())
		}
	}
	return local
}

// byListener limits a content filter to the listeners its config names: a listener's name, or
// smtp, submission or submissions, which also stand for every listener of that role.
type byListener struct {
	smtpserver.Filter
	names []string
}

func (f byListener) Open(ctx context.Context, c smtpserver.FilterConn) smtpserver.FilterSession {
	if !slices.Contains(f.names, c.Listener) && !slices.Contains(f.names, c.Role.String()) {
		return nil
	}
	return f.Filter.Open(ctx, c)
}

var allRoles = []smtpserver.Role{smtpserver.RoleMX, smtpserver.RoleSubmission, smtpserver.RoleSubmissions}

// hasRole reports whether a listener of role r is configured.
func hasRole(cfg config.Config, r string) bool {
	return slices.ContainsFunc(cfg.EffectiveListeners(), func(l config.Listener) bool { return l.Role == r })
}
