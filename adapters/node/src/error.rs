//! The node's one error type.

use deepnode_wire::{Status, WireError};

/// Why a node operation failed. Each message is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The Noise library refused (bad key, failed decryption during the handshake, ...).
    #[error("noise: {0}")]
    Noise(String),
    /// The handshake did not complete: the peer's identity payload is invalid or it left.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The peer proved another account than the one dialed.
    #[error("handshake: the peer is not the account dialed")]
    WrongPeer,
    /// A handshake or a request ran past its deadline.
    #[error("timed out")]
    Timeout,
    /// The peer was not asked: it failed recently and its [`crate::Backoff`] wait runs.
    #[error("backing off after a failure")]
    BackingOff,
    /// The peer broke the wire protocol; the connection is closed.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A header or limit check failed.
    #[error("wire: {0}")]
    Wire(#[from] WireError),
    /// The peer answered with an Error status.
    #[error("peer refused: {0:?}")]
    Refused(Status),
    /// The connection is gone.
    #[error("connection closed")]
    Closed,
    /// A tensor's bytes do not fit its shape and dtype, or it holds NaN or infinity.
    #[error("tensor: {0}")]
    Tensor(&'static str),
    /// The ledger refused a call or could not be reached.
    #[error("ledger: {0}")]
    Ledger(String),
    /// The model refused or failed.
    #[error("model: {0}")]
    Model(String),
    /// A peer's answer is not finite or not of the dtype and shape asked for; it is not used.
    #[error("bad answer: {0}")]
    BadAnswer(&'static str),
    /// A serving limit cannot work ([`crate::ServeConfig::check`]).
    #[error("limits: {0}")]
    Limit(#[from] crate::LimitError),
    /// The node's listener stopped (the reason): peers can no longer reach it.
    #[error("the listener stopped: {0}")]
    ListenerStopped(String),
}

impl NodeError {
    pub(crate) fn noise(e: impl std::fmt::Display) -> NodeError {
        NodeError::Noise(e.to_string())
    }
}
