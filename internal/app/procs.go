package app

import "runtime"

// moreProcs gives the Go scheduler twice as many Ps as CPUs (Go's default, which follows the
// cgroup's CPU limit), unless the GOMAXPROCS environment variable says how many: tern's sessions
// and deliveries spend much of their time in blocking file system calls (fsync, the Maildir
// file's creation), and with every P in one, the runtime's sysmon thread polls every 20 µs to
// take one back and start another thread. A spare P ends that: at one session sysmon fell from
// 22 % of the server's CPU samples to 0.4 %, the same load finished 5-10 % sooner
// (BENCHMARKS.md "Single-session latency"). It returns the number of Ps, and whether it chose it.
func moreProcs(getenv func(string) string) (int, bool) {
	if getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0), false
	}
	runtime.SetDefaultGOMAXPROCS() // from Go's default, however often a process serves
	n := 2 * runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(n)
	return n, true
}
