package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"strings"
	"syscall"
	"testing"

	"github.com/tern-mail/tern/internal/delivery"
	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/safeio/crashfs"
)

// The batch power-loss tests deliver messages for several recipients with DeliverBatch, so
// that one batch holds files for four new/ directories in two domains (and, for the
// quarantined message, four Junk folders): a crash at each of its steps (between the fsyncs of
// the files, between the renames, before and after each fsync of a new/) must lose no
// delivery that was acknowledged.

// plBatch is one DeliverBatch call of the workload: the jobs share body and quarantine.
type plBatch []int

// plBatchJobs are two messages for the four mailboxes of plJobs, one of them quarantined and
// over 32 KiB, and the groups that deliver them.
func plBatchJobs() ([]plJob, []plBatch) {
	addrs := []string{"a@one.test", "b@one.test", "c@two.test", "d@two.test"}
	var jobs []plJob
	var groups []plBatch
	for m, size := range []int{60, 40 << 10} {
		var b strings.Builder
		fmt.Fprintf(&b, "Subject: message %d\r\n\r\n", m)
		for b.Len() < size {
			fmt.Fprintf(&b, "message %d line %d\r\n", m, b.Len())
		}
		var g plBatch
		for _, a := range addrs {
			g = append(g, len(jobs))
			jobs = append(jobs, plJob{addr: a, body: b.String(), junk: m == 1})
		}
		groups = append(groups, g)
	}
	return jobs, groups
}

// strBody is a delivery.Body in memory.
type strBody string

func (b strBody) Open() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(string(b))), nil
}
func (b strBody) Size() int64 { return int64(len(b)) }

// deliverBatches runs the groups one after the other with DeliverBatch on f in mode m and
// returns which jobs were acknowledged.
func deliverBatches(m plMode, f safeio.FS, jobs []plJob, groups []plBatch) []bool {
	d := m.deliverer(f)
	acked := make([]bool, len(jobs))
	for _, g := range groups {
		first := jobs[g[0]]
		env := newEnv("s@example.org")
		env.Quarantine = first.junk
		var rcpts []int
		for k, i := range g {
			env.Rcpts = append(env.Rcpts, newEnv("", jobs[i].addr).Rcpts...)
			rcpts = append(rcpts, k)
		}
		for k, o := range d.DeliverBatch(context.Background(), env, rcpts, strBody(first.body)) {
			acked[g[k]] = o.Err == nil
		}
	}
	return acked
}

// TestPowerLossBatch cuts the power after every step of two batches and checks what a reboot
// finds, with only what was durable and with random parts of the rest.
func TestPowerLossBatch(t *testing.T) { forModes(t, testPowerLossBatch) }

func testPowerLossBatch(t *testing.T, m plMode) {
	jobs, groups := plBatchJobs()
	dry := crashfs.New()
	for i, ok := range deliverBatches(m, dry, jobs, groups) {
		if !ok {
			t.Fatalf("job %d failed without a crash", i)
		}
	}
	steps := dry.Steps()
	rng := rand.New(rand.NewPCG(5, 6))
	acks := 0
	for n := range steps + 1 {
		f := crashfs.New()
		f.CrashAfter(n)
		acked := deliverBatches(m, f, jobs, groups)
		for _, a := range acked {
			if a {
				acks++
			}
		}
		for k, after := range []*crashfs.FS{f.Crash(), f.CrashRandom(rng)} {
			if problems, _ := checkMaildirs(after, jobs, acked); len(problems) > 0 {
				t.Fatalf("crash after step %d (mode %d): %q\nfile system after the crash:\n%s", n, k, problems, after)
			}
			if ok := deliverBatches(m, after, jobs, groups); !ok[0] || !ok[len(ok)-1] {
				t.Fatalf("crash after step %d (mode %d): no delivery possible after it", n, k)
			}
		}
	}
	t.Logf("%d crash points, %d acknowledged deliveries checked twice each", steps+1, acks)
}

// TestPowerLossBatchTeeth proves that the batch check notices a missing fsync of the batch
// path.
func TestPowerLossBatchTeeth(t *testing.T) { forModes(t, testPowerLossBatchTeeth) }

