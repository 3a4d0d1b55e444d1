//! `deepnode node run`: a client node on a ledger (`deepnode-node`), with a live status line.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use deepnode_ledger::Wallet;
use deepnode_node::life::{RunConfig, Status, run};
use deepnode_node::{EchoBias, Model, RandomProjection, ServeConfig};
use deepnode_wire::{Limits, Modality};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use crate::exit::Failure;

/// `deepnode node ...`
#[derive(Subcommand)]
pub enum NodeCmd {
    /// Register (if needed), serve a model on the ledger's network, query peers and set weights
    /// until Ctrl-C.
    Run(RunArgs),
}

/// `deepnode node run`.
#[derive(Args)]
pub struct RunArgs {
    /// The key file (`deepnode wallet new`); its account owns the node and pays for its calls.
    #[arg(long)]
    wallet: PathBuf,
    /// The ledger's RPC URL.
    #[arg(long, default_value = "http://127.0.0.1:9944")]
    rpc: String,
    /// Where to accept peers (served on the ledger as this node's endpoint).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The modality of this node's queries.
    #[arg(long, value_enum, default_value_t = ModalityArg::Text)]
    modality: ModalityArg,
    /// The model served (pure Rust; the libtorch models come with the training adapter).
    #[arg(long, value_enum, default_value_t = ModelArg::Projection)]
    model: ModelArg,
    /// The network's representation width D.
    #[arg(long, default_value_t = 32)]
    dim: u32,
    /// Stake to hold on the node (added from the wallet's balance when below).
    #[arg(long, default_value_t = 0)]
    stake: u64,
    /// Callers whose neurons hold less stake are refused.
    #[arg(long, default_value_t = 0)]
    stake_floor: u64,
    /// Peers per query.
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// Milliseconds between queries.
    #[arg(long, default_value_t = 500)]
    query_ms: u64,
    /// Seed of the model and the query inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModalityArg {
    /// Bytes `[B, S]`.
    Text,
    /// Float features `[B, S, 16]`.
    Tensor,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModelArg {
    /// A fixed random projection.
    Projection,
    /// A learned bias moved by the gradients peers send.
    Echo,
}

/// Runs `deepnode node ...`.
pub fn run_node(cmd: NodeCmd) -> Result<(), Failure> {
    let NodeCmd::Run(args) = cmd;
    let wallet = Wallet::load(&args.wallet).map_err(Failure::input)?;
    let model: Arc<dyn Model> = match args.model {
        ModelArg::Projection => Arc::new(RandomProjection::new(args.seed, args.dim)),
        ModelArg::Echo => Arc::new(EchoBias::new(args.dim, 0.1)),
    };
    let limits = Limits {
        max_payload: 16 << 20,
        max_batch: 64,
        max_seq: 1024,
        dim: args.dim,
        max_features: 1024,
        max_image_elems: 3 * 224 * 224,
    };
    let cfg = RunConfig {
        rpc: args.rpc,
        listen: args.listen,
        modality: match args.modality {
            ModalityArg::Text => Modality::Text,
            ModalityArg::Tensor => Modality::Tensor,
        },
        stake: args.stake,
        stake_floor: args.stake_floor,
        k: args.k.max(1),
        batch: (4, 32),
        query_every: Duration::from_millis(args.query_ms.max(1)),
        timeout: Duration::from_secs(2),
        serve: ServeConfig::new(limits, 8, 64),
        seed: args.seed,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Failure::failed)?;
    rt.block_on(async move {
        let (status_tx, mut status) = watch::channel(Status::default());
        let (stop_tx, stop) = watch::channel(false);
        let node = tokio::spawn(async move { run(&wallet, model, cfg, status_tx, stop).await });
        let show = Show::new();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(Failure::failed)?;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                changed = status.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    show.update(&status.borrow());
                }
            }
        }
        let _ = stop_tx.send(true);
        show.finish();
        node.await
            .map_err(Failure::failed)?
            .map_err(Failure::failed)
    })
}

/// The status line: a spinner line rewritten in place on a terminal; elsewhere a plain line
/// whenever the uid, peers or weights change, and every 20 updates.
struct Show {
    bar: Option<ProgressBar>,
    last: std::sync::Mutex<(String, u64)>,
}

impl Show {
    fn new() -> Show {
        let bar = std::io::stderr().is_terminal().then(|| {
            let pb = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                pb.set_style(style);
            }
            pb.enable_steady_tick(Duration::from_millis(200));
            pb
        });
        Show {
            bar,
            last: std::sync::Mutex::new((String::new(), 0)),
        }
    }

    fn update(&self, s: &Status) {
        let line = line(s);
        match &self.bar {
            Some(pb) => pb.set_message(line),
            None => {
                let key = format!(
                    "{:?} {} {} {:?}",
                    s.uid, s.peers, s.peers_up, s.weights_block
                );
                if let Ok(mut last) = self.last.lock() {
                    last.1 += 1;
                    if last.0 != key || last.1 % 20 == 0 {
                        println!("{line}");
                        last.0 = key;
                    }
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(pb) = &self.bar {
            pb.finish();
        }
    }
}

fn line(s: &Status) -> String {
    let uid = s.uid.map_or("-".into(), |u| u.to_string());
    let weights = s
        .weights_block
        .map_or("never".into(), |b| format!("block {b}"));
    let mut line = format!(
        "deepnode node: uid {uid}  block {}  peers {}/{} up  served {} refused {}  answers {} failed {}  weights {weights}",
        s.block, s.peers_up, s.peers, s.served, s.refused, s.answers, s.failed
    );
    if let Some(e) = &s.last_row_error {
        line.push_str(&format!("  ({e})"));
    }
    line
}
