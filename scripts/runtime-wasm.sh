#!/usr/bin/env bash
# Builds the runtime (adapters/runtime) to the wasm blob a Substrate client executes, straight
# as a `cdylib` for `wasm32v1-none` with the flags a runtime build passes: the memory is the
# host's (imported), the table and `__heap_base` (where the runtime's allocator starts) are
# exported, and `substrate_runtime` selects the host functions over their native versions.
# Release profile, `panic = "abort"` (the runtime's Cargo.toml).
#
# Usage: scripts/runtime-wasm.sh [OUT]   (default OUT: target/chain/deepnode_runtime.wasm)
# The cargo target directory is $CARGO_TARGET_DIR, else target/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/chain/deepnode_runtime.wasm}
target_dir=${CARGO_TARGET_DIR:-target}
rustup target list --installed 2>/dev/null | grep -qx wasm32v1-none \
  || rustup target add wasm32v1-none
RUSTFLAGS="-C link-arg=--export=__heap_base -C link-arg=--import-memory \
-C link-arg=--export-table --cfg substrate_runtime" \
  cargo build --manifest-path adapters/runtime/Cargo.toml --target-dir "$target_dir" \
  --release --target wasm32v1-none --lib
mkdir -p "$(dirname "$out")"
cp "$target_dir/wasm32v1-none/release/deepnode_runtime.wasm" "$out"
echo "runtime wasm: $out ($(wc -c <"$out") bytes)"
