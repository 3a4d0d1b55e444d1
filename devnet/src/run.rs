//! A devnet run: the ledger in this process, one OS process per node (started through the
//! caller's [`Launch`] with the node's [`NodeConfig`] file), the epochs recorded from the
//! metagraph and the nodes' metrics files, then the report. With `netns`, the ledger (this
//! process's runtime), each node and each node's link (a process of relays, [`LinkConfig`])
//! run on hosts of their own ([`Hosts`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deepnode_ledger::view::MetagraphView;
use deepnode_ledger::{Chain, Client, RpcServer, Wallet, verify};

use crate::error::DevnetError;
use crate::genesis::{genesis, wallet_seed};
use crate::hosts::Hosts;
use crate::link_host::{LinkConfig, LinkLine};
use crate::live::Live;
use crate::metrics::read_metrics;
use crate::network::{self, NetEpoch, NetNode, Restart, dialled_again, rss_kib};
use crate::plan;
use crate::record::{EpochRecord, Evaluation, NodeRecord, summarize};
use crate::report;
use crate::roles::{NodeConfig, node_config};
use crate::scenario::{DEFAULT, Member, Scenario, Signal};
use deepnode_link::Tally;
use std::sync::atomic::Ordering;

/// A process the devnet starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Process {
    /// A node, from its [`NodeConfig`] JSON file.
    Node,
    /// A node's link on separate hosts, from its [`LinkConfig`] JSON file.
    Link,
}

/// How the devnet's processes are started: the command that runs the process of the config
/// file it is given (the devnet adds its standard streams, and the namespace on separate
/// hosts).
pub type Launch<'a> = &'a dyn Fn(Process, &Path) -> Command;

/// What the node processes of [`Launch`] can run: a scenario that needs more is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Build {
    /// Learners (libtorch).
    pub torch: bool,
    /// The adversarial roles (noise, lazy, cabal, copier).
    pub adversarial: bool,
}

/// A devnet to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The scenario file; `None`: [`DEFAULT`].
    pub scenario: Option<PathBuf>,
    /// Resizes the scenario's learner group to this many nodes in all.
    pub nodes: Option<usize>,
    /// Epochs to run (overrides the scenario's).
    pub epochs: Option<u64>,
    /// Separate hosts (sets the scenario's `netns`).
    pub netns: bool,
    /// Every link perfect (the scenario's profiles dropped): the baseline of a run on
    /// impaired links.
    pub perfect_links: bool,
    /// The report directory (created; a previous devnet report there is replaced).
    pub out: PathBuf,
}

/// The scenario of `opts`, its text and its name in messages, with the overrides applied and
/// checked against what `build` can run.
fn scenario(opts: &Options, build: Build) -> Result<(Scenario, String), DevnetError> {
    let text = match &opts.scenario {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| DevnetError::Input(format!("{}: {e}", p.display())))?,
        None => DEFAULT.to_owned(),
    };
    let name = opts
        .scenario
        .as_ref()
        .map_or("the default scenario".into(), |p| p.display().to_string());
    let bad = |e: String| DevnetError::Input(format!("{name}: {e}"));
    let mut sc = Scenario::parse(&text).map_err(bad)?;
    if let Some(e) = opts.epochs {
        sc.epochs = e;
    }
    if opts.netns {
        sc.netns = true;
    }
    if opts.perfect_links {
        for g in &mut sc.groups {
            g.link = None;
        }
    }
    if let Some(n) = opts.nodes {
        sc.resize(n).map_err(bad)?;
    }
    sc.check().map_err(bad)?;
    if sc.learners() > 0 && !build.torch {
        return Err(DevnetError::input(
            "learners need libtorch, and this deepnode was built without the `torch` feature: \
             run ./scripts/devnet.sh (or cargo run --release -p deepnode-cli --features \
             torch,adversarial -- devnet)",
        ));
    }
    if let Some(m) = sc.members().iter().find(|m| m.role.adversarial())
        && !build.adversarial
    {
        return Err(DevnetError::Input(format!(
            "{name}: the {} role needs a deepnode built with the `adversarial` feature: run \
             ./scripts/devnet.sh (or cargo run --release -p deepnode-cli --features \
             torch,adversarial -- devnet)",
            m.role.name()
        )));
    }
    Ok((sc, text))
}

