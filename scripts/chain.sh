#!/usr/bin/env bash
# The DeepNode runtime on chopsticks: builds the runtime's wasm (scripts/runtime-wasm.sh), writes
# its raw chain spec from a genesis preset without a node (scripts/chain/genesis.mjs), starts
# chopsticks on 127.0.0.1 with no upstream chain, waits until its RPC answers, then runs
# COMMAND with DEEPNODE_CHAIN set to its ws:// address (or, with no COMMAND, waits until
# interrupted). chopsticks is stopped on every exit path.
#
# Usage: scripts/chain.sh [COMMAND ARGS...]
# Environment: CHAIN_PORT (9944), CHAIN_PRESET (development), CHAIN_BLOCK_MODE (Instant: a
# block per transaction; Batch; Manual: blocks only on `dev_newBlock`), CARGO_TARGET_DIR
# (target), CHAIN_WASM (a prebuilt runtime wasm: skips the build).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${CHAIN_PORT:-9944}
preset=${CHAIN_PRESET:-development}
mode=${CHAIN_BLOCK_MODE:-Instant}
work=${CARGO_TARGET_DIR:-target}/chain
mkdir -p "$work"
wasm=${CHAIN_WASM:-$work/deepnode_runtime.wasm}
[ -n "${CHAIN_WASM:-}" ] || scripts/runtime-wasm.sh "$wasm"
[ -d scripts/chain/node_modules ] || (cd scripts/chain && npm ci --no-audit --no-fund)
spec=$work/$preset.json
node scripts/chain/genesis.mjs "$wasm" "$preset" "$spec"

log=$work/chopsticks.log
node scripts/chain/node_modules/@acala-network/chopsticks/chopsticks.cjs \
  --genesis "$spec" --host 127.0.0.1 --port "$port" --build-block-mode "$mode" \
  >"$log" 2>&1 &
pid=$!
stop() { kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM

# Ready when system_chain answers over HTTP on the same port (node's fetch: no curl needed).
ready=
for _ in $(seq 1 120); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "chain: chopsticks exited before its RPC was ready; its log ($log):" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  if node -e 'fetch(process.argv[1], {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({id: 1, jsonrpc: "2.0", method: "system_chain", params: []})})
      .then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
    "http://127.0.0.1:$port" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.5
done
[ -n "$ready" ] || { echo "chain: chopsticks RPC not ready after 60 s; log: $log" >&2; exit 1; }
export DEEPNODE_CHAIN="ws://127.0.0.1:$port"
echo "chain: $DEEPNODE_CHAIN ($preset, build-block mode $mode; log $log)"
if [ $# -gt 0 ]; then
  "$@"
else
  wait "$pid"
fi
