// Package maildir delivers messages for local recipients into Maildir mailboxes, one file per
// message per recipient, laid out as Root/<domain>/<localpart>/Maildir.
//
// It owns the on-disk delivery of one message to one mailbox and nothing else: it does not
// decide who is local, does not look up accounts, and does not retry (the queue does).
//
// # Guarantees
//
// Deliver returns nil only once the message is durable: the file was written, made durable
// (fsynced, or with the other files of its batch by one syncfs: see "Durability under load"),
// given its name in new/ (linked, or renamed from tmp/: see below), and new/ itself was fsynced.
// Any directory it creates (Root's missing ancestors, the domain, the user, Maildir and its
// tmp/new/cur) has its parent fsynced before the first message goes into it, so a crash cannot
// lose the mailbox entry holding an acknowledged message. On failure no file is left in tmp/
// or new/.
//
// # Files without a name
//
// On Linux a message's file is created without a name (open(2) with O_TMPFILE on the
// mailbox's tmp/ directory, through safeio.FS's CreateUnnamed), written and fsynced, and then
// linked into new/ under its final name (linkat(2) through /proc/self/fd, safeio.FS's Link):
// one directory entry inserted per message, where the classic tmp/ file and rename cost an
// insertion into tmp/, a removal from it and an insertion into new/, each under a directory
// lock. Readers see the file only once it is complete in new/, as with the rename; a crash or
// a failure before the link leaves nothing anywhere (the kernel frees a file without a name),
// so there is no tmp/ file to clean up either; and unlike rename, link never replaces a file,
// so a name collision is an error (a new name is tried) rather than a lost message. Where the
// file system refuses O_TMPFILE (EOPNOTSUPP, EISDIR, EINVAL), or /proc is missing, the
// Deliverer falls back for good to the spec's way: a file in tmp/, renamed into new/. The
// power-loss tests run both ways, each with the files fsynced one by one and with the batch's
// syncfs (crashfs models files without a name, and syncfs).
//
// # Group commit
//
// Deliveries share the fsyncs of new/, as the queue's sessions share the log's (commit.go).
// Each delivery writes its file and (unless it leaves that to the batch: see "Durability under
// load") fsyncs it in its own goroutine: the queue runs many deliveries at once, so these
// flushes overlap on the disk, and a large message streams to disk through two 32 KiB buffers
// without holding up anyone else. It then joins the batch: the
// first delivery that finds no batch running links (or renames) every waiting file into its
// new/, fsyncs each distinct new/ once, and only then gives each its outcome; deliveries that
// become ready meanwhile wait for the next batch, which one of them runs. Under load one fsync
// of new/ covers many messages (the benchmark counts them: BenchmarkDeliverParallel's
// dirsyncs/op), and the links (or renames), which contend for the directory's lock in the
// kernel, run one after the other instead of spinning on each other. DeliverBatch puts all the
// local recipients of one message in one batch.
//
// # Durability under load
//
// A file is fsynced by its own delivery unless, when it is written, a batch is running and
// other files will wait for the next batch with it (other deliveries are writing theirs, or
// have already joined). Then it joins unsynced, and the batch makes the data of all such files
// durable with one syncfs(2) of their file system (safeio.FS's SyncFS) before it links any of
// them into new/: one flush of the file system instead of one per file, which also writes the
// inodes of many files in one block where each fsync wrote its own. At 20 sessions this took
// tern's CPU per message down by a tenth and its rate up by about 10 % end to end, on ext4 with
// and without a journal (BENCHMARKS.md, "One flush for a batch of files"). A file that
// would wait alone is still fsynced at once, overlapping the running batch's flush of new/:
// at one session that is faster than a syncfs, which costs more than the fsync of one file.
//
// A syncfs waits for everything unwritten on the file system, other programs' data too, so it
// is used only while the system holds little of it (maxDirtyForSyncFS, read at most every
// 50 ms by safeio.DirtyBytes; otherwise every file gets its own fsync), only on Linux 5.8 or
// later (before, syncfs reported no write errors), and not at all with Options.EachFileSync
// (the configuration's maildir_syncfs = false). Its error covers a failed write of any file on the
// file system since the file it is made through was opened: the batch makes it through its
// oldest file, so the failure of any of its files is reported, and fails the whole batch
// (temporarily: the queue retries). The alternatives tried before it (a standalone program
// writing batches of 8 and 32 files of 5 KB on the development VM) did no better than each
// delivery's own fsync: a leader that fsyncs the batch's files one after the other serialises
// flushes that overlap when each delivery makes its own, and sync_file_range(2) first and then
// the fsyncs was no faster either.
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
// In a batch, a file whose link or rename fails, or whose new/ cannot be synced, is taken out of new/
// again and its delivery fails temporarily (the queue retries it); the others of the batch are
// not affected. A crash at any step of a batch loses no delivery that returned nil, and leaves
// at most a duplicate of one that had not (powerloss_batch_test.go).
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
	"strconv"
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
	// EachFileSync makes every file durable with its own fsync, never with a batch's syncfs
	// (see "Durability under load" in the package doc): for a Root whose file system is shared
	// with heavy writers, whose data a syncfs would wait for.
	EachFileSync bool
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
	// batch is the group commit that moves written files into new/ (commit.go).
	batch batcher
	// bufs pools the buffers deliveries stream messages through (*copyBufs).
	bufs sync.Pool
	// noUnnamed is set once the FS has refused to create a file without a name: from then on
	// files are written in tmp/ and renamed.
	noUnnamed atomic.Bool
	// sync is how files are made durable (Options.EachFileSync); noSyncFS is set once the FS
	// has refused a syncfs: from then on each file is fsynced.
	sync     syncMode
	noSyncFS atomic.Bool
	// opened numbers the files as they are created, so that a batch can sync through the
	// oldest (see syncFiles); writing counts the deliveries writing a file now (deferSync).
	opened  atomic.Uint64
	writing atomic.Int32
	// fsynced, bySyncFS and syncFSCalls are Stats' counts.
	fsynced, bySyncFS, syncFSCalls atomic.Uint64
	// dirty is what the system has written and not yet flushed (safeio.DirtyBytes; tests
	// replace it), read at most every dirtyEvery by calmDisk into calm and calmAt.
	dirty  func() (int64, error)
	calm   atomic.Bool
	calmAt atomic.Int64
}

