#!/usr/bin/env bash
# test-deps.sh: install the real peers the tests talk to, idempotently.
#
# Only what is missing is installed (apt-get, as root). Without root, or when apt-get fails,
# it reports what is missing; with CI set, a missing tool is then a failure (exit 1), never a skip.
#
# `test-deps.sh go` installs only the Go linters of `make lint` (below), which need no root.
set -uo pipefail
cd "$(dirname "$0")/.."

# The linters of `make lint`, at pinned versions, built with this machine's Go from the Go module
# proxy into .tools/bin (project-local: GOPATH/bin and PATH are left alone). A binary is rebuilt
# only when it is missing or was built from another version. To move a linter to a new version,
# change it here: make lint picks it up on its next run.
gotools=(
  honnef.co/go/tools/cmd/staticcheck@v0.8.2
  github.com/kisielk/errcheck@v1.30.0
)
gobin="$PWD/.tools/bin"

# gotool_ok reports whether $gobin holds the binary of pkg@version built from that version.
gotool_ok() {
  local pkg=${1%@*} version=${1#*@} bin
  bin="$gobin/$(basename "$pkg")"
  [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | awk -v v="$version" '$1 == "mod" && $3 == v { ok = 1 } END { exit !ok }'
}

install_gotools() {
  local t failed=()
  for t in "${gotools[@]}"; do
    gotool_ok "$t" && continue
    echo "test-deps: go install $t" >&2
    if ! GOBIN="$gobin" go install "$t"; then
      failed+=("$t")
    fi
  done
  if ((${#failed[@]})); then
    echo "test-deps: could not install ${failed[*]}" >&2
    return 1
  fi
}

if [ "${1:-}" = go ]; then
  install_gotools
  exit
fi
gotools_status=0
install_gotools || gotools_status=1

# command -> Debian package that provides it
declare -A pkg=(
  [swaks]=swaks
  [haproxy]=haproxy
  [curl]=curl
  [python3]=python3
  [msmtp]=msmtp
  [nc]=netcat-openbsd
  [smtp-source]=postfix
  [smtp-sink]=postfix
  # script(1): a terminal for tern bench's progress line (test/bench_test.go)
  [script]=bsdutils
  [gsasl]=gsasl
  [openssl]=openssl
  [saslpasswd2]=sasl2-bin
  # MIT Kerberos: the throwaway realm of scripts/krb5-realm.sh and kinit for the GSSAPI tests
  [krb5kdc]=krb5-kdc
  [kadmin.local]=krb5-admin-server
  [kinit]=krb5-user
  # Dovecot: the LMTP delivery target of scripts/dovecot-lmtp.sh, and doveadm to read its mail
  [dovecot]=dovecot-core
  [doveadm]=dovecot-core
  # Pigeonhole's Sieve compiler: the Junk rule of dovecot-lmtp.sh LMTP_SIEVE_JUNK=1 (DMARC quarantine over LMTP)
  [sievec]=dovecot-sieve
  # DKIM peers: dkimpy (dkimsign, dkimverify), OpenDKIM's tools and its -t test mode (internal/dkim)
  [dkimsign]=python3-dkim
  [dkimverify]=python3-dkim
  [opendkim-genkey]=opendkim-tools
  [opendkim-testmsg]=opendkim-tools
  [opendkim]=opendkim
  # rspamd: its normal worker (HTTP /checkv2) and its proxy worker in milter mode (test/milter_test.go)
  [rspamd]=rspamd
  # xmllint validates DMARC aggregate reports against RFC 7489 Appendix C's schema (internal/reports)
  [xmllint]=libxml2-utils
  # promtool checks the /metrics scrape (test/metrics_test.go).
  [promtool]=prometheus
  # DMARC peer: OpenDMARC's opendmarc-check (libopendmarc), pointed at the tests' DNS server
  # from a mount namespace of its own (unshare --mount, as root: test/opendmarc_test.go)
  [opendmarc-check]=opendmarc
  [unshare]=util-linux
  # SRS peer: postsrsd's TCP lookup tables reverse what tern's SRS forwards, and the other way
  [postsrsd]=postsrsd
  # ACME: Let's Encrypt's test CA, issuing tern's certificate by tls-alpn-01 and http-01 (test/acme_test.go)
  [pebble]=pebble
  # the shells whose completion scripts tern completion writes (bash's needs bash-completion)
  [zsh]=zsh
  [fish]=fish
  # host helpers: fail2ban-regex checks contrib/fail2ban, systemd-analyze verify contrib/systemd
  [fail2ban-regex]=fail2ban
  [systemd-analyze]=systemd
  # the headless browser the admin web interface is tested in (test/webadmin_test.go, over chromedp)
  [chromium]=chromium
)
# Perl module -> Debian package: swaks needs them for TLS and for the AUTH mechanisms.
declare -A perlmod=(
  [IO::Socket::SSL]=libio-socket-ssl-perl
  [Net::SSLeay]=libnet-ssleay-perl
  [Authen::SASL]=libauthen-sasl-perl
  [Authen::NTLM]=libauthen-ntlm-perl
  [Digest::HMAC_MD5]=libdigest-hmac-perl
)

# Python module -> Debian package: pyspf, the SPF implementation tern's results are checked against.
declare -A pymod=(
  [spf]=python3-spf
)

have() {
  case "$1" in
    smtp-source) [ -x /usr/sbin/smtp-source ] || command -v smtp-source >/dev/null 2>&1 ;;
    saslpasswd2) [ -x /usr/sbin/saslpasswd2 ] || command -v saslpasswd2 >/dev/null 2>&1 ;;
    krb5kdc|kadmin.local|dovecot|doveadm|opendkim|opendkim-genkey|opendkim-testmsg|postsrsd) [ -x "/usr/sbin/$1" ] || command -v "$1" >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}
haveperl() { perl -M"$1" -e1 >/dev/null 2>&1; }
# apt-get installs modules for the system interpreter, which may not be the python3 on PATH (pyenv).
havepy() { /usr/bin/python3 -c "import $1" >/dev/null 2>&1; }

# Cyrus SASL plugins, for a Postfix with AUTH (tern send is tested against it).
haveglob() { compgen -G "$1" >/dev/null; }
declare -A libglob=(
  ["/usr/lib/*/sasl2/libcrammd5.so*"]=libsasl2-modules
  ["/usr/lib/*/sasl2/libsasldb.so*"]=libsasl2-modules-db
  ["/usr/lib/*/sasl2/libgssapiv2.so*"]=libsasl2-modules-gssapi-mit
  ["/usr/lib/dovecot/lmtp"]=dovecot-lmtpd
  # the shared account store (internal/accounts/postgres, test/nodes_test.go)
  ["/usr/lib/postgresql/*/bin/initdb"]=postgresql
  ["/usr/share/bash-completion/bash_completion"]=bash-completion
)

want=()
for c in "${!pkg[@]}"; do have "$c" || want+=("${pkg[$c]}"); done
for g in "${!libglob[@]}"; do haveglob "$g" || want+=("${libglob[$g]}"); done
for m in "${!perlmod[@]}"; do haveperl "$m" || want+=("${perlmod[$m]}"); done
for m in "${!pymod[@]}"; do havepy "$m" || want+=("${pymod[$m]}"); done

if ((${#want[@]})); then
  mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: installing ${want[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Packages such as dovecot-core and krb5-kdc would start system services; the tests run
    # their own private instances, so keep the system ones from starting (policy-rc.d, 101).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    # postfix: "No configuration" so no system MTA is set up or started. krb5-config asks for a
    # default realm: the tests bring their own krb5.conf, so the answer does not matter.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
    if ! apt-get install -y -q --no-install-recommends "${want[@]}" >/tmp/test-deps-apt.log 2>&1; then
      apt-get update -q >>/tmp/test-deps-apt.log 2>&1
      apt-get install -y -q --no-install-recommends "${want[@]}" >>/tmp/test-deps-apt.log 2>&1 \
        || echo "test-deps: apt-get failed, see /tmp/test-deps-apt.log" >&2
    fi
  else
    echo "test-deps: not root or no apt-get: cannot install ${want[*]}" >&2
  fi
fi

missing=()
for c in "${!pkg[@]}"; do have "$c" || missing+=("$c"); done
for m in "${!perlmod[@]}"; do haveperl "$m" || missing+=("perl $m"); done
for m in "${!pymod[@]}"; do havepy "$m" || missing+=("python3 $m"); done
for g in "${!libglob[@]}"; do haveglob "$g" || missing+=("${libglob[$g]}"); done
((gotools_status)) && missing+=("Go linters (go install failed)")
if ((${#missing[@]})); then
  echo "test-deps: missing: ${missing[*]}" >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
fi
exit 0
