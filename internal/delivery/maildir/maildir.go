// Package maildir delivers messages for local recipients into Maildir mailboxes, one file per
// message per recipient, laid out as Root/<domain>/<localpart>/Maildir.
//
// It owns the on-disk delivery of one message to one mailbox and nothing else: it does not
// decide who is local, does not look up accounts, and does not retry (the queue does).
//
// # Guarantees
//
// Deliver returns nil only once the message is durable: the file was written under tmp/,
// fsynced, closed, renamed into new/, and new/ itself was fsynced. Any directory it creates
// (Root's missing ancestors, the domain, the user, Maildir and its tmp/new/cur) has its parent
// fsynced before the first message goes into it, so a crash cannot lose the mailbox entry
// holding an acknowledged message. On failure no file is left in tmp/ or new/.
//
// File names follow the Maildir spec (https://cr.yp.to/proto/maildir.html) with the fields
// Dovecot's Maildir documentation adds: "<secs>.M<usecs>P<pid>Q<counter>.<host>,S=<size>". The
// S= size lets readers like Dovecot skip a stat per message.
//
// A message the envelope marks for quarantine (it failed DMARC, and policy quarantines it) goes
// into the mailbox's Junk folder instead, the Maildir++ folder ".Junk" (Dovecot's layout:
// Maildir/.Junk/{tmp,new,cur}), created with the same durability as the mailbox; Dovecot shows
// it as the folder "Junk", which its default configuration marks as the \Junk special-use
// folder. The "maildirfolder" marker file of Courier's Maildir++ is not written: Dovecot does
// not need it.
//
// Files hold "Return-Path:" and "Delivered-To:" header lines followed by the body, with the SMTP
// wire form's CRLF line endings turned into LF, as Maildir readers expect.
//
// # Failure semantics
//
// Errors are *delivery.Error values: an address that cannot safely become a path component is
// permanent (550 5.1.1); a full disk or an exceeded quota is temporary 452 4.2.2; any other I/O
// failure is temporary 451 4.3.0. The text in delivery.Error.Msg never contains paths; the
// wrapped cause does, for logs.
//
// A Deliverer is safe for concurrent use by many goroutines, to the same or different mailboxes.
package maildir

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/smtp"
)

// JunkFolder is the Maildir++ folder, inside a mailbox, that quarantined messages go to.
const JunkFolder = ".Junk"

// maxNameLen bounds each address part. Most file systems refuse components longer than 255
// bytes; refusing here makes that a permanent error instead of a temporary one retried for days.
const maxNameLen = 255

// seq is the per-process delivery counter in the "Q<n>" part of file names.
//
// It is the one deliberate exception to "no package-level mutable state": the Maildir spec
// makes names unique per (time, pid, counter), so the counter must be shared by every
// Deliverer in the process. A per-Deliverer counter would let two Deliverers writing to the same
// Root produce the same name in the same microsecond, and rename into new/ would then silently
// replace an acknowledged message. Nothing ever needs to reset or override it.
var seq atomic.Uint64

// Options configures a Deliverer.
type Options struct {
	// Root is the directory holding all mailboxes (normally <data>/mail). The mailbox of
	// user@domain is Root/<domain>/<user>/Maildir. It is created (mode 0700) if missing.
	Root string
	// Hostname goes into file names to keep them unique across machines sharing a Root.
	// Default: os.Hostname(), or "localhost" if that fails.
	Hostname string
	// Logger receives debug lines about deliveries; the delivery outcome itself is logged by
	// the caller. Default: discard.
	Logger *slog.Logger
	// FS is the file system under Root; nil means the operating system's (tests put a
	// power-loss simulation here).
	FS safeio.FS
}

// Deliverer delivers into Maildir mailboxes under a root directory. It implements
// delivery.Deliverer. Create it with New.
type Deliverer struct {
	root string
	fs   safeio.FS
	// host is Options.Hostname with '/' and ':' escaped, ready to go into a file name.
	host string
	pid  int
	log  *slog.Logger
	now  func() time.Time

	// ready holds the Maildir paths (string -> struct{}) known to exist durably, so that the
	// common case costs no mkdir or fsync. Entries are added only after every directory from
	// Root down has been created and its parent fsynced.
	ready sync.Map
	// mkdirMu serialises the slow path that creates mailboxes, so that a goroutine never sees
	// a directory another goroutine has just created but not yet made durable.
	mkdirMu sync.Mutex
	// newSync shares the fsyncs of new/ among deliveries to one mailbox that finish together.
	newSync safeio.DirSyncer
}

var _ delivery.Deliverer = (*Deliverer)(nil)

