//! The metagraph as the runtime's `DeepNodeApi_metagraph` returns it (the SCALE layout of
//! pallet-deepnode's `Metagraph<AccountId32>`), and its conversion to the node's view.

use deepnode_ledger_client::{AccountId, MetagraphView, NeuronView, StatsBits};
use deepnode_types::{Fx, NeuronStats};
use parity_scale_codec::Decode;

/// The field names of the runtime API's return type, in order (checked against the
/// runtime's metadata before any call is decoded).
pub const METAGRAPH_FIELDS: [&str; 9] = [
    "block",
    "epochs",
    "tempo",
    "weights_rate_limit",
    "immunity_period",
    "max_nodes",
    "max_weights_len",
    "min_allowed_weights",
    "nodes",
];

/// The field names of one node, in order.
pub const NEURON_FIELDS: [&str; 7] = [
    "owner",
    "stake",
    "registered_at",
    "weights_block",
    "endpoint",
    "modality",
    "last",
];

/// pallet-deepnode's `Metagraph<AccountId32>`.
#[derive(Clone, Debug, PartialEq, Decode)]
pub struct Metagraph {
    /// The block of the state.
    pub block: u64,
    /// Epochs run so far.
    pub epochs: u64,
    /// Blocks per epoch.
    pub tempo: u64,
    /// A node may set weights at most once per this many blocks.
    pub weights_rate_limit: u64,
    /// Blocks after registration during which a node cannot be replaced.
    pub immunity_period: u64,
    /// Most registered nodes.
    pub max_nodes: u32,
    /// Most entries in a weights row.
    pub max_weights_len: u32,
    /// The controller's current value.
    pub min_allowed_weights: u32,
    /// Every node, by uid.
    pub nodes: Vec<Neuron>,
}

/// pallet-deepnode's `Neuron<AccountId32>`.
#[derive(Clone, Debug, PartialEq, Decode)]
pub struct Neuron {
    /// The owner's account (the node's ed25519 public key).
    pub owner: [u8; 32],
    /// Stake, raw units.
    pub stake: u64,
    /// Block of registration.
    pub registered_at: u64,
    /// Block of its last accepted weights row.
    pub weights_block: Option<u64>,
    /// Its endpoint (empty until served).
    pub endpoint: Vec<u8>,
    /// Its `deepnode_wire::Modality` code.
    pub modality: u8,
    /// Its outputs from the last epoch.
    pub last: NeuronStats<Fx>,
}

impl Metagraph {
    /// The node's view of it: the embedded ledger's metagraph shape, so a node reads either
    /// chain the same way.
    pub fn view(&self) -> MetagraphView {
        MetagraphView {
            block: self.block,
            epochs: self.epochs,
            max_weights_len: self.max_weights_len,
            min_allowed_weights: self.min_allowed_weights,
            n: self.nodes.len(),
            nodes: self
                .nodes
                .iter()
                .enumerate()
                .map(|(uid, n)| n.view(uid))
                .collect(),
            tempo: self.tempo,
            weights_rate_limit: self.weights_rate_limit,
        }
    }
}

impl Neuron {
    fn view(&self, uid: usize) -> NeuronView {
        let l = &self.last;
        let bits = |x: Fx| x.to_bits().to_string();
        NeuronView {
            bits: StatsBits {
                consensus: bits(l.consensus),
                dividends: bits(l.dividends),
                incentive: bits(l.incentive),
                rank: bits(l.rank),
                trust: bits(l.trust),
            },
            consensus: l.consensus.to_f64(),
            dividends: l.dividends.to_f64(),
            emission: l.emission,
            endpoint: String::from_utf8_lossy(&self.endpoint).into_owned(),
            incentive: l.incentive.to_f64(),
            // A node serves a modality once it has served an endpoint.
            modality: (!self.endpoint.is_empty()).then(|| modality_name(self.modality)),
            key: AccountId(self.owner).to_string(),
            rank: l.rank.to_f64(),
            registered_at: self.registered_at,
            stake: self.stake,
            trust: l.trust.to_f64(),
            uid,
            weights_block: self.weights_block,
        }
    }
}

/// A modality's name (`deepnode_wire::Modality`), or its code when unknown.
fn modality_name(code: u8) -> String {
    deepnode_wire::Modality::from_code(code)
        .map_or_else(|_| code.to_string(), |m| m.name().to_owned())
}
