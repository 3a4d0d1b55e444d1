#!/usr/bin/env bash
# The epoch against the numpy + scipy.sparse baseline (benches/baseline/numpy_epoch.py), both
# workloads of docs/benchmarks.md (n = 4096 dense, 1,000,000 x 32), in one run each: float,
# fixed and numpy alternated for ROUNDS rounds, ratios printed by `deepnode-bench epoch
# --baseline`. Installs numpy and scipy (pip, user site) when python3 lacks them. With THREADS,
# also one core against THREADS threads (the feature `parallel`, `deepnode-bench epoch
# --threads`). Usage: scripts/bench-epoch.sh [ROUNDS [THREADS]]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
threads=()
features=()
if [ -n "${2:-}" ]; then
    threads=(--threads "$2")
    features=(--features parallel)
fi
if ! python3 -c 'import numpy, scipy' 2>/dev/null; then
    python3 -m pip install --user --quiet numpy scipy
fi
cargo build --release -q -p deepnode-bench "${features[@]}"
for work in "4096 4096 3" "1000000 32 3"; do
    set -- $work
    ./target/release/deepnode-bench epoch --n "$1" --k "$2" --epochs "$3" --rounds "$rounds" \
        --baseline benches/baseline/numpy_epoch.py "${threads[@]}"
    echo
done
