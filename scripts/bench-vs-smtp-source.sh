#!/usr/bin/env bash
# bench-vs-smtp-source.sh - tern bench and Postfix's smtp-source loading the same server in turns.
#
# Usage: scripts/bench-vs-smtp-source.sh [-R rounds] [-s sessions] [-m messages] [-l body] [-d]
#                                        [-f from] [-t to] TARGET
#   TARGET is host:port of a server you run (tern serve, smtp-sink, Postfix...). Each round runs
#   smtp-source -s S -m M -l L and tern bench --sessions S --messages M --size L+130 (smtp-source
#   adds about 130 octets of header to its -l body; tern bench's --size is the whole message),
#   alternately first (S,T / T,S / ...), and times each from start to exit. -d keeps connections
#   (smtp-source -d, tern bench --reuse). TERN=/path picks the tern binary (default ./tern).
#
# Prints one line per round and the medians: messages/s by wall time for both, tern bench's own
# figure (timed from its first connection), the ratio tern bench / smtp-source, and the CPU
# seconds (user + system) each client used: what the load costs the generator itself.
set -euo pipefail

rounds=5 sessions=20 msgs=2000 body=5120 reuse= from=a@example.test to=b@example.test
usage() { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }
while getopts ":R:s:m:l:df:t:h" o; do
  case "$o" in
    R) rounds=$OPTARG ;;
    s) sessions=$OPTARG ;;
    m) msgs=$OPTARG ;;
    l) body=$OPTARG ;;
    d) reuse=1 ;;
    f) from=$OPTARG ;;
    t) to=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
target=$1
tern=${TERN:-./tern}
src=$(command -v smtp-source || echo /usr/sbin/smtp-source)
out=$(mktemp) cpu=$(mktemp)
trap 'rm -f "$out" "$cpu"' EXIT
TIMEFORMAT='%U %S' # for bash's time: the client's CPU seconds

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", n / (b - a) }'; }

run_source() {
  local t0 t1
  t0=$(now)
  { time "$src" -s "$sessions" -m "$msgs" -l "$body" ${reuse:+-d} -f "$from" -t "$to" "$target"; } 2>"$cpu"
  t1=$(now)
  printf '%s %s' "$(rate "$msgs" "$t0" "$t1")" "$(cpusecs)"
}

cpusecs() { awk '{ printf "%.2f", $1 + $2 }' "$cpu"; }

run_bench() {
  local t0 t1 own
  t0=$(now)
  { time "$tern" bench --server "$target" --sessions "$sessions" --messages "$msgs" --size $((body + 130)) \
    ${reuse:+--reuse} --from "$from" --to "$to" --json >"$out"; } 2>"$cpu"
  t1=$(now)
  own=$(sed -n 's/^  "messages_per_second": \([0-9.]*\),*$/\1/p' "$out")
  printf '%s %.1f %s' "$(rate "$msgs" "$t0" "$t1")" "$own" "$(cpusecs)"
}

median() { sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2f", m }'; }

src_rates=() bench_rates=() own_rates=() src_cpu=() bench_cpu=()
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then
    read -r s sc <<<"$(run_source)"; read -r b o bc <<<"$(run_bench)"
  else
    read -r b o bc <<<"$(run_bench)"; read -r s sc <<<"$(run_source)"
  fi
  src_rates+=("$s") bench_rates+=("$b") own_rates+=("$o") src_cpu+=("$sc") bench_cpu+=("$bc")
  echo "round $r: smtp-source=$s/s (cpu ${sc}s) tern_bench=$b/s (cpu ${bc}s; its own figure $o/s)"
done
ms=$(printf '%s\n' "${src_rates[@]}" | median)
mb=$(printf '%s\n' "${bench_rates[@]}" | median)
mo=$(printf '%s\n' "${own_rates[@]}" | median)
echo "median: smtp-source=$ms/s tern_bench=$mb/s tern_bench_own=$mo/s ratio=$(awk -v a="$mb" -v b="$ms" 'BEGIN { printf "%.2f", a / b }')" \
  "cpu_smtp_source=$(printf '%s\n' "${src_cpu[@]}" | median)s cpu_tern_bench=$(printf '%s\n' "${bench_cpu[@]}" | median)s"
