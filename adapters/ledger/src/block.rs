//! What a block holds: its header, its extrinsics and the receipts (events) of applying
//! them (all SCALE).

use deepnode_consensus::{Fx, Uid};
use deepnode_ledger_client::{AccountId, Extrinsic, H256};
use parity_scale_codec::{Decode, Encode};

/// A block header. `state_root` commits to the whole ledger state after the block.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Header {
    /// Height; genesis is 0.
    pub number: u64,
    /// Hash of the previous header (zero for genesis).
    pub parent: H256,
    /// BLAKE2b-256 of the SCALE-encoded state after this block (epoch included).
    pub state_root: H256,
    /// BLAKE2b-256 of the SCALE-encoded extrinsic list.
    pub extrinsics_root: H256,
    /// Wall-clock time of production, milliseconds since the Unix epoch (informative only:
    /// no state transition reads it).
    pub timestamp_ms: u64,
}

impl Header {
    /// BLAKE2b-256 of the encoded header: the block hash.
    pub fn hash(&self) -> H256 {
        H256::digest(&self.encode())
    }
}

/// A block: its header and its extrinsics, in order of application.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// The extrinsics.
    pub extrinsics: Vec<Extrinsic>,
}

/// Something that happened while applying a block.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Event {
    /// A node was registered at `uid`; `replaced` is the previous owner when the set was full
    /// (its stake, `returned`, went back to that owner's free balance).
    Registered {
        /// The uid assigned.
        uid: Uid,
        /// The new owner.
        owner: AccountId,
        /// The evicted node's owner, if any.
        replaced: Option<AccountId>,
        /// Stake returned to the evicted owner.
        returned: u64,
    },
    /// Stake moved from free balance to a node.
    StakeAdded {
        /// The node.
        uid: Uid,
        /// Raw units.
        amount: u64,
    },
    /// Stake moved from a node to free balance.
    StakeRemoved {
        /// The node.
        uid: Uid,
        /// Raw units.
        amount: u64,
    },
    /// Free balance moved between accounts.
    Transferred {
        /// Sender.
        from: AccountId,
        /// Receiver.
        to: AccountId,
        /// Raw units.
        amount: u64,
    },
    /// A weights row was accepted.
    WeightsSet {
        /// The node.
        uid: Uid,
        /// Entries in the row.
        len: u32,
    },
    /// A node published its endpoint.
    Served {
        /// The node.
        uid: Uid,
    },
    /// An epoch ran at the end of the block.
    Epoch {
        /// Epochs run so far, this one included.
        index: u64,
        /// Consensus loss `L`.
        loss: Fx,
        /// Units minted in total.
        minted: u64,
        /// `min_allowed_weights` set by the controller for the next epoch.
        min_allowed_weights: u32,
    },
    /// An epoch was due but the consensus crate refused the state (its message).
    EpochFailed {
        /// `deepnode_consensus::Error`'s message.
        reason: String,
    },
}

/// The events of one block: per extrinsic, then the end of block (epoch).
#[derive(Clone, Debug, PartialEq, Eq, Default, Encode, Decode)]
pub struct Receipts {
    /// `extrinsics[k]` holds the events of extrinsic `k`.
    pub extrinsics: Vec<Vec<Event>>,
    /// Events of the end of the block.
    pub end: Vec<Event>,
}
