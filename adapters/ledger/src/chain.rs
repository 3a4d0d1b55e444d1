//! The chain: committed state, a pool of accepted extrinsics applied to a pending state, and
//! block production; replay from genesis is [`crate::verify`].

use std::path::Path;
use std::sync::Arc;

use deepnode_ledger_client::{AccountId, Extrinsic, H256, TxError};
use parity_scale_codec::Encode;

use crate::block::{Block, Event, Header, Receipts};
use crate::error::{Corruption, Damage, GenesisError, LedgerError, UsageError};
use crate::state::{Genesis, LedgerState};
use crate::store::{DB_FILE, Store};

/// A running ledger over its store.
///
/// Extrinsics are checked against the pending state (the committed state plus the pool,
/// at the next block number), so acceptance means the next block will include them with
/// exactly the effects checked. The pool is not persisted: a crash loses accepted but
/// uncommitted extrinsics, never committed ones.
///
/// The pending state is a copy of the committed one made when the first extrinsic of a block
/// arrives (RPC reads the committed state meanwhile); producing the block moves it into place,
/// so a block costs at most one copy of the state, and one encoding of it (hashed into the
/// header and written to the store).
///
/// A block is produced in three steps so that the slow part needs no `&mut Chain` (and no
/// lock around one): [`Chain::seal_block`] fixes its extrinsics and runs its end of block
/// (the epoch, when due); [`Sealed::commit`] encodes and hashes its state and commits it to
/// the store (about 85% of a block's time at 4,096 nodes, none of it an epoch); then
/// [`Chain::install`] makes it the head (or [`Chain::abandon`] puts its extrinsics back in the
/// pool). Between seal and install, extrinsics are checked against the sealed block's state
/// and go into the next block. [`Chain::produce_block`] runs the three in one call.
pub struct Chain {
    store: Arc<Store>,
    genesis_hash: H256,
    head: Header,
    /// Shared with readers ([`Chain::snapshot`]): replaced, never mutated, after a commit.
    state: Arc<LedgerState>,
    /// The state of the block sealed and not yet installed: what the pool builds on.
    sealed: Option<Arc<LedgerState>>,
    /// The base state plus the pool, at the base's block + 1; `None` while the pool is empty.
    pending: Option<LedgerState>,
    pool: Vec<Extrinsic>,
    pool_receipts: Vec<Vec<Event>>,
}

/// Block 0 of a genesis: no extrinsics, timestamp 0, so its hash depends only on the genesis.
pub(crate) fn genesis_block(state: &LedgerState) -> Block {
    Block {
        header: Header {
            number: 0,
            parent: H256::default(),
            state_root: state.root(),
            extrinsics_root: H256::digest(&Vec::<Extrinsic>::new().encode()),
            timestamp_ms: 0,
        },
        extrinsics: Vec::new(),
    }
}

