//! `deepnode node run`: a client node on a ledger (`deepnode-node`), with a live status line.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use deepnode_ledger_client::Wallet;
use deepnode_node::access::LedgerRpc;
use deepnode_node::life::{RunConfig, Scoring, Status, run};
use deepnode_node::{Constant, EchoBias, Model, Noise, RandomProjection, ServeConfig, Trainer};
use deepnode_wire::{Limits, Modality};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use crate::exit::Failure;
use crate::node_chain;

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

#[derive(Clone, Copy, ValueEnum)]
enum ModelArg {
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
    /// Weight only the `--favor` accounts.
    Favor,
    /// Copy each neuron's consensus of the last epoch.
    Consensus,
    /// Set no weights.
    None,
}

/// Runs `deepnode node ...`.
pub fn run_node(cmd: NodeCmd) -> Result<(), Failure> {
    let NodeCmd::Run(args) = cmd;
    let args = *args;
    let wallet = Wallet::load(&args.wallet).map_err(Failure::input)?;
    let (model, trainer): (Arc<dyn Model>, Option<Box<dyn Trainer>>) = match &args.train {
        // A learner serves its trained encoder (`--model` is the training adapter's).
        Some(domain) => torch::learner(
            domain,
            &args.domains,
            args.slots,
            args.k,
            args.dim,
            args.seed,
        )?,
        None => (
            match args.model {
                ModelArg::Projection => Arc::new(RandomProjection::new(args.seed, args.dim)),
                ModelArg::Echo => Arc::new(EchoBias::new(args.dim, 0.1)),
                ModelArg::Noise => Arc::new(Noise::new(args.seed, args.dim, 1.0)),
                ModelArg::Zeros => Arc::new(Constant::new(args.dim, 0.0)),
                ModelArg::Torch => torch::served(args.seed, args.dim)?,
            },
            None,
        ),
    };
    let scoring = match args.scoring {
        ScoringArg::Usefulness => Scoring::Usefulness,
        ScoringArg::Trainer if trainer.is_none() => {
            return Err(Failure::input("--scoring trainer needs --train"));
        }
        ScoringArg::Trainer => Scoring::Trainer,
        ScoringArg::Favor => Scoring::Favor(
            args.favor
                .iter()
                .map(|k| {
                    k.parse::<deepnode_ledger_client::AccountId>()
                        .map(|a| a.0)
                        .map_err(|e| Failure::input(format!("--favor {k}: {e}")))
                })
                .collect::<Result<_, _>>()?,
        ),
        ScoringArg::Consensus => Scoring::CopyConsensus,
        ScoringArg::None => Scoring::Nothing,
    };
    let serve = args.limits.config(args.dim)?;
    let mut metrics = match &args.metrics {
        Some(path) => Some(Metrics::open(path)?),
        None => None,
    };
    let (rpc, chain) = (args.rpc, args.chain);
    let cfg = RunConfig {
        listen: args.listen.into(),
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
        serve,
        seed: args.seed,
        scoring,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Failure::failed)?;
    rt.block_on(async move {
        let (status_tx, mut status) = watch::channel(Status::default());
        let (stop_tx, stop) = watch::channel(false);
        let node = tokio::spawn(async move {
            if let Some(url) = chain {
                return node_chain::run(&url, &wallet, model, trainer, cfg, status_tx, stop).await;
            }
            let ledger = LedgerRpc::new(&rpc, Wallet::from_seed(wallet.key().to_bytes()))?;
            run(&ledger, &wallet, model, trainer, cfg, status_tx, stop).await
        });
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
                    let s = status.borrow().clone();
                    show.update(&s);
                    if let Some(m) = &mut metrics {
                        m.record(&s, false)?;
                    }
                }
            }
        }
        let _ = stop_tx.send(true);
        show.finish();
        if let Some(m) = &mut metrics {
            m.record(&status.borrow(), true)?;
        }
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
        "deepnode node: uid {uid}  block {}  peers {}/{} up  served {} refused {}  answers {} failed {} skipped {}  weights {weights}",
        s.block, s.peers_up, s.peers, s.served, s.refused, s.answers, s.failed, s.skipped
    );
    if let Some(e) = &s.last_row_error {
        line.push_str(&format!("  ({e})"));
    }
    if let Some(e) = &s.last_peer_error {
        line.push_str(&format!("  last failure {e}"));
    }
    line
}

/// `--metrics`: the status as JSON lines, at most one a second.
struct Metrics {
    file: std::fs::File,
    started: std::time::Instant,
    last: Option<std::time::Instant>,
}

impl Metrics {
    fn open(path: &std::path::Path) -> Result<Metrics, Failure> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
        Ok(Metrics {
            file,
            started: std::time::Instant::now(),
            last: None,
        })
    }

    fn record(&mut self, s: &Status, force: bool) -> Result<(), Failure> {
        use std::io::Write;
        let now = std::time::Instant::now();
        if !force && self.last.is_some_and(|t| now - t < Duration::from_secs(1)) {
            return Ok(());
        }
        self.last = Some(now);
        let progress = s.progress.clone().unwrap_or_default();
        let line = MetricsLine {
            t: self.started.elapsed().as_secs_f64(),
            uid: s.uid,
            block: s.block,
            peers: s.peers,
            peers_up: s.peers_up,
            served: s.served,
            refused: s.refused,
            answers: s.answers,
            failed: s.failed,
            skipped: s.skipped,
            rows_set: s.rows_set,
            rows_refused: s.rows_refused,
            last_row_error: s.last_row_error.clone(),
            last_peer_error: s.last_peer_error.clone(),
            steps: progress.steps,
            loss: progress.loss,
            valid: progress.valid.into_iter().collect(),
        };
        let json = serde_json::to_string(&line).map_err(Failure::failed)?;
        writeln!(self.file, "{json}").map_err(Failure::failed)
    }
}

