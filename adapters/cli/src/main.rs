//! `deepnode`: the command-line program. Each subcommand converts between the world (files,
//! JSON, exit codes) and the crates; every failure becomes an exit code in [`exit::report`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod devnet;
mod exit;
mod ledger_cli;
mod node_chain;
mod node_cli;
mod sim;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use deepnode_conformance::run_dir;
use deepnode_consensus::{Fx, Scalar, epoch};
use deepnode_contract::{Backend, parse_state, render_output};

use crate::exit::Failure;

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
        #[arg(long, default_value_t = Backend::Fixed, value_parser = backend_parser())]
        backend: Backend,
    },
    /// Check this build against the conformance vectors in DIR.
    Conformance {
        /// The vectors directory (e.g. conformance/vectors).
        dir: PathBuf,
    },
    /// Simulate many epochs of a scenario (TOML), or draw the simulator's sweep and figures.
    Sim(sim::SimArgs),
    /// Serve or verify the embedded ledger.
    #[command(subcommand)]
    Ledger(ledger_cli::LedgerCmd),
    /// Create or show a key file.
    #[command(subcommand)]
    Wallet(ledger_cli::WalletCmd),
    /// Sign an extrinsic with a key file and submit it to the ledger.
    Tx(ledger_cli::TxArgs),
    /// Print the ledger's metagraph as a table.
    Metagraph(ledger_cli::MetagraphArgs),
    /// Run a ledger and N node processes on loopback for some epochs; write a report.
    Devnet(devnet::DevnetArgs),
    /// Run a client node: serve a model to peers, query them, set weights on the ledger.
    #[command(subcommand)]
    Node(node_cli::NodeCmd),
}

/// `--backend fixed|float`: clap's list of values, parsed by the contract's [`Backend`].
pub(crate) fn backend_parser() -> impl TypedValueParser<Value = Backend> {
    PossibleValuesParser::new([Backend::Fixed.name(), Backend::Float.name()])
        .try_map(|s| s.parse::<Backend>())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(&e),
    };
    exit::report(match cli.command {
        Command::Epoch { state, backend } => run_epoch(&state, backend).map(|json| {
            println!("{json}");
        }),
        Command::Sim(args) => sim::run(args),
        Command::Ledger(cmd) => ledger_cli::run_ledger(cmd),
        Command::Wallet(cmd) => ledger_cli::run_wallet(cmd),
        Command::Tx(args) => ledger_cli::run_tx(args),
        Command::Metagraph(args) => ledger_cli::run_metagraph(args),
        Command::Node(cmd) => node_cli::run_node(cmd),
        Command::Devnet(args) => devnet::run(args),
        Command::Conformance { dir } => conformance(&dir),
    })
}

/// Help and version as clap prints them; a usage error as one line `deepnode: <reason>` and
/// exit code 2, as every other bad input.
fn usage(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    let text = e.render().to_string();
    let reason: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let reason = reason.join(" ");
    exit::report(Err(Failure::Input(
        reason.strip_prefix("error: ").unwrap_or(&reason).to_owned(),
    )))
}

fn conformance(dir: &Path) -> Result<(), Failure> {
    let report = run_dir(dir).map_err(Failure::input)?;
    println!("{report}");
    match report.failed() {
        0 => Ok(()),
        failed => Err(Failure::Failed(format!(
            "{failed} of {} vectors failed",
            report.cases.len()
        ))),
    }
}

fn run_epoch(path: &Path, backend: Backend) -> Result<serde_json::Value, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
    match backend {
        Backend::Fixed => one::<Fx>(&text, backend),
        Backend::Float => one::<f64>(&text, backend),
    }
    .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))
}

fn one<N: Scalar>(text: &str, backend: Backend) -> Result<serde_json::Value, String> {
    let state = parse_state::<N>(text).map_err(|e| e.to_string())?;
    let out = epoch(&state).map_err(|e| format!("invalid state: {e}"))?;
    Ok(render_output(backend, &out))
}
