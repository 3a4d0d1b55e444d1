//! `deepnode sim`: runs a scenario file, the sweep, or the paper's and the departure's figures
//! (`deepnode-sim`). Errors are bad input ([`Failure::Input`], exit code 2).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use deepnode_consensus::BondMode;
use deepnode_sim::sweep::{SweepConfig, run_sweep, sweep_table, write_sweep};
use deepnode_sim::{Backend, RunOptions, Scenario, SimError, run_scenario};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend_parser;
use crate::exit::Failure;

/// `deepnode sim SCENARIO.toml --out DIR`, or `deepnode sim sweep|paper|departure ...`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SimArgs {
    #[command(subcommand)]
    command: Option<SimCommand>,
    /// The scenario (TOML; see adapters/sim/README.md).
    #[arg(required = true)]
    scenario: Option<PathBuf>,
    /// Directory for metrics.csv, metrics.json, final_state.json and the figures.
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// The numeric backend.
    #[arg(long, default_value_t = Backend::Float, value_parser = backend_parser())]
    backend: Backend,
    /// Epochs to run (overrides the scenario's `epochs`).
    #[arg(long)]
    epochs: Option<u32>,
    /// Seed (overrides the scenario's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Skip the figures.
    #[arg(long)]
    no_plots: bool,
    /// Also write each epoch's input state to DIR/states/ (the `deepnode epoch` contract).
    #[arg(long)]
    save_states: bool,
}

#[derive(Subcommand)]
enum SimCommand {
    /// Adversary's final share and dividend yield over stake x strategy x bond mode.
    Sweep {
        /// Directory for sweep.csv, sweep.json and the heat-maps.
        #[arg(long)]
        out: PathBuf,
        /// Nodes per run (a quarter adversarial).
        #[arg(long, default_value_t = 40)]
        nodes: u32,
        /// Epochs per run.
        #[arg(long, default_value_t = 50)]
        epochs: u32,
        /// Seed of every run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Emission rate tau.
        #[arg(long, default_value_t = 0.1)]
        rate: f64,
        /// The numeric backend.
        #[arg(long, default_value_t = Backend::Float, value_parser = backend_parser())]
        backend: Backend,
        /// The second bond axis: `ema` (the paper's EMA bonds, alpha 0.1), `yuma` (original
        /// Yuma: moving average 0.9, penalty 1) or `yuma3` (Yuma 3: moving average 0.9,
        /// penalty 0, no liquid alpha); the first is always the paper's cumulative bonds.
        #[arg(long, default_value = "ema", value_parser = ["ema", "yuma", "yuma3"])]
        against: String,
    },
    /// Reproduce the paper's claims and draw their figures (docs/sim).
    Paper {
        /// Directory for the figures and section11.json.
        #[arg(long)]
        out: PathBuf,
    },
    /// A node that stops without deregistering, under each rule for the bonds of absent
    /// nodes; and whether the activity cutoff changes section 11 or the sweep (docs/sim).
    Departure {
        /// Directory for the figures and departure.json.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs the command; prints results on stdout and one-line errors on stderr.
pub fn run(args: SimArgs) -> Result<(), Failure> {
    let result = match args.command {
        Some(SimCommand::Sweep {
            out,
            nodes,
            epochs,
            seed,
            rate,
            backend,
            against,
        }) => sweep(
            SweepConfig {
                nodes,
                epochs,
                seed,
                rate,
                backend,
                yuma: match against.as_str() {
                    "yuma" => Some(BondMode::Yuma {
                        bonds_moving_average: 0.9,
                        bonds_penalty: 1.0,
                    }),
                    "yuma3" => Some(BondMode::Yuma3 {
                        bonds_moving_average: 0.9,
                        bonds_penalty: 0.0,
                        liquid_alpha: None,
                    }),
                    _ => None,
                },
                ..SweepConfig::default()
            },
            &out,
        ),
        Some(SimCommand::Paper { out }) => paper(&out),
        Some(SimCommand::Departure { out }) => departure(&out),
        None => match (args.scenario, args.out) {
            (Some(scenario), Some(out)) => scenario_run(
                &scenario,
                &out,
                args.backend,
                args.epochs,
                args.seed,
                RunOptions {
                    plots: !args.no_plots,
                    save_states: args.save_states,
                },
            ),
            // clap requires both without a subcommand.
            _ => Err("sim: SCENARIO and --out are required".to_owned()),
        },
    };
    result.map_err(Failure::Input)
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({eta})")
    {
        pb.set_style(style);
    }
    pb.set_message(what.to_owned());
    pb
}

fn scenario_run(
    path: &Path,
    out: &Path,
    backend: Backend,
    epochs: Option<u32>,
    seed: Option<u64>,
    opts: RunOptions,
) -> Result<(), String> {
    let mut scenario = Scenario::from_file(path).map_err(|e| e.to_string())?;
    if let Some(e) = epochs {
        if e == 0 {
            return Err("sim: --epochs must be at least 1".into());
        }
        scenario.epochs = e;
    }
    if let Some(s) = seed {
        scenario.seed = s;
    }
    let (name, epochs, nodes) = (scenario.name.clone(), scenario.epochs, scenario.nodes());
    let pb = bar(u64::from(epochs), "epochs");
    let report = run_scenario(scenario, backend, out, &opts, |_| pb.inc(1))
        .map_err(|e: SimError| e.to_string())?;
    pb.finish_and_clear();
    println!(
        "{name}: {nodes} nodes, {epochs} epochs, {} backend, seed {}",
        backend.name(),
        seed.map_or_else(|| "from scenario".to_owned(), |s| s.to_string())
    );
    print!("{}", report.summary);
    println!("wrote {} files to {}", report.files.len(), out.display());
    Ok(())
}

fn sweep(cfg: SweepConfig, out: &Path) -> Result<(), String> {
    let cells = 3 * 2 * cfg.shares.len() as u64;
    let pb = bar(cells, "runs");
    let results = run_sweep(&cfg, |_| pb.inc(1)).map_err(|e| e.to_string())?;
    pb.finish_and_clear();
    let files = write_sweep(&results, out).map_err(|e| e.to_string())?;
    println!(
        "sweep: {} nodes (a quarter adversarial), {} epochs, tau = {}, seed {}",
        cfg.nodes, cfg.epochs, cfg.rate, cfg.seed
    );
    println!("adversary's final stake share (columns: initial share)");
    print!("{}", sweep_table(&results, |c| c.final_share));
    println!("adversary's dividend yield relative to honest nodes");
    print!("{}", sweep_table(&results, |c| c.dividend_yield_vs_honest));
    println!("wrote {} files to {}", files.len(), out.display());
    Ok(())
}

fn paper(out: &Path) -> Result<(), String> {
    let (files, text) = deepnode_sim::paper::write_paper_figures(out).map_err(|e| e.to_string())?;
    print!("{text}");
    println!("wrote {} files to {}", files.len(), out.display());
    Ok(())
}

fn departure(out: &Path) -> Result<(), String> {
    let (files, text) = deepnode_sim::departure::write_departure(out, &SweepConfig::default())
        .map_err(|e| e.to_string())?;
    print!("{text}");
    println!("wrote {} files to {}", files.len(), out.display());
    Ok(())
}