/// One line of a `--metrics` file: the node's [`Status`] at `t` seconds after its start. The
/// one definition of the format, for the writer and for `deepnode devnet`, which reads it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricsLine {
    /// Seconds since the node started.
    pub t: f64,
    /// Its uid, once registered.
    pub uid: Option<deepnode_consensus::Uid>,
    /// The ledger block last seen.
    pub block: u64,
    /// Peers of its modality with an endpoint, and those connected.
    pub peers: usize,
    /// Peers connected.
    pub peers_up: usize,
    /// Requests served.
    pub served: u64,
    /// Requests refused.
    pub refused: u64,
    /// Peer answers received.
    pub answers: u64,
    /// Peer queries that failed.
    pub failed: u64,
    /// Peer queries not sent because the peer backs off after a failure.
    #[serde(default)]
    pub skipped: u64,
    /// Rows committed.
    pub rows_set: u64,
    /// Rows the ledger refused.
    pub rows_refused: u64,
    /// Why the last row was not set.
    pub last_row_error: Option<String>,
    /// The last failed peer query, `uid J: reason`.
    #[serde(default)]
    pub last_peer_error: Option<String>,
    /// Training steps (learners).
    pub steps: u64,
    /// The last training loss.
    pub loss: Option<f64>,
    /// The last validation losses by name.
    pub valid: std::collections::BTreeMap<String, f64>,
}

impl MetricsLine {
    /// Every complete line of a metrics file, in order (a torn last line is skipped; a missing
    /// file has none).
    pub fn read_all(path: &std::path::Path) -> Vec<MetricsLine> {
        std::fs::read_to_string(path)
            .map(|text| {
                text.lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The model a node serves and, for a learner, its trainer.
type Served = (Arc<dyn Model>, Option<Box<dyn Trainer>>);

/// The libtorch side of `node run`, present with the `torch` feature.
#[cfg(feature = "torch")]
mod torch {
    use std::sync::Arc;

    use deepnode_node::Model;
    use deepnode_torch::data::Domain;
    use deepnode_torch::{EncoderConfig, Learner, LearnerConfig, LocalConfig, TorchModel};

    use super::Served;
    use crate::exit::Failure;

    fn encoder(dim: u32) -> EncoderConfig {
        EncoderConfig {
            dim: i64::from(dim),
            ..EncoderConfig::default()
        }
    }

    /// The served TEXT encoder.
    pub fn served(seed: u64, dim: u32) -> Result<Arc<dyn Model>, Failure> {
        let seed = i64::try_from(seed).map_err(|_| Failure::input("--seed too large for torch"))?;
        let m = TorchModel::new(seed, encoder(dim), deepnode_torch::ServeConfig::default())
            .map_err(Failure::failed)?;
        Ok(Arc::new(m))
    }

    /// The learner of `--train DOMAIN --domains ...` and the model it serves (its trained
    /// encoder).
    pub fn learner(
        domain: &str,
        network: &[String],
        slots: usize,
        k: usize,
        dim: u32,
        seed: u64,
    ) -> Result<Served, Failure> {
        let input = |e| Failure::input(format!("--train {domain}: {e}"));
        let own = Domain::parse(domain).map_err(input)?;
        let network = network
            .iter()
            .map(|d| Domain::parse(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(input)?;
        let defaults = LearnerConfig::default();
        let config = LearnerConfig {
            local: LocalConfig {
                encoder: encoder(dim),
                student: EncoderConfig {
                    hidden: defaults.local.student.hidden,
                    ..encoder(dim)
                },
                peers: slots,
                k: k.clamp(1, slots.max(1)),
                seed,
                ..defaults.local
            },
            ..defaults
        };
        let mut learner = Learner::specialist(config, own, &network).map_err(input)?;
        let seed = i64::try_from(seed).map_err(|_| Failure::input("--seed too large for torch"))?;
        let served = Arc::new(
            TorchModel::new(seed, encoder(dim), deepnode_torch::ServeConfig::default())
                .map_err(Failure::failed)?,
        );
        learner
            .serve_through(Arc::clone(&served))
            .map_err(Failure::failed)?;
        Ok((served, Some(Box::new(learner))))
    }
}

/// Without the `torch` feature: a one-line reason instead of a model.
#[cfg(not(feature = "torch"))]
mod torch {
    use std::sync::Arc;

    use deepnode_node::Model;

    use super::Served;
    use crate::exit::Failure;

    const WHY: &str = "this deepnode was built without the `torch` feature (libtorch): \
        run ./scripts/devnet.sh, or cargo build --release -p deepnode-cli --features torch";

    /// Refused: no libtorch.
    pub fn served(_: u64, _: u32) -> Result<Arc<dyn Model>, Failure> {
        Err(Failure::input(WHY))
    }

    /// Refused: no libtorch.
    pub fn learner(
        _: &str,
        _: &[String],
        _: usize,
        _: usize,
        _: u32,
        _: u64,
    ) -> Result<Served, Failure> {
        Err(Failure::input(WHY))
    }
}

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

    #[test]
    fn the_status_line_shows_peers_skipped_while_backing_off() {
        let s = Status {
            failed: 2,
            skipped: 5,
            ..Status::default()
        };
        assert!(line(&s).contains("failed 2 skipped 5"), "{}", line(&s));
    }
}
