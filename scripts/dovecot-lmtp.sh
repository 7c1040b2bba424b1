#!/usr/bin/env bash
# dovecot-lmtp.sh: a private Dovecot LMTP server on loopback, for the LMTP delivery tests and for
# trying tern's LMTP delivery by hand. Nothing outside DIR is touched: Dovecot's config, base_dir
# (sockets, master.pid), state_dir, log and the mailboxes all live there, and every command
# passes -c DIR/dovecot.conf, so a system Dovecot, if any, is left alone.
#
#   dovecot-lmtp.sh run   [DIR]   write the config, print the environment, then exec dovecot -F:
#                                 the process the caller started IS the Dovecot master, so the
#                                 caller stops it by its PID (what internal/delivery/lmtp does)
#   dovecot-lmtp.sh start [DIR]   the same, with Dovecot in the background; its PID (read from
#                                 DIR/run/master.pid) is printed as DOVECOT_PID=
#   dovecot-lmtp.sh stop   DIR    stop the Dovecot of DIR (by its PID), keep DIR
#   dovecot-lmtp.sh clean  DIR    stop it and remove DIR
#   dovecot-lmtp.sh env    DIR    print the environment again
#
# Without DIR, a new directory is made with mktemp. Every command is idempotent: `start` on a
# DIR whose Dovecot runs rewrites the config and reloads it; `run` there fails (one master per
# DIR); `stop` without a Dovecot does nothing. Settings (environment):
#   LMTP_PORT          the LMTP port on 127.0.0.1 (default 61024); 0 for the unix socket only.
#                      The socket is always there: DIR/run/lmtp (Addr "unix:DIR/run/lmtp").
#   LMTP_USERS         the accounts, full addresses separated by spaces (default
#                      "alice@example.test bob@example.test"). LMTP accepts only these and
#                      answers 550 5.1.1 at RCPT for any other. USER=QUOTA (carol@example.test=1K)
#                      gives a storage quota, for a refusal after DATA (552 5.2.2).
#   LMTP_SIEVE_JUNK    1: file messages with "X-Spam-Flag: YES" (what tern puts on a message
#                      DMARC quarantines) into the folder Junk (DIR/.../Maildir/.Junk), by a
#                      sieve_before script, as a Dovecot with Pigeonhole is usually set up.
#                      Needs dovecot-sieve. Default: no Sieve.
#   DOVECOT_MAIL_USER  as root only: the system user that owns the mail (default nobody).
#                      Dovecot never accesses mail as uid 0, so as root the mail belongs to this
#                      user, who must be able to reach DIR (chmod o+x on DIR and its parents).
#                      Without root, the mail is the caller's.
#
# Mail is stored as Maildir at DIR/mail/<domain>/<local part>/Maildir, tern's own Maildir
# layout; read it with: doveadm -c DIR/dovecot.conf fetch -u USER text mailbox INBOX all
set -euo pipefail

cmd=${1:-}
dir=${2:-}
port=${LMTP_PORT:-61024}
users=${LMTP_USERS:-alice@example.test bob@example.test}

die() { echo "dovecot-lmtp: $*" >&2; exit 1; }

