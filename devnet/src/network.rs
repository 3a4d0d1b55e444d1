//! What a devnet on separate hosts measures of its network, per epoch: each node's memory,
//! its link's connections, resets and bytes, its queries and rows; the ledger's RPC traffic;
//! and how long a restarted node takes to be dialled again. Written as `network.json` and
//! `network.md` beside the report.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::link_host::LinkLine;
use deepnode_node::life::Status;

/// One node at the end of an epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetNode {
    /// `node-<index>`.
    pub name: String,
    /// Whether it runs (not left).
    pub alive: bool,
    /// Its process's resident memory, KiB (`VmRSS`).
    pub rss_kib: Option<u64>,
    /// Its link's last tally.
    pub link: LinkLine,
    /// Its last status line.
    pub metrics: Status,
}

/// The network at the end of an epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetEpoch {
    /// Epoch, from 1.
    pub epoch: u64,
    /// Seconds since the run started.
    pub t: f64,
    /// Connections the ledger's host accepted so far.
    pub rpc_connections: u64,
    /// Bytes of RPC carried so far, both directions.
    pub rpc_bytes: u64,
    /// Every node.
    pub nodes: Vec<NetNode>,
}

/// A node killed and started again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Restart {
    /// `node-<index>`.
    pub name: String,
    /// Epoch of the restart.
    pub epoch: u64,
    /// When, in milliseconds since the Unix epoch.
    pub t_ms: u64,
    /// Peers running then.
    pub peers: usize,
    /// Seconds until each share of them (50 %, 90 %, 100 %) had dialled it again; `None`: not
    /// within the run.
    pub dialled_again: [Option<f64>; 3],
}

/// The resident memory of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// When the peers of a node restarted at `t_ms` dialled it again, from its link's tally.
pub fn dialled_again(tally: &[LinkLine], t_ms: u64, peers: usize) -> [Option<f64>; 3] {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = [None; 3];
    for line in tally.iter().filter(|l| l.t_ms >= t_ms) {
        seen.extend(line.dialled_by.iter().copied());
        let secs = (line.t_ms - t_ms) as f64 / 1e3;
        for (slot, share) in out.iter_mut().zip([0.5, 0.9, 1.0]) {
            if slot.is_none() && seen.len() as f64 >= share * peers as f64 {
                *slot = Some(secs);
            }
        }
    }
    out
}

/// Nearest-rank percentile `q` in `[0, 1]` of `xs` (sorted here); `None` when empty.
fn percentile(xs: &mut [f64], q: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    Some(xs[rank - 1])
}

/// One epoch's figures over the running nodes, against the epoch before.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochFigures {
    /// Epoch, from 1.
    pub epoch: u64,
    /// Queries answered / asked (answered, failed, skipped for a backoff) this epoch.
    pub answered: Option<f64>,
    /// Queries asked this epoch.
    pub queries: u64,
    /// Connections held per node (the link's, both ways): median and largest.
    pub connections: (f64, f64),
    /// Resident memory per node, MiB: median and largest.
    pub rss_mib: (f64, f64),
    /// Resets by the links this epoch.
    pub resets: u64,
    /// RPC bytes a second carried to and from the ledger this epoch.
    pub rpc_bytes_per_s: f64,
    /// Rows committed and refused this epoch.
    pub rows: (u64, u64),
}

/// The figures of each epoch.
pub fn figures(epochs: &[NetEpoch]) -> Vec<EpochFigures> {
    let mut out = Vec::with_capacity(epochs.len());
    let none = NetEpoch::default();
    for (i, e) in epochs.iter().enumerate() {
        let prev = if i == 0 { &none } else { &epochs[i - 1] };
        let before = |name: &str| prev.nodes.iter().find(|n| n.name == name);
        let mut f = EpochFigures {
            epoch: e.epoch,
            ..EpochFigures::default()
        };
        let (mut answered, mut asked) = (0u64, 0u64);
        let mut conns = Vec::new();
        let mut rss = Vec::new();
        for n in e.nodes.iter().filter(|n| n.alive) {
            let b = before(&n.name);
            let m0 = b.map(|b| b.metrics.clone()).unwrap_or_default();
            let m = &n.metrics;
            // A restarted node's counters start again from zero.
            let d = |now: u64, then: u64| if now >= then { now - then } else { now };
            let a = d(m.answers, m0.answers);
            answered += a;
            asked += a + d(m.failed, m0.failed) + d(m.skipped, m0.skipped);
            f.rows.0 += d(m.rows_set, m0.rows_set);
            f.rows.1 += d(m.rows_refused, m0.rows_refused);
            f.resets += d(n.link.resets, b.map_or(0, |b| b.link.resets));
            conns.push((n.link.out + n.link.inbound) as f64);
            if let Some(r) = n.rss_kib {
                rss.push(r as f64 / 1024.0);
            }
        }
        f.queries = asked;
        f.answered = (asked > 0).then(|| answered as f64 / asked as f64);
        let mid_max = |xs: &mut Vec<f64>| {
            (
                percentile(xs, 0.5).unwrap_or(0.0),
                percentile(xs, 1.0).unwrap_or(0.0),
            )
        };
        f.connections = mid_max(&mut conns);
        f.rss_mib = mid_max(&mut rss);
        let dt = e.t - if i == 0 { 0.0 } else { prev.t };
        if dt > 0.0 {
            f.rpc_bytes_per_s = e.rpc_bytes.saturating_sub(prev.rpc_bytes) as f64 / dt;
        }
        out.push(f);
    }
    out
}

