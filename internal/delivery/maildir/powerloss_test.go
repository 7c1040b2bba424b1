package maildir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/safeio/crashfs"
)

// The power-loss tests deliver through a crashfs.FS, cut its power at every step of the
// workload, and check what a reboot finds: every delivery that returned nil is complete in new/,
// and new/ holds nothing else than complete messages.

const plRoot = "/var/mail"

// plJob is one delivery of the workload.
type plJob struct {
	addr string
	body string
	junk bool // quarantined: it goes to the mailbox's .Junk folder
}

// want is the file the job leaves in new/.
func (j plJob) want() string {
	return "Return-Path: <s@example.org>\nDelivered-To: " + j.addr + "\n" + strings.ReplaceAll(j.body, "\r\n", "\n")
}

// plJobs are deliveries to four mailboxes in two domains, each mailbox new to the Deliverer;
// some bodies span two writes (Deliver buffers 32 KiB); two are quarantined, one of them the
// first message to its mailbox (job 4 is to a mailbox that job 0 made).
func plJobs() []plJob {
	addrs := []string{"a@one.test", "b@one.test", "c@two.test", "d@two.test"}
	var jobs []plJob
	for i := range 10 {
		var b strings.Builder
		fmt.Fprintf(&b, "Subject: job %d\r\n\r\n", i)
		for n := []int{50, 3000, 40 << 10}[i%3]; b.Len() < n; {
			fmt.Fprintf(&b, "job %d line %d\r\n", i, b.Len())
		}
		jobs = append(jobs, plJob{addr: addrs[i%len(addrs)], body: b.String(), junk: i == 4 || i == 1})
	}
	return jobs
}

// plMode is one of the ways a delivery makes its file: without a name, linked into new/ by the
// batch (where the file system can: the operating system's on Linux, and crashfs), or in tmp/,
// renamed into new/ by the batch (namedOnly); made durable by its own fsync, or by its
// batch's syncfs (what a Deliverer does under load). The power-loss tests cover each.
type plMode struct {
	name string
	fs   func(safeio.FS) safeio.FS
	sync syncMode
}

// deliverer is a Deliverer on f in mode m.
func (m plMode) deliverer(f safeio.FS) *Deliverer {
	d := New(Options{Root: plRoot, Hostname: "h", FS: m.fs(f)})
	d.sync = m.sync
	return d
}

// forModes runs test once in each plMode.
func forModes(t *testing.T, test func(*testing.T, plMode)) {
	unnamed := func(f safeio.FS) safeio.FS { return f }
	tmp := func(f safeio.FS) safeio.FS { return namedOnly{f} }
	modes := []plMode{
		{"unnamed", unnamed, syncEachFile},
		{"tmp", tmp, syncEachFile},
		{"unnamed-syncfs", unnamed, syncDeferred},
		{"tmp-syncfs", tmp, syncDeferred},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { test(t, m) })
	}
}

// namedOnly is an FS that cannot create a file without a name, as a file system without
// O_TMPFILE.
type namedOnly struct{ safeio.FS }

func (namedOnly) CreateUnnamed(dir string, _ fs.FileMode) (safeio.File, error) {
	return nil, &fs.PathError{Op: "open", Path: dir, Err: errors.ErrUnsupported}
}

// deliverAll runs the jobs on f in mode m from three goroutines and returns which ones Deliver
// acknowledged.
func deliverAll(m plMode, f safeio.FS, jobs []plJob) []bool {
	d := m.deliverer(f)
	acked := make([]bool, len(jobs))
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			for i := g; i < len(jobs); i += 3 {
				env := newEnv("s@example.org", jobs[i].addr)
				env.Quarantine = jobs[i].junk
				if d.Deliver(context.Background(), env, 0, strings.NewReader(jobs[i].body)) == nil {
					acked[i] = true
				}
			}
		})
	}
	wg.Wait()
	return acked
}

// checkMaildirs returns what is wrong with the mailboxes in fsys after a crash, and how many
// messages are there more than once. Files in tmp/ are allowed: readers ignore them.
func checkMaildirs(fsys safeio.FS, jobs []plJob, acked []bool) (problems []string, dups int) {
	d := New(Options{Root: plRoot, Hostname: "h", FS: fsys})
	found := make([]int, len(jobs))
	byContent := map[string]int{}
	for i, j := range jobs {
		byContent[j.want()] = i
	}
	seen := map[string]bool{}
	for _, j := range jobs {
		md, _ := d.Path(j.addr)
		if seen[md] {
			continue
		}
		seen[md] = true
		for _, folder := range []string{"", JunkFolder} {
			problems = append(problems, checkNew(fsys, path.Join(md, folder, "new"), j.addr, folder != "", jobs, byContent, found)...)
		}
	}
	for i, n := range found {
		if acked[i] && n == 0 {
			problems = append(problems, fmt.Sprintf("job %d to %s: acknowledged, not in new/", i, jobs[i].addr))
		}
		dups += max(0, n-1)
	}
	return problems, dups
}

