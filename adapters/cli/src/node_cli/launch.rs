//! Running a node: its loop on a runtime until Ctrl-C or SIGTERM, the live status line and the
//! metrics file.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use deepnode_ledger_client::Wallet;
use deepnode_node::access::LedgerRpc;
use deepnode_node::life::{Status, run};
use deepnode_node::{Constant, EchoBias, Noise, RandomProjection};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use super::{LedgerSpec, ModelArg, NodeSpec, Served, ServedSpec, torch};
use crate::exit::Failure;
use crate::node_chain;

/// Runs the node of `spec` until Ctrl-C or SIGTERM, with its status line and metrics file.
pub fn launch(spec: NodeSpec) -> Result<(), Failure> {
    let NodeSpec {
        wallet,
        served,
        dim,
        metrics,
        ledger,
        cfg,
    } = spec;
    let wallet = Wallet::load(&wallet).map_err(Failure::input)?;
    let seed = cfg.seed;
    let (model, trainer): Served = match &served {
        ServedSpec::Learner {
            domain,
            domains,
            slots,
        } => torch::learner(domain, domains, *slots, cfg.k, dim, seed)?,
        ServedSpec::Model(m) => (
            match m {
                ModelArg::Projection => Arc::new(RandomProjection::new(seed, dim)),
                ModelArg::Echo => Arc::new(EchoBias::new(dim, 0.1)),
                ModelArg::Noise => Arc::new(Noise::new(seed, dim, 1.0)),
                ModelArg::Zeros => Arc::new(Constant::new(dim, 0.0)),
                ModelArg::Torch => torch::served(seed, dim)?,
            },
            None,
        ),
    };
    let mut metrics = match &metrics {
        Some(path) => Some(Metrics::open(path)?),
        None => None,
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
            match ledger {
                LedgerSpec::Chain(url) => {
                    node_chain::run(&url, &wallet, model, trainer, cfg, status_tx, stop).await
                }
                LedgerSpec::Rpc(rpc) => {
                    let access = LedgerRpc::new(&rpc, Wallet::from_seed(wallet.key().to_bytes()))?;
                    run(&access, &wallet, model, trainer, cfg, status_tx, stop).await
                }
            }
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

/// `--metrics`: the status as JSON lines (its serde form), at most one a second.
struct Metrics {
    file: std::fs::File,
    last: Option<std::time::Instant>,
}

impl Metrics {
    fn open(path: &std::path::Path) -> Result<Metrics, Failure> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
        Ok(Metrics { file, last: None })
    }

    fn record(&mut self, s: &Status, force: bool) -> Result<(), Failure> {
        use std::io::Write;
        let now = std::time::Instant::now();
        if !force && self.last.is_some_and(|t| now - t < Duration::from_secs(1)) {
            return Ok(());
        }
        self.last = Some(now);
        let json = serde_json::to_string(s).map_err(Failure::failed)?;
        writeln!(self.file, "{json}").map_err(Failure::failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
