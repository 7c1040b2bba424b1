package smtpserver

// Sessions returns how many sessions are open now, on every listener (those being refused by
// the connection limiter included, until their reply is sent). The admin socket reports it.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
