#!/usr/bin/env bash
# test-deps.sh: install the real peers the tests talk to, idempotently.
#
# Only what is missing is installed (apt-get, as root). Without root, or when apt-get fails,
# it reports what is missing; with CI set, a missing tool is then a failure (exit 1), never a skip.
set -uo pipefail

# command -> Debian package that provides it
declare -A pkg=(
  [swaks]=swaks
  [curl]=curl
  [python3]=python3
  [msmtp]=msmtp
  [nc]=netcat-openbsd
  [smtp-source]=postfix
)
# Perl modules swaks needs for TLS (no command of their own: checked by a file they install).
declare -A perlmod=(
  [/usr/share/perl5/IO/Socket/SSL.pm]=libio-socket-ssl-perl
  [/usr/lib/x86_64-linux-gnu/perl5/5.36/Net/SSLeay.pm]=libnet-ssleay-perl
)

have() {
  case "$1" in
    smtp-source) [ -x /usr/sbin/smtp-source ] || command -v smtp-source >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

want=()
for c in "${!pkg[@]}"; do have "$c" || want+=("${pkg[$c]}"); done
for f in "${!perlmod[@]}"; do
  # the Net::SSLeay path differs across perl versions: look it up through perl itself
  if [ "${perlmod[$f]}" = libnet-ssleay-perl ]; then
    perl -MNet::SSLeay -e1 >/dev/null 2>&1 || want+=(libnet-ssleay-perl)
  else
    perl -MIO::Socket::SSL -e1 >/dev/null 2>&1 || want+=(libio-socket-ssl-perl)
  fi
done

if ((${#want[@]})); then
  mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: installing ${want[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # postfix: "No configuration" so no system MTA is set up or started.
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
perl -MIO::Socket::SSL -e1 >/dev/null 2>&1 || missing+=("perl IO::Socket::SSL")
if ((${#missing[@]})); then
  echo "test-deps: missing: ${missing[*]}" >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
fi
exit 0