/// Runs a devnet: its ledger, a node process per member started by `launch`, the epochs of
/// the scenario (Ctrl-C stops early), then the report in `opts.out`. Returns `report.md`'s
/// path; a run with nodes that ended on their own, interrupted, or whose chain does not
/// verify is an error after its report is written.
pub fn run(opts: &Options, build: Build, launch: Launch<'_>) -> Result<PathBuf, DevnetError> {
    let (sc, text) = scenario(opts, build)?;
    prepare(&opts.out)?;
    // Declared first, dropped last: the namespaces go once every process in them has.
    let hosts = if sc.netns {
        Some(Hosts::create(sc.nodes())?)
    } else {
        None
    };
    // The runtime's threads start in the ledger's namespace and stay there.
    let entered = hosts.as_ref().map(Hosts::enter_ledger).transpose()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(DevnetError::failed)?;
    let ran = rt.block_on(devnet(&sc, &opts.out, launch, hosts.as_ref()));
    // Every task of the ledger's server ends with the runtime, and with them its database
    // handle: only then can `verify` open the chain.
    drop(rt);
    drop(entered);
    let finished = finish(&sc, &text, &opts.out, ran?);
    drop(hosts);
    finished
}

/// Creates `out` with its subfolders; a previous report (it has `summary.json` or
/// `scenario.toml`) is removed first, anything else refused.
fn prepare(out: &Path) -> Result<(), DevnetError> {
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .map_err(|e| DevnetError::Input(format!("{}: {e}", out.display())))?
            .next()
            .is_none();
        let ours = out.join("scenario.toml").exists() || out.join("summary.json").exists();
        if !empty && !ours {
            return Err(DevnetError::Input(format!(
                "{} exists and is not a devnet report; choose another --out",
                out.display()
            )));
        }
        if ours {
            std::fs::remove_dir_all(out).map_err(DevnetError::failed)?;
        }
    }
    for sub in ["wallets", "logs", "metrics", "nodes"] {
        std::fs::create_dir_all(out.join(sub))
            .map_err(|e| DevnetError::Failed(format!("{}: {e}", out.display())))?;
    }
    Ok(())
}

/// A node process and what the devnet knows of it.
struct Proc {
    member: Member,
    wallet: Wallet,
    child: Option<Child>,
    /// The command that starts it (again, after a crash).
    command: Command,
    metrics: PathBuf,
    log: PathBuf,
    /// Its link's relays (separate hosts).
    link: Option<Child>,
    /// Its link's tally file (separate hosts).
    tally: Option<PathBuf>,
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
                    .stderr(Stdio::null())
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
        for c in [&mut self.child, &mut self.link].into_iter().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `command` with its output appended to `log`.
fn start(command: &mut Command, log: &Path, name: &str) -> Result<Child, DevnetError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| DevnetError::Failed(format!("{}: {e}", log.display())))?;
    let err = file.try_clone().map_err(DevnetError::failed)?;
    command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| DevnetError::Failed(format!("starting {name}: {e}")))
}

/// Writes `value` as JSON to `path`.
fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), DevnetError> {
    let json = serde_json::to_string_pretty(value).map_err(DevnetError::failed)?;
    std::fs::write(path, json).map_err(|e| DevnetError::Failed(format!("{}: {e}", path.display())))
}

