//! `deepnode node run`: a client node on a ledger (`deepnode-node`), with a live status line.
//! This file turns the flags into a [`NodeSpec`]; `launch` runs it; `torch` builds the
//! learner.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use deepnode_node::life::{RunConfig, Scoring};
use deepnode_node::{Model, ServeConfig, Trainer};
use deepnode_wire::{Limits, Modality};

use crate::exit::Failure;

mod launch;
mod torch;

pub use launch::launch;

/// `deepnode node ...`
#[derive(Subcommand)]
pub enum NodeCmd {
    /// Register (if needed), serve a model on the ledger's network, query peers and set weights
    /// until Ctrl-C.
    Run(Box<RunArgs>),
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
    /// Run on a Substrate chain whose runtime runs the DeepNode pallet (`ws://host:port`)
    /// instead of the ledger at `--rpc` (needs the `chain` feature). The wallet's account
    /// must hold funds on that chain to pay fees.
    #[arg(long, conflicts_with = "rpc")]
    chain: Option<String>,
    /// Where to accept peers (served on the ledger as this node's endpoint).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The modality of this node's queries.
    #[arg(long, value_enum, default_value_t = ModalityArg::Text)]
    modality: ModalityArg,
    /// The model served (`torch`: the training adapter's encoder; needs the `torch` feature).
    #[arg(long, value_enum, default_value_t = ModelArg::Projection)]
    model: ModelArg,
    /// Where the weights row comes from (`trainer`: Fisher scores of `--train`).
    #[arg(long, value_enum, default_value_t = ScoringArg::Usefulness)]
    scoring: ScoringArg,
    /// With `--scoring favor`: the accounts (hex) the row gives weight to, and nobody else.
    #[cfg(feature = "adversarial")]
    #[arg(long, value_delimiter = ',')]
    favor: Vec<String>,
    /// Train on this text domain (`c`, `fortunes`, `licenses`, `python`), querying peers
    /// through the gating layer (the training adapter; needs the `torch` feature).
    #[arg(long)]
    train: Option<String>,
    /// With `--train`: the domains of the network's learners, on which this learner also
    /// trains a little (a small sample of each) and is evaluated, e.g. `c,fortunes,python`.
    #[arg(long, value_delimiter = ',')]
    domains: Vec<String>,
    /// With `--train`: the number of uids the gate chooses among.
    #[arg(long, default_value_t = 8)]
    slots: usize,
    /// Append the status as one JSON line per second to this file (and once at exit).
    #[arg(long)]
    metrics: Option<PathBuf>,
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
    #[command(flatten)]
    limits: LimitArgs,
}

/// The serving limits of `deepnode node run`; each default is the node's own
/// ([`ServeConfig::new`]).
#[derive(Args)]
#[command(next_help_heading = "Serving limits")]
struct LimitArgs {
    /// Requests served at once for one account, over all its sessions (past it, Busy).
    #[arg(long, default_value_t = ServeConfig::DEFAULT_PER_PEER)]
    per_peer: usize,
    /// Requests served at once in total (past it, Busy).
    #[arg(long, default_value_t = ServeConfig::DEFAULT_TOTAL)]
    max_requests: usize,
    /// Accepted connections at once (past it, a new one is closed).
    #[arg(long, default_value_t = defaults().max_sessions)]
    max_sessions: usize,
    /// Accepted connections at once from one IP address.
    #[arg(long, default_value_t = defaults().max_sessions_per_address)]
    max_sessions_per_address: usize,
    /// Accepted sessions at once of one account.
    #[arg(long, default_value_t = defaults().max_sessions_per_account)]
    max_sessions_per_account: usize,
    /// Unfinished messages one session may have open (past it, the session is closed).
    #[arg(long, default_value_t = defaults().max_open_messages)]
    max_open_messages: usize,
    /// Declared bytes of unfinished requests one session may hold (at least the largest
    /// payload, 16 MiB).
    #[arg(long, default_value_t = defaults().max_open_bytes)]
    max_open_bytes: usize,
    /// Declared bytes of unfinished requests over all sessions.
    #[arg(long, default_value_t = defaults().max_open_bytes_total)]
    max_open_bytes_total: usize,
    /// Milliseconds after which an unfinished message is dropped.
    #[arg(long, default_value_t = millis(defaults().message_timeout))]
    message_timeout_ms: u64,
    /// Milliseconds after which a session that received nothing (and awaits nothing) is
    /// closed.
    #[arg(long, default_value_t = millis(defaults().idle_timeout))]
    idle_timeout_ms: u64,
    /// Messages queued for one session's writer.
    #[arg(long, default_value_t = defaults().max_queued)]
    max_queued: usize,
    /// Milliseconds a reply may wait for the queue, or a write make no progress, before
    /// the session is closed (a peer that never reads).
    #[arg(long, default_value_t = millis(defaults().send_timeout))]
    send_timeout_ms: u64,
    /// Requests run on the model at once, each on a thread of its own (default: the cores).
    #[arg(long, default_value_t = defaults().model_threads)]
    model_threads: usize,
}

