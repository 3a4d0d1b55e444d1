//! `deepnode devnet`: the embedded ledger and N node processes (`deepnode node run`) on
//! loopback, run for a number of epochs, shown live, and written up as a report.

mod live;
#[cfg(test)]
mod model_tests;
mod record;
mod report;
mod scenario;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use deepnode_consensus::Fx;
use deepnode_ledger::view::MetagraphView;
use deepnode_ledger::{Chain, Client, Genesis, RpcServer, Wallet, verify};

use crate::exit::Failure;
use crate::node_cli::MetricsLine;
use live::Live;
use record::{EpochRecord, Evaluation, NodeRecord, summarize};
use scenario::{Member, Role, Scenario, Signal};

/// `deepnode devnet`.
#[derive(Args)]
pub struct DevnetArgs {
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

/// Runs `deepnode devnet`.
pub fn run(args: DevnetArgs) -> Result<(), Failure> {
    let text = match &args.scenario {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| Failure::input(format!("{}: {e}", p.display())))?,
        None => scenario::DEFAULT.to_owned(),
    };
    let name = args
        .scenario
        .as_ref()
        .map_or("the default scenario".into(), |p| p.display().to_string());
    let bad = |e: String| Failure::input(format!("{name}: {e}"));
    let mut sc = Scenario::parse(&text).map_err(bad)?;
    if let Some(e) = args.epochs {
        sc.epochs = e;
    }
    if let Some(n) = args.nodes {
        sc.resize(n).map_err(bad)?;
    }
    sc.check().map_err(bad)?;
    if sc.learners() > 0 && !cfg!(feature = "torch") {
        return Err(Failure::input(
            "learners need libtorch, and this deepnode was built without the `torch` feature: \
             run ./scripts/devnet.sh (or cargo run --release -p deepnode-cli --features torch \
             -- devnet)",
        ));
    }
    prepare(&args.out)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Failure::failed)?;
    let ran = rt.block_on(devnet(&sc, &args.out))?;
    // Every task of the ledger's server ends with the runtime, and with them its database
    // handle: only then can `verify` open the chain.
    drop(rt);
    finish(&sc, &text, &args.out, ran)
}

/// Creates `out` with its subfolders; a previous report (it has `summary.json` or
/// `scenario.toml`) is removed first, anything else refused.
fn prepare(out: &Path) -> Result<(), Failure> {
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .map_err(|e| Failure::input(format!("{}: {e}", out.display())))?
            .next()
            .is_none();
        let ours = out.join("scenario.toml").exists() || out.join("summary.json").exists();
        if !empty && !ours {
            return Err(Failure::input(format!(
                "{} exists and is not a devnet report; choose another --out",
                out.display()
            )));
        }
        if ours {
            std::fs::remove_dir_all(out).map_err(Failure::failed)?;
        }
    }
    for sub in ["wallets", "logs", "metrics"] {
        std::fs::create_dir_all(out.join(sub))
            .map_err(|e| Failure::failed(format!("{}: {e}", out.display())))?;
    }
    Ok(())
}

/// A node process and what the devnet knows of it.
struct Proc {
    member: Member,
    wallet: Wallet,
    child: Option<Child>,
    metrics: PathBuf,
    log: PathBuf,
    /// Left (as scheduled) or ended on its own.
    gone: bool,
}

impl Proc {
    /// SIGTERM (a clean stop) or SIGKILL.
    fn signal(&mut self, signal: Signal) {
        let Some(child) = &mut self.child else {
            return;
        };
        match signal {
            Signal::Kill => {
                let _ = child.kill();
            }
            Signal::Term => {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
            }
        }
    }