/// Starts a node process per member: writes its key file and its [`NodeConfig`] (the role
/// table's) into `out`, then runs `launch` on the config with its output to its log. On
/// separate hosts each node runs in its namespace, behind its link's relays (started first,
/// in the link's namespace, from a [`LinkConfig`]), and reaches the ledger through them.
fn spawn(
    launch: Launch<'_>,
    sc: &Scenario,
    out: &Path,
    rpc: &str,
    members: Vec<Member>,
    wallets: &[Wallet],
    hosts: Option<&Hosts>,
) -> Result<Vec<Proc>, DevnetError> {
    let accounts: Vec<[u8; 32]> = wallets.iter().map(|w| w.account().0).collect();
    let mut procs = Vec::with_capacity(members.len());
    for m in members {
        let wallet = Wallet::from_seed(wallet_seed(sc.seed, m.index));
        let key = out.join("wallets").join(format!("{}.key", m.name));
        wallet.save(&key).map_err(DevnetError::failed)?;
        let log = out.join("logs").join(format!("{}.log", m.name));
        File::create(&log).map_err(DevnetError::failed)?;
        let metrics = out.join("metrics").join(format!("{}.jsonl", m.name));
        let (rpc, listen) = match hosts {
            Some(_) => (
                format!("http://127.0.0.1:{}", plan::RPC_PORT),
                plan::endpoint(m.index),
            ),
            None => (
                rpc.to_owned(),
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ),
        };
        let config: NodeConfig = node_config(sc, &m, &rpc, listen, key, metrics.clone(), &accounts);
        let path = out.join("nodes").join(format!("{}.json", m.name));
        write_json(&path, &config)?;
        let mut command = launch(Process::Node, &path);
        let mut link = None;
        let mut tally = None;
        if let Some(h) = hosts {
            let lc = LinkConfig {
                index: m.index,
                node_netns: h.node(m.index),
                profile: m.link,
                seed: m.seed,
                tally: out.join("links").join(format!("{}.jsonl", m.name)),
            };
            let lpath = out.join("links").join(format!("{}.json", m.name));
            write_json(&lpath, &lc)?;
            let llog = out.join("logs").join(format!("{}.link.log", m.name));
            let mut lcmd = Hosts::exec(&h.link(m.index), &launch(Process::Link, &lpath));
            let mut child = start(&mut lcmd, &llog, &format!("{}'s link", m.name))?;
            // Its first tally line says its relays listen.
            let t = Instant::now();
            while !lc.tally.exists() {
                if t.elapsed() > Duration::from_secs(20) || matches!(child.try_wait(), Ok(Some(_)))
                {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(DevnetError::Failed(format!(
                        "{}'s link did not start: {}",
                        m.name,
                        tail(&llog)
                    )));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            link = Some(child);
            tally = Some(lc.tally.clone());
            command = Hosts::exec(&h.node(m.index), &command);
        }
        let child = start(&mut command, &log, &m.name)?;
        procs.push(Proc {
            member: m,
            wallet,
            child: Some(child),
            command,
            metrics,
            log,
            link,
            tally,
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
) -> Result<EpochRecord, DevnetError> {
    let mut nodes = Vec::with_capacity(procs.len());
    for p in procs {
        let key = p.wallet.account().to_string();
        let Some(n) = mg.nodes.iter().find(|n| n.key == key) else {
            continue;
        };
        let uid = u32::try_from(n.uid).map_err(DevnetError::failed)?;
        let weights = client.weights(uid).await?;
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
            metrics: read_metrics(&p.metrics).pop().unwrap_or_default(),
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

async fn devnet(
    sc: &Scenario,
    out: &Path,
    launch: Launch<'_>,
    hosts: Option<&Hosts>,
) -> Result<Ran, DevnetError> {
    let started = Instant::now();
    // From here on Ctrl-C stops the run (and its processes, and its namespaces) cleanly.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(DevnetError::failed)?;
    let members = sc.members();
    let wallets: Vec<Wallet> = members
        .iter()
        .map(|m| Wallet::from_seed(wallet_seed(sc.seed, m.index)))
        .collect();
    let chain_dir = out.join("chain");
    let chain = Chain::open(&chain_dir, Some(&genesis(sc, &wallets)?))?;
    let port = if hosts.is_some() { plan::RPC_PORT } else { 0 };
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let ledger = RpcServer::start(chain, listen, Duration::from_millis(sc.block_ms)).await?;
    // On separate hosts the ledger's host takes the links' connections on its bridge address
    // and hands them to the ledger (which serves loopback clients only), each from a
    // loopback address of its node's own: the ledger's per-address limits see each node.
    let _front = match hosts {
        Some(_) => Some(
            deepnode_link::Relay::bind(
                std::net::SocketAddr::from((plan::LEDGER, plan::RPC_PORT)),
                deepnode_link::Profile::default(),
                sc.seed,
                move |_, client| {
                    let std::net::IpAddr::V4(ip) = client.ip() else {
                        return None;
                    };
                    plan::node_of(plan::BRIDGE_NET, ip)?;
                    let [_, _, a, b] = ip.octets();
                    Some(deepnode_link::Upstream {
                        addr: listen,
                        from: Some(std::net::Ipv4Addr::new(127, 1, a, b).into()),
                    })
                },
            )
            .await
            .map_err(DevnetError::failed)?,
        ),
        None => None,
    };
    let rpc = format!("http://{}", ledger.addr());
    let client = Client::new(&rpc)?;
    let live = Live::new(members.len(), sc.epochs);
    live.note(&format!(
        "ledger on {rpc}; starting {} nodes ({} learners)",
        members.len(),
        sc.learners()
    ));
    if hosts.is_some() {
        std::fs::create_dir_all(out.join("links")).map_err(DevnetError::failed)?;
    }
    let result = match spawn(launch, sc, out, &rpc, members, &wallets, hosts) {
        Ok(mut procs) => {
            let front = _front.as_ref().map(deepnode_link::Relay::tally);
            let r = drive(
                sc,
                &client,
                &mut procs,
                &live,
                started,
                &mut interrupt,
                front,
            )
            .await;
            for p in &mut procs {
                p.signal(Signal::Term);
            }
            for p in &mut procs {
                p.reap(Duration::from_secs(15));
                if let Some(mut l) = p.link.take() {
                    let _ = l.kill();
                    let _ = l.wait();
                }
            }
            r.map(|d| (procs, d))
        }
        Err(e) => Err(e),
    };
    drop(client);
    let ledger_stopped = ledger.stop().await.map_err(|e| e.to_string());
    match result {
        Ok((procs, driven)) => Ok(Ran {
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

/// Verifies the chain, writes the report (its path on stdout) and says how the run went.
fn finish(sc: &Scenario, text: &str, out: &Path, ran: Ran) -> Result<PathBuf, DevnetError> {
    let Ran {
        started,
        live,
        procs,
        driven:
            Driven {
                epochs,
                left,
                crashes,
                interrupted,
                restarts,
                net,
            },
        ledger_stopped,
    } = ran;
    if sc.netns {
        let restarts: Vec<Restart> = restarts
            .iter()
            .map(|&(i, epoch, t_ms, peers)| {
                let name = format!("node-{i}");
                let tally = LinkLine::read_all(&out.join("links").join(format!("{name}.jsonl")));
                Restart {
                    dialled_again: dialled_again(&tally, t_ms, peers),
                    name,
                    epoch,
                    t_ms,
                    peers,
                }
            })
            .collect();
        network::write(out, &net, &restarts).map_err(DevnetError::failed)?;
    }
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
        let trace = read_metrics(&p.metrics);
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
    let summary = summarize(sc, &epochs, verified, &evaluations, &left);
    let md = report::write(out, &epochs, &summary, &traces, text).map_err(DevnetError::failed)?;
    eprintln!(
        "devnet: {} epochs in {:.0} s; report: {}",
        epochs.len(),
        started.elapsed().as_secs_f64(),
        md.display()
    );
    println!("{}", md.display());
    if interrupted {
        return Err(DevnetError::failed(
            "interrupted; the report covers the epochs run",
        ));
    }
    if !crashes.is_empty() {
        return Err(DevnetError::failed(format!(
            "node processes ended on their own: {}",
            crashes.join("; ")
        )));
    }
    if verified.is_none() {
        return Err(DevnetError::failed("the devnet's chain does not verify"));
    }
    Ok(md)
}

/// What driving a run recorded.
#[derive(Default)]
struct Driven {
    epochs: Vec<EpochRecord>,
    /// The departures `(name, epoch, signal)`.
    left: Vec<(String, u64, String)>,
    /// Unexpected exits.
    crashes: Vec<String>,
    /// Whether Ctrl-C cut the run short.
    interrupted: bool,
    /// The restarts `(member index, epoch, ms since the Unix epoch, peers running)`.
    restarts: Vec<(usize, u64, u64, usize)>,
    /// The network of each epoch.
    net: Vec<NetEpoch>,
}

/// The network at the end of an epoch: each node's memory, link tally and status.
fn net_epoch(procs: &[Proc], epoch: u64, t: f64, front: Option<&Tally>) -> NetEpoch {
    NetEpoch {
        epoch,
        t,
        rpc_connections: front.map_or(0, |f| f.accepted.load(Ordering::Relaxed)),
        rpc_bytes: front.map_or(0, |f| f.bytes.load(Ordering::Relaxed)),
        nodes: procs
            .iter()
            .map(|p| NetNode {
                name: p.member.name.clone(),
                alive: !p.gone,
                rss_kib: p.child.as_ref().and_then(|c| rss_kib(c.id())),
                link: p
                    .tally
                    .as_deref()
                    .and_then(|t| LinkLine::read_all(t).pop())
                    .unwrap_or_default(),
                metrics: read_metrics(&p.metrics).pop().unwrap_or_default(),
            })
            .collect(),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn drive(
    sc: &Scenario,
    client: &Client,
    procs: &mut [Proc],
    live: &Live,
    started: Instant,
    interrupt: &mut tokio::signal::unix::Signal,
    front: Option<&Tally>,
) -> Result<Driven, DevnetError> {
    let poll = Duration::from_millis((sc.block_ms / 4).clamp(20, 250));
    let keys: Vec<String> = procs
        .iter()
        .map(|p| p.wallet.account().to_string())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(240);
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
                return Err(DevnetError::failed(format!(
                    "{} exited during start-up ({status}): {}",
                    p.member.name,
                    tail(&p.log)
                )));
            }
        }
        if Instant::now() > deadline {
            return Err(DevnetError::failed(format!(
                "only {ready} of {} nodes were serving after 240 s; see the logs",
                keys.len()
            )));
        }
        tokio::select! {
            _ = interrupt.recv() => {
                return Err(DevnetError::failed("interrupted during start-up"));
            }
            _ = tokio::time::sleep(poll) => {}
        }
    };
    live.note("all nodes serving");
    let mut d = Driven::default();
    let mut seen = e0;
    loop {
        tokio::select! {
            _ = interrupt.recv() => {
                d.interrupted = true;
                return Ok(d);
            }
            _ = tokio::time::sleep(poll) => {}
        }
        for p in procs.iter_mut().filter(|p| !p.gone) {
            if let Some(status) = p.exited() {
                d.crashes
                    .push(format!("{} ({status}): {}", p.member.name, tail(&p.log)));
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
        let t = started.elapsed().as_secs_f64();
        let rec = snapshot(client, &mg, procs, e, t).await?;
        live.epoch(&rec);
        d.epochs.push(rec);
        d.net.push(net_epoch(procs, e, t, front));
        if e >= sc.epochs {
            return Ok(d);
        }
        let running = procs.iter().filter(|p| !p.gone).count();
        for p in procs
            .iter_mut()
            .filter(|p| !p.gone && p.member.crash == Some(e))
        {
            p.signal(Signal::Kill);
            p.reap(Duration::from_secs(5));
            p.child = Some(start(&mut p.command, &p.log, &p.member.name)?);
            d.restarts.push((p.member.index, e, now_ms(), running - 1));
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
                d.left.push((p.member.name.clone(), e, how.to_owned()));
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
