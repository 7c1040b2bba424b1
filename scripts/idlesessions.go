//go:build ignore

// idlesessions measures what idle SMTP sessions cost a running server: it reads the server's
// resident size (/proc/PID/status VmRSS) and goroutine count (go_goroutines from its /metrics),
// opens N sessions from many loopback addresses (each greeted, EHLO sent and answered, then left
// idle, with no goroutine of ours behind it), reads them again, times one new session while the
// idle ones are open (connect, greeting, EHLO, QUIT), closes them all and waits for the figures
// to come back. It prints key=value lines; it is a measurement, nothing is asserted.
// scripts/idle-sessions.sh starts a tern serve for it.
//
//	go run scripts/idlesessions.go -server 127.0.0.1:2525 -pid PID -metrics http://127.0.0.1:9100/metrics -n 10000
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	server := flag.String("server", "127.0.0.1:2525", "SMTP `HOST:PORT` to open the sessions to")
	pid := flag.Int("pid", 0, "the server's `PID`, for its resident size")
	metrics := flag.String("metrics", "", "the server's /metrics `URL`, for its goroutines (empty: not read)")
	n := flag.Int("n", 10000, "idle sessions to open")
	sources := flag.Int("sources", 100, "loopback source addresses to spread them over (127.0.0.2 on)")
	dialers := flag.Int("dialers", 50, "sessions opened at a time")
	settle := flag.Duration("settle", 3*time.Second, "wait before reading the figures with the sessions open")
	back := flag.Duration("back", 60*time.Second, "longest wait for the goroutines to come back after the close")
	rssWait := flag.Duration("rsswait", 300*time.Second, "longest wait for the resident size to come back after the close")
	near := flag.Int64("near", 10, "`MB` above the baseline that counts as back")
	hold := flag.Duration("hold", 0, "keep the sessions open this long after the figures (to take the server's profiles)")
	flag.Parse()
	if *pid == 0 {
		fail(errors.New("-pid is required"))
	}
	m := meter{pid: *pid, metrics: *metrics}

	base := m.read()
	fmt.Printf("baseline_rss_kb=%d baseline_goroutines=%d\n", base.rssKB, base.goroutines)

	start := time.Now()
	conns, err := open(*server, *n, *sources, *dialers)
	if err != nil {
		closeAll(conns)
		fail(err)
	}
	fmt.Printf("opened=%d open_secs=%.1f\n", len(conns), time.Since(start).Seconds())
	time.Sleep(*settle)
	full := m.read()
	growth := full.rssKB - base.rssKB
	fmt.Printf("open_rss_kb=%d open_goroutines=%d rss_growth_mb=%.1f per_session_bytes=%d goroutines_per_session=%.2f\n",
		full.rssKB, full.goroutines, float64(growth)/1024, growth*1024/int64(len(conns)),
		float64(full.goroutines-base.goroutines)/float64(len(conns)))

	took, err := oneSession(*server)
	if err != nil {
		fmt.Printf("new_session_error=%q\n", err)
	} else {
		fmt.Printf("new_session_ms=%.1f\n", float64(took.Microseconds())/1000)
	}

	if *hold > 0 {
		fmt.Printf("holding=%s\n", *hold)
		time.Sleep(*hold)
	}
	closeAll(conns)
	start = time.Now()
	after := m.read()
	for after.goroutines > base.goroutines+2 && time.Since(start) < *back {
		time.Sleep(200 * time.Millisecond)
		after = m.read()
	}
	fmt.Printf("closed_goroutines=%d goroutines_back_secs=%.1f\n", after.goroutines, time.Since(start).Seconds())
	// The Go runtime gives freed memory back to the system gradually, after a collection (its
	// scavenger); with nothing allocating, the next collection is the forced one of every two
	// minutes. Read RSS until it is within -near of the baseline, or -rsswait has passed.
	for time.Since(start) < *rssWait && after.rssKB > base.rssKB+*near*1024 {
		time.Sleep(5 * time.Second)
		after = m.read()
	}
	fmt.Printf("closed_rss_kb=%d closed_rss_growth_mb=%.1f rss_back_secs=%.0f\n",
		after.rssKB, float64(after.rssKB-base.rssKB)/1024, time.Since(start).Seconds())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "idlesessions:", err)
	os.Exit(1)
}

// meter reads the server's figures.
type meter struct {
	pid     int
	metrics string
}

type figures struct {
	rssKB      int64
	goroutines int64 // -1 without metrics
}

func (m meter) read() figures {
	f := figures{goroutines: -1}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.pid))
	if err != nil {
		fail(err)
	}
	f.rssKB = field(string(b), "VmRSS:")
	if m.metrics != "" {
		f.goroutines = scrape(m.metrics, "go_goroutines ")
	}
	return f
}

// field returns the number after name in a /proc status text ("VmRSS:   1234 kB").
func field(text, name string) int64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			v, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				fail(err)
			}
			return v
		}
	}
	fail(fmt.Errorf("no %s in /proc status", name))
	return 0
}

// scrape returns the value of the metric line starting with prefix.
func scrape(url, prefix string) int64 {
	resp, err := http.Get(url)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				fail(err)
			}
			return int64(v)
		}
	}
	fail(fmt.Errorf("no %q in %s", prefix, url))
	return 0
}

// open opens n idle sessions, dialers at a time, from 127.0.0.2 on.
func open(server string, n, sources, dialers int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	errs := make(chan error, dialers)
	next := make(chan int)
	var wg sync.WaitGroup
	for range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := greet(server, net.IPv4(127, 0, byte((i%sources+2)/256), byte((i%sources+2)%256)))
				if err != nil {
					errs <- fmt.Errorf("session %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	var err error
feed:
	for i := range n {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	kept := conns[:0]
	for _, c := range conns {
		if c != nil {
			kept = append(kept, c)
		}
	}
	return kept, err
}

// greet connects from src, reads the greeting, sends EHLO and reads its reply: the session is
// then idle, waiting for a command.
func greet(server string, src net.IP) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}
	c, err := d.Dial("tcp", server)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(c, 512)
	if err := expect(br, "220"); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if _, err := io.WriteString(c, "EHLO idle.test\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	if err := expect(br, "250"); err != nil {
		c.Close()
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// expect reads one reply, multi-line or not, and checks its code.
func expect(br *bufio.Reader, code string) error {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, code) {
			return fmt.Errorf("got %q, want %s", strings.TrimSpace(line), code)
		}
		if len(line) < 4 || line[3] != '-' {
			return nil
		}
	}
}

// oneSession times a whole short session: connect, greeting, EHLO, QUIT.
func oneSession(server string) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", server)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, step := range []struct{ send, want string }{{"", "220"}, {"EHLO new.test\r\n", "250"}, {"QUIT\r\n", "221"}} {
		if _, err := io.WriteString(c, step.send); err != nil {
			return 0, err
		}
		if err := expect(br, step.want); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close() // best effort: the server sees EOF either way
	}
}
