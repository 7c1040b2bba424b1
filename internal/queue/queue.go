// Package queue is tern's durable mail queue: it stores accepted messages, hands each recipient
// to a deliverer, retries temporary failures with backoff, and forgets a message only once every
// recipient has a final outcome.
//
// # Durability
//
// The queue is an append-only log of records in segment files under <dir>/log (the format is
// described in record.go). A message record holds the envelope and, up to InlineMax octets, the
// body; a larger body is written to its own file under <dir>/body and fsynced by the session,
// and the record refers to it. State records note recipient outcomes. Commit returns only
// after the message record is written and fdatasync'ed (and, for a new segment or body file,
// its directory fsynced): that is the moment the server may answer 250.
//
// Concurrent sessions share fsyncs (group commit): one goroutine, the committer, takes every
// record that is waiting, writes them with one write and makes them durable with one fdatasync.
// The per-message cost is then a memory copy, not a disk flush, and throughput grows with the
// number of sessions instead of being capped by the disk's flush rate. The committer also keeps
// the active segment filled with zeros a few MiB ahead of its records (preallocate): a batch is
// then written over blocks that exist, and its fdatasync writes only the data, not the file's
// new size (a journal commit on ext4), which halves the flush a lone session waits for.
//
// State records are written without waiting for a flush (the next flush, or a timer within a
// second, covers them; so do a move to a new segment and Close). Losing one in a crash only
// means a recipient is delivered again: the queue guarantees at-least-once delivery, never loss.
// Final outcomes that call for a delivery report are the exception: the report is queued as a
// message whose record also carries the outcome, so that report and outcome are one durable
// write (reports.go): no crash leaves a failed recipient whose sender never hears, or two
// bounces. Reports are queued while Close waits for the last attempts.
//
// A failed write is cut back out of the segment. A failed fdatasync, or a write that cannot be
// cut back, seals the segment (the kernel may have dropped the pages, or may still write them)
// and voids the refused records with a tombstone, made durable as the first record of the next
// segment; only then is a refused message's body file removed. So a message answered 4xx leaves
// no half state: it is gone for good, or, when not even the tombstone could be made durable, its
// body file stays and it may come back whole (a duplicate of the one the client sends again).
// Until a new segment can be made, every Commit fails: a message never gets a nil Commit unless
// its record is durable.
//
// # Recovery
//
// Open replays every segment in order, verifying each record's CRC and the segment's secret.
// Records start with a magic and a random secret of their segment that no sender can know, so
// after damage replay resynchronises on the next magic+secret and never takes a message body
// crafted to look like records for the queue's own. Zeros at the end of a segment are the space
// filled ahead, not written yet. A torn tail (the batch being written when
// the server stopped) is skipped with a warning; damage where the log had been made durable is
// skipped with an error, since acknowledged mail may be lost, and the records after it are
// replayed. Records voided by a tombstone are skipped. Messages with recipients still pending
// are delivered again; body files no record refers to are removed. Segments of the older format
// (v1) are replayed once and their pending messages copied forward into the current one.
//
// New records always go to a fresh segment. A segment is deleted once it and every older segment
// hold no pending message; compaction copies the messages still pending in the oldest segment
// forward to the newest (deferred, held, parked or due; not one being delivered), so no message
// that waits pins the log.
package queue

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/safeio"
)