need() {
  PATH=$PATH:/usr/sbin
  local missing=()
  command -v dovecot >/dev/null 2>&1 || missing+=(dovecot)
  command -v doveadm >/dev/null 2>&1 || missing+=(doveadm)
  # The lmtp service binary (Debian: dovecot-lmtpd) is in Dovecot's libexec directory.
  [ -x /usr/lib/dovecot/lmtp ] || [ -x /usr/libexec/dovecot/lmtp ] || missing+=(lmtp)
  ((${#missing[@]} == 0)) || die "missing ${missing[*]}: install dovecot-core and dovecot-lmtpd (scripts/test-deps.sh)"
}

# printenv_ prints what a client needs, as shell assignments.
printenv_() {
  local p
  p=$(cat "$dir/port")
  echo "DOVECOT_CONF=$dir/dovecot.conf"
  echo "DOVECOT_LOG=$dir/dovecot.log"
  echo "LMTP_SOCKET=$dir/run/lmtp"
  [ "$p" = 0 ] || echo "LMTP_ADDR=127.0.0.1:$p"
  echo "MAIL_ROOT=$dir/mail"
}

# pid_ prints the PID of the Dovecot master of $dir, if one runs.
pid_() {
  local pid
  pid=$(cat "$dir/run/master.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dovecot ] && running_ "$pid" || return 1
  echo "$pid"
}

# setup writes DIR/dovecot.conf and DIR/users.
setup() {
  if [ -z "$dir" ]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tern-dovecot-XXXXXX")
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  case "$port" in '' | *[!0-9]*) die "LMTP_PORT must be a number, not '$port'" ;; esac
  mkdir -p "$dir/run" "$dir/state" "$dir/mail" "$dir/home"

  # Who owns the mail, and who runs Dovecot's own processes.
  local uid gid iuser igroup
  if [ "$(id -u)" -eq 0 ]; then
    local mu=${DOVECOT_MAIL_USER:-nobody}
    uid=$(id -u "$mu") && gid=$(id -g "$mu") || die "no user $mu (DOVECOT_MAIL_USER)"
    [ "$uid" -ne 0 ] || die "DOVECOT_MAIL_USER must not be root: Dovecot refuses mail access as uid 0"
    # The internal processes (auth, config, log) run as root, so the private files in DIR
    # need no other owner than the caller.
    iuser=root igroup=root
    chown "$uid:$gid" "$dir/mail" "$dir/home"
    if command -v setpriv >/dev/null 2>&1 &&
      ! setpriv --reuid="$uid" --regid="$gid" --clear-groups test -w "$dir/mail" -a -x "$dir/mail"; then
      die "user $mu (uid $uid) cannot reach $dir/mail: make $dir and its parents searchable (chmod o+x), or set DOVECOT_MAIL_USER"
    fi
  else
    uid=$(id -u) gid=$(id -g) iuser=$(id -un) igroup=$(id -gn)
  fi

  # The accounts: a passwd-file that serves as passdb (no password: nobody can log in, and
  # there is no login service anyway) and as userdb. A userdb that knows only these users is
  # what makes LMTP refuse the others at RCPT (550 5.1.1).
  : >"$dir/users.new"
  local u addr quota
  for u in $users; do
    addr=${u%%=*}
    case "$addr" in
      *[!A-Za-z0-9._+@-]* | *@*@* | @* | *@ | *..*) die "bad user '$addr' in LMTP_USERS" ;;
      *@*) ;;
      *) die "user '$addr' in LMTP_USERS is not a full address" ;;
    esac
    if [ "$u" != "$addr" ]; then
      quota=${u#*=}
      case "$quota" in '' | *[!0-9KMGT]* | [KMGT]*) die "bad quota '$quota' for $addr (e.g. 1K, 10M)" ;; esac
      echo "$addr:::::::userdb_quota_rule=*:storage=$quota" >>"$dir/users.new"
    else
      echo "$addr:::::::" >>"$dir/users.new"
    fi
  done
  mv "$dir/users.new" "$dir/users"

  local sieve=""
  if [ "${LMTP_SIEVE_JUNK:-}" = 1 ]; then
    command -v sievec >/dev/null 2>&1 || die "LMTP_SIEVE_JUNK=1 needs Pigeonhole: install dovecot-sieve (scripts/test-deps.sh)"
    cat >"$dir/junk.sieve" <<'EOF'
require ["fileinto", "mailbox"];
if header :contains "X-Spam-Flag" "YES" {
  fileinto :create "Junk";
  stop;
}
EOF
    sieve="# LMTP_SIEVE_JUNK=1: what the usual Sieve setup does with a message marked as spam.
protocol lmtp {
  mail_plugins = \$mail_plugins sieve
}
plugin {
  sieve_before = $dir/junk.sieve
}"
  fi

  local listener="port = 0"
  [ "$port" = 0 ] || listener="address = 127.0.0.1
    port = $port"
  cat >"$dir/dovecot.conf.new" <<EOF
# Written by scripts/dovecot-lmtp.sh; rewritten by every run/start.
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
ssl = no
protocols = lmtp
listen = 127.0.0.1
default_internal_user = $iuser
default_internal_group = $igroup
default_login_user = $iuser
first_valid_uid = $uid
first_valid_gid = $gid

# tern's Maildir layout: <root>/<domain>/<local part>/Maildir.
mail_location = maildir:$dir/mail/%d/%n/Maildir
# Deliver to INBOX even for user+detail@domain.
lmtp_save_to_detail_mailbox = no
# Quota, for the users given one (LMTP_USERS user=QUOTA): a refusal after DATA, per recipient.
mail_plugins = \$mail_plugins quota
plugin {
  quota = maildir:User quota
}

passdb {
  driver = passwd-file
  args = $dir/users
}
userdb {
  driver = passwd-file
  args = $dir/users
  default_fields = uid=$uid gid=$gid home=$dir/home/%d/%n
}

# anvil chroots to base_dir/empty by default, which only root may do.
service anvil {
  chroot =
}
service lmtp {
  inet_listener lmtp {
    $listener
  }
  unix_listener lmtp {
    mode = 0666
  }
}
$sieve
EOF
  mv "$dir/dovecot.conf.new" "$dir/dovecot.conf"
  echo "$port" >"$dir/port"
  dovecot -c "$dir/dovecot.conf" -n >/dev/null 2>"$dir/config.err" ||
    { cat "$dir/config.err" >&2; die "Dovecot refuses the config"; }
  # Compiled now: the mail user cannot write the binary next to the script.
  [ -z "$sieve" ] || sievec -c "$dir/dovecot.conf" "$dir/junk.sieve" ||
    die "sievec refuses $dir/junk.sieve"
}