// New returns a Deliverer for opts. It does no I/O besides looking up the host name when
// opts.Hostname is empty; directories are created on first delivery.
func New(opts Options) *Deliverer {
	host := opts.Hostname
	if host == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		host = h
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fsys := opts.FS
	if fsys == nil {
		fsys = safeio.OS
	}
	return &Deliverer{
		root:    filepath.Clean(opts.Root),
		fs:      fsys,
		newSync: safeio.DirSyncer{FS: fsys},
		host:    escapeHost(host),
		pid:     os.Getpid(),
		log:     log,
		now:     time.Now,
	}
}

// escapeHost makes a host name safe for a Maildir file name: '/' would be a path separator and
// ':' starts the info part of names in cur/, so the spec has them written as \057 and \072.
func escapeHost(h string) string {
	return strings.NewReplacer("/", `\057`, ":", `\072`).Replace(h)
}

// Path returns the Maildir directory for addr, Root/<domain>/<localpart>/Maildir, with both
// parts lower-cased. It fails with a permanent *delivery.Error if either part cannot safely be
// used as a path component. It does no I/O.
func (d *Deliverer) Path(addr string) (string, error) {
	// Checked before lower-casing, which would quietly turn invalid bytes into U+FFFD.
	if !utf8.ValidString(addr) {
		return "", badMailbox(addr, errors.New("invalid UTF-8"))
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", badMailbox(addr, errors.New("no domain"))
	}
	local, domain := strings.ToLower(addr[:at]), strings.ToLower(addr[at+1:])
	for _, part := range []string{local, domain} {
		if err := checkComponent(part); err != nil {
			return "", badMailbox(addr, err)
		}
	}
	return filepath.Join(d.root, domain, local, "Maildir"), nil
}

// checkComponent reports why s may not be used as one path component. The address came from a
// remote client, so anything that could climb out of Root (separators, "..") or hide or
// confuse a directory (leading '.', NUL, control characters) is refused.
func checkComponent(s string) error {
	switch {
	case s == "":
		return errors.New("empty part")
	case len(s) > maxNameLen:
		return errors.New("part too long")
	case s[0] == '.':
		return errors.New("leading dot")
	case strings.Contains(s, ".."):
		return errors.New(`contains ".."`)
	}
	for _, r := range s {
		if r == '/' || r == '\\' || r == 0 || unicode.IsControl(r) {
			return fmt.Errorf("forbidden character %q", r)
		}
	}
	return nil
}

func badMailbox(addr string, cause error) *delivery.Error {
	e := delivery.Permanentf(smtp.CodeMailboxUnavailable, smtp.EnhBadDestMailbox, "mailbox name not allowed")
	e.Err = fmt.Errorf("address %q: %w", addr, cause)
	return e
}

// Deliver writes body for env.Rcpts[rcpt] into that recipient's Maildir. A nil error means
// the message is durable in new/. See the package doc for the error classes.
func (d *Deliverer) Deliver(ctx context.Context, env *envelope.Envelope, rcpt int, body io.Reader) error {
	if err := ctx.Err(); err != nil {
		return delivery.Temporary("delivery cancelled", err)
	}
	if env == nil || rcpt < 0 || rcpt >= len(env.Rcpts) {
		// A caller bug, not a property of the message: temporary, so nothing is bounced
		// or lost while it gets fixed.
		return delivery.Temporary("local delivery failed", fmt.Errorf("no recipient %d in the envelope", rcpt))
	}
	addr := env.Rcpts[rcpt].Addr
	md, err := d.Path(addr)
	if err != nil {
		return err
	}
	// From becomes a header line; a CR or LF in it would let it inject headers. The session
	// never accepts one, so this is defence in depth.
	if strings.ContainsFunc(env.From, unicode.IsControl) {
		e := delivery.Permanentf(smtp.CodeMailboxUnavailable, smtp.EnhBadSenderSyntax, "sender address not allowed")
		e.Err = fmt.Errorf("sender %q contains a control character", env.From)
		return e
	}

	if env.Quarantine {
		// The mailbox itself first, so that a reader never finds a Junk folder in a Maildir
		// without its own tmp/new/cur.
		if err := d.ensure(md); err != nil {
			return classify(err)
		}
		md = filepath.Join(md, JunkFolder)
	}
	name, size, err := d.deliver(md, env.From, addr, body)
	if err != nil {
		return classify(err)
	}
	d.log.Debug("maildir delivery", slog.String("msgid", env.ID), slog.String("rcpt", addr),
		slog.String("file", name), slog.Int64("size", size))
	return nil
}