// checkNew checks the messages in the new/ directory dir of the mailbox of addr (its Junk
// folder when junk), counting each job found.
func checkNew(fsys safeio.FS, dir, addr string, junk bool, jobs []plJob, byContent map[string]int, found []int) (problems []string) {
	des, err := fsys.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return []string{err.Error()}
	}
	for _, de := range des {
		p := path.Join(dir, de.Name())
		b, err := safeio.ReadFile(fsys, p)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		i, ok := byContent[string(b)]
		if !ok || jobs[i].addr != addr || jobs[i].junk != junk {
			problems = append(problems, fmt.Sprintf("%s: %d octets that are no message for this folder (%.40q)", p, len(b), b))
			continue
		}
		if m := nameRE.FindStringSubmatch(de.Name()); m == nil || m[6] != strconv.Itoa(len(b)) {
			problems = append(problems, fmt.Sprintf("%s: bad name for %d octets", p, len(b)))
		}
		found[i]++
	}
	return problems
}

// TestPowerLossEveryStep cuts the power after every step of the workload and checks the
// mailboxes a reboot finds, both with only what was durable and with random parts of the rest.
// After each crash a new delivery must work.
func TestPowerLossEveryStep(t *testing.T) { forModes(t, testPowerLossEveryStep) }

func testPowerLossEveryStep(t *testing.T, m plMode) {
	jobs := plJobs()
	dry := crashfs.New()
	for i, ok := range deliverAll(m, dry, jobs) {
		if !ok {
			t.Fatalf("job %d failed without a crash", i)
		}
	}
	steps := dry.Steps()
	rng := rand.New(rand.NewPCG(1, 2))
	ackedTotal, dupsTotal := 0, 0
	for n := range steps + 1 {
		f := crashfs.New()
		f.CrashAfter(n)
		acked := deliverAll(m, f, jobs)
		for _, a := range acked {
			if a {
				ackedTotal++
			}
		}
		for k, after := range []*crashfs.FS{f.Crash(), f.CrashRandom(rng)} {
			problems, dups := checkMaildirs(after, jobs, acked)
			dupsTotal += dups
			for _, p := range problems {
				t.Errorf("crash after step %d (mode %d): %s", n, k, p)
			}
			if len(problems) > 0 {
				t.Fatalf("file system after the crash:\n%s", after)
			}
			again := append(jobs[:0:0], plJob{addr: "a@one.test", body: "after the crash\r\n"})
			if ok := deliverAll(m, after, again); !ok[0] {
				t.Fatalf("crash after step %d (mode %d): no delivery possible after it:\n%s", n, k, after)
			}
		}
	}
	t.Logf("%d crash points, %d acknowledged deliveries checked twice each, %d duplicates", steps+1, ackedTotal, dupsTotal)
}

// TestKillThenPowerLoss kills the deliveries (kill -9, which the page cache survives) after
// every step, delivers again on what they left, then cuts the power: a directory the killed
// process made but did not sync must not be trusted by the next one.
func TestKillThenPowerLoss(t *testing.T) { forModes(t, testKillThenPowerLoss) }

func testKillThenPowerLoss(t *testing.T, m plMode) {
	jobs := plJobs()[:5] // every mailbox, every size
	dry := crashfs.New()
	deliverAll(m, dry, jobs)
	for n := range dry.Steps() + 1 {
		f := crashfs.New()
		f.CrashAfter(n)
		first := deliverAll(m, f, jobs)
		g := f.Restart()
		second := deliverAll(m, g, jobs)
		acked := make([]bool, len(jobs))
		for i := range acked {
			acked[i] = first[i] || second[i]
		}
		if problems, _ := checkMaildirs(g.Crash(), jobs, acked); len(problems) > 0 {
			t.Fatalf("killed after step %d, then a crash: %q", n, problems)
		}
	}
}

// TestPowerLossTeeth proves that the power-loss check notices a missing fsync: with any one
// sync of the delivery path made a silent no-op, a crash after the workload loses an
// acknowledged message.
func TestPowerLossTeeth(t *testing.T) { forModes(t, testPowerLossTeeth) }

