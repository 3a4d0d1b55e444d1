//! Why a ledger operation failed ([`LedgerError`]), each cause a typed variant (the sub-enums
//! below say which genesis, store, replay, argument or server check failed; a refused
//! extrinsic is a [`TxError`], a key file's fault a [`WalletError`], a client's an
//! `RpcError`, all three of the client side).

use std::net::SocketAddr;
use std::path::PathBuf;

#[cfg(feature = "rpc")]
use deepnode_ledger_client::RpcError;
use deepnode_ledger_client::{AccountId, ParseIdError, TxError, WalletError};

use crate::block::Event;

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The embedded database failed.
    #[error("storage: {0}")]
    Storage(Box<redb::Error>),
    /// Stored bytes do not decode, or the store is inconsistent.
    #[error("corrupt store: {0}")]
    Corrupt(#[from] Corruption),
    /// The database file cannot be used as it is (empty, foreign, damaged, in use): refused
    /// before anything is written to it.
    #[error("{}: {damage}", .path.display())]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        damage: Damage,
    },
    /// An extrinsic was refused.
    #[error("rejected: {0}")]
    Rejected(#[from] TxError),
    /// Replay from genesis does not reproduce a stored block.
    #[error("verify failed at block {block}: {reason}")]
    Verify {
        /// The block number.
        block: u64,
        /// What differs.
        reason: VerifyFailure,
    },
    /// A file or socket operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The genesis file is invalid or disagrees with the store.
    #[error("genesis: {0}")]
    Genesis(#[from] GenesisError),
    /// A JSON-RPC call failed (client side).
    #[cfg(feature = "rpc")]
    #[error("rpc: {0}")]
    Rpc(#[from] RpcError),
    /// The RPC server could not start, or its block producer stopped.
    #[cfg(feature = "rpc")]
    #[error("rpc: {0}")]
    Server(#[from] ServerError),
    /// A wallet file is missing, malformed or unsafe.
    #[error("wallet: {0}")]
    Wallet(#[from] WalletError),
    /// A command-line argument is invalid.
    #[error("{0}")]
    Usage(#[from] UsageError),
}

/// A stored record, named in [`Corruption::Decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record {
    /// The genesis.
    Genesis,
    /// The state after the head block.
    State,
    /// A block.
    Block,
    /// A block's receipts.
    Receipts,
}

impl core::fmt::Display for Record {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Record::Genesis => "genesis",
            Record::State => "state",
            Record::Block => "block",
            Record::Receipts => "receipts",
        })
    }
}

/// How the store is inconsistent ([`LedgerError::Corrupt`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// A stored record does not decode.
    #[error("{record}: {error}")]
    Decode {
        /// Which record.
        record: Record,
        /// The codec's reason.
        error: parity_scale_codec::Error,
    },
    /// The genesis record is missing from a store that has blocks.
    #[error("no genesis")]
    NoGenesis,
    /// Block 0 is missing.
    #[error("no genesis block")]
    NoGenesisBlock,
    /// The state record is missing.
    #[error("no state")]
    NoState,
    /// The blocks table is empty.
    #[error("no blocks")]
    NoBlocks,
    /// The highest block number has no block.
    #[error("head block {0} missing")]
    HeadMissing(u64),
    /// The stored state's root or number is not the head header's.
    #[error("stored state does not match the head block")]
    StateNotAtHead,
    /// A block holds more than `u32::MAX` extrinsics (the index stores `u32`).
    #[error("block too long")]
    BlockTooLong,
}

/// What is wrong with a database file ([`LedgerError::Damaged`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Damage {
    /// Not a regular file (a directory, a FIFO, a device).
    #[error("not a regular file")]
    NotAFile,
    /// The file exists and is empty: not a new chain (only a missing file is).
    #[error("file is empty, not a ledger database (remove it to start a new chain)")]
    Empty,
    /// The file does not start with redb's magic number.
    #[error("not a redb database file")]
    Foreign,
    /// A redb file that holds no ledger (no genesis record).
    #[error("a redb database that holds no ledger")]
    NoLedger,
    /// Another process (a running server) has the file open.
    #[error("the database is in use by another process (a running node?)")]
    InUse,
    /// redb cannot read the file: truncated, extended, or pages that fail their checksums
    /// (redb's reason).
    #[error("damaged database: {0}")]
    Unreadable(String),
    /// The file reads, but its records are inconsistent (a head whose state root does not
    /// match the stored state, a record that does not decode...).
    #[error("damaged database: {0}")]
    Inconsistent(Corruption),
}

