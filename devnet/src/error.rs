//! The devnet's errors.

use deepnode_ledger::LedgerError;

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

impl DevnetError {
    pub(crate) fn input(e: impl std::fmt::Display) -> DevnetError {
        DevnetError::Input(e.to_string())
    }

    pub(crate) fn failed(e: impl std::fmt::Display) -> DevnetError {
        DevnetError::Failed(e.to_string())
    }
}
