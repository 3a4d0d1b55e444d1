// Smoke test of the runtime under chopsticks (run by scripts/chain.sh, which sets
// DEEPNODE_CHAIN): Alice registers a node through the pallet, a block is built, and the
// runtime's metagraph API, called over RPC, returns the node with Alice as its owner.
// Exits non-zero with a one-line reason when any of that does not hold.
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';

const url = process.env.DEEPNODE_CHAIN ?? 'ws://127.0.0.1:9944';
const fail = (why) => {
  throw new Error(why);
};
const api = await ApiPromise.create({ provider: new WsProvider(url), noInitWarn: true });
try {
  const alice = new Keyring({ type: 'sr25519', ss58Format: 42 }).addFromUri('//Alice');
  const before = await api.call.deepNodeApi.metagraph();
  const n0 = before.nodes.length;
  const events = await new Promise((resolve, reject) => {
    api.tx.deepNode
      .register()
      .signAndSend(alice, ({ status, events, dispatchError }) => {
        if (dispatchError) reject(new Error(`register failed: ${dispatchError.toString()}`));
        else if (status.isInBlock || status.isFinalized) resolve(events);
      })
      .catch(reject);
  });
  events.some(({ event }) => api.events.deepNode.Registered?.is(event)) ||
    fail(`no DeepNode.Registered event: ${events.map(({ event }) => `${event.section}.${event.method}`)}`);
  const after = await api.call.deepNodeApi.metagraph();
  after.nodes.length === n0 + 1 || fail(`metagraph has ${after.nodes.length} nodes, expected ${n0 + 1}`);
  const owner = u8aToHex(after.nodes[n0].owner.toU8a());
  owner === u8aToHex(alice.publicKey) || fail(`node ${n0} is owned by ${owner}, not Alice (${u8aToHex(alice.publicKey)})`);
  after.block.toNumber() > before.block.toNumber() || fail('the metagraph did not move to a new block');
  console.log(`smoke: uid ${n0} registered by Alice at block ${after.block}; metagraph: ${after.nodes.length} node(s), tempo ${after.tempo}`);
} finally {
  await api.disconnect();
}
