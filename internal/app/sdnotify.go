package app

import (
	"log/slog"
	"net"
	"os"
)

// sdNotifier tells systemd (Type=notify) what the server is doing: READY=1 once the listeners
// are bound and the queue runs, STOPPING=1 when shutdown starts. Without $NOTIFY_SOCKET (not
// run by systemd) it does nothing. The protocol is one datagram per state to the socket
// systemd names (sd_notify(3)); a leading '@' is an abstract socket name.
type sdNotifier struct {
	addr string // empty: not under systemd
	log  *slog.Logger
}

func newSDNotifier(log *slog.Logger) sdNotifier {
	return sdNotifier{addr: os.Getenv("NOTIFY_SOCKET"), log: log}
}

// notify sends state; a failure is logged, never fatal: systemd then times the start out,
// which says more than a server that refuses to run.
func (n sdNotifier) notify(state string) {
	if n.addr == "" {
		return
	}
	name := n.addr
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		n.log.Warn("systemd notify: cannot reach $NOTIFY_SOCKET", "socket", n.addr, "err", err)
		return
	}
	defer func() { _ = conn.Close() }() // best effort: the datagram is sent or not by Write
	if _, err := conn.Write([]byte(state)); err != nil {
		n.log.Warn("systemd notify: send failed", "socket", n.addr, "state", state, "err", err)
	}
}
