#!/usr/bin/env bash
# bench-relay.sh: how fast tern relays mail to another server, against a stock Postfix doing the
# same job in the same run. Everything stays on 127.0.0.1; every process started is stopped by
# its PID on exit. Run as root (postfix start needs it): scripts/bench-relay.sh [-R rounds]
# [-m messages] [-c connections] [-l bytes]
#
# The world: Postfix's smtp-sink (accepts and discards) is the destination. tern (tern serve
# --relayhost 127.0.0.1:SINK) and a private Postfix (relayhost = [127.0.0.1]:SINK, mynetworks
# loopback) are the two relays, each on its stock queue settings (tern: queue.workers 8;
# Postfix: destination concurrency 20, connection cache on). One injector (Python's smtplib,
# the same for both) sends M messages of L bytes over C connections, several transactions per
# connection; to tern it logs in first (AUTH PLAIN, loopback), to Postfix it relays as
# mynetworks. Rounds alternate (P,T / T,P / ...).
#
# Two figures per relay and round, from the first MAIL FROM:
#   accept  seconds until the injector had the last 250 (every message queued, fsynced)
#   relayed seconds until the relay's queue was empty again (all handed to the sink)
# and the medians at the end, with ratio = Postfix time / tern time (above 1: tern is faster).
#
# DKIM=rsa, DKIM=ed25519 or DKIM=rsa,ed25519 gives local.test those keys first, so that tern
# signs every message it relays (the cost of signing: run it with and without, back to back,
# and compare tern_cpu, the CPU time of the tern process per message, first of all).
set -euo pipefail

rounds=3 msgs=1000 conns=8 size=5120
while getopts R:m:c:l: o; do
  case $o in
    R) rounds=$OPTARG ;; m) msgs=$OPTARG ;; c) conns=$OPTARG ;; l) size=$OPTARG ;;
    *) echo "usage: $0 [-R rounds] [-m messages] [-c connections] [-l bytes]" >&2; exit 2 ;;
  esac
done

die() { echo "bench-relay: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (postfix start needs it)"
PATH=$PATH:/usr/sbin
for c in postfix smtp-sink python3 go; do command -v $c >/dev/null || die "missing $c (scripts/test-deps.sh)"; done

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/tern-bench-relay.XXXXXX)
chmod 755 "$work"
sink_pid= tern_pid= pf_conf=

# free_port prints a TCP port on 127.0.0.1 that nobody listens on right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

