package reports

import (
	"compress/gzip"
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/tlsrpt"
)

type world struct {
	store *failingStore
	clk   *clock
	rec   *Recorder
	q     *queued
	snd   *Sender
	told  map[string]int // "kind outcome" given to SenderOptions.Sent
}

func newWorld(t *testing.T, dns fakeDNS) *world {
	w := &world{store: &failingStore{ReportStore: openStore(t)}, clk: &clock{t: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}, q: &queued{}, told: map[string]int{}}
	w.rec = NewRecorder(RecorderOptions{Store: w.store, Now: w.clk.now})
	w.snd = NewSender(SenderOptions{Store: w.store, Flush: w.rec.Flush, Submit: w.q.submit, DNS: dns,
		Hostname: "mx.a.test", From: "postmaster@a.test", Now: w.clk.now,
		Sent: func(kind, outcome string) { w.told[kind+" "+outcome]++ }})
	return w
}

// TestSendDMARC: a day's report goes to each verified rua address, as RFC 7489 §7.2.1.1 says
// (Subject, file name, gzip'd XML valid by Appendix C); an unverified external address and one
// whose size limit is too small are skipped and recorded so; the day is never sent twice.
func TestSendDMARC(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, fakeDNS{txt: map[string][]string{"b.test._report._dmarc.reports.test": {"v=DMARC1"}}})
	ev := evaluation("192.0.2.1")
	ev.Published.RUA = []string{"mailto:dmarc@b.test", "mailto:agg@reports.test!10m", "mailto:x@elsewhere.test",
		"mailto:tiny@b.test!100", "https://b.test/r"}
	for i := 0; i < 5; i++ {
		w.rec.RecordDMARC(ev)
	}
	// Today's counts wait for the day to end.
	if sent, err := w.snd.Send(ctx, false); err != nil || len(sent) != 0 {
		t.Fatalf("before midnight: %+v, %v", sent, err)
	}
	w.clk.set(time.Date(2026, 12, 5, 0, 10, 0, 0, time.UTC))
	sent, err := w.snd.Send(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, s := range sent {
		notes = append(notes, s.Destination+" "+s.QueueID+" "+s.Note)
		if s.QueueID != "" && s.Size == 0 {
			t.Errorf("%s: no size", s.Destination)
		}
	}
	got := strings.Join(notes, "\n")
	for _, want := range []string{"mailto:dmarc@b.test Q", "mailto:agg@reports.test Q", "mailto:x@elsewhere.test  external destination not authorized",
		"mailto:tiny@b.test  not sent:", "over the destination's limit of 100", "https://b.test/r  rua \"https://b.test/r\": not a mailto: URI"} {
		if !strings.Contains(got, want) {
			t.Errorf("sent:\n%s\nwant %q", got, want)
		}
	}
	if len(w.q.msgs) != 2 {
		t.Fatalf("%d messages queued, want 2", len(w.q.msgs))
	}
	if want := map[string]int{"dmarc queued": 2, "dmarc skipped": 3}; !maps.Equal(w.told, want) {
		t.Errorf("Sent told %v, want %v", w.told, want)
	}
	h, ct, name, doc := attachment(t, w.q.msgs["dmarc@b.test"])
	id := sent[0].ReportID
	if subj := h.Get("Subject"); subj != "Report Domain: b.test Submitter: mx.a.test Report-ID: <"+id+">" {
		t.Errorf("Subject %q", subj)
	}
	if h.Get("From") != "<postmaster@a.test>" || !strings.HasPrefix(h.Get("Content-Type"), "multipart/mixed") {
		t.Errorf("From %q, Content-Type %q", h.Get("From"), h.Get("Content-Type"))
	}
	if ct != "application/gzip" || name != "mx.a.test!b.test!1796342400!1796428800.xml.gz" {
		t.Errorf("attachment %s %q", ct, name)
	}
	validateXML(t, doc)
	if !strings.Contains(string(doc), "<count>5</count>") || !strings.Contains(string(doc), "<report_id>"+id+"</report_id>") {
		t.Errorf("report:\n%s", doc)
	}

	// Never twice: the counts were taken.
	w.q.msgs = nil
	if again, err := w.snd.Send(ctx, true); err != nil || len(again) != 0 || len(w.q.msgs) != 0 {
		t.Errorf("sent again: %+v, %v", again, err)
	}
	list, err := w.store.SentReports(ctx, time.Time{})
	if err != nil || len(list) != 5 {
		t.Errorf("recorded: %d, %v; want 5", len(list), err)
	}
}

