#![doc = include_str!("../README.md")]

mod runner;

pub use runner::{CaseResult, Outcome, Report, RunnerError, run_dir, run_file};
