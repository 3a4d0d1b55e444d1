//! The errors of the crate: why an extrinsic is refused ([`TxError`]) and why a ledger
//! operation failed ([`LedgerError`]), each cause a typed variant (the sub-enums below say
//! which genesis, store, replay, wallet, argument or RPC check failed).

use std::net::SocketAddr;
use std::path::PathBuf;
#[cfg(feature = "rpc")]
use std::time::Duration;

use deepnode_consensus::Uid;

use crate::block::Event;
#[cfg(feature = "rpc")]
use crate::extrinsic::H256;

/// Why an extrinsic was refused. A refused extrinsic changes nothing (not even a nonce).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// The encoded extrinsic exceeds [`crate::MAX_EXTRINSIC_BYTES`].
    #[error("extrinsic is {len} bytes, at most {max} allowed")]
    TooLarge {
        /// Its length in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The bytes are not one SCALE-encoded extrinsic (or not hex).
    #[error("malformed extrinsic: {0}")]
    Malformed(MalformedError),
    /// The signer field is not a valid ed25519 public key.
    #[error("signer is not a valid ed25519 public key")]
    BadKey,
    /// The signature does not verify for the signer, nonce, call and chain.
    #[error("bad signature")]
    BadSignature,
    /// The nonce is not the signer's next nonce (a replay, or out of order).
    #[error("wrong nonce: expected {expected}, got {got}")]
    BadNonce {
        /// The signer's next nonce.
        expected: u64,
        /// The extrinsic's nonce.
        got: u64,
    },
    /// No node has this uid.
    #[error("no node with uid {0}")]
    NoSuchNode(Uid),
    /// The signer does not own the node it acts for.
    #[error("uid {0} is owned by another account")]
    NotOwner(Uid),
    /// A stake or transfer amount of zero.
    #[error("amount must be positive")]
    ZeroAmount,
    /// The signer's free balance is too small.
    #[error("insufficient balance: {have} free, {need} needed")]
    InsufficientBalance {
        /// Free balance.
        have: u64,
        /// Amount asked for.
        need: u64,
    },
    /// The node's stake is too small.
    #[error("insufficient stake: {have} staked, {need} needed")]
    InsufficientStake {
        /// The node's stake.
        have: u64,
        /// Amount asked for.
        need: u64,
    },
    /// A balance would exceed `u64::MAX`.
    #[error("balance overflow")]
    Overflow,
    /// The node set is at its cap and every node is still immune to replacement.
    #[error("node set is full ({max} nodes) and every node is within its immunity period")]
    RegistryFull {
        /// The cap.
        max: u32,
    },
    /// The weights row fails `deepnode_consensus::validate_row`.
    #[error("invalid weights: {0}")]
    InvalidWeights(deepnode_consensus::Error),
    /// The node set weights too recently.
    #[error("weights rate limit: set at block {last}, next allowed at block {next}")]
    RateLimited {
        /// Block of the last accepted row.
        last: u64,
        /// First block at which a new row is accepted.
        next: u64,
    },
    /// The endpoint is empty, too long, not UTF-8 or holds control characters.
    #[error("invalid endpoint: {0}")]
    BadEndpoint(EndpointError),
    /// The pool holds as many extrinsics as one block may.
    #[error("transaction pool is full ({0} extrinsics)")]
    PoolFull(usize),
    /// `serve` names a modality code that `deepnode_wire::Modality` does not define.
    #[error("unknown modality code {0}")]
    BadModality(u8),
}

impl From<deepnode_rules::RuleError> for TxError {
    /// The shared rules' refusals, each as the ledger's variant (and so its RPC code).
    fn from(e: deepnode_rules::RuleError) -> TxError {
        use deepnode_rules::RuleError as R;
        match e {
            R::NoSuchNode(uid) => TxError::NoSuchNode(uid),
            R::NotOwner(uid) => TxError::NotOwner(uid),
            R::ZeroAmount => TxError::ZeroAmount,
            R::InsufficientBalance { have, need } => TxError::InsufficientBalance { have, need },
            R::InsufficientStake { have, need } => TxError::InsufficientStake { have, need },
            R::Overflow => TxError::Overflow,
            R::RegistryFull { max } => TxError::RegistryFull { max },
            R::InvalidWeights(e) => TxError::InvalidWeights(e),
            R::RateLimited { last, next } => TxError::RateLimited { last, next },
            R::BadEndpoint(e) => TxError::BadEndpoint(e),
        }
    }
}

