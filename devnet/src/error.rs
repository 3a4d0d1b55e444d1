//! The devnet's errors.

use deepnode_ledger::{LedgerError, RpcError};

/// Why a devnet did not run, or ran and failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevnetError {
    /// Bad input: the scenario, an override, or the report directory.
    #[error("{0}")]
    Input(String),
    /// The embedded ledger or its client failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The run failed: a node process, the report's files, the chain's verification, or the
    /// run was interrupted.
    #[error("{0}")]
    Failed(String),
}

/// A ledger client's failure is the ledger's (`rpc: ...`).
impl From<RpcError> for DevnetError {
    fn from(e: RpcError) -> DevnetError {
        DevnetError::Ledger(LedgerError::from(e))
    }
}

impl DevnetError {
    pub(crate) fn input(e: impl std::fmt::Display) -> DevnetError {
        DevnetError::Input(e.to_string())
    }

    pub(crate) fn failed(e: impl std::fmt::Display) -> DevnetError {
        DevnetError::Failed(e.to_string())
    }
}
