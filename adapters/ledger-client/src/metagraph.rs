//! The metagraph as `ledger_metagraph` serves it and a client reads it back: per uid, the
//! owner, stake, endpoint and the last epoch's outputs.
//!
//! Reals are the nearest `f64`, with their exact fixed-point bits as decimal strings in
//! [`StatsBits`]. Fields are declared in alphabetical order, the key order of the served JSON.

use serde::{Deserialize, Serialize};

/// The exact bits of a neuron's last outputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsBits {
    /// Consensus `c`.
    pub consensus: String,
    /// Dividends `d`.
    pub dividends: String,
    /// Incentive `i`.
    pub incentive: String,
    /// Rank `r`.
    pub rank: String,
    /// Trust `t`.
    pub trust: String,
}

/// One neuron of the metagraph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuronView {
    /// The exact bits of the reals below.
    pub bits: StatsBits,
    /// Consensus `c` (nearest `f64`).
    pub consensus: f64,
    /// Dividends `d`.
    pub dividends: f64,
    /// Units minted to it in the last epoch.
    pub emission: u64,
    /// Its endpoint (UTF-8, lossy; empty until served).
    pub endpoint: String,
    /// Incentive `i`.
    pub incentive: f64,
    /// The modality it serves (`text`, `image`, `speech`, `tensor`: `deepnode_wire::Modality`'s
    /// names), or `null` until served.
    pub modality: Option<String>,
    /// The owner's account.
    pub key: String,
    /// Rank `r`.
    pub rank: f64,
    /// Block of registration.
    pub registered_at: u64,
    /// Stake, raw units.
    pub stake: u64,
    /// Trust `t`.
    pub trust: f64,
    /// Its uid.
    pub uid: usize,
    /// Block of its last accepted weights row, or `null`.
    pub weights_block: Option<u64>,
}

/// The metagraph of the committed state (`ledger_metagraph`); clients read it back with
/// `Deserialize` (the node's discovery).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetagraphView {
    /// The block of the state.
    pub block: u64,
    /// Epochs run so far.
    pub epochs: u64,
    /// Most entries in a weights row.
    pub max_weights_len: u32,
    /// The controller's current value.
    pub min_allowed_weights: u32,
    /// Number of neurons.
    pub n: usize,
    /// Per uid.
    pub nodes: Vec<NeuronView>,
    /// Blocks per epoch.
    pub tempo: u64,
    /// A neuron may set weights at most once per this many blocks.
    pub weights_rate_limit: u64,
}
