#!/usr/bin/env bash
# Runs examples/tape_bench.rs and benches/jax_tape_ref.py on the same data, alternating, in one
# run, and prints the Rust/JAX ratio of the median times for each case and precision.
# Usage: benches/compare_tape_jax.sh [DATA_DIR] [ROUNDS]   (installs jax with pip if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/mnist-10k}
rounds=${2:-3}

python3 -c 'import jax' 2>/dev/null || python3 -m pip install --quiet jax numpy
cargo build --release --quiet --example tape_bench

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for round in $(seq "$rounds"); do
  echo "round $round/$rounds" >&2
  ./target/release/examples/tape_bench "$data" --dtype both | tee -a "$log"
  python3 benches/jax_tape_ref.py "$data" 2>/dev/null | tee -a "$log"
  python3 benches/jax_tape_ref.py "$data" --f64 2>/dev/null | tee -a "$log"
done

python3 - "$log" <<'PY'
import re, statistics, sys
times = {}
for line in open(sys.argv[1]):
    m = re.match(r"(tape_bench|jax_tape_ref) case=(\S+) dtype=(\S+).*seconds=([0-9.e-]+)", line)
    if m:
        who, case, dtype, sec = m.groups()
        times.setdefault((case, dtype, who), []).append(float(sec))
print("case              dtype   rust_s      jax_s       rust/jax")
for case in ("loss_grad", "unroll_meta_grad"):
    for dtype in ("f32", "f64"):
        r = times.get((case, dtype, "tape_bench"))
        j = times.get((case, dtype, "jax_tape_ref"))
        if r and j:
            rm, jm = statistics.median(r), statistics.median(j)
            print(f"{case:17s} {dtype:6s} {rm:10.6f}  {jm:10.6f}  {rm / jm:8.2f}")
PY
