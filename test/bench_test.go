package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// tern bench, the built binary, against a real tern serve (what its Maildirs received is what
// tern bench counted; STARTTLS, implicit TLS, AUTH, PIPELINING, several recipients, a refused
// recipient; --json and both --plot formats) and against Postfix's smtp-sink (a server nobody
// here wrote, whose dump files count what it got). No figure is asserted: the rates are for
// BENCHMARKS.md.

// benchResult is the part of tern bench --json the tests read.
type benchResult struct {
	Messages           int64   `json:"messages"`
	Failed             int64   `json:"failed"`
	RecipientsAccepted int64   `json:"recipients_accepted"`
	Bytes              int64   `json:"bytes"`
	Size               int64   `json:"message_size"`
	Connections        int64   `json:"connections"`
	MessagesPerSec     float64 `json:"messages_per_second"`
	Latency            struct {
		Count uint64  `json:"count"`
		P50   float64 `json:"p50_ms"`
		P99   float64 `json:"p99_ms"`
	} `json:"latency"`
	Commands []struct {
		Command string `json:"command"`
		Count   uint64 `json:"count"`
	} `json:"commands"`
	Errors []struct {
		Kind  string `json:"kind"`
		Count int64  `json:"count"`
	} `json:"errors"`
	Throughput []struct {
		T float64 `json:"t"`
	} `json:"throughput"`
}

// ternBench runs `tern bench args...` and returns its stdout (stderr shown on failure) and
// exit status.
func ternBench(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	out, errOut, code := runTool(t, 2*time.Minute, stdin, ternBin, append([]string{"bench"}, args...)...)
	if errOut != "" && code != 1 {
		t.Logf("tern bench stderr:\n%s", errOut)
	}
	return out, code
}

// benchJSON runs tern bench --json and parses what it prints.
func benchJSON(t *testing.T, stdin string, args ...string) benchResult {
	t.Helper()
	out, code := ternBench(t, stdin, append(args, "--json")...)
	var res benchResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("tern bench --json (status %d): %v\n%s", code, err, out)
	}
	if code != 0 {
		t.Fatalf("tern bench exit status %d:\n%s", code, out)
	}
	return res
}

