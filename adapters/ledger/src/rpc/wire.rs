//! The rules of the RPC's wire that the server, its listener and its clients share: the
//! request, batch and reply bounds, the busy error, and (the client's) the error code of each
//! refused extrinsic (the table in [`crate::rpc`]).

pub use deepnode_ledger_client::{MAX_REQUEST_BYTES, TX_ERROR_BASE, tx_error_code};

/// The most calls in one JSON-RPC batch; a longer batch gets one error reply (`-32010`,
/// jsonrpsee's "batch too large") and none of its calls run.
pub const MAX_BATCH_LEN: u32 = 64;

/// The largest reply (a batch's replies together): 16 MiB, six times `ledger_epochInput` of
/// 4,096 nodes with 64 weights each. A larger reply is replaced by the error `-32008`
/// (response too big).
pub const MAX_RESPONSE_BYTES: u32 = 16 << 20;

/// Replies a WebSocket connection may have queued for its socket. When they, and the socket's
/// buffers, are full (a client that does not read), the server reads nothing more from that
/// connection until the client reads (see [`super::ConnectionLimits`] for the other bounds on
/// such a client). Such a session holds its connection slots until it closes or is evicted.
pub const MESSAGE_BUFFER: u32 = 4;

/// The error of a heavy read (metagraph, epoch input, block, weights, bonds) that found no
/// room in the server's reply budget within [`super::BUSY_WAIT`]: try again later.
pub const SERVER_BUSY: i32 = -33100;
