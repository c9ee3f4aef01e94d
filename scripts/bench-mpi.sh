#!/usr/bin/env bash
# Times the paper's meta-step (ConvergentL2O, 10 trajectories of T = 50, f32, second order)
# under mpirun: 1 rank x 1 thread, 1 rank x 2 threads, 2 ranks x 1 thread (README, "Meta-training
# on MPI"). Prints each run's summary line (median and minimum wall time per meta-step, CPU time
# and bytes sent per meta-step, all ranks) and the load average before it.
# Usage: scripts/bench-mpi.sh [META_STEPS (default 10)] [DATA]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-10}
data=${2:-../shared/data/mnist-10k}
cargo build --quiet --release --features mpi --example meta_train_mpi
bin=target/release/examples/meta_train_mpi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
root=()
if [ "$(id -u)" -eq 0 ]; then root=(--allow-run-as-root); fi
for config in "1 1 none" "1 2 none" "2 1 core"; do
  set -- $config
  rm -rf "${out:?}"/*
  echo "ranks=$1 threads=$2 bind-to=$3 load=$(cut -d' ' -f1-3 /proc/loadavg)"
  mpirun "${root[@]}" -np "$1" --bind-to "$3" "$bin" --threads "$2" --data "$data" \
    --meta-steps "$steps" --lstm-meta-steps 0 --out "$out" | grep '^meta-training'
done
