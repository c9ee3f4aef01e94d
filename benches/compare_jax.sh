#!/usr/bin/env bash
# Runs examples/meta_step_bench.rs and ../shared/bench/jax_ref.py (the paper's meta-step) on the
# same data, alternating, in one run, and prints both medians and the ratio Rust/JAX for f32
# second order, f32 first order and f64 second order, with Rust's peak memory and its growth
# between the first and the last timed meta-step (STEPS = 200 checks that memory stays flat).
# Usage: benches/compare_jax.sh [DATA_DIR] [ROUNDS] [STEPS]   (installs jax with pip if missing)
# Each round runs every setting once with STEPS timed meta-steps; the medians are over all
# timed meta-steps of all rounds.
# BASELINE=<path to another build's meta_step_bench> also runs that binary in every round, next
# to this build and JAX, and prints its ratio too: before/after numbers from one run on this
# noisy machine (build the older commit in a git worktree:
#   git worktree add ../before <commit> && (cd ../before && cargo build --release --example meta_step_bench)
#   BASELINE=../before/target/release/examples/meta_step_bench benches/compare_jax.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/mnist-10k}
rounds=${2:-2}
steps=${3:-5}
jax_ref=../shared/bench/jax_ref.py

python3 -c 'import jax' 2>/dev/null || python3 -m pip install --quiet jax numpy
cargo build --release --quiet --example meta_step_bench

log=$(mktemp)
trap 'rm -f "$log"' EXIT
settings=("" "--first-order" "--f64")
for round in $(seq "$rounds"); do
  for flags in "${settings[@]}"; do
    echo "round $round/$rounds: settings '${flags:-f32 second order}'" >&2
    # shellcheck disable=SC2086
    ./target/release/examples/meta_step_bench "$data" --steps "$steps" $flags | tee -a "$log"
    if [ -n "${BASELINE:-}" ]; then
      # shellcheck disable=SC2086
      "$BASELINE" "$data" --steps "$steps" $flags | sed 's/^meta_step_bench /baseline /' | tee -a "$log"
    fi
    # shellcheck disable=SC2086
    python3 "$jax_ref" "$data" --steps "$steps" $flags 2>/dev/null | tee -a "$log"
  done
done

python3 - "$log" <<'PY'
import re, statistics, sys
step_times, peaks, growth = {}, {}, {}
key = None
for line in open(sys.argv[1]):
    if line.startswith("meta-step"):
        sec = float(re.search(r": ([0-9.]+)s", line).group(1))
        pending = step_times.setdefault("pending", [])
        pending.append(sec)
        continue
    m = re.match(r"(meta_step_bench|baseline|jax_ref) .*dtype=(\S+) first_order=(\S+)", line)
    if m:
        who, dtype, fo = m.groups()
        setting = (dtype, fo == "True" or fo == "true")
        step_times.setdefault((who, setting), []).extend(step_times.pop("pending", []))
        p = re.search(r"peak_rss_mb=([0-9.]+)", line)
        if p and who == "meta_step_bench":
            peaks[setting] = max(peaks.get(setting, 0.0), float(p.group(1)))
        g = re.search(r"rss_growth_mb=(-?[0-9.]+)", line)
        if g and who == "meta_step_bench":
            growth[setting] = max(growth.get(setting, 0.0), float(g.group(1)))
print("setting                 rust_s    jax_s     rust/jax  rust_peak_rss_mb  rust_rss_growth_mb")
for setting, label in (((("f32", False)), "f32 second order"),
                       ((("f32", True)), "f32 first order"),
                       ((("f64", False)), "f64 second order")):
    r = step_times.get(("meta_step_bench", setting))
    j = step_times.get(("jax_ref", setting))
    if r and j:
        rm, jm = statistics.median(r), statistics.median(j)
        print(f"{label:22s} {rm:8.4f}  {jm:8.4f}  {rm / jm:8.2f}  {peaks.get(setting, 0):8.0f}"
              f"          {growth.get(setting, 0):8.0f}")
        b = step_times.get(("baseline", setting))
        if b:
            bm = statistics.median(b)
            print(f"{'  baseline':22s} {bm:8.4f}  {jm:8.4f}  {bm / jm:8.2f}"
                  f"  (this build / baseline {rm / bm:.2f})")
PY
