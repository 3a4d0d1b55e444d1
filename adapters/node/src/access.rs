//! The node's access to the chain that runs its market, behind one trait: the embedded
//! ledger's JSON-RPC ([`LedgerRpc`]) or, in another crate, a Substrate chain running
//! pallet-deepnode. A node reads the metagraph, learns the chain's genesis hash (its sessions
//! are bound to it) and submits its own signed calls, each waited for until a block holds it.

use std::future::Future;
use std::time::Duration;

use deepnode_ledger_client::{Call, Client, MetagraphView, RpcError, Wallet};

use crate::NodeError;

/// How long a submitted call may take to reach a block.
pub const INCLUSION_TIMEOUT: Duration = Duration::from_secs(30);

/// What a node needs from its chain. Every failure is a [`NodeError::Ledger`] with a
/// one-line reason: an unreachable chain, a refused call (the chain's own error), a timeout.
pub trait LedgerAccess: Send + Sync {
    /// The chain's genesis hash.
    fn genesis_hash(&self) -> impl Future<Output = Result<[u8; 32], NodeError>> + Send;

    /// The metagraph at the chain's latest block.
    fn metagraph(&self) -> impl Future<Output = Result<MetagraphView, NodeError>> + Send;

    /// Signs `call` with the node's key, submits it and waits until a block holds it: that
    /// block's number, or why the chain refused it.
    fn submit(&self, call: Call) -> impl Future<Output = Result<u64, NodeError>> + Send;
}

/// The embedded ledger's JSON-RPC, signing with a wallet's ed25519 key.
pub struct LedgerRpc {
    client: Client,
    wallet: Wallet,
}

impl LedgerRpc {
    /// The ledger at `url` (`http://host:port`), acting for `wallet`.
    pub fn new(url: &str, wallet: Wallet) -> Result<LedgerRpc, NodeError> {
        Ok(LedgerRpc {
            client: Client::new(url).map_err(ledger)?,
            wallet,
        })
    }
}

fn ledger(e: RpcError) -> NodeError {
    NodeError::Ledger(e.to_string())
}

impl LedgerAccess for LedgerRpc {
    async fn genesis_hash(&self) -> Result<[u8; 32], NodeError> {
        Ok(self.client.genesis_hash().await.map_err(ledger)?.0)
    }

    async fn metagraph(&self) -> Result<MetagraphView, NodeError> {
        self.client.metagraph().await.map_err(ledger)
    }

    async fn submit(&self, call: Call) -> Result<u64, NodeError> {
        let h = self
            .client
            .send(self.wallet.key(), call)
            .await
            .map_err(ledger)?;
        self.client
            .wait_committed(&h, INCLUSION_TIMEOUT)
            .await
            .map_err(ledger)
    }
}
