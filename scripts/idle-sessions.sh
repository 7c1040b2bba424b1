#!/usr/bin/env bash
# idle-sessions.sh: what N idle SMTP sessions cost one tern serve process. It builds tern, starts
# `tern serve` on loopback with the connection limits raised (limits.connections 20000,
# connections_per_ip 1000) and its metrics endpoint on, and runs scripts/idlesessions.go against
# it: the sessions come from 100 loopback addresses (127.0.0.2-101), each greeted and EHLO'd,
# then idle. It prints the server's resident size and goroutines before, with the sessions open
# and after they close, the time one new session took meanwhile, and the tern process's CPU
# time. tern is stopped by its PID on exit. No root needed.
#
#	scripts/idle-sessions.sh [-n SESSIONS] [-b TERN] [-k]
#
# -b measures that tern binary (one built from an older commit, say) instead of the tree's; -k
# keeps the work directory and the log.
set -euo pipefail

n=10000 keep= bin=
while getopts n:b:k o; do
  case $o in
    n) n=$OPTARG ;; b) bin=$OPTARG ;; k) keep=1 ;;
    *) echo "usage: $0 [-n sessions] [-b tern] [-k]" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/tern-idle.XXXXXX)
tern_pid=
cleanup() {
  if [ -n "$tern_pid" ]; then
    kill -TERM "$tern_pid" 2>/dev/null || true
    wait "$tern_pid" 2>/dev/null || true
  fi
  if [ -n "$keep" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Each session is one descriptor in tern and one here; the hard limit is the ceiling.
want=$((n + 1000))
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge "$want" ] || {
  echo "idle-sessions: the hard open-file limit $(ulimit -Hn) is below $want" >&2; exit 1; }
ulimit -n "$want"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
smtp=127.0.0.1:$(free_port) metrics=127.0.0.1:$(free_port)

if [ -n "$bin" ]; then cp "$bin" "$work/tern"; else (cd "$root" && go build -o "$work/tern" ./cmd/tern); fi
(cd "$root" && go build -o "$work/idlesessions" scripts/idlesessions.go)
cat >"$work/tern.toml" <<EOF
data = "$work/data"
hostname = "idle.test"
domains = ["example.test"]
[listen]
smtp = "$smtp"
submission = ""
submissions = ""
[limits]
connections = 20000
connections_per_ip = 1000
[metrics]
listen = "$metrics"
EOF
"$work/tern" serve --config "$work/tern.toml" >"$work/tern.out" 2>"$work/tern.log" &
tern_pid=$!
for _ in $(seq 100); do
  curl -fs "http://$metrics/readyz" >/dev/null 2>&1 && break
  kill -0 "$tern_pid" 2>/dev/null || { cat "$work/tern.log" >&2; exit 1; }
  sleep 0.1
done
sleep 2 # let the start-up garbage be collected before the baseline

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(go version | cut -d' ' -f3)"
echo "sessions=$n"
"$work/idlesessions" -server "$smtp" -pid "$tern_pid" -metrics "http://$metrics/metrics" -n "$n"
read -r -a st <"/proc/$tern_pid/stat"
tck=$(getconf CLK_TCK)
echo "tern_cpu_secs=$(echo "scale=2; (${st[13]} + ${st[14]}) / $tck" | bc)"
