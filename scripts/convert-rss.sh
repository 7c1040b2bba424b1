#!/usr/bin/env bash
# convert-rss.sh: what relaying a large 8-bit message to a server without 8BITMIME costs a tern
# serve process: its peak RSS (VmHWM) above its RSS before, and its CPU time, per message. A
# user submits M messages of L octets of 8-bit text (BODY=8BITMIME, with tern send) one after the
# other; tern relays each to Postfix's smtp-sink, started with -8 (no 8BITMIME), as its
# relayhost, and so converts it to quoted-printable. Each figure counts until the log says the
# last one was delivered. Every process is stopped by its PID.
#
#	scripts/convert-rss.sh [-R rounds] [-m messages] [-l bytes] [-a address] [TERN...]
#
# With several binaries (e.g. one built from an older commit) the rounds alternate between them
# (A,B / B,A / ...). The data directory is on /mnt/j when it exists (a journalled file system).
set -euo pipefail

rounds=2 msgs=3 size=$((24 << 20)) addr=127.0.0.42
while getopts R:m:l:a: o; do
  case $o in
    R) rounds=$OPTARG ;; m) msgs=$OPTARG ;; l) size=$OPTARG ;; a) addr=$OPTARG ;;
    *) echo "usage: $0 [-R rounds] [-m messages] [-l bytes] [-a address] [TERN...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

root=$(cd "$(dirname "$0")/.." && pwd)
base=/tmp
[ -d /mnt/j ] && [ -w /mnt/j ] && base=/mnt/j
work=$(mktemp -d "$base/tern-convert.XXXXXX")
chmod 755 "$work"
pid= sinkpid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "$sinkpid" ]; then kill -TERM "$sinkpid" 2>/dev/null || true; wait "$sinkpid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  (cd "$root" && go build -o "$work/tern" ./cmd/tern)
  bins=("$work/tern")
fi
free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$addr"; }
tck=$(getconf CLK_TCK)

# The message: 8-bit UTF-8 text lines, Content-Transfer-Encoding 8bit.
python3 - "$size" >"$work/msg.eml" <<'EOF'
import sys
size = int(sys.argv[1])
out = sys.stdout.buffer
head = (b"From: a@example.test\r\nTo: x@remote.test\r\nSubject: large 8-bit\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
line = "Gr\u00fc\u00dfe aus K\u00f6ln = 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n".encode()
out.write(head)
n = len(head)
while n + len(line) <= size:
    out.write(line)
    n += len(line)
EOF

sinkport=$(free_port)
sinkargs=(-8 "$addr:$sinkport" 100)
if [ "$(id -u)" = 0 ]; then sinkargs=(-u nobody "${sinkargs[@]}"); fi
smtp-sink "${sinkargs[@]}" &
sinkpid=$!

# run BIN: one measured load against a fresh tern; prints "peak_rss_growth_kB cpu_ms_per_message".
run() {
  local bin=$1 sub smtp a b rss0 hwm
  sub=$addr:$(free_port) smtp=$addr:$(free_port)
  rm -rf "$work/data"
  cat >"$work/tern.toml" <<EOF
data = "$work/data"
hostname = "convert.test"
domains = ["example.test"]
[listen]
smtp = "$smtp"
submission = "$sub"
submissions = ""
[limits]
message_size = $((size + (1 << 20)))
[inbound]
spf_dkim = false
[delivery]
relayhost = "$addr:$sinkport"
EOF
  echo pw | "$bin" user add --config "$work/tern.toml" --password-stdin a@example.test >/dev/null
  "$bin" serve --config "$work/tern.toml" >"$work/tern.out" 2>"$work/tern.log" &
  pid=$!
  for _ in $(seq 100); do
    python3 -c 'import socket,sys; h,p=sys.argv[1].rsplit(":",1); socket.create_connection((h,int(p)),1)' "$sub" 2>/dev/null && break
    sleep 0.1
  done
  rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  read -r -a a <"/proc/$pid/stat"
  for _ in $(seq "$msgs"); do
    echo pw | "$bin" send --server "$sub" --user a@example.test --password-stdin --allow-cleartext \
      --from a@example.test --to x@remote.test --data "$work/msg.eml" >/dev/null
  done
  for _ in $(seq 600); do
    [ "$(grep -c 'remote: outcome.*status=delivered' "$work/tern.log")" -ge "$msgs" ] && break
    sleep 0.1
  done
  read -r -a b <"/proc/$pid/stat"
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  grep -q 'converted to 7 bits' "$work/tern.log" || echo "warning: no conversion in the log" >&2
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=
  echo "$((hwm - rss0)) $(( (b[13] + b[14] - a[13] - a[14]) * 1000 / tck / msgs ))"
}

echo "machine: $(nproc) cores; $(go version | cut -d' ' -f3); $msgs messages of $size octets, $rounds rounds"
for r in $(seq "$rounds"); do
  order=("${bins[@]}")
  if [ $((r % 2)) = 0 ]; then mapfile -t order < <(printf '%s\n' "${bins[@]}" | tac); fi
  for bin in "${order[@]}"; do
    read -r kb ms < <(run "$bin")
    echo "round $r $(basename "$bin"): peak RSS +$((kb / 1024)) MB, ${ms} ms CPU per message"
  done
done