func testPowerLossBatchTeeth(t *testing.T, m plMode) {
	type mutation struct {
		name string
		skip func(op crashfs.Op) bool
	}
	tests := []mutation{
		{"new/ of one.test", func(op crashfs.Op) bool {
			return op.Kind == crashfs.OpSyncDir && path.Base(op.Path) == "new" && strings.Contains(op.Path, "/one.test/")
		}},
		{"new/ of a Junk folder", func(op crashfs.Op) bool {
			return op.Kind == crashfs.OpSyncDir && path.Base(op.Path) == "new" && strings.Contains(op.Path, JunkFolder)
		}},
	}
	if m.sync == syncDeferred {
		tests = append(tests, mutation{"syncfs", func(op crashfs.Op) bool { return op.Kind == crashfs.OpSyncFS }})
	} else {
		tests = append(tests, mutation{"message file", func(op crashfs.Op) bool {
			return op.Kind == crashfs.OpSync && strings.Contains(op.Path, "/tmp/")
		}})
	}
	jobs, groups := plBatchJobs()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkTeeth(t, tc.skip, jobs, func(f *crashfs.FS) []bool { return deliverBatches(m, f, jobs, groups) })
		})
	}
}

// TestDeliverBatchFailure makes one step of a batch fail: the recipients it concerns get a
// temporary error and leave nothing in new/ or tmp/; the others of the batch are delivered.
func TestDeliverBatchFailure(t *testing.T) { forModes(t, testDeliverBatchFailure) }

func testDeliverBatchFailure(t *testing.T, m plMode) {
	type failure struct {
		name string
		fail func(op crashfs.Op) bool
		all  bool // every recipient fails, not only two.test's
	}
	tests := []failure{
		{"fsync of two.test's files", func(op crashfs.Op) bool {
			return op.Kind == crashfs.OpSync && strings.Contains(op.Path, "/two.test/")
		}, false},
		{"link or rename into two.test's new/", func(op crashfs.Op) bool {
			return (op.Kind == crashfs.OpLink || op.Kind == crashfs.OpRename) && strings.Contains(op.Path, "/two.test/")
		}, false},
		{"fsync of two.test's new/", func(op crashfs.Op) bool {
			return op.Kind == crashfs.OpSyncDir && path.Base(op.Path) == "new" && strings.Contains(op.Path, "/two.test/")
		}, false},
	}
	if m.sync == syncDeferred {
		// One syncfs covers the files of every mailbox: its failure is everyone's.
		tests[0] = failure{"syncfs of the batch", func(op crashfs.Op) bool { return op.Kind == crashfs.OpSyncFS }, true}
	}
	jobs, _ := plBatchJobs()
	jobs = jobs[:4] // the first message, to every mailbox
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := crashfs.New()
			f.Inject(func(op crashfs.Op) error {
				if tc.fail(op) {
					return syscall.EIO
				}
				return nil
			})
			d := m.deliverer(f)
			env := newEnv("s@example.org", "a@one.test", "b@one.test", "c@two.test", "d@two.test")
			out := d.DeliverBatch(context.Background(), env, []int{0, 1, 2, 3}, strBody(jobs[0].body))
			for k, o := range out {
				fails := k >= 2 || tc.all
				var de *delivery.Error
				switch {
				case fails && (!errors.As(o.Err, &de) || de.Permanent || de.Code != 451 || !errors.Is(o.Err, syscall.EIO)):
					t.Errorf("%s: %v, want temporary 451 wrapping EIO", env.Rcpts[k].Addr, o.Err)
				case !fails && o.Err != nil:
					t.Errorf("%s: %v, want delivered", env.Rcpts[k].Addr, o.Err)
				}
				md, _ := d.Path(env.Rcpts[k].Addr)
				if n := len(listDirIn(t, f, path.Join(md, "tmp"))); n != 0 {
					t.Errorf("%s: %d files left in tmp/", env.Rcpts[k].Addr, n)
				}
				if n, want := len(listDirIn(t, f, path.Join(md, "new"))), map[bool]int{false: 1, true: 0}[fails]; n != want {
					t.Errorf("%s: %d files in new/, want %d", env.Rcpts[k].Addr, n, want)
				}
			}
			acked := []bool{!tc.all, !tc.all, false, false}
			if problems, _ := checkMaildirs(f.Crash(), jobs, acked); len(problems) > 0 {
				t.Errorf("after a crash: %q", problems)
			}
		})
	}
}
