//! The devnet's live view: on a terminal, a progress bar and the metagraph as a table redrawn
//! in place; elsewhere, one plain line per epoch.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::record::{EpochRecord, NodeRecord, shares};

/// Where the live view goes.
pub struct Live {
    bars: Option<(MultiProgress, ProgressBar, Vec<ProgressBar>)>,
}

fn header() -> String {
    format!(
        "{:<8} {:<8} {:>4} {:>14} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>8} {:>7}",
        "node",
        "role",
        "uid",
        "stake",
        "rank",
        "trust",
        "cons.",
        "incent.",
        "divid.",
        "loss",
        "served",
        "failed"
    )
}

fn row(n: &NodeRecord) -> String {
    format!(
        "{:<8} {:<8} {:>4} {:>14} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>6} {:>8} {:>7}{}",
        n.name,
        n.role.name(),
        n.uid,
        n.stake,
        n.rank,
        n.trust,
        n.consensus,
        n.incentive,
        n.dividends,
        n.metrics.loss.map_or("-".into(), |l| format!("{l:.3}")),
        n.metrics.served,
        n.metrics.failed,
        if n.alive { "" } else { "  (gone)" }
    )
}

impl Live {
    /// A view of `nodes` rows over `epochs` epochs.
    pub fn new(nodes: usize, epochs: u64) -> Live {
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::new();
            let progress = multi.add(ProgressBar::new(epochs));
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} epoch {pos}/{len} {wide_bar} {elapsed} {msg}",
            ) {
                progress.set_style(style);
            }
            progress.enable_steady_tick(Duration::from_millis(200));
            let plain = ProgressStyle::with_template("{msg}").ok();
            let lines: Vec<ProgressBar> = (0..=nodes)
                .map(|_| {
                    let pb = multi.add(ProgressBar::new(1));
                    if let Some(s) = &plain {
                        pb.set_style(s.clone());
                    }
                    pb
                })
                .collect();
            if let Some(h) = lines.first() {
                h.set_message(header());
            }
            (multi, progress, lines)
        });
        Live { bars }
    }

    /// A message before the epochs start (startup steps).
    pub fn note(&self, msg: &str) {
        match &self.bars {
            Some((_, p, _)) => p.set_message(msg.to_owned()),
            None => eprintln!("devnet: {msg}"),
        }
    }

    /// Shows the end of an epoch.
    pub fn epoch(&self, e: &EpochRecord) {
        let stake = shares(&e.nodes, |n| n.stake as f64);
        let line: Vec<String> = stake
            .iter()
            .map(|(r, s)| format!("{r} {:.1}%", 100.0 * s))
            .collect();
        match &self.bars {
            Some((_, p, lines)) => {
                p.set_position(e.epoch);
                p.set_message(format!("stake: {}", line.join(", ")));
                for (pb, n) in lines.iter().skip(1).zip(&e.nodes) {
                    pb.set_message(row(n));
                }
            }
            None => {
                eprintln!(
                    "devnet: epoch {} (block {}, {:.0} s): stake {}",
                    e.epoch,
                    e.block,
                    e.t,
                    line.join(", ")
                );
            }
        }
    }

    /// Clears the live lines; the final table is printed once.
    pub fn finish(&self, last: Option<&EpochRecord>) {
        if let Some((multi, p, lines)) = &self.bars {
            p.finish_and_clear();
            for l in lines {
                l.finish_and_clear();
            }
            let _ = multi.clear();
        }
        if let Some(e) = last {
            eprintln!("{}", header());
            for n in &e.nodes {
                eprintln!("{}", row(n));
            }
        }
    }
}
