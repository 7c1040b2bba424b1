package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tern-mail/tern/internal/accounts"
	"github.com/tern-mail/tern/internal/admin"
	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/dkim"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/queue"
	"github.com/tern-mail/tern/internal/reports"
	"github.com/tern-mail/tern/internal/resolver"
	"github.com/tern-mail/tern/internal/tlsrpt"
)

// reportsQueryTimeout bounds one DNS query of the report sender (TLSRPT records, DMARC's
// external destination verification).
const reportsQueryTimeout = 10 * time.Second

// serverReports is the recorder and sender of DMARC and TLS reports.
//
// The recorder's hooks are connected where the evaluations and outcomes are made:
// smtpserver.Authentication.Record (DMARC) and remote delivery's TLS outcome hook (TLS) take
// Recorder.RecordDMARC and Recorder.RecordTLS; both do nothing when their kind is off.
type serverReports struct {
	Recorder *reports.Recorder
	sender   *reports.Sender
	// stopSender and stopRecorder end what run started: the sender before the queue closes
	// (what it takes from the store it must queue), the recorder after (the last deliveries'
	// TLS outcomes) and before the store closes, with a last flush.
	stopSender, stopRecorder func()
}

// newReports makes the recorder and the sender of cfg's [reports], over the account store and
// the queue; sent (nil: none) is told the kind and outcome of each report to a destination.
func newReports(cfg config.Config, store accounts.Store, q *queue.Queue, sent func(kind, outcome string), log *slog.Logger) (*serverReports, error) {
	rc := cfg.Reports
	rec := reports.NewRecorder(reports.RecorderOptions{Store: store, Logger: log, NoDMARC: !rc.DMARC, NoTLS: !rc.TLS})
	r := &serverReports{Recorder: rec}
	// The sender runs even with both kinds off: it drops what was recorded before they were.
	c, err := resolver.NewClient(cfg.Delivery.Resolver, reportsQueryTimeout)
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	r.sender = reports.NewSender(reports.SenderOptions{
		Store:    store,
		Flush:    rec.Flush,
		Submit:   queueReport(q),
		DNS:      reportsDNS{resolver.New(c, resolver.Options{})},
		Hostname: cfg.Hostname,
		From:     reportsFrom(cfg),
		HTTP:     reportsHTTP(),
		NoDMARC:  !rc.DMARC,
		NoTLS:    !rc.TLS,
		Sent:     sent,
		Logger:   log,
	})
	return r, nil
}

// reportsHTTPTimeout bounds one POST of a TLS report, connection and answer included.
const reportsHTTPTimeout = 30 * time.Second

// reportsHTTP is the client that POSTs TLS reports to https: destinations. The URL comes from
// a DNS record anyone can publish, so it connects only to public addresses (never loopback,
// private, link-local or multicast ones: a record must not make tern poke at services
// behind its firewall), follows no redirects, and takes no proxy from the environment.
func reportsHTTP() *http.Client {
	d := &net.Dialer{Timeout: reportsHTTPTimeout, Control: publicOnly}
	return &http.Client{
		Timeout: reportsHTTPTimeout,
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			TLSHandshakeTimeout: reportsHTTPTimeout,
			ForceAttemptHTTP2:   true,
			MaxIdleConns:        4,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// errNotPublic is publicOnly's refusal.
var errNotPublic = errors.New("not a public address")

// publicOnly is a net.Dialer Control that refuses connections to addresses that are not
// public unicast ones (RFC 6890's special-purpose blocks that Go knows).
func publicOnly(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	a := ap.Addr().Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return fmt.Errorf("%s: %w", a, errNotPublic)
	}
	return nil
}

// reportsFrom is the reports' From address: reports.from, or postmaster@hostname.
func reportsFrom(cfg config.Config) string {
	if cfg.Reports.From != "" {
		return cfg.Reports.From
	}
	return "postmaster@" + cfg.Hostname
}

// run starts the recorder's flushes and the daily sender.
func (r *serverReports) run() {
	recCtx, stopRec := context.WithCancel(context.Background())
	sndCtx, stopSnd := context.WithCancel(context.Background())
	recDone, sndDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(recDone); r.Recorder.Run(recCtx, reports.DefaultFlushInterval) }()
	go func() {
		defer close(sndDone)
		if r.sender != nil {
			r.sender.Run(sndCtx)
		}
	}()
	r.stopSender = sync.OnceFunc(func() { stopSnd(); <-sndDone })
	r.stopRecorder = sync.OnceFunc(func() { stopRec(); <-recDone })
}

// sendFunc is the admin socket's reports-send, nil when no report is sent.
func (r *serverReports) sendFunc() func(context.Context) ([]accounts.SentReport, error) {
	if r == nil || r.sender == nil {
		return nil
	}
	return r.send
}

// tlsOutcomes hands remote delivery's TLS outcomes to the recorder. Remote delivery is made
// before the account store is opened (Build checks what it can before writing anything), the
// recorder after: set is called once the recorder exists; outcomes before that (none: nothing
// is delivered before Run) are dropped.
type tlsOutcomes struct {
	rec atomic.Pointer[reports.Recorder]
}

