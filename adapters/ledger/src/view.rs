//! The JSON views of the ledger: what the RPC methods return (headers, blocks with their calls
//! and events, accounts, the metagraph, rows) and the next epoch's input in the
//! `deepnode epoch` contract.
//!
//! Reals are printed as the nearest `f64`, with their exact fixed-point bits as decimal strings
//! beside them where a client may need them. The structs derive `Serialize`: their fields are
//! declared in alphabetical order, the key order the replies have always had (`serde_json`
//! sorts the keys of a `json!` object), so the served bytes do not depend on this module's
//! layout; `tests/replies.rs` pins them.

use deepnode_consensus::{Fx, Uid, Weight};
use deepnode_ledger_client::{AccountId, Call, Extrinsic};
use serde::Serialize;
use serde_json::Value;

use crate::block::{Block, Event, Header, Receipts};
use crate::chain::Chain;
use crate::state::{LedgerState, Neuron};

/// The metagraph's types are the client's, which reads them back.
pub use deepnode_ledger_client::metagraph::{MetagraphView, NeuronView, StatsBits};

fn fx(x: Fx) -> f64 {
    x.to_f64()
}

fn bits(x: Fx) -> String {
    x.to_bits().to_string()
}

/// A header with its hash (`ledger_head`, `ledger_newHead`, a block's `header`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeaderView {
    /// BLAKE2b-256 of the encoded extrinsics.
    pub extrinsics_root: String,
    /// The block hash.
    pub hash: String,
    /// Height.
    pub number: u64,
    /// The previous block's hash.
    pub parent: String,
    /// BLAKE2b-256 of the encoded state after the block.
    pub state_root: String,
    /// Production time, ms since the Unix epoch.
    pub timestamp_ms: u64,
}

impl From<&Header> for HeaderView {
    fn from(h: &Header) -> HeaderView {
        HeaderView {
            extrinsics_root: h.extrinsics_root.to_string(),
            hash: h.hash().to_string(),
            number: h.number,
            parent: h.parent.to_string(),
            state_root: h.state_root.to_string(),
            timestamp_ms: h.timestamp_ms,
        }
    }
}

/// A call, keyed by its snake_case name: `{"add_stake": {"amount": 5, "uid": 0}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallView {
    /// [`Call::Register`].
    Register {},
    /// [`Call::AddStake`].
    AddStake {
        /// Raw units.
        amount: u64,
        /// The neuron.
        uid: Uid,
    },
    /// [`Call::RemoveStake`].
    RemoveStake {
        /// Raw units.
        amount: u64,
        /// The neuron.
        uid: Uid,
    },
    /// [`Call::Transfer`].
    Transfer {
        /// Raw units.
        amount: u64,
        /// The receiver.
        to: String,
    },
    /// [`Call::SetWeights`].
    SetWeights {
        /// The neuron.
        uid: Uid,
        /// `[uid, raw weight]` entries as submitted.
        weights: Vec<(Uid, Weight)>,
    },
    /// [`Call::Serve`].
    Serve {
        /// The endpoint (UTF-8, lossy).
        endpoint: String,
        /// The modality's name (`text`, ...; `deepnode_wire::Modality::name`), or its code in
        /// decimal when it names none (a refused call).
        modality: String,
        /// The neuron.
        uid: Uid,
    },
}

impl From<&Call> for CallView {
    fn from(c: &Call) -> CallView {
        match c {
            Call::Register => CallView::Register {},
            &Call::AddStake { uid, amount } => CallView::AddStake { amount, uid },
            &Call::RemoveStake { uid, amount } => CallView::RemoveStake { amount, uid },
            Call::Transfer { to, amount } => CallView::Transfer {
                amount: *amount,
                to: to.to_string(),
            },
            Call::SetWeights { uid, weights } => CallView::SetWeights {
                uid: *uid,
                weights: weights.clone(),
            },
            Call::Serve {
                uid,
                endpoint,
                modality,
            } => CallView::Serve {
                endpoint: String::from_utf8_lossy(endpoint).into_owned(),
                modality: modality_name(*modality),
                uid: *uid,
            },
        }
    }
}

