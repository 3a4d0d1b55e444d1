// A dev chain's faucet: Alice (a dev account the presets fund) sends AMOUNT units to ACCOUNT,
// e.g. a node's account (`deepnode wallet show`, hex), so it can pay its fees. Waits until a
// block holds the transfer; exits non-zero with a one-line reason otherwise.
//
// Usage: node fund.mjs ACCOUNT_HEX AMOUNT   (chain: $DEEPNODE_CHAIN, else ws://127.0.0.1:9944)
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { hexToU8a, isHex } from '@polkadot/util';

const [account, amount] = process.argv.slice(2);
if (!isHex(account, 256) || !/^[0-9]+$/.test(amount ?? '')) {
  console.error('usage: node fund.mjs ACCOUNT_HEX(32 bytes) AMOUNT');
  process.exit(2);
}
const url = process.env.DEEPNODE_CHAIN ?? 'ws://127.0.0.1:9944';
const api = await ApiPromise.create({ provider: new WsProvider(url), noInitWarn: true });
try {
  const alice = new Keyring({ type: 'sr25519' }).addFromUri('//Alice');
  const tx = api.tx.balances.transferKeepAlive({ Id: hexToU8a(account) }, BigInt(amount));
  await new Promise((resolve, reject) => {
    tx.signAndSend(alice, ({ status, dispatchError }) => {
      if (dispatchError) reject(new Error(`transfer failed: ${dispatchError.toString()}`));
      else if (status.isInBlock || status.isFinalized) resolve();
    }).catch(reject);
  });
  console.log(`fund: ${amount} units from Alice to ${account}`);
} catch (e) {
  console.error(`fund: ${e.message}`);
  process.exitCode = 1;
} finally {
  await api.disconnect();
}
