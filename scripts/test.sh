#!/usr/bin/env bash
# The test command of README.md: everything CI checks, in one local command.
# Needs: a Rust toolchain (nightly for fuzzing, else stable with `-s none`), cargo-fuzz,
# python3 with mpmath, and a Vulkan driver (lavapipe) for the GPU crate; .ci/run installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

step "fmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "tests (workspace, GPU crate on the available Vulkan adapter)"
cargo test --workspace

step "conformance vectors through the CLI"
cargo run -q -p deepnode-cli -- conformance conformance/vectors

step "expectations regenerate identically from the independent reference"
python3 conformance/reference/epoch.py --check

step "no_std link check"
(cd crates/no-std-check && cargo build --release)

step "fuzz smoke run (${FUZZ_SECONDS:=30}s per target)"
if cargo +nightly --version >/dev/null 2>&1; then fuzz=(cargo +nightly fuzz run); else fuzz=(cargo fuzz run -s none); fi
for target in epoch codec extrinsic; do
  work=$(mktemp -d)
  cp fuzz/corpus/"$target"/* "$work"/
  (cd fuzz && "${fuzz[@]}" "$target" "$work" -- -max_total_time="$FUZZ_SECONDS")
  rm -rf "$work"
done

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

echo "all checks passed"