/// An event, keyed by its snake_case name; an epoch's loss comes with its bits.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventView {
    /// [`Event::Registered`].
    Registered {
        /// The new owner.
        owner: String,
        /// The evicted neuron's owner, or `null`.
        replaced: Option<String>,
        /// Stake returned to the evicted owner.
        returned: u64,
        /// The uid assigned.
        uid: Uid,
    },
    /// [`Event::StakeAdded`].
    StakeAdded {
        /// Raw units.
        amount: u64,
        /// The neuron.
        uid: Uid,
    },
    /// [`Event::StakeRemoved`].
    StakeRemoved {
        /// Raw units.
        amount: u64,
        /// The neuron.
        uid: Uid,
    },
    /// [`Event::Transferred`].
    Transferred {
        /// Raw units.
        amount: u64,
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
    },
    /// [`Event::WeightsSet`].
    WeightsSet {
        /// Entries in the row.
        len: u32,
        /// The neuron.
        uid: Uid,
    },
    /// [`Event::Served`].
    Served {
        /// The neuron.
        uid: Uid,
    },
    /// [`Event::Epoch`].
    Epoch {
        /// Epochs run so far, this one included.
        index: u64,
        /// Consensus loss `L` (nearest `f64`).
        loss: f64,
        /// `L`'s exact bits.
        loss_bits: String,
        /// The controller's value for the next epoch.
        min_allowed_weights: u32,
        /// Units minted in total.
        minted: u64,
    },
    /// [`Event::EpochFailed`].
    EpochFailed {
        /// The consensus crate's message.
        reason: String,
    },
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> EventView {
        match e {
            Event::Registered {
                uid,
                owner,
                replaced,
                returned,
            } => EventView::Registered {
                owner: owner.to_string(),
                replaced: replaced.map(|a| a.to_string()),
                returned: *returned,
                uid: *uid,
            },
            &Event::StakeAdded { uid, amount } => EventView::StakeAdded { amount, uid },
            &Event::StakeRemoved { uid, amount } => EventView::StakeRemoved { amount, uid },
            Event::Transferred { from, to, amount } => EventView::Transferred {
                amount: *amount,
                from: from.to_string(),
                to: to.to_string(),
            },
            &Event::WeightsSet { uid, len } => EventView::WeightsSet { len, uid },
            &Event::Served { uid } => EventView::Served { uid },
            &Event::Epoch {
                index,
                loss,
                minted,
                min_allowed_weights,
            } => EventView::Epoch {
                index,
                loss: fx(loss),
                loss_bits: bits(loss),
                min_allowed_weights,
                minted,
            },
            Event::EpochFailed { reason } => EventView::EpochFailed {
                reason: reason.clone(),
            },
        }
    }
}

fn events(list: &[Event]) -> Vec<EventView> {
    list.iter().map(EventView::from).collect()
}

/// An extrinsic of a block with its hash and events.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExtrinsicView {
    /// What it asked for.
    pub call: CallView,
    /// What applying it did.
    pub events: Vec<EventView>,
    /// Its id.
    pub hash: String,
    /// The signer's nonce it carried.
    pub nonce: u64,
    /// The account that signed it.
    pub signer: String,
}

/// A committed block (`ledger_block`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockView {
    /// Events of the end of the block (an epoch).
    pub end_events: Vec<EventView>,
    /// Its extrinsics in order.
    pub extrinsics: Vec<ExtrinsicView>,
    /// Its header.
    pub header: HeaderView,
}

impl BlockView {
    /// The view of `block` with its `receipts`.
    pub fn new(block: &Block, receipts: &Receipts) -> BlockView {
        let extrinsics = block
            .extrinsics
            .iter()
            .enumerate()
            .map(|(k, e): (usize, &Extrinsic)| ExtrinsicView {
                call: CallView::from(&e.call),
                events: receipts
                    .extrinsics
                    .get(k)
                    .map_or(Vec::new(), |ev| events(ev)),
                hash: e.hash().to_string(),
                nonce: e.nonce,
                signer: e.signer.to_string(),
            })
            .collect();
        BlockView {
            end_events: events(&receipts.end),
            extrinsics,
            header: HeaderView::from(&block.header),
        }
    }
}

/// An accepted extrinsic (`ledger_submit`): `{"hash": "0x..", "status": "pending"}`. Accepted
/// is not durable: the pool is not persisted, so a crash before its block is committed loses
/// it. `ledger_extrinsic` (or `deepnode tx --wait`) says when it is committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Submitted {
    /// The extrinsic's hash.
    pub hash: String,
    /// Always `"pending"`: in the pool, not yet in a committed block.
    pub status: &'static str,
}

/// Where a committed extrinsic is (`ledger_extrinsic`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ExtrinsicAt {
    /// The block number.
    pub block: u64,
    /// Its index in the block.
    pub index: u32,
}

