package app

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Error is an error worded for the administrator at the command line: Msg says what failed,
// where, and what to do about it, without the package names of the cause (those are for the
// debug log); Err is the cause, for errors.Is and errors.As.
type Error struct {
	Msg string
	Err error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// logCause logs, at debug level, the whole cause of the *Error in *err: the words the command
// prints leave out the packages that found it, which the debug log keeps.
func logCause(log *slog.Logger, err *error) {
	var e *Error
	if errors.As(*err, &e) && e.Err != nil {
		log.Debug("cause", "err", e.Err)
	}
}

// errorf returns an *Error with the cause err.
func errorf(err error, format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...), Err: err}
}

// osReason is the operating system's part of err ("permission denied", "no such file or
// directory"), or err's text when it has none.
func osReason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// errPath is the file err is about, if it says.
func errPath(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Path
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.New
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Addr != nil && oe.Addr.Network() == "unix" {
		return oe.Addr.String()
	}
	return ""
}

// explainData words an error met in the data directory data: what failed (what), the file, the
// operating system's reason and, when it is a permission, who owns what is in the way, which
// user tern runs as, and what to run.
func explainData(data, what string, err error) error {
	path := errPath(err)
	if path == "" {
		path = data
	}
	msg := fmt.Sprintf("%s: %s: %s", what, path, osReason(err))
	if errors.Is(err, fs.ErrPermission) {
		msg += "\n  " + permissionHint(data, path)
	}
	return &Error{Msg: msg, Err: err}
}

// permissionHint says who owns the first existing file on the way to path (path itself, or the
// directory where it would be made), which user tern runs as, and how to bring the two together.
func permissionHint(data, path string) string {
	me, meDesc := userName(os.Geteuid())
	obstacle := path
	var fi os.FileInfo
	for {
		var err error
		if fi, err = os.Lstat(obstacle); err == nil {
			break
		}
		parent := filepath.Dir(obstacle)
		if parent == obstacle {
			return fmt.Sprintf("tern runs as %s, which may not use it: run tern as the data directory's owner, or choose another with --data", meDesc)
		}
		obstacle = parent
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprintf("tern runs as %s, which may not use %s", meDesc, obstacle)
	}
	owner, ownerDesc := userName(int(st.Uid))
	mode := fmt.Sprintf("%04o", fi.Mode().Perm())
	inData := obstacle == data || strings.HasPrefix(obstacle, data+string(filepath.Separator))
	switch {
	case int(st.Uid) == os.Geteuid():
		return fmt.Sprintf("%s (mode %s) belongs to %s, the user tern runs as, but does not let it in: chmod u+rwX %s",
			obstacle, mode, meDesc, obstacle)
	case inData:
		return fmt.Sprintf("%s belongs to %s (mode %s), but tern runs as %s: run tern as %s, or give the data directory to %s: chown -R %s %s",
			obstacle, ownerDesc, mode, meDesc, owner, me, me, data)
	default:
		// The data directory does not exist yet, and its parent is not ours to write in.
		return fmt.Sprintf("%s belongs to %s (mode %s), and tern runs as %s: create the data directory for %s (as %s: mkdir -p %s && chown %s %s), or choose another with --data",
			obstacle, ownerDesc, mode, meDesc, me, owner, data, me, data)
	}
}

// userName returns the name of uid for a command (the number when it has no name) and a
// description for a sentence, "name (uid N)".
func userName(uid int) (name, desc string) {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil && u.Username != "" {
		return u.Username, u.Username + " (uid " + id + ")"
	}
	return id, "uid " + id
}

// listenError words a failed listen on addr for the listener desc.
func listenError(desc, addr string, err error) error {
	msg := fmt.Sprintf("cannot listen on %s for %s: %s", addr, desc, osReason(err))
	_, port, _ := net.SplitHostPort(addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		msg += fmt.Sprintf("\n  another program (or another tern serve) listens there: ss -ltnp 'sport = :%s' shows which; stop it, or give this listener another address", port)
	case errors.Is(err, syscall.EACCES):
		msg += fmt.Sprintf("\n  ports below 1024 need root or the capability to bind them: run tern as root, or allow it once with setcap cap_net_bind_service=+ep %s", executable())
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		msg += "\n  the address is not one of this machine's (ip -brief address lists them)"
	}
	return &Error{Msg: msg, Err: err}
}

// executable is the path of the running tern, for a command to copy.
func executable() string {
	p, err := os.Executable()
	if err != nil {
		return "$(command -v tern)"
	}
	return p
}

// dataError is explainData for an error about a file, and otherwise what failed and the cause.
func dataError(data, what string, err error) error {
	if e := (*Error)(nil); errors.As(err, &e) {
		return err // already worded for the administrator
	}
	if errPath(err) != "" {
		return explainData(data, what, err)
	}
	return errorf(err, "%s: %v", what, err)
}