// TestSendNow: send --now reports today so far; the rest of the day is reported after
// midnight from where that report ended, so no message is counted twice or lost.
func TestSendNow(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, fakeDNS{})
	w.rec.RecordDMARC(evaluation("192.0.2.1"))
	sent, err := w.snd.Send(ctx, true)
	if err != nil || len(sent) != 1 || sent[0].QueueID == "" {
		t.Fatalf("now: %+v, %v", sent, err)
	}
	first := sent[0]
	if !first.Begin.Equal(time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)) || !first.End.Equal(w.clk.now()) {
		t.Errorf("period %v to %v", first.Begin, first.End)
	}
	w.clk.set(time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC))
	w.rec.RecordDMARC(evaluation("192.0.2.1"))
	w.rec.RecordDMARC(evaluation("192.0.2.1"))
	w.clk.set(time.Date(2026, 12, 5, 0, 20, 0, 0, time.UTC))
	sent, err = w.snd.Send(ctx, false)
	if err != nil || len(sent) != 1 {
		t.Fatalf("after midnight: %+v, %v", sent, err)
	}
	if !sent[0].Begin.Equal(first.End) || !sent[0].End.Equal(time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)) || sent[0].ReportID == first.ReportID {
		t.Errorf("second period %v to %v (%s), first ended %v (%s)", sent[0].Begin, sent[0].End, sent[0].ReportID, first.End, first.ReportID)
	}
	_, _, _, doc := attachment(t, w.q.msgs["dmarc@b.test"])
	if !strings.Contains(string(doc), "<count>2</count>") {
		t.Errorf("second report:\n%s", doc)
	}
}

// TestSendTLS: a TLS report goes to the mailto: destinations of _smtp._tls (https: skipped),
// as RFC 8460 §5 says; a domain without the record gets none and its counts go; a DNS failure
// keeps them for the next run.
func TestSendTLS(t *testing.T) {
	ctx := context.Background()
	dns := fakeDNS{
		txt: map[string][]string{
			"_smtp._tls.b.test": {"v=spf1 -all", "v=TLSRPTv1; rua=mailto:tls@b.test,https://b.test/tlsrpt"},
			"_smtp._tls.e.test": {"v=TLSRPTv1; rua=mailto:x%0D%0ARSET@e.test"},
		},
		fail: map[string]bool{"_smtp._tls.d.test": true},
	}
	w := newWorld(t, dns)
	for _, d := range []string{"b.test", "c.test", "d.test", "e.test"} {
		w.rec.RecordTLS(tlsrpt.Outcome{PolicyDomain: d, PolicyType: tlsrpt.PolicyNotFound, Success: true})
		w.rec.RecordTLS(tlsrpt.Outcome{PolicyDomain: d, PolicyType: tlsrpt.PolicyNotFound, Failure: tlsrpt.StartTLSNotSupported,
			ReceivingMXHostname: "mx." + d, ReceivingIP: "192.0.2.25", AdditionalInfo: "no STARTTLS"})
	}
	sent, err := w.snd.Send(ctx, true)
	if err == nil || !strings.Contains(err.Error(), "d.test") {
		t.Errorf("a DNS failure is not reported: %v", err)
	}
	if len(sent) != 3 || sent[0].Destination != "mailto:tls@b.test" || sent[0].QueueID == "" ||
		sent[1].Destination != "https://b.test/tlsrpt" || sent[1].Note == "" ||
		sent[2].Domain != "e.test" || sent[2].QueueID != "" || !strings.Contains(sent[2].Note, "bad address") {
		t.Fatalf("sent %+v", sent)
	}
	if len(w.q.msgs) != 1 {
		t.Errorf("%d messages queued, want 1 (an address with CR LF is refused)", len(w.q.msgs))
	}
	h, ct, name, doc := attachment(t, w.q.msgs["tls@b.test"])
	if h.Get("TLS-Report-Domain") != "b.test" || h.Get("TLS-Report-Submitter") != "mx.a.test" ||
		!strings.HasPrefix(h.Get("Content-Type"), `multipart/report; report-type="tlsrpt"`) ||
		h.Get("Subject") != "Report Domain: b.test Submitter: mx.a.test Report-ID: <"+sent[0].ReportID+">" {
		t.Errorf("header %v", h)
	}
	if ct != "application/tlsrpt+gzip" || !strings.HasPrefix(name, "mx.a.test!b.test!1796342400!") || !strings.HasSuffix(name, ".json.gz") {
		t.Errorf("attachment %s %q", ct, name)
	}
	if err := tlsrpt.CheckReport(doc); err != nil {
		t.Errorf("%v\n%s", err, doc)
	}
	for _, want := range []string{`"total-successful-session-count": 1`, `"total-failure-session-count": 1`,
		`"failure-reason-code": "no STARTTLS"`, `"contact-info": "postmaster@a.test"`} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("report lacks %s:\n%s", want, doc)
		}
	}
	ps, err := w.store.PendingReports(ctx)
	if err != nil || len(ps) != 1 || ps[0].Domain != "d.test" {
		t.Errorf("pending after the run: %+v, %v (want d.test's, kept)", ps, err)
	}
}