// Options configure a Queue. Zero values take the defaults.
type Options struct {
	// Batch delivers the recipients of a message, one destination domain per call (so a remote
	// server gets them in one transaction). Either it or Deliverer is required for Run.
	Batch delivery.BatchDeliverer
	// Deliverer delivers one recipient per call; used when Batch is nil.
	Deliverer delivery.Deliverer
	// Workers is how many deliveries run at once. Default: 32.
	Workers int
	// Destination names where a message's pending recipients go, when that is one place that
	// may be slow or down (a remote domain, the relayhost); "" for anything else (local
	// mailboxes, or several places). Messages for one destination get at most
	// DestinationConcurrency workers at once, so that a server that hangs cannot take them
	// all (Postfix's per-destination concurrency). Default: no limits.
	Destination func(env *envelope.Envelope) string
	// DestinationConcurrency is the most deliveries at once to one Destination. Default: half
	// the workers.
	DestinationConcurrency int
	// Throttle, if set, is asked about a due message once it has its destination's slot: a
	// positive wait puts it back among the deferred for that long, without an attempt (no
	// backoff, no record, no bounce), for the destinations' rate limits. It is called with the
	// queue's lock held and must be quick.
	Throttle func(env *envelope.Envelope) time.Duration
	// InlineMax is the largest body kept inside the log; larger ones get a file of their own.
	// Default: 1 MiB; at most 32 MiB.
	InlineMax int
	// SegmentSize is the size at which the log moves to a new segment. Default: 64 MiB.
	SegmentSize int64
	// MinBackoff and MaxBackoff bound the wait before retrying a temporary failure; the wait
	// doubles from MinBackoff with each attempt. Defaults: 1m and 1h.
	MinBackoff, MaxBackoff time.Duration
	// MaxAge is how long a message is retried before its pending recipients fail. Default: 5 days
	// (Postfix's maximal_queue_lifetime).
	MaxAge time.Duration
	// BounceMaxAge is MaxAge for messages from the null sender (bounces and other reports),
	// which nobody will resend. Default: 2 days.
	BounceMaxAge time.Duration
	// RetrySchedule, when set, replaces the doubling backoff: the wait before attempt n+1 is
	// RetrySchedule[n-1], the last entry repeating (tests use "1s,2s,4s").
	RetrySchedule []time.Duration
	// DelayWarning is how long a message may wait before its sender is told, once, that it is
	// delayed (RFC 3464 Action: delayed). Default: 4 hours; negative: never.
	DelayWarning time.Duration
	// Hostname is the Reporting-MTA and From domain of the delivery reports tern sends.
	Hostname string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger gets one line per delivery attempt. Nil: discard.
	Logger *slog.Logger
	// FS is the file system under the queue directory; nil means the operating system's
	// (tests put a power-loss simulation here).
	FS safeio.FS
	// OnFlush, if set, is called when delivery is asked for now, before the messages are made
	// due, so that remote delivery forgets the servers it found down, as Postfix's flush does:
	// with the domain (and whether its subdomains too) for Flush (ETRN, tern queue flush
	// @domain), only that domain's servers; with "" for FlushID and FlushAll (tern queue
	// flush), all of them.
	OnFlush func(domain string, subdomains bool)
}

// Defaults for zero Options fields.
const (
	DefaultWorkers      = 32
	DefaultInlineMax    = 1 << 20
	DefaultSegmentSize  = 64 << 20
	DefaultMinBackoff   = time.Minute
	DefaultMaxBackoff   = time.Hour
	DefaultMaxAge       = 5 * 24 * time.Hour
	DefaultBounceMaxAge = 2 * 24 * time.Hour
	DefaultDelayWarning = 4 * time.Hour
)

// ErrClosed is returned for work offered to a closed queue.
var ErrClosed = errors.New("queue: closed")

// Queue is an open queue directory. Its methods are safe for concurrent use.
type Queue struct {
	dir  string
	opts Options
	fs   safeio.FS
	log  *slog.Logger
	ids  idGen

	appendc   chan *appendReq // to the committer
	closing   chan struct{}   // closed when Close starts: workers and scheduler stop
	stopc     chan struct{}   // closed by Close once the workers are gone: the committer stops
	committed chan struct{}   // closed when the committer has stopped
	workers   sync.WaitGroup  // delivery workers, the scheduler and Run's waker
	wake      chan struct{}   // tells the scheduler the earliest deferred attempt moved up

	mu      sync.Mutex
	cond    *sync.Cond        // signalled when ready gains an entry or the queue closes
	moved   *sync.Cond        // broadcast when compaction puts entries back
	entries map[string]*entry // messages with recipients pending
	segs    []*segment        // oldest first; the last one is the active segment
	ready   []*entry          // due for an attempt, FIFO
	// Per Destination: deliveries running, and due messages waiting for one of them to end.
	inflight map[string]int
	parked   map[string][]*entry
	deferred deferHeap // waiting for their next attempt
	closed   bool
	stats    statCounts // kept as entries come, go and are held (stats.go)

	// snapshots counts the snapshots linking body files now; while there are any, forget
	// leaves the body files of finished messages in keptBodies (snapshot.go).
	snapshots  int
	keptBodies []string
}

// entry is a queued message in memory.
type entry struct {
	env      *envelope.Envelope // guarded by Queue.mu; deliverers get clones
	seg      *segment           // segment holding the current message record
	bodyOff  int64              // inline body position within seg
	bodyLen  int64
	external bool // the body is in <dir>/body/<id>

	next    time.Time // next attempt, when deferred (env.NextAttempt, capped at recovery)
	heapIdx int       // index in Queue.deferred, -1 when not there
	busy    bool      // a worker is delivering it
	// moving is set while compaction copies the message forward. The entry is then off the
	// deferred heap and the ready and parked lists, so that no attempt can change its state
	// under the copy; flushed notes a flush meanwhile, to be recorded again after the copy.
	moving, flushed bool
	// pins counts the changes being recorded for the entry outside an attempt (hold, release),
	// and the readers of its body (Body): compaction leaves a pinned entry where it is, since
	// its copy could miss the change, or its old segment be deleted under the reader.
	pins int
	// dest is the Destination whose slot the entry holds while busy, or on which it is parked
	// (parked set) while due.
	dest   string
	parked bool
}

