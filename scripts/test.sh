#!/usr/bin/env bash
# The test command of README.md: everything CI checks, in one local command. On a fresh Debian
# machine with rustup, python3 and node it first installs what the checks need; each install
# runs only when its tool is missing, so a prepared machine goes straight to the checks.
set -euo pipefail
cd "$(dirname "$0")/.."
# A one-off build gains nothing from incremental caches, which would take a third of the
# target directory's disk; set CARGO_INCREMENTAL=1 to keep them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Each step's header shows the minutes since the start, so a slow step shows in CI's log.
started=$SECONDS
step() { printf '\n== [%d:%02d] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*"; }

step "docs check: no ticket numbers, work-log history, outside paths or broken links in code and docs"
./scripts/check-docs.sh

step "setup (installs only what is missing)"
export DEBIAN_FRONTEND=noninteractive
sudo_cmd=()
[ "$(id -u)" = 0 ] || ! command -v sudo >/dev/null || sudo_cmd=(sudo)
apt_updated=
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  if ! command -v apt-get >/dev/null; then
    echo "setup: no apt-get; install ${missing[*]} by hand" >&2
    return 1
  fi
  echo "setup: apt-get install ${missing[*]}"
  [ -n "$apt_updated" ] || { "${sudo_cmd[@]}" apt-get update -qq && apt_updated=1; }
  "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
}
# lavapipe: a software Vulkan adapter for the wgpu tests (no GPU, no display).
# iproute2: `ip netns` for the separate-hosts devnet test (run as root).
if command -v dpkg-query >/dev/null; then
  apt_install mesa-vulkan-drivers libvulkan1 iproute2
fi
# mpmath: the independent Python reference of the conformance vectors.
if ! python3 -c "import mpmath" 2>/dev/null; then
  echo "setup: mpmath"
  python3 -m pip install -q mpmath 2>/dev/null || apt_install python3-mpmath
fi
# clippy, rustfmt; llvm-tools for the no_std symbol check; the no_std and wasm targets.
components=$(rustup component list --installed)
for c in clippy rustfmt llvm-tools; do
  grep -q "^$c" <<<"$components" || rustup component add "$c"
done
targets=$(rustup target list --installed)
for t in wasm32-unknown-unknown thumbv7em-none-eabihf wasm32-wasip1; do
  grep -qx "$t" <<<"$targets" || rustup target add "$t"
done
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
command -v node >/dev/null || { echo "setup: node (>= 18) is needed for the WASI run" >&2; exit 1; }
# libtorch 2.13 (from the PyPI wheels) into .libtorch/ and the fortunes text, for
# adapters/torch: the workspace-wide clippy, tests and docs below include that crate.
./scripts/libtorch.sh

step "fmt"
cargo fmt --all -- --check

step "clippy"
# deepnode-substrate (subxt, several minutes of build) is left out of the workspace-wide steps: its
# tests need a chain, and run under scripts/chain.sh (docs/chain.md).
cargo clippy --workspace --exclude deepnode-substrate --all-targets -- -D warnings

step "tests (workspace, GPU crate on the available Vulkan adapter, torch crate on libtorch)"
cargo test --workspace --exclude deepnode-substrate

step "devnet: deepnode with the torch and adversarial features; a small devnet's claims (learners paid, cabal falls, rows accepted, chain verifies)"
cargo clippy -p deepnode-cli --features torch,adversarial --all-targets -- -D warnings
cargo test -p deepnode-cli --features torch,adversarial --test devnet

step "multi-core epoch (feature parallel): the same bits on 1, 2, 3 and 8 threads, every vector"
cargo clippy -p deepnode-consensus --features parallel --all-targets -- -D warnings
cargo clippy -p deepnode-cli --features parallel --all-targets -- -D warnings
cargo clippy -p deepnode-bench --features parallel --all-targets -- -D warnings
cargo test -p deepnode-consensus --features parallel
cargo test -p deepnode-conformance --features parallel
cargo test -p deepnode-cli --features parallel --test epoch_cli
cargo test -p deepnode-bench --features parallel --test bench_cli -- threads
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p deepnode-consensus --features parallel

step "conformance vectors through the CLI"
cargo run -q -p deepnode-cli -- conformance conformance/vectors

step "conformance vectors on wasm32-wasip1 (32-bit), under Node's WASI"
wasm=$(cargo build -q -p deepnode-conformance --example run_vectors --target wasm32-wasip1 \
  --message-format=json-render-diagnostics | sed -n 's/.*"executable":"\([^"]*\.wasm\)".*/\1/p')
node scripts/wasi-run.mjs "$wasm" conformance/vectors

step "expectations regenerate identically from the independent reference"
python3 conformance/reference/epoch.py --check

step "no_std link check: with and without alloc; host, wasm32, thumbv7em"
./scripts/no-std-check.sh

step "FRAME pallet (own workspace): fmt, clippy, tests (differential, benchmarks), docs, wasm32 no_std"
# Its own workspace (polkadot-sdk turns on serde_json's arbitrary_precision); it shares this
# target directory, so the crates it has in common with the workspace above build once.
pallet=(--manifest-path adapters/pallet/Cargo.toml --target-dir target)
cargo fmt --manifest-path adapters/pallet/Cargo.toml -- --check
cargo clippy "${pallet[@]}" --all-targets --features std,runtime-benchmarks -- -D warnings
cargo test "${pallet[@]}" --features std,runtime-benchmarks
RUSTDOCFLAGS="-D warnings" cargo doc "${pallet[@]}" --no-deps --features std
# As a runtime's wasm build compiles it: no std, `substrate_runtime` (host functions, not their
# native implementations).
RUSTFLAGS="--cfg substrate_runtime" \
  cargo build "${pallet[@]}" --no-default-features --target wasm32-unknown-unknown

step "fuzz smoke run (${FUZZ_SECONDS:=30}s per target)"
if cargo +nightly --version >/dev/null 2>&1; then fuzz=(cargo +nightly fuzz run); else fuzz=(cargo fuzz run -s none); fi
for target in epoch codec extrinsic wire controller; do
  work=$(mktemp -d)
  cp fuzz/corpus/"$target"/* "$work"/
  (cd fuzz && "${fuzz[@]}" "$target" "$work" -- -max_total_time="$FUZZ_SECONDS")
  rm -rf "$work"
done

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --exclude deepnode-substrate --no-deps

echo "all checks passed in $(((SECONDS - started) / 60)) min"
