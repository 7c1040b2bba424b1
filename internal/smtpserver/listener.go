package smtpserver

import (
	"cmp"
	"net"
	"slices"
	"time"
)

// Listener is one listener: its name, its role and what it changes of the Server's Options.
// Zero fields keep the Options' value.
type Listener struct {
	// Name is in the log and in FilterConn; default: the role's name (smtp, submission,
	// submissions). Policy asks the role, never the name.
	Name string
	Role Role
	// NoTLS offers no STARTTLS (refused with RoleSubmissions).
	NoTLS bool
	// RequireTLS answers AUTH and MAIL with 530 5.7.0 until STARTTLS.
	RequireTLS bool
	// RequireAuth answers MAIL with 530 5.7.0 until AUTH (when AUTH is offered at all).
	// Serve sets it for the submission roles.
	RequireAuth bool
	// Mechanisms offered here, a subset of Options.Auth's; nil: all of them; empty (not nil):
	// no AUTH here.
	Mechanisms []string

	MaxMessageSize int64
	MaxRcpts       int
	IdleTimeout    time.Duration
	DataTimeout    time.Duration
}

// listenerOptions returns the Options of the sessions of l.
func (s *Server) listenerOptions(l Listener) *Options {
	o := s.Options()
	o.MaxMessageSize = cmp.Or(l.MaxMessageSize, o.MaxMessageSize)
	o.MaxRcpts = cmp.Or(l.MaxRcpts, o.MaxRcpts)
	o.IdleTimeout = cmp.Or(l.IdleTimeout, o.IdleTimeout)
	o.DataTimeout = cmp.Or(l.DataTimeout, o.DataTimeout)
	if l.NoTLS {
		o.TLS = nil
	}
	if o.Auth != nil && l.Mechanisms != nil {
		var ms []string
		for _, m := range o.Auth.Mechanisms {
			if slices.Contains(l.Mechanisms, m) {
				ms = append(ms, m)
			}
		}
		if len(ms) == 0 {
			o.Auth = nil
		} else {
			a := *o.Auth
			a.Mechanisms = ms
			o.Auth = &a
		}
	}
	return &o
}

// optionsCache keeps what listenerOptions made for one listener's sessions while neither the
// Server's Options nor its listeners change: sessions only read their Options, so they share
// one copy instead of each carrying its own.
type optionsCache struct {
	opts *Options
	lis  *map[string]Listener
	l    Listener
	o    *Options
}

// get returns the listener l as it is now (Server.listener), and the Options of its sessions.
func (c *optionsCache) get(s *Server, l Listener) (Listener, *Options) {
	if opts, lis := s.opts.Load(), s.lis.Load(); c.o == nil || opts != c.opts || lis != c.lis {
		// A change between these loads and those below makes the next get compute again.
		c.opts, c.lis = opts, lis
		c.l = s.listener(l)
		c.o = s.listenerOptions(c.l)
	}
	return c.l, c.o
}

// Serve accepts connections on ln until ln fails or Shutdown is called, as the listener of role
// named after it, with the Options as they are (see ServeListener).
func (s *Server) Serve(ln net.Listener, role Role) error {
	return s.ServeListener(ln, Listener{Role: role, RequireAuth: role != RoleMX})
}