impl Chain {
    /// Opens the ledger in `dir`. A new directory is initialised from `genesis` (the default
    /// when `None`); an existing one resumes from its last committed block, and a `genesis`
    /// given for it must equal the stored one.
    pub fn open(dir: &Path, genesis: Option<&Genesis>) -> Result<Chain, LedgerError> {
        let path = dir.join(DB_FILE);
        // A new chain's genesis is checked before its file is created, so a refused genesis
        // leaves nothing behind.
        let fresh = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let g = genesis.cloned().unwrap_or_default();
                crate::genesis::check_limits(&g.config)?;
                let state = LedgerState::genesis(&g)?;
                Some((g, state))
            }
            _ => None,
        };
        let store = Store::open(dir)?;
        let inconsistent = |e: LedgerError| match e {
            LedgerError::Corrupt(c) => LedgerError::Damaged {
                path: path.clone(),
                damage: Damage::Inconsistent(c),
            },
            other => other,
        };
        match (store.genesis().map_err(inconsistent)?, fresh) {
            (None, Some((g, state))) if store.created() => {
                if let Err(e) = store.init(&g, &genesis_block(&state), &state) {
                    drop(store);
                    // Nothing was committed: the file is ours and empty.
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
            }
            (None, _) => {
                return Err(LedgerError::Damaged {
                    path,
                    damage: Damage::NoLedger,
                });
            }
            (Some(stored), _) => {
                if genesis.is_some_and(|g| *g != stored) {
                    return Err(GenesisError::Mismatch.into());
                }
            }
        }
        Self::resume(store).map_err(inconsistent)
    }

    /// The chain at the store's head; the stored state must be the head header's.
    fn resume(store: Store) -> Result<Chain, LedgerError> {
        let genesis_hash = store
            .block(0)?
            .ok_or(Corruption::NoGenesisBlock)?
            .header
            .hash();
        let head = store.head_header()?;
        let state = store.state()?;
        if state.block != head.number || state.root() != head.state_root {
            return Err(Corruption::StateNotAtHead.into());
        }
        Ok(Chain {
            store: Arc::new(store),
            genesis_hash,
            head,
            state: Arc::new(state),
            sealed: None,
            pending: None,
            pool: Vec::new(),
            pool_receipts: Vec::new(),
        })
    }

    /// The chain id that extrinsics sign: the hash of block 0.
    pub fn genesis_hash(&self) -> H256 {
        self.genesis_hash
    }

    /// The last committed header.
    pub fn head(&self) -> &Header {
        &self.head
    }

    /// The state after the last committed block.
    pub fn state(&self) -> &LedgerState {
        &self.state
    }

    /// The next nonce of `who`, counting the extrinsics in the pool (and in a block sealed
    /// and not yet installed).
    pub fn pending_nonce(&self, who: &AccountId) -> u64 {
        self.pending.as_ref().unwrap_or(self.base()).nonce(who)
    }

    /// What the next extrinsics build on: the sealed block's state, else the committed one.
    fn base(&self) -> &LedgerState {
        self.sealed.as_deref().unwrap_or(&self.state)
    }

    /// The store (read access for RPC).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The last committed head and state, shared rather than copied: readers keep them
    /// while later blocks commit (the RPC serves reads from this, never under the chain's
    /// lock), and the store, whose reads see committed transactions only.
    pub fn snapshot(&self) -> (Header, Arc<LedgerState>, Arc<Store>) {
        (self.head.clone(), self.state.clone(), self.store.clone())
    }

    /// Extrinsics waiting for the next block.
    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }

    /// Decodes, verifies and accepts an encoded extrinsic.
    pub fn submit(&mut self, bytes: &[u8]) -> Result<H256, TxError> {
        let ext = Extrinsic::decode_checked(bytes, &self.genesis_hash)?;
        self.submit_verified(ext)
    }

    /// Accepts an extrinsic whose signature was checked ([`Extrinsic::decode_checked`]):
    /// applies it to the pending state, or refuses it and changes nothing.
    pub fn submit_verified(&mut self, ext: Extrinsic) -> Result<H256, TxError> {
        let max = usize::try_from(self.state.config.max_block_extrinsics).unwrap_or(usize::MAX);
        if self.pool.len() >= max {
            return Err(TxError::PoolFull(max));
        }
        let base = self.sealed.as_deref().unwrap_or(&self.state);
        let pending = self.pending.get_or_insert_with(|| next_block(base));
        let events = pending.apply(&ext)?;
        let hash = ext.hash();
        self.pool.push(ext);
        self.pool_receipts.push(events);
        Ok(hash)
    }

    /// Produces, commits and returns the next block: the pool's extrinsics (already applied),
    /// then the end of block (an epoch every `tempo` blocks). The block, its receipts and the
    /// new state are committed in one transaction before anything in memory changes. The
    /// steps of [`Chain::seal_block`], [`Sealed::commit`] and [`Chain::install`] in one call.
    pub fn produce_block(&mut self, timestamp_ms: u64) -> Result<&Header, LedgerError> {
        let sealed = self.seal_block(timestamp_ms)?;
        match sealed.commit(&self.store) {
            Ok(committed) => Ok(self.install(committed)),
            Err(failed) => {
                let (sealed, e) = *failed;
                self.abandon(sealed);
                Err(e)
            }
        }
    }

    /// Seals the next block: takes the pool's extrinsics (already applied to the pending
    /// state, which becomes the block's state, moved, not copied; a block with no extrinsic
    /// starts from a copy of the last state) and runs the end of block on it. Later
    /// extrinsics build on the sealed state. Fails while a sealed block is not yet installed
    /// or abandoned.
    pub fn seal_block(&mut self, timestamp_ms: u64) -> Result<Sealed, LedgerError> {
        if self.sealed.is_some() {
            return Err(UsageError::BlockInProgress.into());
        }
        let mut next = match self.pending.take() {
            Some(pending) => pending,
            None => next_block(&self.state),
        };
        let end = next.end_block();
        let state = Arc::new(next);
        self.sealed = Some(Arc::clone(&state));
        Ok(Sealed {
            parent: self.head.hash(),
            timestamp_ms,
            extrinsics: std::mem::take(&mut self.pool),
            receipts: Receipts {
                extrinsics: std::mem::take(&mut self.pool_receipts),
                end,
            },
            state,
        })
    }

    /// Makes a committed block the head and its state the committed state; returns its header.
    pub fn install(&mut self, committed: Committed) -> &Header {
        self.head = committed.header;
        self.state = committed.state;
        self.sealed = None;
        &self.head
    }

    /// Gives up a sealed block whose commit failed (nothing of it was committed): its
    /// extrinsics go back to the front of the pool, before those accepted since it was
    /// sealed, and the pending state is rebuilt from the committed one. An extrinsic accepted
    /// after an epoch block was sealed may no longer apply before that epoch: it leaves the
    /// pool.
    pub fn abandon(&mut self, sealed: Sealed) {
        let mut pool = sealed.extrinsics;
        pool.append(&mut self.pool);
        self.pool = pool;
        self.sealed = None;
        self.pending = None;
        self.restore_pending();
    }

    /// Rebuilds the pending state from the committed one and the pool, after a failed commit
    /// consumed it (the end of block may have run an epoch on it).
    fn restore_pending(&mut self) {
        self.pool_receipts.clear();
        if self.pool.is_empty() {
            return;
        }
        let mut pending = next_block(&self.state);
        // The given-up block's extrinsics apply on the same state as when they were accepted
        // (`apply` is deterministic); one accepted after it was sealed may not (it was checked
        // after that block's end, an epoch perhaps), and one past the block's limit does not
        // fit: those leave the pool.
        let max = usize::try_from(self.state.config.max_block_extrinsics).unwrap_or(usize::MAX);
        let mut kept = Vec::with_capacity(self.pool.len().min(max));
        for ext in std::mem::take(&mut self.pool) {
            if kept.len() >= max {
                break;
            }
            if let Ok(events) = pending.apply(&ext) {
                kept.push(ext);
                self.pool_receipts.push(events);
            }
        }
        self.pool = kept;
        self.pending = Some(pending);
    }
}

