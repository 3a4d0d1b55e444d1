//! Why an extrinsic is refused ([`TxError`]): by its format (size, encoding, signature) or by
//! the ledger's rules when it is applied; and the JSON-RPC error code of each variant
//! ([`tx_error_code`]), with which the ledger's RPC answers it.

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

/// Why an endpoint is refused (`serve`): the shared rule's error.
pub use deepnode_rules::EndpointError;

/// The first of the ledger's error codes, below JSON-RPC's reserved `-32768..=-32000`.
pub const TX_ERROR_BASE: i32 = -33000;

/// The JSON-RPC error code of a refused extrinsic: `TX_ERROR_BASE - k` (`k` from 1 in
/// the order of the variants; the ledger's `rpc` module lists them).
pub fn tx_error_code(e: &TxError) -> i32 {
    TX_ERROR_BASE
        - match e {
            TxError::TooLarge { .. } => 1,
            TxError::Malformed(_) => 2,
            TxError::BadKey => 3,
            TxError::BadSignature => 4,
            TxError::BadNonce { .. } => 5,
            TxError::NoSuchNode(_) => 6,
            TxError::NotOwner(_) => 7,
            TxError::ZeroAmount => 8,
            TxError::InsufficientBalance { .. } => 9,
            TxError::InsufficientStake { .. } => 10,
            TxError::Overflow => 11,
            TxError::RegistryFull { .. } => 12,
            TxError::InvalidWeights(_) => 13,
            TxError::RateLimited { .. } => 14,
            TxError::BadEndpoint(_) => 15,
            TxError::PoolFull(_) => 16,
            TxError::BadModality(_) => 17,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ledger's error codes are distinct and stay clear of the range jsonrpsee reserves
    /// for its own codes.
    #[test]
    fn ledger_codes_are_outside_the_reserved_range_and_distinct() {
        let errors = [
            TxError::TooLarge { len: 1, max: 0 },
            TxError::Malformed(MalformedError::Scale("x".into())),
            TxError::BadKey,
            TxError::BadSignature,
            TxError::BadNonce {
                expected: 0,
                got: 1,
            },
            TxError::NoSuchNode(0),
            TxError::NotOwner(0),
            TxError::ZeroAmount,
            TxError::InsufficientBalance { have: 0, need: 1 },
            TxError::InsufficientStake { have: 0, need: 1 },
            TxError::Overflow,
            TxError::RegistryFull { max: 1 },
            TxError::InvalidWeights(deepnode_consensus::Error::NoNodes),
            TxError::RateLimited { last: 0, next: 1 },
            TxError::BadEndpoint(EndpointError::Empty),
            TxError::PoolFull(1),
            TxError::BadModality(9),
        ];
        let codes: Vec<i32> = errors.iter().map(tx_error_code).collect();
        assert_eq!(codes, (1..=17).map(|k| -33000 - k).collect::<Vec<_>>());
        assert!(codes.iter().all(|c| !(-32768..=-32000).contains(c)));
    }
}