/// The shapes and sizes a node accepts, for representation width `dim`.
fn limits(dim: u32) -> Limits {
    Limits {
        max_payload: 16 << 20,
        max_batch: 64,
        max_seq: 1024,
        dim,
        max_features: 1024,
        max_image_elems: 3 * 224 * 224,
    }
}

/// The node's serving defaults: where the limit flags' defaults come from.
fn defaults() -> ServeConfig {
    ServeConfig::new(
        limits(32),
        ServeConfig::DEFAULT_PER_PEER,
        ServeConfig::DEFAULT_TOTAL,
    )
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl LimitArgs {
    /// The serving config of these flags for width `dim`; a limit that cannot work is bad
    /// input, named by its flag.
    fn config(&self, dim: u32) -> Result<ServeConfig, Failure> {
        let mut c = ServeConfig::new(limits(dim), self.per_peer, self.max_requests);
        c.max_sessions = self.max_sessions;
        c.max_sessions_per_address = self.max_sessions_per_address;
        c.max_sessions_per_account = self.max_sessions_per_account;
        c.max_open_messages = self.max_open_messages;
        c.max_open_bytes = self.max_open_bytes;
        c.max_open_bytes_total = self.max_open_bytes_total;
        c.message_timeout = Duration::from_millis(self.message_timeout_ms);
        c.idle_timeout = Duration::from_millis(self.idle_timeout_ms);
        c.max_queued = self.max_queued;
        c.send_timeout = Duration::from_millis(self.send_timeout_ms);
        c.model_threads = self.model_threads;
        c.check().map_err(|e| {
            let flag = match e.field {
                "global" => "--max-requests".to_owned(),
                f if f.ends_with("_timeout") => format!("--{}-ms", f.replace('_', "-")),
                f => format!("--{}", f.replace('_', "-")),
            };
            let rule = e.rule.replace("max_open_bytes", "--max-open-bytes");
            Failure::input(format!("{flag}: {rule}"))
        })?;
        Ok(c)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ModalityArg {
    /// Bytes `[B, S]`.
    Text,
    /// Float features `[B, S, 16]`.
    Tensor,
}

/// `--model`.
#[derive(Clone, Copy, ValueEnum)]
pub enum ModelArg {
    /// A fixed random projection.
    Projection,
    /// A learned bias moved by the gradients peers send.
    Echo,
    /// Fresh random values on every call (a node that helps nobody).
    Noise,
    /// Zeros (a lazy node).
    Zeros,
    /// The training adapter's TEXT encoder (libtorch).
    Torch,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum ScoringArg {
    /// Each useful answer counts 1.
    Usefulness,
    /// The trainer's Fisher scores (needs `--train`).
    Trainer,
    /// Weight only the `--favor` accounts (an adversary: feature `adversarial`).
    #[cfg(feature = "adversarial")]
    Favor,
    /// Copy each neuron's consensus of the last epoch (an adversary: feature `adversarial`).
    #[cfg(feature = "adversarial")]
    Consensus,
    /// Set no weights.
    None,
}

/// A node to run: from the flags of `deepnode node run` ([`RunArgs::spec`]) or from a
/// devnet's node config (`deepnode devnet node`).
pub struct NodeSpec {
    /// The key file.
    pub wallet: PathBuf,
    /// What it serves.
    pub served: ServedSpec,
    /// The network's representation width D.
    pub dim: u32,
    /// Where to append its status as JSON lines.
    pub metrics: Option<PathBuf>,
    /// Where its ledger is.
    pub ledger: LedgerSpec,
    /// Everything else the node's loop takes.
    pub cfg: RunConfig,
}

/// The ledger a node registers on and sets weights through.
pub enum LedgerSpec {
    /// The embedded ledger's JSON-RPC URL.
    Rpc(String),
    /// A Substrate chain running the pallet (`ws://host:port`; the `chain` feature).
    Chain(String),
}

/// The model a node serves.
pub enum ServedSpec {
    /// A pure-Rust model, or the training adapter's untrained encoder (`torch`).
    Model(ModelArg),
    /// A learner (libtorch): a specialist of `domain`, also trained and evaluated on
    /// `domains`, its gate choosing among `slots` uids; it serves its trained encoder.
    Learner {
        /// Its own text domain.
        domain: String,
        /// The domains of the network's learners.
        domains: Vec<String>,
        /// Uids the gate chooses among.
        slots: usize,
    },
}

/// The node's loop configuration; batch and deadlines are the CLI's fixed choices.
#[allow(
    clippy::too_many_arguments,
    reason = "one place that fills RunConfig for both callers"
)]
pub fn run_config(
    listen: SocketAddr,
    modality: Modality,
    stake: (u64, u64),
    k: usize,
    query_ms: u64,
    serve: ServeConfig,
    seed: u64,
    scoring: Scoring,
) -> RunConfig {
    RunConfig {
        listen: listen.into(),
        modality,
        stake: stake.0,
        stake_floor: stake.1,
        k: k.max(1),
        batch: (4, 32),
        query_every: Duration::from_millis(query_ms.max(1)),
        timeout: Duration::from_secs(2),
        serve,
        seed,
        scoring,
    }
}

/// The serving config of a node with every limit at the node's default, for width `dim`.
pub fn default_serve(dim: u32) -> ServeConfig {
    ServeConfig::new(
        limits(dim),
        ServeConfig::DEFAULT_PER_PEER,
        ServeConfig::DEFAULT_TOTAL,
    )
}

impl RunArgs {
    /// The node these flags describe; a flag that cannot work is bad input.
    fn spec(self) -> Result<NodeSpec, Failure> {
        let served = match self.train {
            // A learner serves its trained encoder (`--model` is the training adapter's).
            Some(domain) => ServedSpec::Learner {
                domain,
                domains: self.domains,
                slots: self.slots,
            },
            None => ServedSpec::Model(self.model),
        };
        let scoring = match self.scoring {
            ScoringArg::Usefulness => Scoring::Usefulness,
            ScoringArg::Trainer if matches!(served, ServedSpec::Model(_)) => {
                return Err(Failure::input("--scoring trainer needs --train"));
            }
            ScoringArg::Trainer => Scoring::Trainer,
            #[cfg(feature = "adversarial")]
            ScoringArg::Favor => Scoring::Favor(
                self.favor
                    .iter()
                    .map(|k| {
                        k.parse::<deepnode_ledger_client::AccountId>()
                            .map(|a| a.0)
                            .map_err(|e| Failure::input(format!("--favor {k}: {e}")))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            #[cfg(feature = "adversarial")]
            ScoringArg::Consensus => Scoring::CopyConsensus,
            ScoringArg::None => Scoring::Nothing,
        };
        let serve = self.limits.config(self.dim)?;
        let modality = match self.modality {
            ModalityArg::Text => Modality::Text,
            ModalityArg::Tensor => Modality::Tensor,
        };
        Ok(NodeSpec {
            wallet: self.wallet,
            served,
            dim: self.dim,
            metrics: self.metrics,
            ledger: match self.chain {
                Some(url) => LedgerSpec::Chain(url),
                None => LedgerSpec::Rpc(self.rpc),
            },
            cfg: run_config(
                self.listen,
                modality,
                (self.stake, self.stake_floor),
                self.k,
                self.query_ms,
                serve,
                self.seed,
                scoring,
            ),
        })
    }
}

/// Runs `deepnode node ...`.
pub fn run_node(cmd: NodeCmd) -> Result<(), Failure> {
    let NodeCmd::Run(args) = cmd;
    launch(args.spec()?)
}

/// The model a node serves and, for a learner, its trainer.
pub(crate) type Served = (Arc<dyn Model>, Option<Box<dyn Trainer>>);

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        limits: LimitArgs,
    }

    fn config(args: &[&str]) -> Result<ServeConfig, Failure> {
        let cmd = Cmd::try_parse_from(std::iter::once("node").chain(args.iter().copied()))
            .expect("parses");
        cmd.limits.config(32)
    }

    #[test]
    fn limit_flags_default_to_the_nodes_own_and_reach_its_config() {
        let (got, node) = (config(&[]).expect("the defaults work"), defaults());
        let key = |c: &ServeConfig| {
            (
                (c.per_peer, c.global.available_permits(), c.max_sessions),
                (c.max_sessions_per_address, c.max_sessions_per_account),
                (
                    c.max_open_messages,
                    c.max_open_bytes,
                    c.max_open_bytes_total,
                ),
                (
                    c.message_timeout,
                    c.idle_timeout,
                    c.max_queued,
                    c.send_timeout,
                ),
                c.model_threads,
            )
        };
        assert_eq!(key(&got), key(&node));
        let set = config(&[
            "--per-peer",
            "3",
            "--max-requests",
            "11",
            "--max-sessions",
            "7",
            "--max-sessions-per-address",
            "5",
            "--max-sessions-per-account",
            "2",
            "--max-open-messages",
            "6",
            "--max-open-bytes",
            "20000000",
            "--max-open-bytes-total",
            "40000000",
            "--message-timeout-ms",
            "1500",
            "--idle-timeout-ms",
            "2500",
            "--max-queued",
            "9",
            "--send-timeout-ms",
            "700",
            "--model-threads",
            "3",
        ])
        .expect("valid limits");
        let ms = Duration::from_millis;
        assert_eq!(
            key(&set),
            (
                (3, 11, 7),
                (5, 2),
                (6, 20_000_000, 40_000_000),
                (ms(1500), ms(2500), 9, ms(700)),
                3
            )
        );
    }

    #[test]
    fn a_limit_that_cannot_work_is_bad_input_naming_its_flag() {
        let cases = [
            (
                ["--max-sessions", "0"],
                "--max-sessions: must be at least 1",
            ),
            (
                ["--max-requests", "0"],
                "--max-requests: must be at least 1",
            ),
            (["--max-queued", "0"], "--max-queued: must be at least 1"),
            (
                ["--idle-timeout-ms", "0"],
                "--idle-timeout-ms: must be more than 0",
            ),
            (
                ["--max-open-bytes", "1024"],
                "--max-open-bytes: must be at least the largest payload, 16777216 bytes",
            ),
            (
                ["--max-open-bytes-total", "1024"],
                "--max-open-bytes-total: must be at least --max-open-bytes",
            ),
        ];
        for (args, want) in cases {
            match config(&args) {
                Err(Failure::Input(got)) => assert_eq!(got, want),
                Err(e) => panic!("{args:?}: {e:?}"),
                Ok(_) => panic!("{args:?}: accepted"),
            }
        }
    }
}
