//! `deepnode-bench`: the benchmark runners of the workspace, apart from the `deepnode` binary
//! so that the product does not link the test kit. `epoch` times the epoch on a synthetic
//! network (both backends, optionally the numpy baseline of `baseline/numpy_epoch.py` and
//! several threads), `sim` the simulator at scale, `ledger` the ledger's throughput. Figures
//! and the machine they were measured on: docs/benchmarks.md.
//!
//! Exit codes as `deepnode`'s: 0 success, 1 the run failed, 2 bad input.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use deepnode_ledger::LedgerError;

mod epoch;
mod rss;
mod sim;

/// DeepNode's benchmarks.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Time the epoch on a synthetic network, fixed against float in the same run.
    Epoch {
        /// Nodes.
        #[arg(long, default_value_t = 4096)]
        n: usize,
        /// Non-zero weights per row (capped at n).
        #[arg(long, default_value_t = 4096)]
        k: usize,
        /// Epochs timed per backend and round (the median is kept).
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        /// Rounds of (float, fixed, baseline), alternated; the median over rounds is reported.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Also time this numpy + scipy.sparse epoch script (run with `python3`, e.g.
        /// benches/baseline/numpy_epoch.py) on the same network each round, and print ratios.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Also time the epoch on this many threads against one core, both backends,
        /// alternated, and print the speed-up (needs a build with `--features parallel`).
        #[arg(long)]
        threads: Option<NonZeroUsize>,
        /// Also time the same network under Yuma 3 (bonds_moving_average 0.9, no penalty, no
        /// liquid alpha), both backends, each round, against the paper's float epoch.
        #[arg(long)]
        yuma3: bool,
    },
    /// The simulator's scale figures: 3 epochs of 1,000,000 x 32 and 100 epochs of
    /// 10,000 x 256 (float).
    Sim {
        /// Run 1/10 of each size (a smoke test).
        #[arg(long)]
        quick: bool,
    },
    /// The ledger: extrinsics/s with signature checks, a block of 1,000 extrinsics, an epoch.
    Ledger {
        /// Extrinsics in the throughput run.
        #[arg(long, default_value_t = 20_000)]
        extrinsics: usize,
        /// Nodes in the epoch run.
        #[arg(long, default_value_t = 4096)]
        nodes: u32,
        /// Weights per row in the epoch run.
        #[arg(long, default_value_t = 64)]
        k: u32,
    },
}

/// Why a benchmark failed; each variant is one exit code.
enum Failure {
    /// Bad input (exit code 2).
    Input(String),
    /// The run failed (exit code 1).
    Failed(String),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Epoch {
            n,
            k,
            epochs,
            rounds,
            baseline,
            threads,
            yuma3,
        } => epoch::run(&epoch::EpochArgs {
            n,
            k,
            epochs,
            rounds,
            baseline,
            threads,
            yuma3,
        })
        .map_err(Failure::Input),
        Command::Sim { quick } => sim::run(quick).map_err(Failure::Input),
        Command::Ledger {
            extrinsics,
            nodes,
            k,
        } => deepnode_ledger::bench::run(extrinsics, nodes, k)
            .map(|r| println!("{r}"))
            .map_err(|e| match e {
                LedgerError::Usage(_) => Failure::Input(e.to_string()),
                _ => Failure::Failed(e.to_string()),
            }),
    };
    let (msg, code) = match result {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Failure::Input(msg)) => (msg, 2),
        Err(Failure::Failed(msg)) => (msg, 1),
    };
    eprintln!("deepnode-bench: {}", msg.replace('\n', " "));
    ExitCode::from(code)
}
