//! The one mapping from a command's failure to its exit code and its line on stderr.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the command ran and the answer is no: vectors failed, a transaction was refused, the chain does not verify, an RPC or storage error |
//! | 2 | bad input: usage, an unreadable or invalid file (state, scenario, genesis, wallet) |

use std::fmt::Display;
use std::process::ExitCode;

use deepnode_ledger::{LedgerError, RpcError};

/// Why a command failed; each variant is one exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad input (exit code 2).
    Input(String),
    /// The command ran and failed (exit code 1).
    Failed(String),
}

impl Failure {
    /// Bad input, described by `e`.
    pub fn input(e: impl Display) -> Failure {
        Failure::Input(e.to_string())
    }

    /// A failed run, described by `e`.
    pub fn failed(e: impl Display) -> Failure {
        Failure::Failed(e.to_string())
    }
}

impl From<LedgerError> for Failure {
    fn from(e: LedgerError) -> Failure {
        match e {
            LedgerError::Usage(_) | LedgerError::Genesis(_) | LedgerError::Wallet(_) => {
                Failure::input(e)
            }
            _ => Failure::failed(e),
        }
    }
}

/// A ledger client's failure is the ledger's (`rpc: ...`, exit code 1).
impl From<RpcError> for Failure {
    fn from(e: RpcError) -> Failure {
        Failure::from(LedgerError::from(e))
    }
}

/// Success, or one line `deepnode: <reason>` on stderr and the failure's exit code.
pub fn report(result: Result<(), Failure>) -> ExitCode {
    let (msg, code) = match result {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Failure::Input(msg)) => (msg, 2),
        Err(Failure::Failed(msg)) => (msg, 1),
    };
    eprintln!("deepnode: {}", msg.replace('\n', " "));
    ExitCode::from(code)
}