// Stats are counts of a Deliverer's work since it was made, for metrics.
type Stats struct {
	// Fsynced is the files made durable by their own fsync, BySyncFS those made durable by a
	// batch's syncfs, and SyncFS the number of those syncfs calls.
	Fsynced, BySyncFS, SyncFS uint64
}

// Stats returns the Deliverer's counts so far.
func (d *Deliverer) Stats() Stats {
	return Stats{Fsynced: d.fsynced.Load(), BySyncFS: d.bySyncFS.Load(), SyncFS: d.syncFSCalls.Load()}
}

// syncMode says when a file written for a delivery is fsynced on its own.
type syncMode int

const (
	syncAuto     syncMode = iota // on its own unless a batch is running (then by the next batch's syncfs)
	syncEachFile                 // always on its own
	syncDeferred                 // never on its own: by its batch (tests of the syncfs path)
)

var (
	_ delivery.Deliverer      = (*Deliverer)(nil)
	_ delivery.BatchDeliverer = (*Deliverer)(nil)
)

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
	mode := syncAuto
	if opts.EachFileSync {
		mode = syncEachFile
	}
	return &Deliverer{
		root:  filepath.Clean(opts.Root),
		fs:    fsys,
		host:  escapeHost(host),
		pid:   os.Getpid(),
		log:   log,
		now:   time.Now,
		sync:  mode,
		dirty: safeio.DirtyBytes,
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
	w, err := d.write(env, rcpt, body)
	if err != nil {
		return err
	}
	d.commit([]*written{w})
	return d.outcome(env, w)
}