// deliver does the file work of Deliver and returns the final path and file size. Errors are
// unclassified and carry paths.
func (d *Deliverer) deliver(md, from, rcpt string, body io.Reader) (string, int64, error) {
	if err := d.ensure(md); err != nil {
		return "", 0, err
	}
	f, tmpPath, err := d.createTmp(md)
	if err != nil {
		return "", 0, err
	}
	// Whatever happens from here on, the tmp file must not stay behind: readers ignore tmp/,
	// so a leftover would only waste space until someone cleans it up by hand.
	keepTmp := false
	defer func() {
		if !keepTmp {
			_ = d.fs.Remove(tmpPath) // The primary error is already being returned.
		}
	}()

	size, err := writeMessage(f, from, rcpt, body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("writing %s: %w", tmpPath, err)
	}

	newPath := filepath.Join(md, "new", filepath.Base(tmpPath)+fmt.Sprintf(",S=%d", size))
	if err := d.fs.Rename(tmpPath, newPath); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return "", 0, err
		}
		// new/ was removed behind our back (tmp/ cannot have been: we just wrote to it, and
		// if it was, the retry fails too). Recreate the mailbox and try once more.
		d.ready.Delete(md)
		if err := d.ensure(md); err != nil {
			return "", 0, err
		}
		if err := d.fs.Rename(tmpPath, newPath); err != nil {
			return "", 0, err
		}
	}
	keepTmp = true // It is gone: renamed away.

	// The rename is only durable once new/ is synced (the Maildir spec's "the message is
	// delivered" point). If that fails, take the message back out so that the queue's retry
	// does not leave a duplicate; a reader may have seen it, which is harmless.
	if err := d.newSync.Sync(filepath.Join(md, "new")); err != nil {
		_ = d.fs.Remove(newPath) // Best effort; the sync error is what matters.
		return "", 0, err
	}
	return newPath, size, nil
}

// createTmp creates a new, empty, uniquely named file in md/tmp.
func (d *Deliverer) createTmp(md string) (safeio.File, string, error) {
	// O_EXCL makes a name collision an error instead of two deliveries sharing one file.
	// Collisions need a clock step back or a second process with our pid on a shared Root;
	// the counter moves on with every attempt, so a couple of retries settle it.
	const attempts = 3
	var err error
	recreated := false
	for i := 0; i < attempts; i++ {
		p := filepath.Join(md, "tmp", d.uniqueName())
		var f safeio.File
		f, err = d.fs.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		switch {
		case err == nil:
			return f, p, nil
		case errors.Is(err, fs.ErrNotExist) && !recreated:
			// The mailbox was removed since we cached it as ready.
			recreated = true
			d.ready.Delete(md)
			if err := d.ensure(md); err != nil {
				return nil, "", err
			}
		case errors.Is(err, fs.ErrExist):
		default:
			return nil, "", err
		}
	}
	return nil, "", fmt.Errorf("no unique file name in the mailbox after %d attempts: %w", attempts, err)
}

// uniqueName returns "<secs>.M<usecs>P<pid>Q<counter>.<host>" (Maildir spec plus Dovecot's
// M/P/Q fields).
func (d *Deliverer) uniqueName() string {
	now := d.now()
	return fmt.Sprintf("%d.M%dP%dQ%d.%s", now.Unix(), now.Nanosecond()/1000, d.pid, seq.Add(1), d.host)
}

// writeMessage writes the headers and the LF-converted body to f and returns the number of
// bytes written.
func writeMessage(f io.Writer, from, rcpt string, body io.Reader) (int64, error) {
	bw := bufio.NewWriterSize(f, 32<<10)
	// RFC 5321 §4.4: the final delivery agent records the reverse-path as Return-Path.
	hdr := "Return-Path: <" + from + ">\nDelivered-To: " + rcpt + "\n"
	if _, err := bw.WriteString(hdr); err != nil {
		return 0, err
	}
	lw := &lfWriter{w: bw}
	if _, err := io.CopyBuffer(lw, body, make([]byte, 32<<10)); err != nil {
		return 0, err
	}
	if err := lw.Close(); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	return int64(len(hdr)) + lw.n, nil
}

// classify turns an I/O error into a *delivery.Error. Anything unrecognised is temporary: a
// local failure must never turn into a bounce of mail we could deliver later.
func classify(err error) error {
	var de *delivery.Error
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &delivery.Error{Code: smtp.CodeInsufficientStorage, Enh: smtp.EnhMailboxFull, Msg: "mailbox full or disk full", Err: err}
	}
	return delivery.Temporary("local delivery failed", err)
}
