package app

import (
	"net"
	"slices"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/proxied"
)

// bindListener binds the socket c describes (behind the PROXY protocol when c asks for it).
func (s *Server) bindListener(c config.Listener, implicit bool) (*listener, error) {
	desc := describe(c, implicit)
	ln, err := net.Listen("tcp", c.Address)
	if err != nil {
		return nil, listenError(desc, c.Address, err)
	}
	if c.ProxyProtocol {
		trusted, _ := c.ProxyPrefixes() // checked by config.Validate
		ln = proxied.Listen(ln, proxied.Options{Trusted: trusted, Logger: s.log.With("listener", c.Name)})
	}
	return &listener{ln: ln, l: serverListener(c), desc: desc, sock: socketOf(c)}, nil
}

// relisten makes the running listeners those of cfg: a socket that stays keeps serving, a new
// one is bound and served, and one that is gone or moved is closed (it stops accepting; the
// sessions it accepted run to their end). A new socket that cannot be bound is logged and the
// listener of that name, or on that address, keeps its old socket. Before Run serves and once it shuts down, nothing
// changes.
func (s *Server) relisten(cfg config.Config) {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.serveLn == nil {
		return
	}
	implicit := len(cfg.Listeners) == 0
	var next []*listener
	for _, c := range cfg.EffectiveListeners() {
		sock := socketOf(c)
		if i := slices.IndexFunc(s.lns, func(l *listener) bool { return l.sock == sock }); i >= 0 {
			next = append(next, s.lns[i])
			continue
		}
		l, err := s.bindListener(c, implicit)
		if err != nil {
			s.log.Error("reload of a listener refused: its old socket stays", "listener", c.Name, "err", err)
			// The one of that name, and the one on that address (a listener renamed, or given
			// another role, on the same address cannot bind it while the old one holds it).
			for _, l := range s.lns {
				if (l.sock.name == c.Name || l.sock.address == c.Address || l.ln.Addr().String() == c.Address) && !slices.Contains(next, l) {
					next = append(next, l)
				}
			}
			continue
		}
		s.log.Info("listening", "listener", c.Name, "address", l.ln.Addr().String())
		s.serveLn(l)
		next = append(next, l)
	}
	for _, l := range s.lns {
		if !slices.Contains(next, l) {
			s.log.Info("listener closed: its sessions run to their end", "listener", l.sock.name, "address", l.ln.Addr().String())
			l.retired.Store(true)
			_ = l.ln.Close() // its accept loop ends; nothing was written through it
		}
	}
	s.lns = next
}

// setSelf tells remote delivery who the server now is, for the attempts from now on: cfg's
// hostname (EHLO, and the name of a destination that is us) and the addresses listened on.
func (s *Server) setSelf(cfg config.Config) {
	if s.remote == nil {
		return
	}
	s.lnMu.Lock()
	local := localAddrs(s.lns)
	s.lnMu.Unlock()
	if err := s.remote.SetSelf(cfg.Hostname, local); err != nil { // refused by Check already
		s.log.Error("remote delivery keeps its former hostname and addresses", "err", err)
	}
}