/// A block sealed by [`Chain::seal_block`], its extrinsics, receipts and state fixed; not yet
/// committed.
#[derive(Debug)]
pub struct Sealed {
    parent: H256,
    timestamp_ms: u64,
    extrinsics: Vec<Extrinsic>,
    receipts: Receipts,
    state: Arc<LedgerState>,
}

/// A block committed to the store by [`Sealed::commit`], for [`Chain::install`].
#[derive(Debug)]
pub struct Committed {
    header: Header,
    state: Arc<LedgerState>,
}

impl Committed {
    /// The committed block's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Its state.
    pub fn state(&self) -> &Arc<LedgerState> {
        &self.state
    }
}

impl Sealed {
    /// Encodes the block's state once (hashed into the header and written to the store) and
    /// commits block, receipts and state to `store` in one transaction. Needs no access to
    /// the chain: the slow part of producing a block. On failure nothing was committed, and
    /// the block comes back with the error (for [`Chain::abandon`]).
    pub fn commit(self, store: &Store) -> Result<Committed, Box<(Sealed, LedgerError)>> {
        let encoded = self.state.encode();
        let header = Header {
            number: self.state.block,
            parent: self.parent,
            state_root: H256::digest(&encoded),
            extrinsics_root: H256::digest(&self.extrinsics.encode()),
            timestamp_ms: self.timestamp_ms,
        };
        let block = Block {
            header,
            extrinsics: self.extrinsics,
        };
        match store.commit_encoded(&block, &self.receipts, &encoded) {
            Ok(()) => Ok(Committed {
                header: block.header,
                state: self.state,
            }),
            Err(e) => Err(Box::new((
                Sealed {
                    parent: self.parent,
                    timestamp_ms: self.timestamp_ms,
                    extrinsics: block.extrinsics,
                    receipts: self.receipts,
                    state: self.state,
                },
                e,
            ))),
        }
    }
}

