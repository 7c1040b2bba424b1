#!/usr/bin/env bash
# cpu-per-message.sh: the CPU time (user + system, /proc/PID/stat) a tern serve process spends
# per accepted message: Postfix's smtp-source (through ../shared/bench/smtp-load.sh, or
# SMTP_LOAD) sends M messages of L octets over S sessions, one connection per message, to a
# fresh tern with one account; the figure counts from before the load to the last message in
# the Maildir, so it covers the session, the queue and the local delivery. The inbound SPF/DKIM
# checks are off (no DNS here: their lookups would time out). Every tern is stopped by its PID.
#
#	scripts/cpu-per-message.sh [-R rounds] [-s sessions] [-m messages] [-l bytes] [TERN...]
#
# With several tern binaries (e.g. one built from an older commit), the rounds alternate
# between them (A,B / B,A / ...) and each binary's median is printed, with the ratio to the
# first: the machine's noise moves them together. Without one, the tree's tern is built.
set -euo pipefail

rounds=3 sessions=20 msgs=5000 size=5120
while getopts R:s:m:l: o; do
  case $o in
    R) rounds=$OPTARG ;; s) sessions=$OPTARG ;; m) msgs=$OPTARG ;; l) size=$OPTARG ;;
    *) echo "usage: $0 [-R rounds] [-s sessions] [-m messages] [-l bytes] [TERN...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

root=$(cd "$(dirname "$0")/.." && pwd)
load=${SMTP_LOAD:-$root/../shared/bench/smtp-load.sh}
[ -x "$load" ] || load=/work/shared/bench/smtp-load.sh
work=$(mktemp -d /tmp/tern-cpu.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  (cd "$root" && go build -o "$work/tern" ./cmd/tern)
  bins=("$work/tern")
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tck=$(getconf CLK_TCK)

# run BIN: one measured load against a fresh tern; prints microseconds of CPU per message.
run() {
  local bin=$1 smtp metrics a b
  smtp=127.0.0.1:$(free_port) metrics=127.0.0.1:$(free_port)
  rm -rf "$work/data"
  cat >"$work/tern.toml" <<EOF
data = "$work/data"
hostname = "cpu.test"
domains = ["example.test"]
[listen]
smtp = "$smtp"
submission = ""
submissions = ""
[metrics]
listen = "$metrics"
[inbound]
spf_dkim = false
EOF
  echo pw | "$bin" user add --config "$work/tern.toml" --password-stdin b@example.test >/dev/null
  "$bin" serve --config "$work/tern.toml" >"$work/tern.out" 2>"$work/tern.log" &
  pid=$!
  for _ in $(seq 100); do curl -fs "http://$metrics/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  "$load" -q -s "$sessions" -m 500 -l "$size" -w "$work/data/mail/example.test/b/Maildir" "$smtp" >/dev/null # warm up
  read -r -a a <"/proc/$pid/stat"
  "$load" -q -s "$sessions" -m "$msgs" -l "$size" -w "$work/data/mail/example.test/b/Maildir" "$smtp" >&2
  read -r -a b <"/proc/$pid/stat"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=
  echo "$(( (b[13] + b[14] - a[13] - a[14]) * 1000000 / tck / msgs ))"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(go version | cut -d' ' -f3)"
echo "load: $sessions sessions, $msgs messages of $size octets, $rounds rounds"
declare -A figs
for r in $(seq "$rounds"); do
  order=("${bins[@]}")
  if [ $((r % 2)) = 0 ]; then mapfile -t order < <(printf '%s\n' "${bins[@]}" | tac); fi
  for bin in "${order[@]}"; do
    us=$(run "$bin")
    echo "round=$r tern=$bin cpu_us_per_msg=$us"
    figs[$bin]="${figs[$bin]:-} $us"
  done
done
first=
for bin in "${bins[@]}"; do
  med=$(printf '%s\n' ${figs[$bin]} | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  [ -n "$first" ] || first=$med
  echo "tern=$bin median_cpu_us_per_msg=$med ratio=$(echo "scale=2; $med / $first" | bc)"
done
