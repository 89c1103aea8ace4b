#!/usr/bin/env bash
# The benchmark suite: builds the production ybposd (release,
# --no-default-features: no demo, no simulator, no crash points) and the
# driver, then runs every figure against its baseline in the same run and
# writes BENCHMARKS.md at the repository root (the hand-written "Analysis"
# part is kept).
#
#   bench/run.sh            full run (about 6 minutes of figures on 2 cores)
#   bench/run.sh --short    CI: every figure, briefly, to prove the suite works
#   bench/run.sh --only 4   some figures (comma-separated, 1-6)
#
# Extra arguments go to ybpos-bench (--tmp DIR: where journals go). socat is
# one of figure 1's baselines; without it that baseline is left out.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
out=BENCHMARKS.md
for a in "$@"; do
    # A short run proves the suite works; it does not overwrite the figures.
    [ "$a" = --short ] && out="$target/BENCHMARKS.short.md"
done
cargo build --release --no-default-features -p ybpos-daemon
cargo build --release -p ybpos-bench
"$target/release/ybpos-bench" --ybposd "$target/release/ybposd" --out "$out" "$@"
