// Writes the raw chain spec of the DeepNode runtime without a node: chopsticks' wasm executor
// runs the runtime's own GenesisBuilder API (the default config, `get_preset(None)`, merged
// with the preset's patch, as a node's chain-spec builder merges them, then `build_state` on
// empty storage), and the storage it writes, with the wasm under `:code`, is the genesis.
//
// Usage: node genesis.mjs RUNTIME.wasm PRESET OUT.json   (PRESET: development | local_testnet)
import { readFileSync, writeFileSync } from 'node:fs';
import { runTask, destroyWorker } from '@acala-network/chopsticks-core';
import { compactAddLength, compactFromU8a, hexToU8a, stringToU8a, u8aToHex, u8aToString } from '@polkadot/util';

const [wasmPath, preset, out] = process.argv.slice(2);
if (!wasmPath || !preset || !out) {
  console.error('usage: node genesis.mjs RUNTIME.wasm PRESET OUT.json');
  process.exit(2);
}
const wasm = u8aToHex(readFileSync(wasmPath));

// Genesis is built on empty storage: every read finds nothing.
const emptyState = {
  getStorage: async () => undefined,
  getNextKey: async () => undefined,
  offchainGetStorage: async () => undefined,
  offchainTimestamp: async () => 0,
  offchainRandomSeed: async () => u8aToHex(new Uint8Array(32)),
  offchainSubmitTransaction: async () => false,
};

async function call(method, arg) {
  const response = await runTask(
    { wasm, calls: [[method, [u8aToHex(arg)]]], mockSignatureHost: false, allowUnresolvedImports: false, runtimeLogLevel: 0 },
    emptyState,
  );
  if ('Error' in response) throw new Error(`${method}: ${response.Error}`);
  return response.Call;
}

// `get_preset(name)`: the JSON it returns (`null` name: the default config), or null for an
// unknown name. Argument and answer are SCALE `Option<Vec<u8>>`.
async function getPreset(name) {
  const arg = name === null ? new Uint8Array([0]) : new Uint8Array([1, ...compactAddLength(stringToU8a(name))]);
  const got = hexToU8a((await call('GenesisBuilder_get_preset', arg)).result);
  if (got[0] !== 1) return null;
  const [offset, length] = compactFromU8a(got.subarray(1));
  return JSON.parse(u8aToString(got.subarray(1 + offset, 1 + offset + length.toNumber())));
}

// `patch` over `base`: objects merge key by key, anything else replaces.
function merge(base, patch) {
  if (typeof base !== 'object' || base === null || Array.isArray(base)) return patch;
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out = { ...base };
  for (const [k, v] of Object.entries(patch)) out[k] = k in base ? merge(base[k], v) : v;
  return out;
}

try {
  const defaults = await getPreset(null);
  const patch = await getPreset(preset);
  if (patch === null) throw new Error(`the runtime has no genesis preset "${preset}"`);
  const config = new TextEncoder().encode(JSON.stringify(merge(defaults, patch)));
  const built = await call('GenesisBuilder_build_state', compactAddLength(config));
  // Result<(), String>: 0x00 is Ok.
  const result = hexToU8a(built.result);
  if (result[0] !== 0) throw new Error(`build_state refused the preset: ${u8aToString(result.subarray(2))}`);
  const top = { '0x3a636f6465': wasm };
  for (const [key, value] of built.storageDiff) if (value !== null) top[key] = value;
  const spec = {
    name: `DeepNode ${preset}`,
    id: `deepnode_${preset}`,
    chainType: preset === 'development' ? 'Development' : 'Local',
    properties: { ss58Format: 42, tokenDecimals: 0, tokenSymbol: 'DN' },
    genesis: { raw: { top, childrenDefault: {} } },
  };
  writeFileSync(out, JSON.stringify(spec, null, 1));
  console.log(`chain spec: ${out} (${Object.keys(top).length} keys, preset ${preset})`);
} catch (e) {
  console.error(`genesis: ${e.message}`);
  process.exitCode = 1;
} finally {
  await destroyWorker();
}
