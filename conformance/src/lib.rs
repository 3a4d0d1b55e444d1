#![doc = include_str!("../README.md")]

pub mod contract;
#[doc(hidden)]
pub mod fuzzing;
mod runner;
pub mod synthetic;

pub use contract::{ContractError, parse_state, render_output};
pub use runner::{CaseResult, Outcome, Report, RunnerError, run_dir, run_file};