/// Why the bytes of a submitted extrinsic do not decode.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedError {
    /// The text is not hex.
    #[error("not hex: {0}")]
    NotHex(hex::FromHexError),
    /// The bytes are not exactly one SCALE `Extrinsic` (truncated, trailing bytes, an unknown
    /// call index...).
    #[error("{0}")]
    Scale(parity_scale_codec::Error),
}

// `hex::FromHexError` compares a char and indices only, so its `PartialEq` is an equivalence
// (it just does not derive `Eq`).
impl Eq for MalformedError {}
impl Eq for ParseIdError {}

/// Why an endpoint is refused (`serve`): the shared rule's error.
pub use deepnode_rules::EndpointError;

/// Why a text is not a 32-byte id ([`crate::AccountId`], [`crate::H256`]).
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseIdError {
    /// Not 64 hex digits after an optional `0x`.
    #[error("expected 32 bytes as hex: {0}")]
    Hex(hex::FromHexError),
}

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
    /// A JSON-RPC call failed (client side) or the server could not start.
    #[cfg(feature = "rpc")]
    #[error("rpc: {0}")]
    Rpc(#[from] RpcError),
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
    /// Another process (a running node) has the file open.
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
    /// `deepnode ledger bench` expected its block to run an epoch (these are its events).
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
    DuplicateEndowment(crate::AccountId),
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

/// Why a key file cannot be used ([`LedgerError::Wallet`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// The operating system gave no randomness for a new key.
    #[error("no system randomness: {0}")]
    NoRandomness(getrandom::Error),
    /// The file cannot be created, read or written (it exists, is missing, ...).
    #[error("{}: {error}", .path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The reason.
        error: std::io::Error,
    },
    /// The file is not a key file's JSON.
    #[error("{}: {error}", .path.display())]
    Json {
        /// The key file.
        path: PathBuf,
        /// The reason.
        error: serde_json::Error,
    },
    /// Others may read or write the file (`mode & 0o077 != 0`).
    #[error("{}: permissions {mode:o} are too open; use 0600", .path.display())]
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits (`mode & 0o777`).
        mode: u32,
    },
    /// The secret is not 32 bytes of hex.
    #[error("{}: secret is not 32 bytes of hex", .path.display())]
    BadSecret {
        /// The key file.
        path: PathBuf,
    },
    /// The path is not a regular file (a FIFO, a directory, a device): reading it could block
    /// forever or never end.
    #[error("{}: not a regular file", .path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
    /// The file is larger than any key file ([`crate::MAX_WALLET_BYTES`]); it is not
    /// read.
    #[error("{}: {len} bytes, larger than a key file ({max} at most)", .path.display())]
    TooLarge {
        /// The key file.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// The largest accepted.
        max: u64,
    },
    /// The account written in the file is not the secret's public key.
    #[error("{}: account does not match the secret", .path.display())]
    AccountMismatch {
        /// The key file.
        path: PathBuf,
    },
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
    /// `ledger bench` with `--extrinsics 0` or `--nodes 0`.
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

/// Why a JSON-RPC exchange failed ([`LedgerError::Rpc`]).
#[cfg(feature = "rpc")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The server refused the call: its error code and message.
    #[error("{message} (code {code})")]
    Refused {
        /// The JSON-RPC error code (see [`crate::rpc::tx_error_code`]).
        code: i32,
        /// The server's message.
        message: String,
    },
    /// The call did not complete (connection, timeout, a reply that is not JSON-RPC).
    #[error("{0}")]
    Client(jsonrpsee::core::client::Error),
    /// A reply lacks a field the method promises.
    #[error("{method}: no {field}")]
    MissingField {
        /// The method called.
        method: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A reply's hash or account is not 32 bytes of hex.
    #[error("{0}")]
    BadId(ParseIdError),
    /// A reply is not of the method's documented shape.
    #[error("{method}: unexpected reply: {reason}")]
    BadReply {
        /// The method called.
        method: &'static str,
        /// What did not fit.
        reason: String,
    },
    /// An extrinsic was not committed within the wait.
    #[error("{hash} not committed after {timeout:?}")]
    NotCommitted {
        /// The extrinsic.
        hash: H256,
        /// How long it was waited for.
        timeout: Duration,
    },
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