// segment is one log file.
type segment struct {
	seq     uint64
	version int // of the file format: 2, or 1 for a segment written before the secret
	path    string
	f       safeio.File
	size    int64 // octets written (only the committer changes it, under Queue.mu)
	live    int   // message records in this segment whose message is still pending (under Queue.mu)
	secret  [secretLen]byte
	// Owned by the committer:
	synced   int64 // octets known durable (the last successful flush)
	zeroedTo int64 // the file holds zeros written ahead of the records up to here (preallocate)
	dirty    bool  // records were written to it since its last flush
	sealed   bool  // a write or flush failed: no more records go to it
}

func (q *Queue) logDir() string  { return filepath.Join(q.dir, "log") }
func (q *Queue) bodyDir() string { return filepath.Join(q.dir, "body") }

// segmentName is the file name of a new segment; the version prefix tells the formats apart.
func segmentName(seq uint64) string { return fmt.Sprintf("v2.%010d.log", seq) }

// parseSegmentName returns the sequence number and format version of a segment file name.
func parseSegmentName(name string) (seq uint64, version int, ok bool) {
	if len(name) != len("v2.0000000000.log") || name[0] != 'v' || name[2] != '.' || name[13:] != ".log" {
		return 0, 0, false
	}
	switch name[1] {
	case '1':
		version = 1
	case '2':
		version = 2
	default:
		return 0, 0, false
	}
	n, err := strconv.ParseUint(name[3:13], 10, 64)
	return n, version, err == nil
}

func bodyName(id string) string { return "v1." + id }

// withDefaults returns o with each unset field (zero, or a negative number where that means
// nothing) at its default.
func (o Options) withDefaults() Options {
	// cmp.Or(max(v, 0), def): def unless v is positive.
	o.Workers = cmp.Or(max(o.Workers, 0), DefaultWorkers)
	o.DestinationConcurrency = cmp.Or(max(o.DestinationConcurrency, 0), max(1, o.Workers/2))
	// A record larger than maxRecord is taken for damage on replay: the inline body, plus the
	// envelope, must stay well below it or an accepted message would vanish at the restart.
	o.InlineMax = min(cmp.Or(max(o.InlineMax, 0), DefaultInlineMax), maxInline)
	o.SegmentSize = cmp.Or(max(o.SegmentSize, 0), DefaultSegmentSize)
	o.MinBackoff = cmp.Or(max(o.MinBackoff, 0), DefaultMinBackoff)
	o.MaxBackoff = cmp.Or(max(o.MaxBackoff, 0), DefaultMaxBackoff)
	o.MaxAge = cmp.Or(max(o.MaxAge, 0), DefaultMaxAge)
	o.BounceMaxAge = cmp.Or(max(o.BounceMaxAge, 0), DefaultBounceMaxAge)
	o.DelayWarning = cmp.Or(o.DelayWarning, DefaultDelayWarning) // negative: never
	o.Hostname = cmp.Or(o.Hostname, "localhost")
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FS == nil {
		o.FS = safeio.OS
	}
	return o
}

// Open opens (creating if needed) the queue in dir and replays it. Delivery starts with Run.
func Open(dir string, opts Options) (*Queue, error) {
	opts = opts.withDefaults()
	log := opts.Logger
	q := &Queue{
		dir:       dir,
		fs:        opts.FS,
		opts:      opts,
		log:       log,
		appendc:   make(chan *appendReq, 1024),
		closing:   make(chan struct{}),
		stopc:     make(chan struct{}),
		committed: make(chan struct{}),
		wake:      make(chan struct{}, 1),
		entries:   make(map[string]*entry),
		inflight:  make(map[string]int),
		parked:    make(map[string][]*entry),
	}
	q.cond = sync.NewCond(&q.mu)
	q.moved = sync.NewCond(&q.mu)
	for _, d := range []string{q.dir, q.logDir(), q.bodyDir()} {
		if err := safeio.MkdirAllIn(q.fs, d, 0o700); err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
	}
	// On failure the segments are closed best effort: the failure is the error to report, and
	// what was synced so far is read again on the next Open.
	if err := q.recover(); err != nil {
		_ = q.closeSegments()
		return nil, err
	}
	if err := q.rotate(); err != nil {
		_ = q.closeSegments()
		return nil, err
	}
	go q.committer()
	q.migrate()
	q.mu.Lock()
	q.dropSegments()
	q.mu.Unlock()
	return q, nil
}

// Close stops delivery, waits for attempts in progress, makes every written record durable and
// closes the files. Messages still queued are delivered after the next Open.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	close(q.closing)
	q.workers.Wait() // attempts in progress finish and record their outcomes
	close(q.stopc)
	<-q.committed
	return q.closeSegments()
}

func (q *Queue) closeSegments() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var first error
	for _, s := range q.segs {
		if s.f != nil {
			if err := s.f.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// Len returns the number of messages in the queue.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.entries)
}
