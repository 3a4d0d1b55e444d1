//! Joining the network: a neuron registered for the node's account, its stake topped up,
//! its endpoint served.

use deepnode_consensus::Uid;
use deepnode_ledger_client::{Call, MetagraphView, Wallet};

use super::RunConfig;
use crate::NodeError;
use crate::access::LedgerAccess;

/// Registers (if the account owns no neuron), tops the stake up to `cfg.stake` and serves
/// `endpoint` with `cfg.modality`; each step waits for its block. Returns the uid.
pub(super) async fn join(
    ledger: &impl LedgerAccess,
    wallet: &Wallet,
    cfg: &RunConfig,
    endpoint: &str,
) -> Result<Uid, NodeError> {
    let me = wallet.account().to_string();
    let find = |mg: &MetagraphView| {
        mg.nodes
            .iter()
            .find(|n| n.key == me)
            .map(|n| (n.uid, n.stake, (n.endpoint.clone(), n.modality.clone())))
    };
    let mut mg = ledger.metagraph().await?;
    if find(&mg).is_none() {
        ledger.submit(Call::Register).await?;
        mg = ledger.metagraph().await?;
    }
    let (uid, stake, served) =
        find(&mg).ok_or_else(|| NodeError::Ledger("registration did not take effect".into()))?;
    let uid = Uid::try_from(uid).map_err(|_| NodeError::Ledger("uid out of range".into()))?;
    if stake < cfg.stake {
        let call = Call::AddStake {
            uid,
            amount: cfg.stake - stake,
        };
        ledger.submit(call).await?;
    }
    if served != (endpoint.to_owned(), Some(cfg.modality.name().to_owned())) {
        let call = Call::Serve {
            uid,
            endpoint: endpoint.as_bytes().to_vec(),
            modality: cfg.modality.code(),
        };
        ledger.submit(call).await?;
    }
    Ok(uid)
}
