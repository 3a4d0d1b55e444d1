//! `deepnode devnet`: runs a devnet (`deepnode-devnet`), whose node processes are this binary
//! started as `deepnode devnet node FILE`; that subcommand runs one node from the typed
//! config the devnet wrote ([`NodeConfig`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, Subcommand};
use deepnode_devnet::{Build, DevnetError, NodeConfig, Options, Row, Served};
use deepnode_node::life::Scoring;

use crate::exit::Failure;
use crate::node_cli::{self, ModelArg, NodeSpec, ServedSpec};

/// `deepnode devnet [SCENARIO] ...`, or `deepnode devnet node FILE`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DevnetArgs {
    #[command(subcommand)]
    command: Option<DevnetCmd>,
    /// The scenario (TOML; `examples/devnet.toml` documents every key). Default: that file.
    scenario: Option<PathBuf>,
    /// Number of nodes (resizes the scenario's learner group).
    #[arg(long)]
    nodes: Option<usize>,
    /// Epochs to run.
    #[arg(long)]
    epochs: Option<u64>,
    /// The report directory (created; a previous devnet report there is replaced).
    #[arg(long, default_value = "devnet-report")]
    out: PathBuf,
}

#[derive(Subcommand)]
enum DevnetCmd {
    /// Run one devnet node from the config file the devnet wrote for it (the devnet starts
    /// these processes itself).
    Node {
        /// The node's config (JSON, `DIR/nodes/node-N.json` of a devnet report).
        config: PathBuf,
    },
}

/// What this build's node processes can run.
const BUILD: Build = Build {
    torch: cfg!(feature = "torch"),
    adversarial: cfg!(feature = "adversarial"),
};

/// Runs `deepnode devnet ...`.
pub fn run(args: DevnetArgs) -> Result<(), Failure> {
    if let Some(DevnetCmd::Node { config }) = args.command {
        return node(&config);
    }
    let exe = std::env::current_exe().map_err(Failure::failed)?;
    let launch = |config: &Path| {
        let mut c = Command::new(&exe);
        c.arg("devnet").arg("node").arg(config);
        c
    };
    let opts = Options {
        scenario: args.scenario,
        nodes: args.nodes,
        epochs: args.epochs,
        out: args.out,
    };
    deepnode_devnet::run(&opts, BUILD, &launch)
        .map(drop)
        .map_err(|e| match e {
            DevnetError::Input(m) => Failure::Input(m),
            DevnetError::Ledger(e) => Failure::from(e),
            e => Failure::failed(e),
        })
}

/// `deepnode devnet node FILE`: the node of a devnet config.
fn node(path: &Path) -> Result<(), Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
    let config: NodeConfig = serde_json::from_str(&text)
        .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
    node_cli::launch(spec(config)?)
}

/// The node of a devnet config: the devnet's listen address, modality and serving limits are
/// the node's defaults (loopback, any port; TEXT).
fn spec(c: NodeConfig) -> Result<NodeSpec, Failure> {
    let served = match c.served {
        Served::Noise => ServedSpec::Model(ModelArg::Noise),
        Served::Zeros => ServedSpec::Model(ModelArg::Zeros),
        Served::Learner {
            domain,
            domains,
            slots,
        } => ServedSpec::Learner {
            domain,
            domains,
            slots,
        },
    };
    let scoring = match c.row {
        Row::Trainer => Scoring::Trainer,
        Row::None => Scoring::Nothing,
        #[cfg(feature = "adversarial")]
        Row::Favor(accounts) => Scoring::Favor(accounts),
        #[cfg(feature = "adversarial")]
        Row::Consensus => Scoring::CopyConsensus,
        #[cfg(not(feature = "adversarial"))]
        Row::Favor(_) | Row::Consensus => {
            return Err(Failure::input(
                "an adversarial row needs a deepnode built with the `adversarial` feature",
            ));
        }
    };
    Ok(NodeSpec {
        wallet: c.wallet,
        served,
        dim: c.dim,
        metrics: Some(c.metrics),
        ledger: node_cli::LedgerSpec::Rpc(c.rpc),
        cfg: node_cli::run_config(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            deepnode_wire::Modality::Text,
            (c.stake, 0),
            c.k,
            c.query_ms,
            node_cli::default_serve(c.dim),
            c.seed,
            scoring,
        ),
    })
}
