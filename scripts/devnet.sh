#!/usr/bin/env bash
# The README's main job: on a fresh Debian machine with rustup and python3, installs what is
# missing (libtorch 2.13 from the PyPI wheels and the `fortunes` text corpus, through
# scripts/libtorch.sh), builds `deepnode` with the training adapter and the devnet's
# adversarial roles (release), and runs the
# default devnet: a ledger and eight node processes on loopback. Arguments go to
# `deepnode devnet` (e.g. a scenario file, --nodes, --epochs, --out). Prints the report's path.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/libtorch.sh
cargo build --release -q -p deepnode-cli --features torch,adversarial
exec target/release/deepnode devnet "$@"