func (r benchResult) commandCount(cmd string) uint64 {
	for _, c := range r.Commands {
		if c.Command == cmd {
			return c.Count
		}
	}
	return 0
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// benchIDs are the Message-IDs tern bench gave the messages of a Maildir.
var benchIDRE = regexp.MustCompile(`(?m)^Message-ID: <(bench\.\d+\.[0-9a-f]+@tern\.bench)>\r?$`)

func benchIDs(t *testing.T, msgs []string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, m := range msgs {
		id := benchIDRE.FindStringSubmatch(m)
		if id == nil {
			t.Fatalf("a message without tern bench's Message-ID:\n%.600s", m)
		}
		ids[id[1]] = true
	}
	return ids
}

func TestBenchTern(t *testing.T) {
	t.Parallel()
	tn := startAuthTern(t)
	tn.AddUsers("pw", "b@"+testDomain, "c@"+testDomain)
	b, c := "b@"+testDomain, "c@"+testDomain
	dir := t.TempDir()
	html, png := filepath.Join(dir, "run.html"), filepath.Join(dir, "run.png")
	var wantB, wantC int

	t.Run("MX, a connection per message, plots", func(t *testing.T) {
		res := benchJSON(t, "", "--server", tn.SMTP, "--sessions", "4", "--messages", "60", "--size", "2048",
			"--to", b, "--plot", html, "--plot", png)
		if res.Messages != 60 || res.Failed != 0 || res.Connections != 60 || res.Latency.Count != 60 || res.Bytes != 60*res.Size {
			t.Fatalf("result %+v", res)
		}
		for _, cmd := range []string{"CONNECT", "EHLO", "MAIL", "RCPT", "DATA", "data-end"} {
			if n := res.commandCount(cmd); n < 60 {
				t.Errorf("%d latencies for %s, want 60 or more", n, cmd)
			}
		}
		wantB += 60
		page, err := os.ReadFile(html)
		if err != nil || strings.Count(string(page), "<svg ") != 2 {
			t.Errorf("the HTML plot (%v) has %d <svg>", err, strings.Count(string(page), "<svg "))
		}
		img, err := os.ReadFile(png)
		if err != nil || !strings.HasPrefix(string(img), "\x89PNG\r\n") {
			t.Errorf("the PNG plot: %v, %d octets", err, len(img))
		}
	})
	t.Run("submission, STARTTLS, AUTH, pipelined, reused, 2 recipients", func(t *testing.T) {
		out, code := ternBench(t, seedPassword+"\n", "--server", tn.Submission, "--starttls", "--ca", filepath.Join(tn.Data, "tls", "cert.pem"),
			"--auth", "SCRAM-SHA-256", "--user", seedAccount, "--password-stdin", "--from", seedAccount,
			"--to", b+","+c, "--recipients", "2", "--messages", "20", "--sessions", "2", "--pipeline", "--reuse")
		if code != 0 {
			t.Fatalf("exit status %d:\n%s", code, out)
		}
		mustMatch(t, "summary", out, `^messages +20 sent, 0 failed in `)
		mustMatch(t, "summary", out, `^connections [12] \(0 failed\)$`)
		mustMatch(t, "summary", out, `(?m)^ +STARTTLS +[12] `)
		mustMatch(t, "summary", out, `(?m)^ +AUTH +\d+ `)
		mustMatch(t, "summary", out, `(?m)^ +data-end +20 `)
		mustMatch(t, "summary", out, `^errors +none$`)
		wantB, wantC = wantB+20, wantC+20
	})
	var timed int64
	t.Run("implicit TLS, AUTH PLAIN, for a duration", func(t *testing.T) {
		res := benchJSON(t, seedPassword+"\n", "--server", tn.Submissions, "--tls", "--insecure", "--auth", "plain",
			"--user", seedAccount, "--password-stdin", "--from", seedAccount, "--to", b, "--duration", "1s", "--reuse", "--size", "600")
		if res.Messages == 0 || res.Failed != 0 || res.Connections != 1 || len(res.Throughput) == 0 {
			t.Fatalf("result %+v", res)
		}
		timed = res.Messages
		wantB += int(res.Messages)
	})
	t.Run("progress on a terminal only", func(t *testing.T) {
		// script(1) gives tern bench a terminal for its standard output.
		script := needTool(t, "script") // package bsdutils
		cmd := fmt.Sprintf("%s bench --server %s --to %s --duration 3s --reuse --size 600", ternBin, tn.SMTP, b)
		out, _, code := runTool(t, time.Minute, "", script, "-qec", cmd, "/dev/null")
		if code != 0 {
			t.Fatalf("exit status %d:\n%q", code, out)
		}
		// At least one progress line (every second), each rewriting the last, then cleared.
		mustMatch(t, "terminal output", strings.ReplaceAll(out, "\r\033[K", "\n<line>"), `^<line>\d+ messages  \d+/s now  \d+/s average  0 errors  [12]s$`)
		n := mustMatch(t, "terminal output", out, `messages +(\d+) sent, 0 failed`)
		wantB += atoi(t, n[1])
		plain, code := ternBench(t, "", "--server", tn.SMTP, "--to", b, "--duration", "1500ms", "--reuse", "--size", "600")
		if code != 0 || strings.ContainsAny(plain, "\r\033") {
			t.Fatalf("not a terminal: exit status %d, output %q", code, plain)
		}
		n = mustMatch(t, "summary", plain, `messages +(\d+) sent, 0 failed`)
		wantB += atoi(t, n[1])
	})
	t.Run("a refused recipient", func(t *testing.T) {
		out, code := ternBench(t, "", "--server", tn.SMTP, "--to", "nobody@"+testDomain, "--messages", "5", "--reuse")
		if code != 1 {
			t.Fatalf("exit status %d, want 1:\n%s", code, out)
		}
		mustMatch(t, "summary", out, `^messages +0 sent, 5 failed in `)
		mustMatch(t, "summary", out, `^ +5  RCPT 550 5\.1\.1  \(RCPT: 550 5\.1\.1 `)
	})
	if t.Failed() {
		return
	}
	// Every message tern bench counted, and no other, is in the Maildirs, each once.
	tn.WaitQueueEmpty(time.Minute)
	gotB, gotC := tn.Maildir(b), tn.Maildir(c)
	if len(gotB) != wantB || len(gotC) != wantC {
		t.Fatalf("Maildirs hold %d and %d messages, want %d (60 + 20 + %d + the progress runs') and %d", len(gotB), len(gotC), wantB, timed, wantC)
	}
	if ids := benchIDs(t, gotB); len(ids) != wantB {
		t.Errorf("%d different Message-IDs in %d messages", len(ids), wantB)
	}
}

// Postfix's smtp-sink: tern bench's count is what the sink dumped, one command at a time and
// pipelined. smtp-sink has no TLS, so STARTTLS is tested against tern only.
func TestBenchSmtpSink(t *testing.T) {
	t.Parallel()
	sink := needTool(t, "smtp-sink") // package postfix
	// smtp-sink runs as root only with -u nobody: the dump directory is for anyone to write.
	dumps, err := os.MkdirTemp("", "tern-bench-sink-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dumps) })
	if err := os.Chmod(dumps, 0o777); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	var log testutil.SyncBuffer
	args := []string{"-d", dumps + "/%H%M%S.", addr, "100"}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...) // it refuses to run as root without
	}
	done := startProcess(t, &log, sink, args...)
	waitListening(t, addr, done, "smtp-sink")
	dumped := func() int {
		ents, err := os.ReadDir(dumps)
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	total := 0
	for _, c := range []struct {
		name string
		args []string
		n    int
	}{
		{"one command at a time", []string{"--sessions", "5", "--messages", "200", "--size", "5120"}, 200},
		{"pipelined, reused, 3 recipients", []string{"--sessions", "5", "--messages", "300", "--pipeline", "--reuse", "--recipients", "3"}, 300},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := benchJSON(t, "", append([]string{"--server", addr, "--to", "sink@example.test"}, c.args...)...)
			if res.Messages != int64(c.n) || res.Failed != 0 {
				t.Fatalf("result %+v", res)
			}
			if strings.Contains(c.name, "3 recipients") && res.RecipientsAccepted != 3*int64(c.n) {
				t.Errorf("%d recipients accepted, want %d", res.RecipientsAccepted, 3*c.n)
			}
			total += c.n
			// smtp-sink may close a dump file after its 250: wait for the count to come up.
			deadline := time.Now().Add(10 * time.Second)
			for dumped() < total && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if got := dumped(); got != total {
				t.Errorf("smtp-sink dumped %d transactions, tern bench counted %d in all", got, total)
			}
		})
	}
}