// DeliverBatch delivers the message to each recipient env.Rcpts[i], i in rcpts: every file is
// written and fsynced first, then all of them go into new/ in one batch (with those of other
// deliveries ready at the time), so a message for several local recipients costs one fsync
// of each new/ directory rather than one per recipient. It implements delivery.BatchDeliverer.
func (d *Deliverer) DeliverBatch(ctx context.Context, env *envelope.Envelope, rcpts []int, body delivery.Body) []delivery.Outcome {
	out := make([]delivery.Outcome, len(rcpts))
	ws := make([]*written, len(rcpts))
	var batch []*written
	for k, i := range rcpts {
		if err := ctx.Err(); err != nil {
			out[k].Err = delivery.Temporary("delivery cancelled", err)
			continue
		}
		rc, err := body.Open()
		if err != nil {
			out[k].Err = delivery.Temporary("cannot read the queued message", err)
			continue
		}
		ws[k], out[k].Err = d.write(env, i, rc)
		_ = rc.Close() // only read: the outcome is what write said
		if ws[k] != nil {
			batch = append(batch, ws[k])
		}
	}
	if len(batch) > 0 {
		d.commit(batch)
	}
	for k, w := range ws {
		if w != nil {
			out[k].Err = d.outcome(env, w)
		}
	}
	return out
}

// outcome is the classified result of w after its batch, logged.
func (d *Deliverer) outcome(env *envelope.Envelope, w *written) error {
	if w.err != nil {
		return classify(w.err)
	}
	if !d.log.Enabled(context.Background(), slog.LevelDebug) {
		return nil // the attributes below would cost four allocations per delivery
	}
	d.log.Debug("maildir delivery", slog.String("msgid", env.ID), slog.String("rcpt", w.rcpt),
		slog.String("file", w.newPath), slog.Int64("size", w.size))
	return nil
}

// write checks env.Rcpts[rcpt] and writes the message for it into a new file under its
// mailbox's tmp/, fsynced and closed, ready for a batch to move into new/. Errors are
// classified.
func (d *Deliverer) write(env *envelope.Envelope, rcpt int, body io.Reader) (*written, error) {
	if env == nil || rcpt < 0 || rcpt >= len(env.Rcpts) {
		// A caller bug, not a property of the message: temporary, so nothing is bounced
		// or lost while it gets fixed.
		return nil, delivery.Temporary("local delivery failed", fmt.Errorf("no recipient %d in the envelope", rcpt))
	}
	addr := env.Rcpts[rcpt].Addr
	md, err := d.Path(addr)
	if err != nil {
		return nil, err
	}
	// From becomes a header line; a CR or LF in it would let it inject headers. The session
	// never accepts one, so this is defence in depth.
	if strings.ContainsFunc(env.From, unicode.IsControl) {
		e := delivery.Permanentf(smtp.CodeMailboxUnavailable, smtp.EnhBadSenderSyntax, "sender address not allowed")
		e.Err = fmt.Errorf("sender %q contains a control character", env.From)
		return nil, e
	}
	if env.Quarantine {
		// The mailbox itself first, so that a reader never finds a Junk folder in a Maildir
		// without its own tmp/new/cur.
		if err := d.ensure(md); err != nil {
			return nil, classify(err)
		}
		md = filepath.Join(md, JunkFolder)
	}
	w, err := d.writeTmp(md, env.From, addr, body)
	if err != nil {
		return nil, classify(err)
	}
	return w, nil
}

// writeTmp does the file work of write. Where the file system can, the file has no name until
// the batch links it into new/ (see "Files without a name" in the package doc); otherwise it is
// written under tmp/. Either way it stays open until its batch. Its data is fsynced here, by
// each delivery's own goroutine, so that the flushes of concurrent deliveries overlap on the
// disk and a large message streams to disk without waiting for a batch, unless a batch is
// running and other files will wait for the next one too: then that batch makes them durable
// together (see "Durability under load"). Errors are unclassified and carry paths.
func (d *Deliverer) writeTmp(md, from, rcpt string, body io.Reader) (*written, error) {
	d.writing.Add(1)
	defer d.writing.Add(-1)
	if err := d.ensure(md); err != nil {
		return nil, err
	}
	f, tmpPath, err := d.createUnnamed(md)
	if f == nil && err == nil {
		f, tmpPath, err = d.createTmp(md)
	}
	if err != nil {
		return nil, err
	}
	w := &written{md: md, rcpt: rcpt, f: f, tmp: tmpPath, opened: d.opened.Add(1)}
	w.size, err = d.writeMessage(f, from, rcpt, body)
	if err == nil {
		if d.deferSync() {
			w.dev, err = fileDevice(f)
		} else if err = f.Sync(); err == nil {
			w.synced = true
			d.fsynced.Add(1)
		}
	}
	if err != nil {
		err = fmt.Errorf("writing %s: %w", f.Name(), err)
		w.fail(d, err)
		return nil, err
	}
	if tmpPath == "" {
		w.newPath = d.newName(md, w.size)
	} else {
		w.newPath = filepath.Join(md, "new", filepath.Base(tmpPath)+",S="+strconv.FormatInt(w.size, 10))
	}
	return w, nil
}