/// What replay from genesis found different ([`LedgerError::Verify`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyFailure {
    /// The block is missing.
    #[error("missing")]
    Missing,
    /// The block's receipts are missing.
    #[error("receipts missing")]
    ReceiptsMissing,
    /// Block 0 is not the block of the stored genesis.
    #[error("genesis block does not match the genesis")]
    GenesisBlock,
    /// The header's number or parent hash is not the previous block's.
    #[error("wrong number or parent hash")]
    Parent,
    /// The header's extrinsics root is not the hash of its extrinsics.
    #[error("extrinsics root mismatch")]
    ExtrinsicsRoot,
    /// A stored extrinsic fails its signature or no longer applies.
    #[error("extrinsic {index}: {error}")]
    Extrinsic {
        /// Its index in the block.
        index: usize,
        /// Why.
        error: TxError,
    },
    /// The stored receipts differ from the replay's events.
    #[error("receipts differ from replay")]
    Receipts,
    /// The header's state root differs from the replayed state's.
    #[error("state root mismatch")]
    StateRoot,
    /// The stored head state differs from the replayed one.
    #[error("stored head state differs from replay")]
    HeadState,
    /// `deepnode-bench ledger` expected its block to run an epoch (these are its events).
    #[error("bench expected an epoch, got {0:?}")]
    NoEpoch(Vec<Event>),
}

/// Why a genesis is refused ([`LedgerError::Genesis`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenesisError {
    /// The genesis file cannot be read.
    #[error("{}: {error}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        error: std::io::Error,
    },
    /// The file is not the genesis JSON (syntax, unknown field, wrong type).
    #[error("{0}")]
    Json(serde_json::Error),
    /// `params` is not valid in the `deepnode epoch` contract.
    #[error("params: {0}")]
    Params(deepnode_contract::ContractError),
    /// An endowment's account is not 32 bytes of hex.
    #[error("endowment {account}: {error}")]
    Endowment {
        /// The text given.
        account: String,
        /// Why it does not parse.
        error: ParseIdError,
    },
    /// `tempo` is 0.
    #[error("tempo must be at least 1")]
    ZeroTempo,
    /// The mechanism's parameters are refused by `deepnode_consensus::check_params`.
    #[error("{0}")]
    InvalidParams(deepnode_consensus::Error),
    /// An account is endowed twice.
    #[error("account {0} is endowed twice")]
    DuplicateEndowment(AccountId),
    /// All endowments together (the total issuance) exceed `u64::MAX`.
    #[error("total issuance exceeds u64::MAX ({0})")]
    IssuanceOverflow(u128),
    /// The controller's `floor` is above its `cap`: no `min_allowed_weights` satisfies both.
    #[error("controller floor {floor} is above its cap {cap}")]
    FloorAboveCap {
        /// The floor.
        floor: u32,
        /// The cap.
        cap: u32,
    },
    /// The file, or one of its sections, is not a JSON object (an array, a number...).
    #[error("{0} must be a JSON object")]
    NotAnObject(&'static str),
    /// A limit is 0, so the chain could never be used: `max_nodes` (no node can register),
    /// `max_block_extrinsics` (the pool takes nothing) or `max_weights_len` (no weights).
    #[error("{0} must be at least 1")]
    ZeroLimit(&'static str),
    /// The data directory already holds a chain with a different genesis.
    #[error("the data directory holds a chain with another genesis")]
    Mismatch,
}

/// Which command-line argument is invalid ([`LedgerError::Usage`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// `--listen` names an address other than loopback (the server has no authentication).
    #[error("--listen {0}: only loopback addresses are served")]
    NotLoopback(SocketAddr),
    /// `--block-ms 0`.
    #[error("--block-ms must be at least 1")]
    ZeroBlockMs,
    /// [`crate::Chain::seal_block`] while a sealed block is neither installed nor abandoned.
    #[error("a sealed block is not yet installed or abandoned")]
    BlockInProgress,
    /// `deepnode-bench ledger` with `--extrinsics 0` or `--nodes 0`.
    #[error("bench: --extrinsics and --nodes must be at least 1")]
    ZeroBench,
    /// `ledger verify --data DIR` where DIR holds no ledger database.
    #[error("{}: no ledger database here", .0.display())]
    NoDatabase(PathBuf),
    /// A weights entry is not `UID:WEIGHT` (the text given).
    #[error("weights entry {0:?}: expected UID:WEIGHT")]
    WeightsEntry(String),
    /// A transfer's receiver is not an account.
    #[error("receiver {to}: {error}")]
    Receiver {
        /// The text given.
        to: String,
        /// Why it does not parse.
        error: ParseIdError,
    },
}

/// Why the RPC server could not start or stopped ([`LedgerError::Server`]).
#[cfg(feature = "rpc")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The server's methods could not be registered (a duplicate name).
    #[error("{0}")]
    Register(jsonrpsee::core::RegisterMethodError),
    /// The block producer thread panicked.
    #[error("block producer panicked")]
    ProducerPanicked,
    /// The block producer thread ended without an error to report.
    #[error("block producer stopped")]
    ProducerStopped,
}

/// Maps every redb error type into [`LedgerError::Storage`].
pub(crate) fn storage<E: Into<redb::Error>>(e: E) -> LedgerError {
    LedgerError::Storage(Box::new(e.into()))
}

impl From<redb::Error> for LedgerError {
    fn from(e: redb::Error) -> Self {
        LedgerError::Storage(Box::new(e))
    }
}
