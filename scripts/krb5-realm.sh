#!/usr/bin/env bash
# krb5-realm.sh: a throwaway MIT Kerberos realm on loopback, for the GSSAPI tests and for trying
# tern's GSSAPI by hand. Nothing outside DIR is touched: the KDC's database, stash, kdc.conf,
# krb5.conf and keytabs all live there, and KRB5_CONFIG / KRB5_KDC_PROFILE point at them.
#
#   krb5-realm.sh run   [DIR]   set the realm up (if needed), print the environment, then exec
#                               krb5kdc -n: the process the caller started IS the KDC, so the
#                               caller stops it by its PID (what test/gssapi_test.go does)
#   krb5-realm.sh start [DIR]   the same, with krb5kdc in the background; its PID goes to
#                               DIR/krb5kdc.pid and is printed as KDC_PID=
#   krb5-realm.sh stop   DIR    stop the KDC started by `start` (by its PID), keep DIR
#   krb5-realm.sh clean  DIR    stop it and remove DIR
#   krb5-realm.sh env    DIR    print the environment again
#
# Without DIR, a new directory is made with mktemp. Every command is idempotent: `run` and
# `start` on a DIR that holds a realm reuse it (and its keytabs), `stop` without a KDC does
# nothing. Settings (environment):
#   KRB5_REALM  the realm (default TERN.TEST)
#   KRB5_PORT   the KDC's port on 127.0.0.1, UDP and TCP (default 61088)
#   SMTP_HOST   the server's host name: the service principal is smtp/SMTP_HOST
#               (default mx.example.test, the host name of tern in the tests)
#
# Principals (password = name + "-pw"): alice (the user, a tern account in the tests), bob (a
# user with no tern account), smtp/SMTP_HOST (its keys in DIR/smtp.keytab) and
# smtp/other.example.test (another server: DIR/other.keytab). DIR/alice.keytab holds alice's keys
# (made with -norandkey, so her password keeps working) for clients that log in with a keytab.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
realm=${KRB5_REALM:-TERN.TEST}
port=${KRB5_PORT:-61088}
host=${SMTP_HOST:-mx.example.test}
other=other.example.test

die() { echo "krb5-realm: $*" >&2; exit 1; }

