//! Replay from genesis: every block of a stored chain re-verified and re-applied.

use std::path::Path;

use deepnode_ledger_client::H256;
use parity_scale_codec::Encode;

use crate::block::Receipts;
use crate::chain::genesis_block;
use crate::error::{Damage, LedgerError, UsageError, VerifyFailure};
use crate::state::LedgerState;
use crate::store::{DB_FILE, Store};

/// What a successful [`verify`] checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blocks replayed, genesis included.
    pub blocks: u64,
    /// Extrinsics re-verified and re-applied.
    pub extrinsics: u64,
    /// Epochs re-run.
    pub epochs: u64,
    /// The head's number.
    pub head: u64,
}

/// Replays the chain in `dir` from genesis: checks every signature, re-applies every
/// extrinsic and epoch, and compares parent hashes, extrinsic roots, receipts and the state
/// root of every block, then the stored head state.
pub fn verify(dir: &Path) -> Result<VerifyReport, LedgerError> {
    if std::fs::symlink_metadata(dir.join(DB_FILE)).is_err() {
        return Err(UsageError::NoDatabase(dir.to_path_buf()).into());
    }
    // Read only: verify never writes the file, not even redb's crash repair.
    let store = Store::open_read_only(dir)?;
    let genesis = store.genesis()?.ok_or_else(|| LedgerError::Damaged {
        path: store.path().to_path_buf(),
        damage: Damage::NoLedger,
    })?;
    let mut state = LedgerState::genesis(&genesis)?;
    let fail = |block: u64, reason: VerifyFailure| LedgerError::Verify { block, reason };
    let g = store.block(0)?.ok_or(fail(0, VerifyFailure::Missing))?;
    if g != genesis_block(&state) {
        return Err(fail(0, VerifyFailure::GenesisBlock));
    }
    let genesis_hash = g.header.hash();
    let mut parent = genesis_hash;
    let head = store.head()?;
    let mut extrinsics = 0u64;
    for number in 1..=head {
        let block = store
            .block(number)?
            .ok_or(fail(number, VerifyFailure::Missing))?;
        let receipts = store
            .receipts(number)?
            .ok_or(fail(number, VerifyFailure::ReceiptsMissing))?;
        let h = &block.header;
        if h.number != number || h.parent != parent {
            return Err(fail(number, VerifyFailure::Parent));
        }
        if h.extrinsics_root != H256::digest(&block.extrinsics.encode()) {
            return Err(fail(number, VerifyFailure::ExtrinsicsRoot));
        }
        state.block = number;
        let mut events = Vec::with_capacity(block.extrinsics.len());
        for (k, ext) in block.extrinsics.iter().enumerate() {
            ext.verify(&genesis_hash)
                .and_then(|()| state.apply(ext))
                .map(|ev| events.push(ev))
                .map_err(|error| fail(number, VerifyFailure::Extrinsic { index: k, error }))?;
        }
        let end = state.end_block();
        if receipts
            != (Receipts {
                extrinsics: events,
                end,
            })
        {
            return Err(fail(number, VerifyFailure::Receipts));
        }
        if state.root() != h.state_root {
            return Err(fail(number, VerifyFailure::StateRoot));
        }
        extrinsics += block.extrinsics.len() as u64;
        parent = h.hash();
    }
    if store.state()? != state {
        return Err(fail(head, VerifyFailure::HeadState));
    }
    Ok(VerifyReport {
        blocks: head + 1,
        extrinsics,
        epochs: state.epochs,
        head,
    })
}

#[cfg(test)]
mod tests {
    use deepnode_ledger_client::{AccountId, Call, Extrinsic};
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::chain::Chain;
    use crate::state::Genesis;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn verify_finds_a_tampered_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = Genesis {
            endowments: vec![(AccountId::from(&key(1)), 100)],
            ..Genesis::default()
        };
        let mut chain = Chain::open(dir.path(), Some(&g)).expect("open");
        let to = AccountId([3; 32]);
        let ext = Extrinsic::sign(
            &key(1),
            &chain.genesis_hash(),
            0,
            Call::Transfer { to, amount: 5 },
        );
        chain.submit_verified(ext).expect("accepted");
        chain.produce_block(1).expect("block 1");
        chain.produce_block(2).expect("block 2");
        drop(chain);
        verify(dir.path()).expect("untouched chain verifies");
        let store = Store::open(dir.path()).expect("store");
        let mut block = store.block(1).expect("read").expect("block 1");
        let receipts = store.receipts(1).expect("read").expect("receipts");
        let state = store.state().expect("state");
        let Call::Transfer { amount, .. } = &mut block.extrinsics[0].call else {
            unreachable!("block 1 holds the transfer")
        };
        *amount = 6;
        store.commit(&block, &receipts, &state).expect("rewrite");
        drop(store);
        let err = verify(dir.path()).expect_err("tampering is found");
        assert!(
            matches!(
                &err,
                LedgerError::Verify {
                    block: 1,
                    reason: VerifyFailure::ExtrinsicsRoot
                }
            ),
            "{err}"
        );
    }
}