# running_ tells whether process $1 runs: it exists and is no zombie (an exited master that
# init has not reaped yet is done).
running_() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# stop_ stops the Dovecot master of $dir (which stops its children), if it runs.
stop_() {
  local pid
  pid=$(pid_) || { rm -f "$dir/run/master.pid"; return 0; }
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    running_ "$pid" || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/run/master.pid"
}

if [ -n "$dir" ] && [ -d "$dir" ]; then
  dir=$(cd "$dir" && pwd)
fi

case "$cmd" in
  run)
    need
    if [ -n "$dir" ] && pid=$(pid_); then
      die "a Dovecot already runs for $dir (PID $pid): stop it first"
    fi
    setup
    printenv_
    echo "DOVECOT_PID=$$"
    exec dovecot -F -c "$dir/dovecot.conf"
    ;;
  start)
    need
    setup
    if pid=$(pid_); then
      : # already running: Dovecot re-reads the passwd-file by itself when it changes
    else
      dovecot -c "$dir/dovecot.conf" </dev/null >>"$dir/dovecot.out" 2>&1 ||
        { cat "$dir/dovecot.out" "$dir/dovecot.log" >&2 2>/dev/null; die "dovecot failed to start"; }
      # The master listens before it forks into the background; wait for its PID file.
      for _ in $(seq 100); do
        pid=$(pid_) && [ -S "$dir/run/lmtp" ] && break
        sleep 0.1
      done
      pid=$(pid_) || die "dovecot started but wrote no PID to $dir/run/master.pid; see $dir/dovecot.log"
    fi
    printenv_
    echo "DOVECOT_PID=$pid"
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
    [ -n "$dir" ] && [ -f "$dir/port" ] || die "env: no Dovecot in ${dir:-(no DIR)}"
    printenv_
    if pid=$(pid_); then echo "DOVECOT_PID=$pid"; fi
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
