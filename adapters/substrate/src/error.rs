//! What can go wrong between a node and a Substrate chain, each a one-line reason.

use deepnode_node::NodeError;

/// A failure of [`crate::SubstrateChain`].
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// No chain answers at the URL (refused, closed, not a Substrate RPC).
    #[error("chain {url} unreachable: {reason}")]
    Unreachable {
        /// The URL dialed.
        url: String,
        /// The client's reason.
        reason: String,
    },
    /// The runtime answers but does not run pallet-deepnode.
    #[error("chain {url}: the runtime has no DeepNode pallet (is it the DeepNode runtime?)")]
    NoPallet {
        /// The URL dialed.
        url: String,
    },
    /// The runtime's metadata does not describe the calls or the metagraph this client
    /// encodes and decodes (another version of the pallet or of its runtime API).
    #[error("chain metadata mismatch: {0}")]
    Metadata(String),
    /// The signing account cannot pay a transaction's fee.
    #[error("account {account} has no funds on the chain to pay fees (fund it first)")]
    NoFunds {
        /// The account, hex.
        account: String,
    },
    /// The chain refused a transaction (its validity checks or the pallet's error).
    #[error("chain refused {call}: {reason}")]
    Refused {
        /// The pallet call.
        call: &'static str,
        /// The chain's reason (e.g. `DeepNode.NotOwner`).
        reason: String,
    },
    /// The connection failed during a request.
    #[error("chain request failed: {0}")]
    Rpc(String),
}

impl From<ChainError> for NodeError {
    fn from(e: ChainError) -> NodeError {
        NodeError::Ledger(e.to_string())
    }
}
