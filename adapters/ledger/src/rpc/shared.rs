//! What the RPC methods and the block producer share: the chain behind its lock, the last
//! committed block as readers see it ([`Snapshot`]), the pool's nonces and the channel of new
//! heads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use deepnode_ledger_client::{AccountId, H256};
use serde_json::value::RawValue;
use tokio::sync::broadcast;

use crate::block::Header;
use crate::chain::Chain;
use crate::state::LedgerState;
use crate::store::Store;
use crate::view::HeaderView;

/// The last committed block as readers see it: replaced whole after each commit, so a read
/// never waits on a commit and never holds the chain's lock. Its metagraph and epoch input
/// are serialized once, by their first reader, and served as those bytes after.
pub(super) struct Snapshot {
    pub(super) head: Header,
    pub(super) state: Arc<LedgerState>,
    pub(super) metagraph: OnceLock<Option<Json>>,
    pub(super) epoch_input: OnceLock<Option<Json>>,
}

impl Snapshot {
    fn new(head: Header, state: Arc<LedgerState>) -> Snapshot {
        Snapshot {
            head,
            state,
            metagraph: OnceLock::new(),
            epoch_input: OnceLock::new(),
        }
    }
}

/// A reply serialized once and shared: it serializes as its JSON text, unchanged.
#[derive(Clone)]
pub(super) struct Json(Arc<RawValue>);

impl Json {
    /// `value` as JSON text; `None` if it cannot be serialized.
    pub(super) fn of<T: serde::Serialize>(value: &T) -> Option<Json> {
        serde_json::value::to_raw_value(value)
            .ok()
            .map(|raw| Json(Arc::from(raw)))
    }
}

impl serde::Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// What the RPC handlers and the producer share.
pub(super) struct Shared {
    /// Taken by `ledger_submit` (one extrinsic's checks) and by the producer (a block).
    chain: Mutex<Chain>,
    /// Taken only to clone or replace the `Arc`.
    snapshot: RwLock<Arc<Snapshot>>,
    /// The store, for block and extrinsic reads (redb reads see committed transactions).
    pub(super) store: Arc<Store>,
    /// Each account's next nonce counting the pool, for accounts with extrinsics in it;
    /// cleared after each commit (the snapshot then holds them).
    pub(super) pool_nonces: Mutex<HashMap<AccountId, u64>>,
    pub(super) genesis: H256,
    /// Each new head, for `ledger_subscribeNewHeads`.
    pub(super) heads: broadcast::Sender<HeaderView>,
}

/// Locks `m`; a panic while it was held left its data as it was before the failed call
/// (every mutation validates first), so keep serving.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(super) fn new(chain: Chain, heads: broadcast::Sender<HeaderView>) -> Shared {
        let (head, state, store) = chain.snapshot();
        Shared {
            genesis: chain.genesis_hash(),
            chain: Mutex::new(chain),
            snapshot: RwLock::new(Arc::new(Snapshot::new(head, state))),
            store,
            pool_nonces: Mutex::new(HashMap::new()),
            heads,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Chain> {
        lock(&self.chain)
    }

    /// The last committed block.
    pub(super) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The store, for the producer's commits.
    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// Publishes a new head, committed with `state`, to readers; called by the producer
    /// after the commit. The pool's nonces it now counts are forgotten; those of extrinsics
    /// accepted since its block was sealed are kept.
    pub(super) fn publish(&self, head: &Header, state: &Arc<LedgerState>) {
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Snapshot::new(head.clone(), Arc::clone(state)));
        lock(&self.pool_nonces).retain(|who, next| *next > state.nonce(who));
    }
}
