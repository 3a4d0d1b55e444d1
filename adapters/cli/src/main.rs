//! `deepnode`: the command-line program. Each subcommand converts between the world (files,
//! JSON, exit codes) and the crates; errors are mapped to exit codes here and only here.

use std::path::PathBuf;
use std::process::ExitCode;

mod bench;
mod ledger_cli;
mod sim;

use clap::{Parser, Subcommand, ValueEnum};
use deepnode_conformance::contract::FromJson;
use deepnode_conformance::{parse_state, render_output, run_dir};
use deepnode_consensus::{Fx, epoch};

/// DeepNode: a decentralized machine-intelligence market.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one epoch on a state file and print the result as JSON.
    Epoch {
        /// The state, in the `deepnode epoch` JSON contract (see README).
        state: PathBuf,
        /// The numeric backend.
        #[arg(long, value_enum, default_value_t = Backend::Fixed)]
        backend: Backend,
    },
    /// Time the epoch on a synthetic network, fixed against float in the same run.
    Bench {
        /// Nodes.
        #[arg(long, default_value_t = 4096)]
        n: usize,
        /// Non-zero weights per row (capped at n).
        #[arg(long, default_value_t = 4096)]
        k: usize,
        /// Epochs timed per backend (the median is reported).
        #[arg(long, default_value_t = 3)]
        epochs: usize,
    },
    /// Check this build against the conformance vectors in DIR.
    Conformance {
        /// The vectors directory (e.g. conformance/vectors).
        dir: PathBuf,
    },
    /// Simulate many epochs of a scenario (TOML), or run the simulator's sweep or benchmark.
    Sim(sim::SimArgs),
    /// Run or verify the embedded ledger node, or benchmark it.
    #[command(subcommand)]
    Ledger(ledger_cli::LedgerCmd),
    /// Create or show a key file.
    #[command(subcommand)]
    Wallet(ledger_cli::WalletCmd),
    /// Sign an extrinsic with a key file and submit it to a ledger node.
    Tx(ledger_cli::TxArgs),
    /// Print a ledger node's metagraph as a table.
    Metagraph(ledger_cli::MetagraphArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// 64.64 fixed point, bit-exact (the on-chain path).
    Fixed,
    /// f64 (the simulation path).
    Float,
}

/// Exit code for invalid input (bad JSON, invalid state, unreadable file).
const EXIT_INPUT: u8 = 2;
/// Exit code when conformance vectors fail.
const EXIT_FAILED: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Epoch { state, backend } => match run_epoch(&state, backend) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(msg) => fail(&msg, EXIT_INPUT),
        },
        Command::Bench { n, k, epochs } => match bench::run(n, k, epochs) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => fail(&msg, EXIT_INPUT),
        },
        Command::Sim(args) => sim::run(args),
        Command::Ledger(cmd) => ledger_cli::run_ledger(cmd),
        Command::Wallet(cmd) => ledger_cli::run_wallet(cmd),
        Command::Tx(args) => ledger_cli::run_tx(args),
        Command::Metagraph(args) => ledger_cli::run_metagraph(args),
        Command::Conformance { dir } => match run_dir(&dir) {
            Ok(report) => {
                println!("{report}");
                if report.failed() == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(EXIT_FAILED)
                }
            }
            Err(e) => fail(&e.to_string(), EXIT_INPUT),
        },
    }
}

fn fail(msg: &str, code: u8) -> ExitCode {
    eprintln!("deepnode: {msg}");
    ExitCode::from(code)
}

fn run_epoch(path: &PathBuf, backend: Backend) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match backend {
        Backend::Fixed => one::<Fx>(&text, "fixed"),
        Backend::Float => one::<f64>(&text, "float"),
    }
    .map_err(|e| format!("{}: {e}", path.display()))
}

fn one<N: FromJson>(text: &str, name: &str) -> Result<serde_json::Value, String> {
    let state = parse_state::<N>(text).map_err(|e| e.to_string())?;
    let out = epoch(&state).map_err(|e| format!("invalid state: {e}"))?;
    Ok(render_output(name, &out))
}
