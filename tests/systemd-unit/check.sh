#!/usr/bin/env bash
# Offline checks of the systemd unit, without booting anything:
# - the exposure score of systemd/ybposd.service
#   (`systemd-analyze security --offline=true`) is at most 1.9;
# - `systemd-analyze verify` accepts it: its directives, and (given the
#   staged .deb tree, packaging/build-deb.sh) its executables and man page.
#
#   tests/systemd-unit/check.sh [STAGE]   # STAGE: $CARGO_TARGET_DIR/debian/stage
#
# Prints "SKIPPED: systemd-unit: <reason>" without systemd-analyze (apt-get
# install systemd); exits 1 when a check fails. The lab
# (tests/systemd-lab) runs both again on the installed unit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
STAGE=${1:-$TARGET/debian/stage}
UNIT=$ROOT/systemd/ybposd.service
MAX=1.9

command -v systemd-analyze >/dev/null || { echo "SKIPPED: systemd-unit: no systemd-analyze (apt-get install systemd)"; exit 0; }
fails=0

out=$(systemd-analyze security --offline=true "$UNIT" 2>&1 || true)
score=$(echo "$out" | sed -n 's/.*Overall exposure level for ybposd.service: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
    echo "$out" | tail -5
    echo "FAIL: systemd-analyze security --offline=true printed no score"
    fails=$((fails + 1))
elif awk -v s="$score" -v m="$MAX" 'BEGIN { exit !(s <= m) }'; then
    echo "OK: exposure score of ybposd.service: $score (at most $MAX)"
else
    echo "$out" | grep '✗' || true
    echo "FAIL: exposure score of ybposd.service: $score, above $MAX"
    fails=$((fails + 1))
fi

# verify needs the executables the unit names: the staged package's, by
# their staged paths, with its man pages on MANPATH.
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
if [ -x "$STAGE/usr/bin/ybposd" ]; then
    sed "s#/usr/bin/ybposd#$STAGE/usr/bin/ybposd#g" "$UNIT" > "$d/ybposd.service"
    export MANPATH=$STAGE/usr/share/man
    what="with the staged package's executables and man page"
else
    sed "s#/usr/bin/ybposd#/bin/true#g" "$UNIT" > "$d/ybposd.service"
    verify_opts=--man=no
    what="directives only (no staged package: run packaging/build-deb.sh)"
fi
if systemd-analyze verify ${verify_opts:-} "$d/ybposd.service" > "$d/verify.log" 2>&1; then
    echo "OK: systemd-analyze verify ybposd.service ($what)"
else
    cat "$d/verify.log"
    echo "FAIL: systemd-analyze verify ybposd.service"
    fails=$((fails + 1))
fi
[ $fails = 0 ]
