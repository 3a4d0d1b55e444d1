//! JSON-RPC 2.0 over HTTP and WebSocket (one jsonrpsee server, one port): the server
//! ([`LedgerNode`], with the block producer) and the HTTP [`Client`], which share only this
//! module's wire rules (the request bound, the error codes). Behind the `rpc` feature.
//!
//! | method | params | result |
//! |---|---|---|
//! | `ledger_genesisHash` | | `"0x.."`: the chain id extrinsics sign |
//! | `ledger_head` | | the last committed header |
//! | `ledger_submit` | `"0x<SCALE extrinsic>"` | `"0x<extrinsic hash>"`, or an error (below) |
//! | `ledger_extrinsic` | `"0x<hash>"` | `{"block", "index"}` once committed, else `null` |
//! | `ledger_account` | `"0x<account>"` | `{"free", "stake", "nonce", "pending_nonce"}` |
//! | `ledger_metagraph` | | per uid: key, stake, rank, trust, consensus, incentive, ... |
//! | `ledger_block` | number | header, extrinsics and receipts, or `null` |
//! | `ledger_weights` / `ledger_bonds` | uid | `[[uid, value]]` (bonds add exact bits) |
//! | `ledger_epochInput` | | the next epoch's input in the `deepnode epoch` JSON contract |
//! | `ledger_subscribeNewHeads` | | notifications `ledger_newHead` with each header |
//!
//! The replies are the types of [`crate::view`]. A refused extrinsic is an error object with
//! code `-32000 - k` (k per [`TxError`] variant, see [`tx_error_code`]) and the reason as its
//! message; bad params are `-32602`. An extrinsic's text form is [`Extrinsic::to_hex`]
//! (`crate::Extrinsic`).
//!
//! [`Extrinsic::to_hex`]: crate::Extrinsic::to_hex

mod client;
mod producer;
mod server;

pub use client::Client;
pub use server::LedgerNode;

use crate::{MAX_EXTRINSIC_BYTES, TxError};

/// The largest HTTP or WebSocket request body accepted: twice a maximal extrinsic in hex, so
/// an oversized extrinsic reaches the ledger and gets its own error.
pub const MAX_REQUEST_BYTES: u32 = 4 * MAX_EXTRINSIC_BYTES as u32 + 4096;

/// The JSON-RPC error code of a refused extrinsic.
pub fn tx_error_code(e: &TxError) -> i32 {
    -32000
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
        }
}