stop_pid() { # PID: TERM, wait up to 10 s, then KILL
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$tern_pid"
  if [ -n "$pf_conf" ]; then
    local mpid
    mpid=$(tr -dc 0-9 <"$work/pf/queue/pid/master.pid" 2>/dev/null || true)
    postfix -c "$pf_conf" stop >/dev/null 2>&1 || true
    [ -z "$mpid" ] || stop_pid "$mpid"
  fi
  stop_pid "$sink_pid"
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_port() { # HOST:PORT
  local i
  for i in $(seq 100); do
    python3 -c 'import socket,sys; h,p=sys.argv[1].rsplit(":",1); socket.create_connection((h,int(p)),1).close()' "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on $1"
}

# ---- the sink --------------------------------------------------------------------------------
sink=127.0.0.1:$(free_port)
# -u nobody: it drops root; backlog 256. It says PIPELINING and 8BITMIME, no STARTTLS.
smtp-sink -u nobody "$sink" 256 >/dev/null 2>&1 &
sink_pid=$!
wait_port "$sink"

# ---- tern --------------------------------------------------------------------------------------
go build -o "$work/tern" "$root/cmd/tern"
tern_addr=127.0.0.1:$(free_port)
printf 'bench-password\n' | "$work/tern" user add --data "$work/tern-data" --domain local.test --password-stdin alice@local.test >/dev/null
dkim=${DKIM:-}
for alg in ${dkim//,/ }; do
  "$work/tern" dkim keygen local.test --data "$work/tern-data" --algorithm "$alg" >/dev/null
done
"$work/tern" serve --data "$work/tern-data" --hostname relay.local.test --domain local.test \
  --smtp "$tern_addr" --submission "" --submissions "" \
  --relayhost "$sink" --resolver 127.0.0.1:9 >"$work/tern.log" 2>&1 &
tern_pid=$!
wait_port "$tern_addr"

# ---- Postfix -------------------------------------------------------------------------------------
pf_addr=127.0.0.1:$(free_port)
pf=$work/pf pf_conf=$work/pf/conf
mkdir -p "$pf_conf" "$pf/queue" "$pf/data"
chown postfix: "$pf/data"
cat >"$pf_conf/main.cf" <<MAIN
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
maillog_file = $pf/maillog
maillog_file_prefixes = $work
myhostname = pfrelay.local.test
mydomain = local.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
relay_domains =
alias_maps =
alias_database =
biff = no
relayhost = [${sink%:*}]:${sink##*:}
smtp_tls_security_level = may
MAIN
cat >"$pf_conf/master.cf" <<MASTER
$pf_addr inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
postlog   unix-dgram n  -       n       -       1       postlogd
MASTER
postfix -c "$pf_conf" check || { tail "$pf/maillog" >&2; die "postfix check failed"; }
postfix -c "$pf_conf" start >/dev/null 2>&1 || { tail "$pf/maillog" >&2; die "postfix start failed"; }
wait_port "$pf_addr"

# ---- one round -----------------------------------------------------------------------------------
# inject KIND ADDR prints the accept and relayed times.
inject() {
  python3 - "$1" "$2" "$msgs" "$conns" "$size" "$work" "$pf_conf" <<'PY'
import smtplib, subprocess, sys, threading, time
kind, addr, msgs, conns, size, work, pfconf = sys.argv[1:]
host, port = addr.rsplit(":", 1)
msgs, conns, size = int(msgs), int(conns), int(size)
line = ("x" * 76 + "\r\n").encode()
body = b"Subject: relay bench\r\nFrom: alice@local.test\r\nTo: bob@remote.test\r\n\r\n" + line * max(1, size // len(line))
errors = []
def worker(n):
    try:
        s = smtplib.SMTP(host, int(port), local_hostname="bench.local.test", timeout=120)
        s.ehlo()
        if kind == "tern":
            s.login("alice@local.test", "bench-password")
        for _ in range(n):
            s.sendmail("alice@local.test", ["bob@remote.test"], body)
        s.quit()
    except Exception as e:
        errors.append(repr(e))
def queue_empty():
    if kind == "tern":
        out = subprocess.run([work + "/tern", "queue", "list", "--data", work + "/tern-data"], capture_output=True, text=True)
        return "Mail queue is empty" in out.stdout
    out = subprocess.run(["postqueue", "-c", pfconf, "-p"], capture_output=True, text=True)
    return "Mail queue is empty" in out.stdout
share = [msgs // conns + (1 if i < msgs % conns else 0) for i in range(conns)]
start = time.monotonic()
ts = [threading.Thread(target=worker, args=(n,)) for n in share]
for t in ts: t.start()
for t in ts: t.join()
accepted = time.monotonic() - start
if errors:
    sys.exit("injector: " + errors[0])
while not queue_empty():
    if time.monotonic() - start > 600:
        sys.exit("injector: queue not empty after 600 s")
    time.sleep(0.1)
print("%.3f %.3f" % (accepted, time.monotonic() - start))
PY
}

echo "bench-relay: $msgs messages of $size bytes over $conns connections, $rounds rounds; sink $sink" >&2
: >"$work/results"
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="postfix tern"; else order="tern postfix"; fi
  for k in $order; do
    if [ $k = tern ]; then a=$tern_addr; else a=$pf_addr; fi
    read -r acc rel < <(inject $k "$a")
    echo "round $r $k accept=${acc}s relayed=${rel}s" >&2
    echo "$k $acc $rel" >>"$work/results"
  done
done
python3 - "$work/results" "$msgs" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
msgs = int(sys.argv[2])
med = {k: [statistics.median(float(r[i]) for r in rows if r[0] == k) for i in (1, 2)] for k in ("tern", "postfix")}
for k, (a, r) in med.items():
    print("%s_accept=%.2fs (%.0f/s) %s_relayed=%.2fs (%.0f/s)" % (k, a, msgs / a, k, r, msgs / r))
print("ratio_accept=%.3f ratio_relayed=%.3f" % (med["postfix"][0] / med["tern"][0], med["postfix"][1] / med["tern"][1]))
PY
# tern's own CPU (user + system, all rounds): less noisy than the times on a shared machine, and
# what DKIM signing adds to each message.
awk -v n=$((rounds * msgs)) -v hz="$(getconf CLK_TCK)" '{ printf "tern_cpu=%.3fms/msg\n", ($14 + $15) * 1000 / hz / n }' "/proc/$tern_pid/stat"
