#!/bin/bash
# issue17-goals.sh TERN DIR: every throughput goal of issue 17 in one run, on the file system of
# DIR (tern's data, Postfix's instance and the dd files all go there): compare.sh -M against a
# private Postfix at 20 sessions 5 KB, 1 session 5 KB and 10 sessions 100 KB; tern end to end
# against Postfix's smtp-sink (stores nothing) at 20 and 1 sessions, alternating; 10 MB messages
# against smtp-sink and dd conv=fsync. tern on 127.0.0.61, smtp-sink on 127.0.0.62, Postfix on
# 127.0.0.61:2526; every process is stopped by its PID. Needs root (smtp-sink -u nobody, Postfix).
#
#	scripts/issue17-goals.sh ./tern /mnt/j
set -uo pipefail
BIN=$1 FS=$2
root=$(cd "$(dirname "$0")/.." && pwd)
B=$root/../shared/bench
[ -x "$B/compare.sh" ] || B=/work/shared/bench
echo "== $(date -u +%H:%M:%S) $BIN on $FS ($(findmnt -n -o SOURCE,FSTYPE --target $FS)) load: $(cut -d' ' -f1-3 /proc/loadavg)"
$B/fsync-rate.sh $FS 3 2>&1 | tail -3
D=$(mktemp -d $FS/final.XXXX)
echo pw | $BIN user add --data $D --domain example.test --password-stdin b@example.test >/dev/null 2>&1
$BIN serve --data $D --domain example.test --resolver 127.0.0.1:9 --smtp 127.0.0.61:2525 --submission "" --submissions "" >$D/log 2>&1 &
P=$!
smtp-sink -u nobody 127.0.0.62:2525 1000 & S=$!
sleep 1
M=$D/mail/example.test/b/Maildir
cmp() { PF_LISTEN=127.0.0.61:2526 TMPDIR=$FS $B/compare.sh "$@" -M $M 127.0.0.61:2525 2>/dev/null | grep -v "^postfix-baseline"; }
echo "-- 20 sessions 5 KB";  cmp -R 5 -s 20 -m 2000 -l 5120
echo "-- 1 session 5 KB";    cmp -R 5 -s 1 -m 500 -l 5120
echo "-- 10 sessions 100 KB"; cmp -R 3 -s 10 -m 500 -l 102400
echo "-- smtp-sink vs tern e2e, 20 sessions 5 KB, alternating"
for r in 1 2 3; do
  $B/smtp-load.sh -q -s 20 -m 2000 -l 5120 127.0.0.62:2525 | sed 's/^/sink /'
  $B/smtp-load.sh -q -s 20 -m 2000 -l 5120 -w $M 127.0.0.61:2525 | sed 's/^/tern /'
done
echo "-- smtp-sink vs tern e2e, 1 session 5 KB, alternating"
for r in 1 2 3; do
  $B/smtp-load.sh -q -s 1 -m 500 -l 5120 127.0.0.62:2525 | sed 's/^/sink /'
  $B/smtp-load.sh -q -s 1 -m 500 -l 5120 -w $M 127.0.0.61:2525 | sed 's/^/tern /'
done
echo "-- 10 MB: smtp-sink, tern e2e, dd conv=fsync (5 x 10 MB each)"
for r in 1 2 3; do
  $B/smtp-load.sh -q -s 1 -m 5 -l 10000000 127.0.0.62:2525 | sed 's/^/sink /'
  $B/smtp-load.sh -q -s 1 -m 5 -l 10000000 -w $M 127.0.0.61:2525 | sed 's/^/tern /'
  for i in 1 2 3 4 5; do dd if=/dev/zero of=$FS/dd.$i bs=64k count=153 conv=fsync 2>&1 | tail -1; done | awk '{b+=$1; t+=$(NF-3)} END {printf "dd MB/s (5 x 10 MB) %.0f\n", b/t/1e6}'
  rm -f $FS/dd.*
done
kill $P $S; wait $P 2>/dev/null
echo "server log errors: $(grep -c 'level=ERROR' $D/log)"
rm -rf $D
echo "== $(date -u +%H:%M:%S) done, load: $(cut -d' ' -f1-3 /proc/loadavg)"
