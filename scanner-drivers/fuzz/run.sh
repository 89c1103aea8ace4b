#!/usr/bin/env bash
# Builds the libFuzzer targets with the stable toolchain (SanitizerCoverage
# through -C passes / -C llvm-args, as cargo-fuzz does, without ASan: the
# decoders are safe Rust, we hunt panics, hangs and memory blow-ups) and
# runs each for SECONDS on its checked-in corpus. New inputs go to a scratch
# copy; crashes are saved under target/fuzz/artifacts and fail the run.
#   scanner-drivers/fuzz/run.sh [SECONDS per target, default 60] [target…]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SECS=${1:-60}; shift || true
TARGETS=${*:-serial_framer hidpos_assembler keyboard_decoder uevent}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/fuzz
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps RUSTFLAGS off build scripts (as cargo-fuzz does).
HOST=$(rustc -vV | sed -n 's/^host: //p')
cargo build --quiet --release --target "$HOST" --manifest-path "$HERE/Cargo.toml" --bins
BIN="$CARGO_TARGET_DIR/$HOST/release"
ART="$CARGO_TARGET_DIR/artifacts"; mkdir -p "$ART"
fail=0
for t in $TARGETS; do
    work="$CARGO_TARGET_DIR/corpus/$t"; rm -rf "$work"; mkdir -p "$work"
    cp "$HERE/corpus/$t"/* "$work"/ 2>/dev/null || true
    log="$CARGO_TARGET_DIR/$t.log"
    set +e
    "$BIN/$t" -max_total_time="$SECS" -rss_limit_mb=1024 -timeout=5 \
        -print_final_stats=1 -artifact_prefix="$ART/$t-" "$work" > "$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    if [ $rc -eq 0 ]; then
        echo "fuzz $t: ${SECS}s, $execs execs, $cov, corpus $(ls "$work" | wc -l) inputs, no findings"
    else
        echo "fuzz $t: FINDING (exit $rc); see $log and $ART"; tail -n 30 "$log"; fail=1
    fi
done
exit $fail
