//! JSON-RPC 2.0 over HTTP and WebSocket (one jsonrpsee server, one port): the server
//! ([`RpcServer`], with the block producer) and the HTTP [`Client`] (of
//! `deepnode-ledger-client`), which share only the wire rules (the request bound, the error
//! codes). Behind the `rpc` feature.
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
//! code `-33000 - k` (k per [`crate::TxError`] variant, see [`tx_error_code`]) and the reason
//! as its message; bad params are `-32602`. JSON-RPC reserves `-32768..=-32000` and jsonrpsee uses
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

mod listener;
mod producer;
mod server;
mod shared;
mod wire;

pub use deepnode_ledger_client::Client;
pub use listener::{BUSY_WAIT, ConnectionLimits, MAX_QUEUED_CALLS, STOP_GRACE};
pub use server::RpcServer;
pub use wire::{
    MAX_BATCH_LEN, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, MESSAGE_BUFFER, SERVER_BUSY,
    TX_ERROR_BASE, tx_error_code,
};
