//! `deepnode node run --chain ws://...`: the node on a Substrate chain whose runtime runs
//! pallet-deepnode (`deepnode-substrate`, behind the `chain` feature), instead of the embedded
//! ledger's RPC.

use std::sync::Arc;

use deepnode_ledger_client::Wallet;
use deepnode_node::life::{RunConfig, Status};
use deepnode_node::{Model, NodeError, Trainer};
use tokio::sync::watch;

/// Connects to the chain at `url` (checking its runtime) and runs the node on it until
/// `stop`, as `deepnode_node::life::run` does on the embedded ledger.
#[cfg(feature = "chain")]
pub async fn run(
    url: &str,
    wallet: &Wallet,
    model: Arc<dyn Model>,
    trainer: Option<Box<dyn Trainer>>,
    cfg: RunConfig,
    status: watch::Sender<Status>,
    stop: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    let chain = deepnode_substrate::SubstrateChain::connect(url, wallet).await?;
    deepnode_node::life::run(&chain, wallet, model, trainer, cfg, status, stop).await
}

/// Without the `chain` feature: refuses, saying how to build it.
#[cfg(not(feature = "chain"))]
pub async fn run(
    url: &str,
    _wallet: &Wallet,
    _model: Arc<dyn Model>,
    _trainer: Option<Box<dyn Trainer>>,
    _cfg: RunConfig,
    _status: watch::Sender<Status>,
    _stop: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    Err(NodeError::Ledger(format!(
        "--chain {url}: this deepnode was built without the `chain` feature \
         (cargo build --release -p deepnode-cli --features chain)"
    )))
}