// newName is a fresh name in md/new for a file of size octets.
func (d *Deliverer) newName(md string, size int64) string {
	b := make([]byte, 0, len(md)+len(d.host)+80)
	b = append(append(b, md...), "/new/"...)
	b = strconv.AppendInt(append(d.appendUnique(b), ",S="...), size, 10)
	return string(b)
}

// createUnnamed creates a file without a name for the mailbox md. It returns no file and no
// error when the file system cannot: the caller then creates one in tmp/, and so does every
// later delivery of this Deliverer.
func (d *Deliverer) createUnnamed(md string) (safeio.File, string, error) {
	if d.noUnnamed.Load() {
		return nil, "", nil
	}
	tmp := filepath.Join(md, "tmp")
	f, err := d.fs.CreateUnnamed(tmp, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		// The mailbox was removed since we cached it as ready.
		d.ready.Delete(md)
		if err := d.ensure(md); err != nil {
			return nil, "", err
		}
		f, err = d.fs.CreateUnnamed(tmp, 0o600)
	}
	if errors.Is(err, errors.ErrUnsupported) {
		d.log.Debug("maildir: files without a name not supported; writing them in tmp/", slog.Any("err", err))
		d.noUnnamed.Store(true)
		return nil, "", nil
	}
	return f, "", err
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
	return string(d.appendUnique(make([]byte, 0, len(d.host)+64)))
}

// appendUnique appends uniqueName's name to b.
func (d *Deliverer) appendUnique(b []byte) []byte {
	now := d.now()
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = strconv.AppendInt(append(b, ".M"...), int64(now.Nanosecond()/1000), 10)
	b = strconv.AppendInt(append(b, 'P'), int64(d.pid), 10)
	b = strconv.AppendUint(append(b, 'Q'), seq.Add(1), 10)
	return append(append(b, '.'), d.host...)
}

// writeMessage writes the headers and the LF-converted body to f and returns the number of
// bytes written. However large the message, it holds no more of it than its two buffers,
// which are reused across deliveries.
func (d *Deliverer) writeMessage(f safeio.File, from, rcpt string, body io.Reader) (int64, error) {
	bufs, _ := d.bufs.Get().(*copyBufs)
	if bufs == nil {
		bufs = &copyBufs{bw: bufio.NewWriterSize(nil, bufSize), cp: make([]byte, bufSize)}
	}
	defer d.bufs.Put(bufs)
	bw := bufs.bw
	bw.Reset(bufs.ahead.Reset(f, 0))
	defer func() { // no reference to f from the pool
		bw.Reset(nil)
		bufs.ahead = safeio.WriteAhead{}
	}()
	// RFC 5321 §4.4: the final delivery agent records the reverse-path as Return-Path.
	hdr := "Return-Path: <" + from + ">\nDelivered-To: " + rcpt + "\n"
	if _, err := bw.WriteString(hdr); err != nil {
		return 0, err
	}
	lw := lfWriter{w: bw}
	if _, err := io.CopyBuffer(&lw, body, bufs.cp); err != nil {
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

// bufSize is the size of each of the two buffers a delivery streams the message through.
const bufSize = 32 << 10

// copyBufs are the buffers of one delivery, pooled in Deliverer.bufs.
type copyBufs struct {
	bw    *bufio.Writer
	cp    []byte
	ahead safeio.WriteAhead // under bw: starts the disk on a large message as it is copied
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
