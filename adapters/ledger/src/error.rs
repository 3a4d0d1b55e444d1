//! The errors of the crate: why an extrinsic is refused ([`TxError`]) and why a ledger
//! operation failed ([`LedgerError`]).

use deepnode_consensus::Uid;

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
    Malformed(String),
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
    BadEndpoint(&'static str),
    /// The pool holds as many extrinsics as one block may.
    #[error("transaction pool is full ({0} extrinsics)")]
    PoolFull(usize),
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
    Corrupt(String),
    /// An extrinsic was refused.
    #[error("rejected: {0}")]
    Rejected(#[from] TxError),
    /// Replay from genesis does not reproduce a stored block.
    #[error("verify failed at block {block}: {reason}")]
    Verify {
        /// The block number.
        block: u64,
        /// What differs.
        reason: String,
    },
    /// A file or socket operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The genesis file is invalid or disagrees with the store.
    #[error("genesis: {0}")]
    Genesis(String),
    /// A JSON-RPC call failed (client side) or the server could not start.
    #[error("rpc: {0}")]
    Rpc(String),
    /// A wallet file is missing, malformed or unsafe.
    #[error("wallet: {0}")]
    Wallet(String),
    /// A command-line argument is invalid.
    #[error("{0}")]
    Usage(String),
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
