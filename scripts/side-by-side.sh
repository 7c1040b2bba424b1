#!/usr/bin/env bash
# side-by-side.sh: two or more tern binaries up at once, on their defaults (inbound SPF/DKIM/
# DMARC on, DNS to a resolver that refuses: 127.0.0.1:9), each with its own data directory and
# loopback address (127.0.0.50, .51, ...), loaded in turn by the same smtp-load.sh run (A B, then
# B A, ...), each run timed end to end (to the last file in the Maildir) with the server's CPU
# time per message (user+system from /proc). Both see the same minutes of a noisy machine.
#
#	scripts/side-by-side.sh [-R rounds] [-d DIR] [-- smtp-load options] TERN_A TERN_B [...]
#
# -d puts the data directories under DIR (default /tmp; e.g. a journalled file system).
# Example: scripts/side-by-side.sh -R 4 -d /mnt/j -- -s 20 -m 2000 -l 5120 /tmp/tern-old /tmp/tern-new
set -euo pipefail

rounds=4 dir=${TMPDIR:-/tmp}
while getopts R:d: o; do
  case $o in
    R) rounds=$OPTARG ;; d) dir=$OPTARG ;;
    *) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
load=()   # getopts has eaten the "--": what starts with "-" now is smtp-load's
[ "${1:-}" != -- ] || shift
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do load+=("$1" "$2"); shift 2; done
[ ${#load[@]} -gt 0 ] || load=(-s 20 -m 2000 -l 5120)
[ $# -ge 2 ] || { echo "usage: $0 [-R rounds] [-d DIR] [-- load options] TERN_A TERN_B [...]" >&2; exit 2; }
bins=("$@")
root=$(cd "$(dirname "$0")/.." && pwd)
smtpload=$root/../shared/bench/smtp-load.sh
[ -x "$smtpload" ] || smtpload=/work/shared/bench/smtp-load.sh

data=() pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for d in "${data[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT
for i in "${!bins[@]}"; do
  d=$(mktemp -d "$dir/side-by-side.XXXXXX")
  data+=("$d")
  echo pw | "${bins[$i]}" user add --data "$d" --domain example.test --password-stdin b@example.test >/dev/null
  "${bins[$i]}" serve --data "$d" --domain example.test --resolver 127.0.0.1:9 \
    --smtp "127.0.0.5$i:2525" --submission "" --submissions "" >"$d/log" 2>&1 &
  pids+=($!)
done
for i in "${!bins[@]}"; do   # up, and warm (the first lookups, the first files)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.5$i/2525") 2>/dev/null && break; sleep 0.1; done
  "$smtpload" -q -s 10 -m 300 -l 5120 -w "${data[$i]}/mail/example.test/b/Maildir" "127.0.0.5$i:2525" >/dev/null
done
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for r in $(seq "$rounds"); do
  order=("${!bins[@]}")
  [ $((r % 2)) = 1 ] || order=($(printf '%s\n' "${order[@]}" | sort -rn))
  for i in "${order[@]}"; do
    c0=$(cpu "${pids[$i]}")
    line=$("$smtpload" -q "${load[@]}" -w "${data[$i]}/mail/example.test/b/Maildir" "127.0.0.5$i:2525")
    c1=$(cpu "${pids[$i]}")
    msgs=$(sed 's/.*msgs=\([0-9]*\).*/\1/' <<<"$line")
    ticks=$(getconf CLK_TCK)
    printf 'round=%d tern=%s %s cpu_ms_per_msg=%s\n' "$r" "${bins[$i]}" "$(grep -o 'e2e_rate=[0-9.]*/s' <<<"$line")" \
      "$(awk -v c=$((c1 - c0)) -v m="$msgs" -v t="$ticks" 'BEGIN { printf "%.3f", c * 1000 / t / m }')"
  done
done
