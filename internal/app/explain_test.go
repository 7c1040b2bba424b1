package app

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tern-mail/tern/internal/testutil"
)

// TestExplain: the errors commands print say what failed, where and what to do, and keep their
// cause for errors.Is.
func TestExplain(t *testing.T) {
	t.Run("address in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addr := ln.Addr().String()
		_, lerr := net.Listen("tcp", addr)
		if lerr == nil {
			t.Fatal("listened twice on one address")
		}
		err = listenError("smtp (MX, STARTTLS)", addr, lerr)
		_, port, _ := net.SplitHostPort(addr)
		want := "cannot listen on " + addr + " for smtp (MX, STARTTLS): address already in use\n" +
			"  another program (or another tern serve) listens there: ss -ltnp 'sport = :" + port + "' shows which; stop it, or give this listener another address"
		if err.Error() != want || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("got %q (Is EADDRINUSE: %v)\nwant %q", err, errors.Is(err, syscall.EADDRINUSE), want)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		dir := t.TempDir()
		_, oerr := os.Open(filepath.Join(dir, "accounts.db"))
		err := dataError(dir, "cannot open the account database", oerr)
		want := "cannot open the account database: " + filepath.Join(dir, "accounts.db") + ": no such file or directory"
		if err.Error() != want || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("got %q, want %q", err, want)
		}
	})
	t.Run("no file in the cause", func(t *testing.T) {
		cause := errors.New("sqlite: database disk image is malformed")
		err := dataError("/data", "cannot open the account database", cause)
		if !errors.Is(err, cause) || !strings.HasPrefix(err.Error(), "cannot open the account database: ") {
			t.Fatalf("got %q", err)
		}
	})
	t.Run("own directory closed", func(t *testing.T) {
		if !testutil.Unprivileged(t) {
			return
		}
		data := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(data, 0); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = os.Chmod(data, 0o700) }() // for TempDir's removal: its failure says why
		_, oerr := os.OpenFile(filepath.Join(data, "tern.lock"), os.O_RDWR|os.O_CREATE, 0o600)
		err := explainData(data, "cannot lock the data directory", oerr)
		want := "cannot lock the data directory: " + filepath.Join(data, "tern.lock") + ": permission denied\n  " +
			data + " (mode 0000) belongs to "
		if !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "chmod u+rwX "+data) || !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("got %q\nwant it to start with %q and end with the chmod", err, want)
		}
	})
}
