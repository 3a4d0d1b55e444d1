//! The oracle of the `extrinsic` fuzz target (`fuzz/fuzz_targets/extrinsic.rs`): decodes
//! and applies arbitrary extrinsics to a small chain and checks the transition's invariants.

use deepnode_ledger::{AccountId, Call, Event, Extrinsic, Genesis, H256, LedgerState};
use ed25519_dalek::SigningKey;
use parity_scale_codec::{Decode, Encode};

const CHAIN: H256 = H256([0x42; 32]);
const KEYS: u8 = 4;

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i.wrapping_add(1); 32])
}

fn base() -> LedgerState {
    let mut g = Genesis::default();
    g.config.tempo = 2;
    g.config.max_nodes = 3;
    g.config.immunity_period = 1;
    g.config.weights_rate_limit = 1;
    g.config.max_weights_len = 4;
    g.params.emission = 1_000_000;
    g.endowments = (0..KEYS)
        .map(|i| (AccountId::from(&key(i)), 1 << 40))
        .collect();
    // A constant genesis: valid by construction.
    LedgerState::genesis(&g).unwrap_or_else(|e| panic!("fuzz genesis: {e}"))
}

/// Reads `data` as a sequence of steps, each a tag byte then (for bit 0 clear) a raw SCALE
/// extrinsic, or (bit 0 set) a SCALE call that the oracle signs with key `(tag >> 1) % 4`
/// at its correct nonce (bit 3 set: a wrong one). Bit 7 ends the block (an epoch on even
/// blocks; the chain starts at block 2). Panics if an invariant breaks:
/// - a decoded extrinsic re-encodes to the bytes it was decoded from;
/// - a refused extrinsic leaves the state root unchanged;
/// - an accepted one raises the signer's nonce by one and keeps total issuance;
/// - an epoch mints at most `emission`, and issuance grows by exactly what it minted.
pub fn extrinsic_oracle(data: &[u8]) {
    let mut state = base();
    state.block = 2;
    let mut input = data;
    while let Some((&tag, rest)) = input.split_first() {
        input = rest;
        let ext = if tag & 1 == 0 {
            let before = input;
            let Ok(ext) = Extrinsic::decode(&mut input) else {
                return;
            };
            let used = before.len() - input.len();
            assert_eq!(
                ext.encode(),
                before[..used],
                "decode then encode is identity"
            );
            if ext.verify(&CHAIN).is_err() {
                continue;
            }
            ext
        } else {
            let Ok(call) = Call::decode(&mut input) else {
                return;
            };
            let k = key((tag >> 1) % KEYS);
            let nonce = state.nonce(&AccountId::from(&k));
            let nonce = if tag & 8 != 0 {
                nonce.wrapping_add(1)
            } else {
                nonce
            };
            Extrinsic::sign(&k, &CHAIN, nonce, call)
        };
        step(&mut state, &ext);
        if tag & 0x80 != 0 {
            end(&mut state);
        }
    }
    end(&mut state);
}

fn step(state: &mut LedgerState, ext: &Extrinsic) {
    let root = state.root();
    let issuance = state.total_issuance();
    let nonce = state.nonce(&ext.signer);
    match state.apply(ext) {
        Err(_) => assert_eq!(state.root(), root, "a refused extrinsic changed the state"),
        Ok(_) => {
            assert_eq!(state.nonce(&ext.signer), nonce + 1, "nonce");
            assert_eq!(state.total_issuance(), issuance, "issuance");
        }
    }
}

fn end(state: &mut LedgerState) {
    let issuance = state.total_issuance();
    for e in state.end_block() {
        if let Event::Epoch { minted, .. } = e {
            assert!(minted <= state.params.emission, "minted more than emission");
            assert_eq!(state.total_issuance(), issuance + u128::from(minted));
        }
    }
    state.block += 1;
}

/// A seed input that registers, stakes, sets weights, serves and runs an epoch.
pub fn seed() -> Vec<u8> {
    let mut out = Vec::new();
    let signed = |out: &mut Vec<u8>, k: u8, call: Call, end: bool| {
        out.push(1 | (k << 1) | if end { 0x80 } else { 0 });
        call.encode_to(out);
    };
    for k in 0..3u8 {
        signed(&mut out, k, Call::Register, false);
        let uid = u32::from(k);
        signed(
            &mut out,
            k,
            Call::AddStake {
                uid,
                amount: 1000 * (uid + 1) as u64,
            },
            false,
        );
    }
    for k in 0..3u8 {
        let weights = vec![(0, 10), (1, 20), (2, u16::from(k))];
        signed(
            &mut out,
            k,
            Call::SetWeights {
                uid: u32::from(k),
                weights,
            },
            k == 2,
        );
    }
    signed(
        &mut out,
        0,
        Call::Serve {
            uid: 0,
            endpoint: b"127.0.0.1:1".to_vec(),
            modality: 0,
        },
        false,
    );

    signed(&mut out, 3, Call::Register, true);
    // A raw extrinsic signed for another chain: decodes, fails verification.
    out.push(0);
    Extrinsic::sign(&key(0), &H256([1; 32]), 0, Call::Register).encode_to(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_runs_epochs_and_registrations() {
        let data = seed();
        extrinsic_oracle(&data);
        // Replay by hand to check the seed reaches the interesting paths.
        let mut s = base();
        s.block = 2;
        let mut replaced = false;
        let mut input = &data[..];
        let mut epochs = 0;
        while let Some((&tag, rest)) = input.split_first() {
            input = rest;
            if tag & 1 == 0 {
                break;
            }
            let call = Call::decode(&mut input).expect("seed decodes");
            let k = key((tag >> 1) % KEYS);
            let ext = Extrinsic::sign(&k, &CHAIN, s.nonce(&AccountId::from(&k)), call);
            let ev = s.apply(&ext).expect("every seed call is valid");
            replaced |= matches!(
                ev.as_slice(),
                [Event::Registered {
                    replaced: Some(_),
                    ..
                }]
            );
            if tag & 0x80 != 0 {
                epochs += s
                    .end_block()
                    .iter()
                    .filter(|e| matches!(e, Event::Epoch { .. }))
                    .count();
                s.block += 1;
            }
        }
        assert_eq!(epochs, 1);
        assert!(replaced, "the fourth registration replaced a node");
        assert_eq!(s.neurons.len(), 3);
    }

    /// The committed seed (`fuzz/corpus/extrinsic/seed-0`) is [`seed`]'s output; regenerate
    /// with `DEEPNODE_BLESS=1 cargo test -p deepnode-testkit extrinsic`.
    #[test]
    fn committed_seed_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus/extrinsic/seed-0");
        if std::env::var_os("DEEPNODE_BLESS").is_some() {
            std::fs::write(&path, seed()).expect("write seed");
        }
        let committed = std::fs::read(&path).expect("seed file (DEEPNODE_BLESS=1 writes it)");
        assert_eq!(committed, seed(), "stale seed: rerun with DEEPNODE_BLESS=1");
        extrinsic_oracle(&committed);
    }

    #[test]
    fn arbitrary_bytes_do_not_break_invariants() {
        // A deterministic spray of inputs (the fuzz target explores further).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..300usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            extrinsic_oracle(&bytes);
        }
        let mut mutated = seed();
        for i in (0..mutated.len()).step_by(7) {
            mutated[i] ^= 0x5a;
            extrinsic_oracle(&mutated);
        }
    }
}