need() {
  local missing=()
  for c in krb5kdc kdb5_util kadmin.local kinit; do
    command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || missing+=("$c")
  done
  ((${#missing[@]} == 0)) || die "missing ${missing[*]}: install krb5-kdc, krb5-admin-server and krb5-user (scripts/test-deps.sh)"
  PATH=$PATH:/usr/sbin
}

# printenv_ prints the settings a client needs, as shell assignments.
printenv_() {
  cat <<EOF
KRB5_CONFIG=$dir/krb5.conf
KRB5_KDC_PROFILE=$dir/kdc.conf
KRB5_REALM=$realm
KRB5_KDC=127.0.0.1:$(cat "$dir/port")
KRB5_SMTP_KEYTAB=$dir/smtp.keytab
KRB5_OTHER_KEYTAB=$dir/other.keytab
KRB5_ALICE_KEYTAB=$dir/alice.keytab
EOF
}

# setup creates the realm in $dir unless it is there already.
setup() {
  if [ -z "$dir" ]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tern-krb5-XXXXXX")
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  export KRB5_CONFIG=$dir/krb5.conf KRB5_KDC_PROFILE=$dir/kdc.conf
  if [ -f "$dir/port" ]; then
    port=$(cat "$dir/port") # the realm's files name the port it was made with
  fi
  # The KDC: loopback only, its own database and log, ticket life up to 10h, no replay cache
  # trouble for the tests (the KDC keeps none for AS/TGS by default anyway).
  cat >"$dir/kdc.conf" <<EOF
[kdcdefaults]
    kdc_listen = 127.0.0.1:$port
    kdc_tcp_listen = 127.0.0.1:$port

[realms]
    $realm = {
        database_name = $dir/principal
        key_stash_file = $dir/stash
        acl_file = $dir/kadm5.acl
        max_life = 10h 0m 0s
        max_renewable_life = 1d 0h 0m 0s
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
        default_principal_flags = +preauth
    }

[logging]
    kdc = FILE:$dir/kdc.log
EOF
  # The clients': the realm of every *.example.test and *.tern.test host is $realm; no DNS
  # lookups (the names are not in DNS) and no reverse lookups.
  cat >"$dir/krb5.conf" <<EOF
[libdefaults]
    default_realm = $realm
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
    ignore_acceptor_hostname = false

[realms]
    $realm = {
        kdc = 127.0.0.1:$port
    }

[domain_realm]
    .example.test = $realm
    example.test = $realm
    .tern.test = $realm
    tern.test = $realm
EOF
  : >"$dir/kadm5.acl"
  echo "$port" >"$dir/port"
  if [ ! -f "$dir/principal" ]; then
    kdb5_util create -s -r "$realm" -P "master-$$-$RANDOM" >"$dir/setup.log" 2>&1 ||
      { cat "$dir/setup.log" >&2; die "kdb5_util create failed"; }
  fi
  local p
  for p in alice bob "smtp/$host" "smtp/$other"; do
    if ! kadmin.local -r "$realm" -q "getprinc $p" 2>/dev/null | grep -q "^Principal: $p@"; then
      kadmin.local -r "$realm" -q "addprinc -pw ${p//\//-}-pw $p" >>"$dir/setup.log" 2>&1 ||
        { cat "$dir/setup.log" >&2; die "addprinc $p failed"; }
    fi
  done
  # ktadd gives the service a new random key (and kvno) each time: only when the keytab is
  # missing, so that a second run keeps the keytabs in use valid.
  [ -f "$dir/smtp.keytab" ] || kadmin.local -r "$realm" -q "ktadd -k $dir/smtp.keytab smtp/$host" >>"$dir/setup.log" 2>&1
  [ -f "$dir/other.keytab" ] || kadmin.local -r "$realm" -q "ktadd -k $dir/other.keytab smtp/$other" >>"$dir/setup.log" 2>&1
  [ -f "$dir/alice.keytab" ] || kadmin.local -r "$realm" -q "ktadd -norandkey -k $dir/alice.keytab alice" >>"$dir/setup.log" 2>&1
  for f in smtp.keytab other.keytab alice.keytab; do
    [ -s "$dir/$f" ] || { cat "$dir/setup.log" >&2; die "ktadd did not write $dir/$f"; }
  done
}

# stop_ stops the KDC recorded in $dir/krb5kdc.pid, if it still runs (and is a krb5kdc).
stop_() {
  local pidf=$dir/krb5kdc.pid pid
  [ -f "$pidf" ] || return 0
  pid=$(cat "$pidf")
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = krb5kdc ]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidf"
}

case "$cmd" in
  run)
    need
    setup
    printenv_
    echo "KDC_PID=$$"
    echo "$$" >"$dir/krb5kdc.pid"
    exec krb5kdc -n -r "$realm"
    ;;
  start)
    need
    setup
    stop_
    krb5kdc -n -r "$realm" </dev/null >>"$dir/kdc.out" 2>&1 &
    echo $! >"$dir/krb5kdc.pid"
    printenv_
    echo "KDC_PID=$!"
    ;;
  stop)
    [ -n "$dir" ] || die "stop: which DIR?"
    [ -d "$dir" ] || exit 0
    stop_
    ;;
  clean)
    [ -n "$dir" ] || die "clean: which DIR?"
    [ -d "$dir" ] || exit 0
    stop_
    rm -rf "$dir"
    ;;
  env)
    [ -n "$dir" ] && [ -f "$dir/port" ] || die "env: no realm in ${dir:-(no DIR)}"
    dir=$(cd "$dir" && pwd)
    printenv_
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