func testPowerLossTeeth(t *testing.T, m plMode) {
	type mutation struct {
		name string
		skip func(op crashfs.Op) bool
	}
	tests := []mutation{
		{"message file", func(op crashfs.Op) bool { return op.Kind == crashfs.OpSync && strings.Contains(op.Path, "/tmp/") }},
		{"new/", func(op crashfs.Op) bool { return op.Kind == crashfs.OpSyncDir && path.Base(op.Path) == "new" }},
		{"Maildir", func(op crashfs.Op) bool { return op.Kind == crashfs.OpSyncDir && path.Base(op.Path) == "Maildir" }},
		{"Junk folder", func(op crashfs.Op) bool { return op.Kind == crashfs.OpSyncDir && path.Base(op.Path) == JunkFolder }},
		{"user directory", func(op crashfs.Op) bool {
			return op.Kind == crashfs.OpSyncDir && path.Dir(path.Dir(op.Path)) == plRoot
		}},
		{"domain directory", func(op crashfs.Op) bool { return op.Kind == crashfs.OpSyncDir && path.Dir(op.Path) == plRoot }},
		{"root", func(op crashfs.Op) bool { return op.Kind == crashfs.OpSyncDir && op.Path == plRoot }},
		{"root's parent", func(op crashfs.Op) bool { return op.Kind == crashfs.OpSyncDir && op.Path == path.Dir(plRoot) }},
	}
	if m.sync == syncDeferred {
		// The batch's syncfs makes the files durable, and with them the directories made
		// before it: of the syncs above only new/'s (after the link) is still needed.
		tests = []mutation{tests[1], {"syncfs", func(op crashfs.Op) bool { return op.Kind == crashfs.OpSyncFS }}}
	}
	jobs := plJobs()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkTeeth(t, tc.skip, jobs, func(f *crashfs.FS) []bool { return deliverAll(m, f, jobs) })
		})
	}
}

// checkTeeth runs deliver on a file system where every sync that skip names is a silent no-op,
// then crashes it: the check of jobs must find a problem.
func checkTeeth(t *testing.T, skip func(op crashfs.Op) bool, jobs []plJob, deliver func(*crashfs.FS) []bool) {
	t.Helper()
	f := crashfs.New()
	skipped := 0
	f.Inject(func(op crashfs.Op) error {
		if skip(op) {
			skipped++
			return crashfs.ErrSkip
		}
		return nil
	})
	acked := deliver(f)
	if skipped == 0 {
		t.Fatal("the mutation skipped no sync")
	}
	problems, _ := checkMaildirs(f.Crash(), jobs, acked)
	if len(problems) == 0 {
		t.Fatal("no loss detected without this fsync")
	}
	t.Logf("detected: %s (and %d more)", problems[0], len(problems)-1)
}

// TestDeliverSyncFailure makes one step of a delivery fail: Deliver must return a temporary
// error and leave nothing in new/ (or tmp/), and the next delivery must work.
func TestDeliverSyncFailure(t *testing.T) { forModes(t, testDeliverSyncFailure) }

func testDeliverSyncFailure(t *testing.T, m plMode) {
	tests := []struct {
		name     string
		fail     func(op crashfs.Op) bool
		err      error
		code     int
		enhanced string
	}{
		{"fsync or syncfs of the file", func(op crashfs.Op) bool {
			return op.Kind == crashfs.OpSync || op.Kind == crashfs.OpSyncFS
		}, syscall.EIO, 451, "4.3.0"},
		{"fsync of new/", func(op crashfs.Op) bool {
			return op.Kind == crashfs.OpSyncDir && path.Base(op.Path) == "new"
		}, syscall.EIO, 451, "4.3.0"},
		{"fsync of the Maildir", func(op crashfs.Op) bool {
			return op.Kind == crashfs.OpSyncDir && path.Base(op.Path) == "Maildir"
		}, syscall.EIO, 451, "4.3.0"},
		{"link or rename into new/", func(op crashfs.Op) bool { return op.Kind == crashfs.OpLink || op.Kind == crashfs.OpRename }, syscall.EIO, 451, "4.3.0"},
		{"write, disk full", func(op crashfs.Op) bool { return op.Kind == crashfs.OpWrite }, syscall.ENOSPC, 452, "4.2.2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := crashfs.New()
			f.Inject(func(op crashfs.Op) error {
				if tc.fail(op) {
					return tc.err
				}
				return nil
			})
			d := m.deliverer(f)
			md, _ := d.Path("a@one.test")
			err := d.Deliver(context.Background(), newEnv("s@example.org", "a@one.test"), 0, strings.NewReader("x\r\n"))
			var de *delivery.Error
			if !errors.As(err, &de) || de.Permanent || de.Code != tc.code || de.Enhanced() != tc.enhanced || !errors.Is(err, tc.err) {
				t.Fatalf("Deliver = %v, want temporary %d %s wrapping %v", err, tc.code, tc.enhanced, tc.err)
			}
			for _, sub := range []string{"new", "tmp"} {
				if des, err := f.ReadDir(path.Join(md, sub)); len(des) > 0 || err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s/ after the failure: %v %v", sub, des, err)
				}
			}
			// A crash now finds no message, or a complete one (the removal after a failed sync
			// of new/ may be lost: a duplicate, never a damaged message). Delivery works again
			// after it.
			job := []plJob{{addr: "a@one.test", body: "x\r\n"}}
			after := f.CrashRandom(rand.New(rand.NewPCG(3, 4)))
			if problems, _ := checkMaildirs(after, job, []bool{false}); len(problems) > 0 {
				t.Errorf("after a crash: %q", problems)
			}
			if ok := deliverAll(m, after, job); !ok[0] {
				t.Fatal("no delivery after the crash")
			}
			if problems, _ := checkMaildirs(after.Crash(), job, []bool{true}); len(problems) > 0 {
				t.Errorf("after a second crash: %q", problems)
			}
		})
	}
}
