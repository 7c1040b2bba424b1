#!/usr/bin/env bash
# errcheck.sh: errcheck over the module, in two tiers (make lint runs it).
#
# Code outside tests is checked with scripts/errcheck.exclude alone; _test.go files are checked
# with scripts/errcheck-tests.exclude too (test cleanup). The files say why each entry is there.
set -euo pipefail
cd "$(dirname "$0")/.."
errcheck=${ERRCHECK:-.tools/bin/errcheck}

mapfile -t pkgs < <(go list ./...)

both=$(mktemp)
trap 'rm -f "$both"' EXIT
cat scripts/errcheck.exclude scripts/errcheck-tests.exclude >"$both"

status=0
"$errcheck" -ignoretests -exclude scripts/errcheck.exclude "${pkgs[@]}" || status=$?
# The second run reports code outside tests again, minus what the test list excludes: keep only
# the test files' lines. errcheck exits 1 for findings, 2 when it cannot check at all.
out=$("$errcheck" -exclude "$both" "${pkgs[@]}") && rc=0 || rc=$?
if ((rc > 1)); then
  echo "$out"
  exit "$rc"
fi
if grep '_test\.go:' <<<"$out"; then
  status=1
fi
exit "$status"