func (t *tlsOutcomes) set(r *reports.Recorder) { t.rec.Store(r) }

// RecordTLS implements the hook of remote delivery.
func (t *tlsOutcomes) RecordTLS(o tlsrpt.Outcome) {
	if r := t.rec.Load(); r != nil {
		r.RecordTLS(o)
	}
}

// send is the admin socket's reports-send: every report due, today's so far included.
func (r *serverReports) send(ctx context.Context) ([]accounts.SentReport, error) {
	return r.sender.Send(ctx, true)
}

// queueReport commits a report to the queue from the null sender: a report that cannot be
// delivered is not reported on in turn (RFC 7489 §7.2.1.1 leaves the envelope sender open;
// the null sender is what keeps report loops out).
func queueReport(q *queue.Queue) reports.Submit {
	return func(ctx context.Context, rcpt string, msg []byte) (string, error) {
		if at := strings.LastIndexByte(rcpt, '@'); at > 0 {
			rcpt = rcpt[:at] + strings.ToLower(rcpt[at:])
		}
		w, err := q.NewMessage()
		if err != nil {
			return "", err
		}
		if _, err := w.Write(msg); err != nil {
			w.Abort()
			return "", err
		}
		env := &envelope.Envelope{Rcpts: []envelope.Recipient{{Addr: rcpt}}, Received: time.Now(), Size: int64(len(msg))}
		if err := w.Commit(ctx, env); err != nil {
			return "", err
		}
		return env.ID, nil
	}
}

// reportsDNS is the sender's TXT lookups over tern's resolver: the strings of each record
// joined; no record is an empty answer.
type reportsDNS struct{ r *resolver.Resolver }

func (d reportsDNS) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txts, err := dkimDNS(d).LookupTXT(ctx, name)
	if errors.Is(err, dkim.ErrNoRecord) {
		return nil, nil
	}
	return txts, err
}

// ReportsSend asks the running server to send the reports due now, today's so far included
// (tern reports send --now), and prints one line per destination.
func ReportsSend(ctx context.Context, cfg config.Config, w io.Writer) error {
	data, err := ExistingData(cfg)
	if err != nil {
		return err
	}
	rep, err := admin.Call(ctx, adminPath(data), admin.Request{Op: admin.OpReportsSend})
	switch {
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no server is running on %s: reports are sent by the running server", data)
	case err != nil:
		return dataError(data, "cannot ask the running server", err)
	}
	if len(rep.Reports) == 0 && rep.Error == "" {
		_, err := fmt.Fprintln(w, "no reports due")
		return err
	}
	if err := printSent(w, rep.Reports); err != nil {
		return err
	}
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	return nil
}

// ReportsList prints the report counts not sent yet, and the reports sent in the last days
// days (tern reports list), from the account store: it works with the server stopped. The
// running server's counts of the last minute are not there yet.
func ReportsList(ctx context.Context, cfg config.Config, days int, w io.Writer) error {
	return withDKIM(cfg, func(s accounts.Store) error {
		pending, err := s.PendingReports(ctx)
		if err != nil {
			return err
		}
		sent, err := s.SentReports(ctx, time.Now().AddDate(0, 0, -days))
		if err != nil {
			return err
		}
		tw := &table{w: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
		tw.printf("Pending (recorded, not reported yet):\n")
		if len(pending) == 0 {
			tw.printf("  none\n")
		} else {
			tw.printf("  KIND\tDAY\tDOMAIN\tROWS\tOK\tFAILED\n")
		}
		for _, p := range pending {
			tw.printf("  %s\t%s\t%s\t%d\t%d\t%d\n", p.Kind, p.Day, p.Domain, p.Rows, p.Success, p.Failure)
		}
		if err := tw.flush(); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "Sent in the last %d days:\n", days); err != nil {
			return err
		}
		if len(sent) == 0 {
			_, err := fmt.Fprintln(w, "  none")
			return err
		}
		return printSent(w, sent)
	})
}

// printSent prints reports sent, one destination a line.
func printSent(w io.Writer, sent []accounts.SentReport) error {
	tw := &table{w: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	tw.printf("  SENT\tKIND\tDOMAIN\tPERIOD (UTC)\tREPORT-ID\tDESTINATION\tSIZE\tQUEUE-ID\n")
	for _, r := range sent {
		outcome := r.QueueID
		if r.Note != "" {
			outcome = "(" + r.Note + ")"
		}
		tw.printf("  %s\t%s\t%s\t%s..%s\t%s\t%s\t%d\t%s\n", r.Sent.Format(time.DateTime), r.Kind, r.Domain,
			r.Begin.Format("2006-01-02T15:04Z"), r.End.Format("2006-01-02T15:04Z"), r.ReportID, r.Destination, r.Size, outcome)
	}
	return tw.flush()
}

// table is a tabwriter that keeps its first write error, for flush to return.
type table struct {
	w   *tabwriter.Writer
	err error
}

func (t *table) printf(format string, args ...any) {
	if t.err == nil {
		_, t.err = fmt.Fprintf(t.w, format, args...)
	}
}

func (t *table) flush() error {
	if t.err != nil {
		return t.err
	}
	return t.w.Flush()
}