/// A copy of `state` at the next block number: where the next block's extrinsics apply.
fn next_block(state: &LedgerState) -> LedgerState {
    let mut next = state.clone();
    next.block = state.block + 1;
    next
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::verify::verify;
    use deepnode_ledger_client::Call;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn blocks_survive_reopen_and_verify_replays_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut g = Genesis::default();
        g.config.tempo = 2;
        g.endowments = vec![(AccountId::from(&key(1)), 10_000)];
        let hash = {
            let mut chain = Chain::open(dir.path(), Some(&g)).expect("open");
            let gh = chain.genesis_hash();
            let calls = [
                Call::Register,
                Call::AddStake {
                    uid: 0,
                    amount: 500,
                },
                Call::SetWeights {
                    uid: 0,
                    weights: vec![(0, 1)],
                },
            ];
            for (nonce, call) in calls.into_iter().enumerate() {
                let ext = Extrinsic::sign(&key(1), &gh, nonce as u64, call);
                chain.submit(&ext.encode()).expect("accepted");
            }
            chain.produce_block(1).expect("block 1");
            chain.produce_block(2).expect("block 2 runs the epoch");
            assert_eq!(chain.state().epochs, 1);
            assert!(chain.state().neurons[0].stake > 500, "minted");
            chain.head().hash()
        };
        let chain = Chain::open(dir.path(), None).expect("reopen");
        assert_eq!(chain.head().hash(), hash);
        drop(chain);
        let report = verify(dir.path()).expect("verifies");
        assert_eq!((report.head, report.extrinsics, report.epochs), (2, 3, 1));
    }

    /// Extrinsics accepted while a sealed block is being committed go into the next block,
    /// checked against the sealed block's state; a block whose commit is given up puts its
    /// extrinsics back first; only one block is sealed at a time.
    #[test]
    fn extrinsics_accepted_during_a_commit_go_into_the_next_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = Genesis {
            endowments: vec![(AccountId::from(&key(1)), 100)],
            ..Genesis::default()
        };
        let mut chain = Chain::open(dir.path(), Some(&g)).expect("open");
        let gh = chain.genesis_hash();
        let me = AccountId::from(&key(1));
        let transfer = |nonce| {
            let to = AccountId([3; 32]);
            Extrinsic::sign(&key(1), &gh, nonce, Call::Transfer { to, amount: 5 })
        };
        chain.submit_verified(transfer(0)).expect("nonce 0");
        let sealed = chain.seal_block(1).expect("seal block 1");
        assert!(matches!(
            chain.seal_block(2),
            Err(LedgerError::Usage(UsageError::BlockInProgress))
        ));
        // Block 1 is not committed yet: nonce 1 builds on its state.
        assert_eq!(chain.pending_nonce(&me), 1);
        chain
            .submit_verified(transfer(1))
            .expect("nonce 1, during the commit");
        assert_eq!(chain.pending_nonce(&me), 2);
        let committed = sealed.commit(chain.store()).expect("commit");
        assert_eq!(committed.header().number, 1);
        chain.install(committed);
        assert_eq!((chain.head().number, chain.state().nonce(&me)), (1, 1));
        assert_eq!(chain.pool_len(), 1);
        chain.produce_block(2).expect("block 2");
        assert_eq!(chain.state().nonce(&me), 2);
        // A block given up: its extrinsic comes back before the one accepted after it.
        chain.submit_verified(transfer(2)).expect("nonce 2");
        let sealed = chain.seal_block(3).expect("seal block 3");
        chain.submit_verified(transfer(3)).expect("nonce 3");
        chain.abandon(sealed);
        assert_eq!((chain.pool_len(), chain.pending_nonce(&me)), (2, 4));
        chain.produce_block(3).expect("block 3");
        assert_eq!(chain.state().nonce(&me), 4);
        drop(chain);
        verify(dir.path()).expect("verifies");
    }

    #[test]
    fn another_genesis_on_an_existing_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Chain::open(dir.path(), None).expect("open"));
        let mut g = Genesis::default();
        g.config.tempo = 7;
        assert!(matches!(
            Chain::open(dir.path(), Some(&g)),
            Err(LedgerError::Genesis(GenesisError::Mismatch))
        ));
    }
}
