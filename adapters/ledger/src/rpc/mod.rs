//! JSON-RPC 2.0 over HTTP and WebSocket (one jsonrpsee server, one port): the server
//! ([`LedgerNode`], with the block producer) and the HTTP [`Client`], which share only this
//! module's wire rules (the request bound, the error codes). Behind the `rpc` feature.
//!
//! | method | params | result |
//! |---|---|---|
//! | `ledger_genesisHash` | | `"0x.."`: the chain id extrinsics sign |
//! | `ledger_head` | | the last committed header |
//! | `ledger_submit` | `"0x<SCALE extrinsic>"` | `{"hash": "0x..", "status": "pending"}`, or an error (below); pending = in the pool, lost by a crash before its block is committed |
//! | `ledger_extrinsic` | `"0x<hash>"` | `{"block", "index"}` once committed, else `null` |
//! | `ledger_account` | `"0x<account>"` | `{"free", "stake", "nonce", "pending_nonce"}` |
//! | `ledger_metagraph` | | per uid: key, stake, rank, trust, consensus, incentive, ... |
//! | `ledger_block` | number | header, extrinsics and receipts, or `null` |
//! | `ledger_weights` / `ledger_bonds` | uid | `[[uid, value]]` (bonds add exact bits) |
//! | `ledger_epochInput` | | the next epoch's input in the `deepnode epoch` JSON contract |
//! | `ledger_subscribeNewHeads` | | notifications `ledger_newHead` with each header |
//!
//! The replies are the types of [`crate::view`]. A refused extrinsic is an error object with
//! code `-33000 - k` (k per [`TxError`] variant, see [`tx_error_code`]) and the reason as its
//! message; bad params are `-32602`. JSON-RPC reserves `-32768..=-32000` and jsonrpsee uses
//! codes in it of its own (`-32006` too many subscriptions, `-32007` request too big, `-32011`
//! batch response too large...), so the ledger's codes lie outside it:
//!
//! | code | meaning |
//! |---|---|
//! | -33001 | extrinsic too large |
//! | -33002 | malformed (not hex, not one SCALE extrinsic) |
//! | -33003 | signer is not an ed25519 key |
//! | -33004 | bad signature |
//! | -33005 | wrong nonce |
//! | -33006 | no node with this uid (also `ledger_weights` / `ledger_bonds`) |
//! | -33007 | uid owned by another account |
//! | -33008 | zero amount |
//! | -33009 | insufficient balance |
//! | -33010 | insufficient stake |
//! | -33011 | balance overflow |
//! | -33012 | node set full, every node immune |
//! | -33013 | invalid weights |
//! | -33014 | weights rate limit |
//! | -33015 | invalid endpoint |
//! | -33016 | pool full |
//! | -33017 | unknown modality (`serve`) |
//! | -33100 | server busy: too many reply bytes in flight ([`SERVER_BUSY`]) |
//! | -32602, -32603, -32601, -32700, -32600 | JSON-RPC's own: bad params, internal, no method, parse, invalid request | An extrinsic's text form is [`Extrinsic::to_hex`]
//! (`crate::Extrinsic`).
//!
//! [`Extrinsic::to_hex`]: crate::Extrinsic::to_hex

mod client;
mod listener;
mod producer;
mod server;

pub use client::Client;
pub use listener::{BUSY_WAIT, Limits, MAX_QUEUED_CALLS, STOP_GRACE};
pub use server::LedgerNode;

use crate::{MAX_EXTRINSIC_BYTES, TxError};

/// The largest HTTP or WebSocket request body accepted: twice a maximal extrinsic in hex, so
/// an oversized extrinsic reaches the ledger and gets its own error.
pub const MAX_REQUEST_BYTES: u32 = 4 * MAX_EXTRINSIC_BYTES as u32 + 4096;

/// The most calls in one JSON-RPC batch; a longer batch gets one error reply (`-32010`,
/// jsonrpsee's "batch too large") and none of its calls run.
pub const MAX_BATCH_LEN: u32 = 64;

/// The largest reply (a batch's replies together): 16 MiB, six times `ledger_epochInput` of
/// 4,096 nodes with 64 weights each. A larger reply is replaced by the error `-32008`
/// (response too big).
pub const MAX_RESPONSE_BYTES: u32 = 16 << 20;

/// Replies a WebSocket connection may have queued for its socket. When they, and the socket's
/// buffers, are full (a client that does not read), the server reads nothing more from that
/// connection until the client reads (see [`Limits`] for the other bounds on such a client).
/// Such a session holds its connection slots until it closes or is evicted.
pub const MESSAGE_BUFFER: u32 = 4;

/// The error of a heavy read (metagraph, epoch input, block, weights, bonds) that found no
/// room in the server's reply budget within [`BUSY_WAIT`]: try again later.
pub const SERVER_BUSY: i32 = -33100;

/// The first of the ledger's error codes, below JSON-RPC's reserved `-32768..=-32000`.
pub const TX_ERROR_BASE: i32 = -33000;

/// The JSON-RPC error code of a refused extrinsic: `TX_ERROR_BASE - k` (the table above).
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
            TxError::Malformed(crate::MalformedError::Scale("x".into())),
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
            TxError::BadEndpoint(crate::EndpointError::Empty),
            TxError::PoolFull(1),
            TxError::BadModality(9),
        ];
        let codes: Vec<i32> = errors.iter().map(tx_error_code).collect();
        assert_eq!(codes, (1..=17).map(|k| -33000 - k).collect::<Vec<_>>());
        assert!(codes.iter().all(|c| !(-32768..=-32000).contains(c)));
    }
}
