//! `deepnode devnet`: runs a devnet (`deepnode-devnet`), whose node processes are this binary
//! started as `deepnode devnet node FILE`; that subcommand runs one node from the typed
//! config the devnet wrote ([`NodeConfig`]). On separate hosts each node's link is this binary
//! too, `deepnode devnet link FILE`.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, Subcommand};
use deepnode_devnet::{Build, DevnetError, NodeConfig, Options, Process, Row, Served};
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
    /// The ledger, every node and every node's link on a host of its own (Linux network
    /// namespaces; needs root and iproute2).
    #[arg(long)]
    netns: bool,
    /// Every link perfect (the scenario's link profiles dropped): the baseline of a run on
    /// impaired links.
    #[arg(long)]
    perfect_links: bool,
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
    /// Run one node's link on separate hosts from the config file the devnet wrote for it
    /// (the devnet starts these processes itself, in the link's namespace).
    Link {
        /// The link's config (JSON, `DIR/links/node-N.json` of a devnet report).
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
    match args.command {
        Some(DevnetCmd::Node { config }) => return node(&config),
        Some(DevnetCmd::Link { config }) => {
            return deepnode_devnet::serve_link(&config).map_err(failure);
        }
        None => {}
    }
    let exe = std::env::current_exe().map_err(Failure::failed)?;
    let launch = |process: Process, config: &Path| {
        let mut c = Command::new(&exe);
        c.arg("devnet")
            .arg(match process {
                Process::Node => "node",
                Process::Link => "link",
            })
            .arg(config);
        c
    };
    let opts = Options {
        scenario: args.scenario,
        nodes: args.nodes,
        epochs: args.epochs,
        netns: args.netns,
        perfect_links: args.perfect_links,
        out: args.out,
    };
    deepnode_devnet::run(&opts, BUILD, &launch)
        .map(drop)
        .map_err(failure)
}

/// A devnet's error as the CLI's exit.
fn failure(e: DevnetError) -> Failure {
    match e {
        DevnetError::Input(m) => Failure::Input(m),
        DevnetError::Ledger(e) => Failure::from(e),
        e => Failure::failed(e),
    }
}

/// `deepnode devnet node FILE`: the node of a devnet config.
fn node(path: &Path) -> Result<(), Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
    let config: NodeConfig = serde_json::from_str(&text)
        .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
    node_cli::launch(spec(config)?)
}

/// The node of a devnet config: its listen address is the config's; modality and serving
/// limits are the node's defaults (TEXT).
fn spec(c: NodeConfig) -> Result<NodeSpec, Failure> {
    let served = match c.served {
        Served::Noise => ServedSpec::Model(ModelArg::Noise),
        Served::Zeros => ServedSpec::Model(ModelArg::Zeros),
        Served::Projection => ServedSpec::Model(ModelArg::Projection),
        Served::Echo => ServedSpec::Model(ModelArg::Echo),
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
        Row::Usefulness => Scoring::Usefulness,
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
            c.listen,
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