    /// Waits up to `limit` for the process to end, then kills it.
    fn reap(&mut self, limit: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let started = Instant::now();
        while started.elapsed() < limit {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// `Some(status)` if the process ended.
    fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A wallet seed: the scenario seed and the node's index.
fn wallet_seed(seed: u64, index: usize) -> [u8; 32] {
    let mut s = [0x5eu8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    s
}

/// The devnet's genesis: the ledger's defaults for its tempo (the activity cutoff on, at
/// `deepnode_ledger::ACTIVITY_CUTOFF_EPOCHS` epochs; the bonds of absent nodes pay nothing),
/// with the scenario's emission and trust threshold.
fn genesis(sc: &Scenario, wallets: &[Wallet]) -> Genesis {
    let mut g = Genesis::default();
    g.config.tempo = sc.tempo;
    g.params = deepnode_ledger::default_params(sc.tempo);
    g.config.weights_rate_limit = (sc.tempo / 2).max(1);
    // Cabal and copier rows hold one peer by design; a controller asking for more would
    // refuse them (it never asks for more than a row can hold, n - 1, but 1 is the story).
    g.config.controller.cap = 1;
    g.params.min_allowed_weights = 1;
    g.params.emission = sc.emission;
    // Nobody trusts itself, and dust weights buy no trust (SPEC.md §5, steps 2 and 4).
    g.params.mask_self_weights = true;
    g.params.trust_threshold = Fx::from_f64(sc.trust_threshold);
    g.endowments = wallets
        .iter()
        .map(|w| (w.account(), sc.stake.saturating_mul(2)))
        .collect();
    g
}

fn node_args(sc: &Scenario, m: &Member, rpc: &str, wallets: &[Wallet]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "node".into(),
        "run".into(),
        "--rpc".into(),
        rpc.into(),
        "--stake".into(),
        sc.stake.to_string(),
        "--query-ms".into(),
        sc.query_ms.to_string(),
        "--dim".into(),
        sc.dim.to_string(),
        "--seed".into(),
        m.seed.to_string(),
    ];
    let k = if m.role.trains() { sc.k } else { 2 * sc.k };
    a.extend(["--k".into(), k.to_string()]);
    let rest: Vec<String> = match m.role {
        Role::Learner | Role::Offline => vec![
            "--train".into(),
            m.domain.clone().unwrap_or_default(),
            "--domains".into(),
            sc.domains().join(","),
            "--slots".into(),
            sc.nodes().to_string(),
            "--scoring".into(),
            "trainer".into(),
        ],
        Role::Noise => vec![
            "--model".into(),
            "noise".into(),
            "--scoring".into(),
            "none".into(),
        ],
        Role::Lazy => vec![
            "--model".into(),
            "zeros".into(),
            "--scoring".into(),
            "none".into(),
        ],
        Role::Cabal => vec![
            "--model".into(),
            "noise".into(),
            "--scoring".into(),
            "favor".into(),
            "--favor".into(),
            m.group
                .iter()
                .map(|&j| wallets[j].account().to_string())
                .collect::<Vec<_>>()
                .join(","),
        ],
        Role::Copier => vec![
            "--model".into(),
            "noise".into(),
            "--scoring".into(),
            "consensus".into(),
        ],
    };
    a.extend(rest);
    a
}

fn spawn(
    exe: &Path,
    sc: &Scenario,
    out: &Path,
    rpc: &str,
    members: Vec<Member>,
    wallets: &[Wallet],
) -> Result<Vec<Proc>, Failure> {
    let mut procs = Vec::with_capacity(members.len());
    for m in members {
        let wallet = Wallet::from_seed(wallet_seed(sc.seed, m.index));
        let key = out.join("wallets").join(format!("{}.key", m.name));
        wallet.save(&key).map_err(Failure::failed)?;
        let log = out.join("logs").join(format!("{}.log", m.name));
        let metrics = out.join("metrics").join(format!("{}.jsonl", m.name));
        let file = File::create(&log).map_err(Failure::failed)?;
        let err = file.try_clone().map_err(Failure::failed)?;
        let mut args = node_args(sc, &m, rpc, wallets);
        args.extend([
            "--wallet".into(),
            key.display().to_string(),
            "--metrics".into(),
            metrics.display().to_string(),
        ]);
        let child = Command::new(exe)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| Failure::failed(format!("starting {}: {e}", m.name)))?;
        procs.push(Proc {
            member: m,
            wallet,
            child: Some(child),
            metrics,
            log,
            gone: false,
        });
    }
    Ok(procs)
}

/// The last line of a log, for an error message.
fn tail(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "(empty log)".into())
}

async fn snapshot(
    client: &Client,
    mg: &MetagraphView,
    procs: &[Proc],
    epoch: u64,
    t: f64,
) -> Result<EpochRecord, Failure> {
    let mut nodes = Vec::with_capacity(procs.len());
    for p in procs {
        let key = p.wallet.account().to_string();
        let Some(n) = mg.nodes.iter().find(|n| n.key == key) else {
            continue;
        };
        let uid = u32::try_from(n.uid).map_err(Failure::failed)?;
        let weights = client.weights(uid).await?;
        let m = MetricsLine::read_all(&p.metrics).pop().unwrap_or_default();
        nodes.push(NodeRecord {
            name: p.member.name.clone(),
            role: p.member.role,
            uid: n.uid,
            alive: !p.gone,
            stake: n.stake,
            rank: n.rank,
            trust: n.trust,
            consensus: n.consensus,
            incentive: n.incentive,
            dividends: n.dividends,
            emission: n.emission,
            weights,
            served: m.served,
            refused: m.refused,
            answers: m.answers,
            failed: m.failed,
            rows_set: m.rows_set,
            rows_refused: m.rows_refused,
            steps: m.steps,
            loss: m.loss,
        });
    }
    Ok(EpochRecord {
        epoch,
        block: mg.block,
        t,
        nodes,
    })
}

/// What a run leaves for its report.
struct Ran {
    started: Instant,
    live: Live,
    procs: Vec<Proc>,
    driven: Driven,
    ledger_stopped: Result<(), String>,
}

async fn devnet(sc: &Scenario, out: &Path) -> Result<Ran, Failure> {
    let started = Instant::now();
    let members = sc.members();
    let wallets: Vec<Wallet> = members
        .iter()
        .map(|m| Wallet::from_seed(wallet_seed(sc.seed, m.index)))
        .collect();
    let chain_dir = out.join("chain");
    let chain = Chain::open(&chain_dir, Some(&genesis(sc, &wallets)))?;
    let ledger = RpcServer::start(
        chain,
        "127.0.0.1:0".parse().map_err(Failure::failed)?,
        Duration::from_millis(sc.block_ms),
    )
    .await?;
    let rpc = format!("http://{}", ledger.addr());
    let client = Client::new(&rpc)?;
    let live = Live::new(members.len(), sc.epochs);
    live.note(&format!(
        "ledger on {rpc}; starting {} nodes ({} learners)",
        members.len(),
        sc.learners()
    ));
    let exe = std::env::current_exe().map_err(Failure::failed)?;
    let mut procs = spawn(&exe, sc, out, &rpc, members, &wallets)?;
    let result = drive(sc, &client, &mut procs, &live, started).await;
    for p in &mut procs {
        p.signal(Signal::Term);
    }
    for p in &mut procs {
        p.reap(Duration::from_secs(15));
    }
    drop(client);
    let ledger_stopped = ledger.stop().await.map_err(|e| e.to_string());
    match result {
        Ok(driven) => Ok(Ran {
            started,
            live,
            procs,
            driven,
            ledger_stopped,
        }),
        Err(e) => {
            live.finish(None);
            Err(e)
        }
    }
}

/// Verifies the chain, writes the report and says how the run went.
fn finish(sc: &Scenario, text: &str, out: &Path, ran: Ran) -> Result<(), Failure> {
    let Ran {
        started,
        live,
        procs,
        driven: (epochs, left, crashes, interrupted),
        ledger_stopped,
    } = ran;
    live.finish(epochs.last());
    let verified =
        match ledger_stopped.and_then(|()| verify(&out.join("chain")).map_err(|e| e.to_string())) {
            Ok(r) => Some(r.blocks),
            Err(e) => {
                eprintln!("devnet: the chain does not verify: {e}");
                None
            }
        };
    let mut traces = Vec::new();
    let mut evaluations = Vec::new();
    for p in procs.iter().filter(|p| p.member.role.trains()) {
        let trace = MetricsLine::read_all(&p.metrics);
        if let Some(last) = trace.iter().rev().find(|x| !x.valid.is_empty()) {
            evaluations.push(Evaluation {
                name: p.member.name.clone(),
                seed: p.member.seed,
                steps: last.steps,
                valid: last.valid.clone(),
            });
        }
        traces.push((p.member.name.clone(), trace));
    }
    let summary = summarize(
        &epochs,
        sc.trust_threshold,
        sc.warmup_steps,
        sc.seed,
        verified,
        &evaluations,
        &left,
    );
    let md = report::write(out, &epochs, &summary, &traces, text).map_err(Failure::failed)?;
    eprintln!(
        "devnet: {} epochs in {:.0} s; report: {}",
        epochs.len(),
        started.elapsed().as_secs_f64(),
        md.display()
    );
    println!("{}", md.display());
    if interrupted {
        return Err(Failure::failed(
            "interrupted; the report covers the epochs run",
        ));
    }
    if !crashes.is_empty() {
        return Err(Failure::failed(format!(
            "node processes ended on their own: {}",
            crashes.join("; ")
        )));
    }
    if verified.is_none() {
        return Err(Failure::failed("the devnet's chain does not verify"));
    }
    Ok(())
}

/// The epochs, the departures `(name, epoch, signal)`, unexpected exits, and whether Ctrl-C
/// cut the run short.
type Driven = (
    Vec<EpochRecord>,
    Vec<(String, u64, String)>,
    Vec<String>,
    bool,
);

async fn drive(
    sc: &Scenario,
    client: &Client,
    procs: &mut [Proc],
    live: &Live,
    started: Instant,
) -> Result<Driven, Failure> {
    let poll = Duration::from_millis((sc.block_ms / 4).clamp(20, 250));
    let keys: Vec<String> = procs
        .iter()
        .map(|p| p.wallet.account().to_string())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut crashes = Vec::new();
    // Until every node is registered and serves its endpoint.
    let e0 = loop {
        let mg = client.metagraph().await?;
        let ready = keys
            .iter()
            .filter(|k| {
                mg.nodes
                    .iter()
                    .any(|n| &n.key == *k && !n.endpoint.is_empty())
            })
            .count();
        live.note(&format!(
            "{ready}/{} nodes registered and serving",
            keys.len()
        ));
        if ready == keys.len() {
            break mg.epochs;
        }
        for p in procs.iter_mut() {
            if let Some(status) = p.exited() {
                return Err(Failure::failed(format!(
                    "{} exited during start-up ({status}): {}",
                    p.member.name,
                    tail(&p.log)
                )));
            }
        }
        if Instant::now() > deadline {
            return Err(Failure::failed(format!(
                "only {ready} of {} nodes were serving after 240 s; see the logs",
                keys.len()
            )));
        }
        tokio::time::sleep(poll).await;
    };
    live.note("all nodes serving");
    let mut epochs: Vec<EpochRecord> = Vec::new();
    let mut left = Vec::new();
    let mut seen = e0;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok((epochs, left, crashes, true)),
            _ = tokio::time::sleep(poll) => {}
        }
        for p in procs.iter_mut().filter(|p| !p.gone) {
            if let Some(status) = p.exited() {
                crashes.push(format!("{} ({status}): {}", p.member.name, tail(&p.log)));
                p.gone = true;
                p.child = None;
            }
        }
        let mg = client.metagraph().await?;
        if mg.epochs <= seen {
            continue;
        }
        seen = mg.epochs;
        let e = seen - e0;
        let rec = snapshot(client, &mg, procs, e, started.elapsed().as_secs_f64()).await?;
        live.epoch(&rec);
        epochs.push(rec);
        if e >= sc.epochs {
            return Ok((epochs, left, crashes, false));
        }
        for p in procs.iter_mut().filter(|p| !p.gone) {
            if let Some((at, signal)) = p.member.leave
                && at == e
            {
                p.signal(signal);
                p.gone = true;
                let how = match signal {
                    Signal::Kill => "kill",
                    Signal::Term => "term",
                };
                left.push((p.member.name.clone(), e, how.to_owned()));
                if signal == Signal::Kill {
                    p.reap(Duration::from_secs(5));
                }
            }
        }
        // Reap cleanly stopped leavers without blocking.
        for p in procs.iter_mut().filter(|p| p.gone) {
            if p.exited().is_some() {
                p.child = None;
            }
        }
    }
}