/// An account (`ledger_account`): free balance, the stake of the neurons it owns, nonces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct AccountView {
    /// Free balance.
    pub free: u64,
    /// Committed nonce.
    pub nonce: u64,
    /// Next nonce counting the pool.
    pub pending_nonce: u64,
    /// Stake summed over the neurons it owns, exactly: each node's stake is a `u64`, the sum
    /// of several may not be (the JSON number carries every digit).
    pub stake: u128,
}

impl AccountView {
    /// `who` in the committed `state`, with its next nonce counting the pool.
    pub fn new(state: &LedgerState, who: &AccountId, pending_nonce: u64) -> AccountView {
        let acc = state.accounts.get(who).copied().unwrap_or_default();
        AccountView {
            free: acc.free,
            nonce: acc.nonce,
            pending_nonce,
            stake: state
                .neurons
                .iter()
                .filter(|n| n.owner == *who)
                .map(|n| u128::from(n.stake))
                .sum(),
        }
    }
}

/// Neuron `uid` of the metagraph.
fn neuron_view(uid: usize, n: &Neuron) -> NeuronView {
    let l = &n.last;
    NeuronView {
        bits: StatsBits {
            consensus: bits(l.consensus),
            dividends: bits(l.dividends),
            incentive: bits(l.incentive),
            rank: bits(l.rank),
            trust: bits(l.trust),
        },
        consensus: fx(l.consensus),
        dividends: fx(l.dividends),
        emission: l.emission,
        endpoint: String::from_utf8_lossy(&n.endpoint).into_owned(),
        incentive: fx(l.incentive),
        modality: n.modality.map(modality_name),
        key: n.owner.to_string(),
        rank: fx(l.rank),
        registered_at: n.registered_at,
        stake: n.stake,
        trust: fx(l.trust),
        uid,
        weights_block: n.weights_block,
    }
}

/// The metagraph of `state` (`ledger_metagraph`).
pub fn metagraph_view(state: &LedgerState) -> MetagraphView {
    MetagraphView {
        block: state.block,
        epochs: state.epochs,
        max_weights_len: state.config.max_weights_len,
        min_allowed_weights: state.params.min_allowed_weights,
        n: state.neurons.len(),
        nodes: state
            .neurons
            .iter()
            .enumerate()
            .map(|(uid, n)| neuron_view(uid, n))
            .collect(),
        tempo: state.config.tempo,
        weights_rate_limit: state.config.weights_rate_limit,
    }
}

/// A bonds row (`ledger_bonds`): `(uid, value, exact bits)` per entry.
pub fn bonds_view(row: &[(Uid, Fx)]) -> Vec<(Uid, f64, String)> {
    row.iter().map(|&(u, v)| (u, fx(v), bits(v))).collect()
}

/// The next epoch's input in the `deepnode epoch` JSON contract
/// ([`deepnode_contract::render_state`]). Exact while every bond is an `f64` (always before
/// the first epoch); `params` reals are printed as the nearest `f64`.
pub fn epoch_input_json(chain: &Chain) -> Value {
    epoch_input_of(chain.state())
}

/// [`epoch_input_json`] of a committed state (what the RPC serves from its snapshot).
pub fn epoch_input_of(state: &LedgerState) -> Value {
    deepnode_contract::render_state(&state.to_consensus_state())
}

/// The name of modality code `code`, or the code in decimal if it names none.
fn modality_name(code: u8) -> String {
    deepnode_wire::Modality::from_code(code)
        .map_or_else(|_| code.to_string(), |m| m.name().to_owned())
}

#[cfg(test)]
mod account_tests {
    use super::*;
    use crate::state::{Genesis, Neuron, NeuronStats};

    /// An account's stake over its nodes is summed without wrapping: stakes 2^64-21 and 1,000
    /// would wrap to 979 in u64.
    #[test]
    fn account_stake_is_summed_without_wrapping() {
        let who = AccountId([5; 32]);
        let mut state = LedgerState::genesis(&Genesis::default()).expect("genesis");
        for stake in [u64::MAX - 20, 1_000] {
            state.neurons.push(Neuron {
                owner: who,
                stake,
                registered_at: 0,
                weights_block: None,
                endpoint: Vec::new(),
                modality: None,
                last: NeuronStats::default(),
            });
        }
        let view = AccountView::new(&state, &who, 0);
        let exact = u128::from(u64::MAX) - 20 + 1_000;
        assert_eq!(view.stake, exact);
        let json = serde_json::to_string(&view).expect("json");
        assert!(json.contains(&format!("\"stake\":{exact}")), "{json}");
    }
}