// TestSendDisabled: with DMARC reports off, counts are dropped unsent.
func TestSendDisabled(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, fakeDNS{})
	w.snd.o.NoDMARC = true
	w.rec.RecordDMARC(evaluation("192.0.2.1")) // recorded before the switch: dropped at the run
	off := NewRecorder(RecorderOptions{Store: w.store, NoDMARC: true, NoTLS: true})
	off.RecordDMARC(evaluation("192.0.2.2"))
	off.RecordTLS(tlsrpt.Outcome{PolicyDomain: "b.test", Success: true})
	if len(off.counts) != 0 {
		t.Errorf("a recorder with reports off counts %d rows", len(off.counts))
	}
	if sent, err := w.snd.Send(ctx, true); err != nil || len(sent) != 0 || len(w.q.msgs) != 0 {
		t.Errorf("sent %+v, %v", sent, err)
	}
	if ps, err := w.store.PendingReports(ctx); err != nil || len(ps) != 0 {
		t.Errorf("pending %+v, %v", ps, err)
	}
}

// TestSendTLSHTTPS: a TLS report POSTed to an https: destination (RFC 8460 §5.2), gzip'd as
// application/tlsrpt+gzip; a server that does not answer 2xx has it recorded as not accepted.
func TestSendTLSHTTPS(t *testing.T) {
	ctx := context.Background()
	var got struct {
		ct  string
		doc []byte
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		got.ct = r.Header.Get("Content-Type")
		zr, err := gzip.NewReader(r.Body)
		if err == nil {
			got.doc, err = io.ReadAll(zr)
		}
		if err != nil || r.Method != http.MethodPost {
			http.Error(w, "bad report", http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	w := newWorld(t, fakeDNS{txt: map[string][]string{
		"_smtp._tls.b.test": {"v=TLSRPTv1; rua=" + srv.URL + "/tlsrpt," + srv.URL + "/broken"},
	}})
	w.snd.o.HTTP = srv.Client()
	w.rec.RecordTLS(tlsrpt.Outcome{PolicyDomain: "b.test", PolicyType: tlsrpt.PolicyNotFound, Success: true})
	sent, err := w.snd.Send(ctx, true)
	if err != nil || len(sent) != 2 {
		t.Fatalf("sent %+v, %v", sent, err)
	}
	if sent[0].QueueID != "HTTP 200" || sent[0].Note != "" || sent[0].Size == 0 {
		t.Errorf("posted: %+v", sent[0])
	}
	if sent[1].QueueID != "" || !strings.Contains(sent[1].Note, "not accepted: HTTP 500") {
		t.Errorf("refused: %+v", sent[1])
	}
	if want := map[string]int{"tlsrpt posted": 1, "tlsrpt skipped": 1}; !maps.Equal(w.told, want) {
		t.Errorf("Sent told %v, want %v", w.told, want)
	}
	if got.ct != "application/tlsrpt+gzip" {
		t.Errorf("Content-Type %q", got.ct)
	}
	if err := tlsrpt.CheckReport(got.doc); err != nil {
		t.Errorf("%v\n%s", err, got.doc)
	}
}

// TestRun: soon after it starts, Run sends the reports of the days before today (the server
// was down at midnight), not today's.
func TestRun(t *testing.T) {
	w := newWorld(t, fakeDNS{})
	w.rec.RecordDMARC(evaluation("192.0.2.1")) // 2026-12-04
	w.clk.set(time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC))
	w.rec.RecordDMARC(evaluation("192.0.2.2")) // today
	w.snd.o.Jitter = func(time.Duration) time.Duration { return 0 }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.snd.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.q.mu.Lock()
		n := w.q.n
		w.q.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run sent nothing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	ps, err := w.store.PendingReports(context.Background())
	if err != nil || len(ps) != 1 || ps[0].Day != "2026-12-05" {
		t.Errorf("pending after the run: %+v, %v (want today's only)", ps, err)
	}
	w.q.mu.Lock()
	defer w.q.mu.Unlock()
	if w.q.n != 1 {
		t.Errorf("%d reports sent, want 1 (yesterday's)", w.q.n)
	}
}