/// Writes `network.json` (the records) and `network.md` (the figures) in `out`.
pub fn write(out: &Path, epochs: &[NetEpoch], restarts: &[Restart]) -> std::io::Result<()> {
    let json = serde_json::json!({ "epochs": epochs, "restarts": restarts });
    std::fs::write(out.join("network.json"), serde_json::to_string(&json)?)?;
    let figs = figures(epochs);
    let mut md = String::from(
        "# Network\n\nPer epoch, over the running nodes: the share of queries answered, \
         connections held per node (median / largest), resident memory per node in MiB \
         (median / largest), resets by the links, the ledger's RPC traffic, and rows \
         committed / refused.\n\n\
         | epoch | answered | queries | connections | RSS MiB | resets | RPC kB/s | rows |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for f in &figs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} / {:.0} | {:.1} / {:.1} | {} | {:.1} | {} / {} |",
            f.epoch,
            f.answered
                .map_or("-".into(), |a| format!("{:.2} %", 100.0 * a)),
            f.queries,
            f.connections.0,
            f.connections.1,
            f.rss_mib.0,
            f.rss_mib.1,
            f.resets,
            f.rpc_bytes_per_s / 1e3,
            f.rows.0,
            f.rows.1
        );
    }
    if !restarts.is_empty() {
        md.push_str(
            "\n## Restarts\n\nSeconds until 50 %, 90 % and all of the running peers dialled a \
             restarted node again.\n\n| node | epoch | peers | 50 % | 90 % | all |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        for r in restarts {
            let s = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.1}"));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                r.name,
                r.epoch,
                r.peers,
                s(r.dialled_again[0]),
                s(r.dialled_again[1]),
                s(r.dialled_again[2])
            );
        }
    }
    std::fs::write(out.join("network.md"), md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, answers: u64, failed: u64, conns: u64, rss: u64) -> NetNode {
        NetNode {
            name: name.into(),
            alive: true,
            rss_kib: Some(rss),
            link: LinkLine {
                out: conns,
                inbound: conns,
                ..LinkLine::default()
            },
            metrics: Status {
                answers,
                failed,
                ..Status::default()
            },
        }
    }

    #[test]
    fn figures_are_per_epoch_deltas_over_running_nodes() {
        let e1 = NetEpoch {
            epoch: 1,
            t: 10.0,
            rpc_bytes: 1000,
            nodes: vec![node("a", 90, 10, 2, 10240), node("b", 0, 0, 3, 20480)],
            ..NetEpoch::default()
        };
        let mut e2 = e1.clone();
        e2.epoch = 2;
        e2.t = 20.0;
        e2.rpc_bytes = 3000;
        // a answers 100 more and fails none; b restarted: its counters start again.
        e2.nodes[0].metrics.answers = 190;
        e2.nodes[1].metrics.answers = 0;
        e2.nodes[1].metrics.failed = 0;
        let f = figures(&[e1, e2]);
        assert_eq!(f[0].answered, Some(0.9));
        assert_eq!(f[1].answered, Some(1.0));
        assert_eq!(f[1].queries, 100);
        assert_eq!(f[0].connections, (4.0, 6.0));
        assert_eq!(f[0].rss_mib, (10.0, 20.0));
        assert_eq!(f[1].rpc_bytes_per_s, 200.0);
    }

    #[test]
    fn dialled_again_counts_distinct_peers_after_the_restart() {
        let line = |t_ms, by: &[usize]| LinkLine {
            t_ms,
            dialled_by: by.to_vec(),
            ..LinkLine::default()
        };
        let tally = [
            line(500, &[1, 2, 3]),
            line(1_000, &[1]),
            line(2_000, &[2, 2]),
            line(4_000, &[3, 4, 5, 6, 7, 8, 9, 10]),
        ];
        // 10 peers: 1 and 2 by 2 s (20 %), all by 4 s; the line before the restart is not
        // counted.
        assert_eq!(
            dialled_again(&tally, 1_000, 10),
            [Some(3.0), Some(3.0), Some(3.0)]
        );
        assert_eq!(dialled_again(&tally, 1_000, 11)[2], None);
    }
}
