#!/usr/bin/env bash
# Counts the instructions of meta-steps with valgrind's callgrind: a before/after measure that
# does not depend on what else the machine is doing (wall time on this shared 2-core machine
# moves by 20-50% between runs; the count repeats to a few parts in a million).
# Usage: benches/instructions.sh [DATA_DIR] [-- MORE meta_step_bench FLAGS]
#   e.g. benches/instructions.sh ../shared/data/mnist-10k -- --first-order
# Runs one thread (RAYON_NUM_THREADS=1), one warm-up and one timed meta-step of the paper's
# task (examples/meta_step_bench.rs), and prints the total and the ten costliest functions.
# Installs nothing: valgrind is on every machine of this kind (apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/mnist-10k}
shift || true
[ "${1:-}" = "--" ] && shift
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind not found" >&2; exit 1; }
cargo build --release --quiet --example meta_step_bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
[ -n "${KEEP_CALLGRIND:-}" ] && trap - EXIT && echo "callgrind output: $out/cg.out"
RAYON_NUM_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" \
  ./target/release/examples/meta_step_bench "$data" --steps 1 "$@" >"$out/stdout" 2>"$out/stderr" \
  || { cat "$out/stderr" >&2; exit 1; }
grep meta_step_bench "$out/stdout"
total=$(grep -E "^(summary|totals):" "$out/cg.out" | head -1 | awk '{print $2}')
echo "instructions (warm-up + 1 meta-step, 1 thread): $total"
callgrind_annotate "$out/cg.out" 2>/dev/null | grep -E "^ *[0-9,]+ \(" | head -11
