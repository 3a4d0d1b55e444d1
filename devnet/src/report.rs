//! The devnet's report directory: the metagraph per epoch (CSV and JSON), the summary, the
//! figures (PNG and SVG, drawn by `deepnode-plot`) and `report.md`, all generated from the
//! run's records.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use deepnode_node::life::Status;
use deepnode_plot::{Figure, Lines, save};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::record::{DomainLoss, EpochRecord, Premise, Summary};

/// The weights matrix of every epoch as small heat maps (rows: setters, columns: receivers,
/// in scenario order; darker is heavier, each row scaled to its largest entry).
struct WeightGrid<'a> {
    epochs: &'a [EpochRecord],
}

impl Figure for WeightGrid<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let s = |e: &dyn std::fmt::Display| e.to_string();
        root.fill(&WHITE).map_err(|e| s(&e))?;
        let count = self.epochs.len().max(1);
        let cols = (count as f64).sqrt().ceil() as usize;
        let rows = count.div_ceil(cols);
        let (title, body) = root.split_vertically(36);
        title
            .titled(
                "weights W[i][j] per epoch (row i: setter, column j: receiver, scenario order)",
                ("sans-serif", 18),
            )
            .map_err(|e| s(&e))?;
        let cells = body.split_evenly((rows, cols));
        for (area, e) in cells.iter().zip(self.epochs) {
            let n = e.nodes.len().max(1);
            let uid_to_col: BTreeMap<usize, usize> = e
                .nodes
                .iter()
                .enumerate()
                .map(|(i, x)| (x.uid, i))
                .collect();
            let (cap, grid) = area.split_vertically(16);
            cap.titled(&format!("epoch {}", e.epoch), ("sans-serif", 12))
                .map_err(|e| s(&e))?;
            let grid = grid.margin(2, 2, 2, 2);
            let (w, h) = grid.dim_in_pixel();
            let cell = (w.min(h) as usize / n).max(1) as i32;
            for (i, node) in e.nodes.iter().enumerate() {
                let top = node.weights.iter().map(|x| x.1).max().unwrap_or(0).max(1);
                for &(j, wv) in &node.weights {
                    let Some(&col) = uid_to_col.get(&(j as usize)) else {
                        continue;
                    };
                    let shade = f64::from(wv) / f64::from(top);
                    let c = RGBColor(
                        (255.0 * (1.0 - 0.85 * shade)) as u8,
                        (255.0 * (1.0 - 0.7 * shade)) as u8,
                        255,
                    );
                    let (x, y) = (col as i32 * cell, i as i32 * cell);
                    grid.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], c.filled()))
                        .map_err(|e| s(&e))?;
                }
            }
            let side = cell * n as i32;
            grid.draw(&Rectangle::new([(0, 0), (side, side)], BLACK.mix(0.5)))
                .map_err(|e| s(&e))?;
        }
        Ok(())
    }
}

/// The premise at a glance: per learner, validation loss trained alone and with its peers
/// (and with the student standing in), on its own domain and on the other domains (mean).
struct GainBars<'a> {
    premise: &'a Premise,
}

impl Figure for GainBars<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let s = |e: &dyn std::fmt::Display| e.to_string();
        root.fill(&WHITE).map_err(|e| s(&e))?;
        // One group of bars per (learner, own | others).
        let mut groups: Vec<(String, [f64; 3])> = Vec::new();
        for g in &self.premise.gains {
            for own in [true, false] {
                let rows: Vec<_> = self
                    .premise
                    .ablation
                    .iter()
                    .filter(|a| a.learner == g.learner && a.own == own)
                    .collect();
                if rows.is_empty() {
                    continue;
                }
                let n = rows.len() as f64;
                let mean = |f: &dyn Fn(&&DomainLoss) -> f64| rows.iter().map(f).sum::<f64>() / n;
                let label = if own {
                    format!("{} {}", g.learner, g.domain)
                } else {
                    format!("{} others", g.learner)
                };
                groups.push((
                    label,
                    [mean(&|a| a.alone), mean(&|a| a.peers), mean(&|a| a.student)],
                ));
            }
        }
        // The differences are tenths of a nat on losses of about 2: the axis starts near the
        // lowest bar, and leaves room above the highest for the legend.
        let top = groups.iter().flat_map(|g| g.1).fold(0.0f64, f64::max);
        let low = groups
            .iter()
            .flat_map(|g| g.1)
            .fold(f64::INFINITY, f64::min);
        let (low, top) = if low.is_finite() && top > low {
            (
                ((low - 0.2) * 10.0).floor() / 10.0,
                top + 0.4 * (top - low + 0.2),
            )
        } else {
            (0.0, 1.0)
        };
        let mut chart = ChartBuilder::on(root)
            .caption(
                "validation loss per learner: alone, with peers, student (nats/byte)",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(70)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..groups.len().max(1) as f64, low..top)
            .map_err(|e| s(&e))?;
        let labels: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups.len().max(1) * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.26 {
                    labels.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("cross-entropy")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| s(&e))?;
        let colors = [
            RGBColor(200, 90, 60),
            RGBColor(40, 110, 190),
            RGBColor(120, 170, 90),
        ];
        for (i, (_, bars)) in groups.iter().enumerate() {
            for (b, (&v, color)) in bars.iter().zip(colors).enumerate() {
                let x0 = i as f64 + 0.1 + 0.27 * b as f64;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0, low), (x0 + 0.25, v)],
                        color.filled(),
                    )))
                    .map_err(|e| s(&e))?;
            }
        }
        for (name, color) in ["alone", "peers", "student"].iter().zip(colors) {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(0.0, low), (0.0, low)],
                    color.filled(),
                )))
                .map_err(|e| s(&e))?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| s(&e))?;
        Ok(())
    }
}

fn by_role(title: &str, y: &str, m: &BTreeMap<String, Vec<f64>>, first_epoch: u64) -> Lines {
    Lines {
        title: title.to_owned(),
        x_label: "epoch".into(),
        y_label: y.to_owned(),
        series: m
            .iter()
            .map(|(role, v)| {
                let pts = v
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| ((first_epoch + i as u64) as f64, x))
                    .collect();
                (role.clone(), pts)
            })
            .collect(),
        reference: None,
        y_range: Some((0.0, 1.0)),
    }
}

/// Writes every file of the report into `dir` and returns `report.md`'s path.
pub fn write(
    dir: &Path,
    epochs: &[EpochRecord],
    summary: &Summary,
    traces: &[(String, Vec<Status>)],
    scenario_text: &str,
) -> Result<PathBuf, String> {
    let put = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    put("scenario.toml", scenario_text.to_owned())?;
    put("metagraph.json", json(&epochs)?)?;
    put("summary.json", json(summary)?)?;
    put("metagraph.csv", csv(epochs))?;
    let first = epochs.first().map_or(1, |e| e.epoch);
    let stake = by_role(
        "stake share by role",
        "share of all stake",
        &summary.stake_share,
        first,
    );
    figure(dir, "stake_share", &stake)?;
    let incentive = by_role(
        "incentive share by role",
        "share of incentive",
        &summary.incentive_share,
        first,
    );
    figure(dir, "incentive_share", &incentive)?;
    let train = Lines {
        title: "training loss per learner (next byte, nats)".into(),
        x_label: "seconds".into(),
        y_label: "cross-entropy".into(),
        series: traces
            .iter()
            .map(|(name, t)| {
                let pts = t.iter().filter_map(|m| Some((m.t, m.loss?))).collect();
                (name.clone(), pts)
            })
            .collect(),
        reference: None,
        y_range: None,
    };
    figure(dir, "train_loss", &train)?;
    figure(
        dir,
        "gain",
        &GainBars {
            premise: &summary.premise,
        },
    )?;
    let mut series = Vec::new();
    for (name, t) in traces {
        let Some(domain) = summary
            .premise
            .gains
            .iter()
            .find(|g| &g.learner == name)
            .map(|g| g.domain.clone())
        else {
            continue;
        };
        for mix in ["peers", "alone"] {
            let key = format!("{domain}/{mix}");
            let mut pts: Vec<(f64, f64)> = t
                .iter()
                .filter_map(|m| Some((m.steps as f64, *m.valid.get(&key)?)))
                .collect();
            pts.dedup_by(|a, b| a.0 == b.0);
            if !pts.is_empty() {
                series.push((format!("{name} {mix}"), pts));
            }
        }
    }
    let valid = Lines {
        title: "validation loss on each learner's own domain: with peers, trained alone".into(),
        x_label: "training steps".into(),
        y_label: "cross-entropy".into(),
        series,
        reference: None,
        y_range: None,
    };
    figure(dir, "valid_loss", &valid)?;
    figure(dir, "weights", &WeightGrid { epochs })?;
    let md = dir.join("report.md");
    std::fs::write(&md, markdown(epochs, summary)).map_err(|e| format!("{}: {e}", md.display()))?;
    Ok(md)
}

/// `value` as pretty JSON.
fn json(value: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

/// Saves `fig` as `DIR/STEM.png` and `DIR/STEM.svg`.
fn figure(dir: &Path, stem: &str, fig: &impl Figure) -> Result<(), String> {
    save(fig, &dir.join(stem))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn csv(epochs: &[EpochRecord]) -> String {
    let mut out = String::from(
        "epoch,block,node,role,uid,alive,stake,rank,trust,consensus,incentive,dividends,\
         emission,served,refused,answers,failed,rows_set,rows_refused,steps,loss\n",
    );
    for e in epochs {
        for n in &e.nodes {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                e.epoch,
                e.block,
                n.name,
                n.role.name(),
                n.uid,
                n.alive,
                n.stake,
                n.rank,
                n.trust,
                n.consensus,
                n.incentive,
                n.dividends,
                n.emission,
                n.metrics.served,
                n.metrics.refused,
                n.metrics.answers,
                n.metrics.failed,
                n.metrics.rows_set,
                n.metrics.rows_refused,
                n.metrics.steps,
                n.metrics.loss.map_or(String::new(), |l| l.to_string()),
            );
        }
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn markdown(epochs: &[EpochRecord], s: &Summary) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Devnet report\n");
    let _ = writeln!(
        md,
        "{} nodes, {} epochs recorded, scenario seed {}, mechanism `{}` (`scenario.toml`). Every \
         number below is computed from `metagraph.json` (the ledger's metagraph and each node's metrics at \
         the end of every epoch) and the nodes' logs in `logs/`.\n",
        s.nodes, s.epochs, s.seed, s.mechanism
    );
    premise(&mut md, &s.premise);
    let _ = writeln!(md, "![stake share by role](stake_share.png)\n");
    let _ = writeln!(
        md,
        "## 1. Incentive: learners against noise and lazy nodes\n"
    );
    let (l, nl) = s.learner_vs_noise_lazy;
    let ratio = if nl > 0.0 {
        format!("{:.2}x", l / nl)
    } else if l > 0.0 {
        "unbounded (noise and lazy nodes earned nothing)".into()
    } else {
        "undefined (no incentive)".into()
    };
    let _ = writeln!(
        md,
        "At the last epoch the learners hold {} of the incentive, the noise and lazy nodes {}: \
         ratio {ratio}.\n",
        pct(l),
        pct(nl)
    );
    let _ = writeln!(md, "![incentive share by role](incentive_share.png)\n");
    let _ = writeln!(
        md,
        "| role | stake share, first epoch | stake share, last epoch | incentive share, last epoch |"
    );
    let _ = writeln!(md, "|---|---|---|---|");
    for (role, v) in &s.stake_share {
        let inc = s.incentive_share.get(role).and_then(|v| v.last().copied());
        let _ = writeln!(
            md,
            "| {role} | {} | {} | {} |",
            v.first().map_or("-".into(), |&x| pct(x)),
            v.last().map_or("-".into(), |&x| pct(x)),
            inc.map_or("-".into(), pct)
        );
    }
    let _ = writeln!(md, "\n## 2. The cabal's stake share\n");
    match (s.honest_rows_from, s.stake_share.get("cabal")) {
        (Some(from), Some(v)) => {
            let list: Vec<String> = v.iter().map(|&x| format!("{:.3}%", 100.0 * x)).collect();
            let verdict = match s.cabal_share_falls {
                Some(true) => "falls at every epoch",
                Some(false) => "does NOT fall at every epoch",
                None => "cannot be judged (fewer than two epochs after that)",
            };
            let _ = writeln!(
                md,
                "From epoch {from} to the end every running learner has a row, has trained past \
                 the warm-up (`warmup_steps`) and gives no cabal member a normalised weight above \
                 the trust threshold (honest rows); from then on the cabal's stake share {verdict}. \
                 Per epoch: {}.\n",
                list.join(", ")
            );
        }
        (None, Some(v)) => {
            let list: Vec<String> = v.iter().map(|&x| format!("{:.3}%", 100.0 * x)).collect();
            let _ = writeln!(
                md,
                "At the last epoch some running learner had no row yet, was inside its warm-up \
                 (`warmup_steps`) or gave a cabal member weight: no verdict. Per epoch: {}.\n",
                list.join(", ")
            );
        }
        _ => {
            let _ = writeln!(md, "No cabal in this scenario.\n");
        }
    }
    let on_cabal: Vec<String> = s
        .learner_weight_on_cabal
        .iter()
        .map(|&x| format!("{:.3}", x))
        .collect();
    let _ = writeln!(
        md,
        "The learners' mean normalised weight on the cabal, per epoch: {}.\n",
        on_cabal.join(", ")
    );
    let _ = writeln!(md, "## 3. Rows and the chain\n");
    let _ = writeln!(
        md,
        "Rows committed: {}; rows the ledger refused: {}. {}\n",
        s.rows.0,
        s.rows.1,
        match s.chain_verified {
            Some(b) => format!(
                "`deepnode ledger verify` replayed the chain in `chain/` from genesis: {b} blocks, \
                 every hash matches."
            ),
            None => "The chain did NOT verify (see the run's output).".into(),
        }
    );
    let _ = writeln!(md, "![weights per epoch](weights.png)\n");
    let _ = writeln!(md, "![validation loss](valid_loss.png)\n");
    let _ = writeln!(md, "![training loss](train_loss.png)\n");
    if !s.departures.is_empty() {
        let _ = writeln!(md, "## Nodes that left\n");
        let _ = writeln!(
            md,
            "| node | epoch | how | stake share then | stake share last | incentive share then | incentive share last | dividend share then | dividend share last | paid nothing from epoch |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
        for d in &s.departures {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                d.name,
                d.epoch,
                if d.signal == "kill" {
                    "kill -9"
                } else {
                    "SIGTERM"
                },
                pct(d.stake_share.0),
                pct(d.stake_share.1),
                pct(d.incentive_share.0),
                pct(d.incentive_share.1),
                pct(d.dividend_share.0),
                pct(d.dividend_share.1),
                d.unpaid_from.map_or("still paid".into(), |e| e.to_string())
            );
        }
        let _ = writeln!(
            md,
            "\nA node that sets no row for longer than the activity cutoff counts as absent: its \
             last row stops counting and its bonds pay it nothing (SPEC.md §5, \"Absent rows\")."
        );
        let _ = writeln!(md);
    }
    if let Some(e) = epochs.last() {
        let _ = writeln!(md, "## The last metagraph\n");
        let _ = writeln!(
            md,
            "| node | role | uid | stake | rank | trust | consensus | incentive | dividends | served | failed | loss |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for n in &e.nodes {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {} | {} | {} |",
                n.name,
                n.role.name(),
                n.uid,
                n.stake,
                n.rank,
                n.trust,
                n.consensus,
                n.incentive,
                n.dividends,
                n.metrics.served,
                n.metrics.failed,
                n.metrics.loss.map_or("-".into(), |l| format!("{l:.3}"))
            );
        }
    }
    let _ = writeln!(
        md,
        "\nFiles: `metagraph.csv`, `metagraph.json` (per epoch, with every weights row), \
         `summary.json`, `logs/node-*.log`, `metrics/node-*.jsonl`, the figures as PNG and SVG."
    );
    md
}

fn signed(x: f64) -> String {
    format!("{x:+.3}")
}

fn interval(lo: f64, hi: f64) -> String {
    format!("[{lo:+.3}, {hi:+.3}]")
}

/// The report's first section: what each learner gains from its peers on its own domain and
/// on the others, what the student keeps offline, and whether the incentive follows value.
fn premise(md: &mut String, p: &Premise) {
    let _ = writeln!(md, "## What a learner gains from its peers\n");
    if p.gains.is_empty() {
        let _ = writeln!(md, "No learner finished a validation round.\n");
        return;
    }
    let _ = writeln!(
        md,
        "Each learner trains on its own domain (and a small sample of the others) and is \
         evaluated on every domain of the network. Gain = loss of its twin trained alone on the \
         same batches minus its loss with the peers' answers (nats per byte, positive: the peers \
         help), with a 95% bootstrap interval over validation batches. The student column is \
         the share of the gain on the other domains that the distilled student keeps when no \
         peer answers.\n"
    );
    let _ = writeln!(md, "![gain per learner](gain.png)\n");
    let _ = writeln!(
        md,
        "| learner | domain | gain, own domain | gain, other domains (mean) | student keeps |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for g in &p.gains {
        let (own, lo, hi) = g.own;
        let others = g.others.map_or("-".into(), |(x, lo, hi)| {
            format!("{} {}", signed(x), interval(lo, hi))
        });
        let _ = writeln!(
            md,
            "| {} | {} | {} {} | {others} | {} |",
            g.learner,
            g.domain,
            signed(own),
            interval(lo, hi),
            g.student_keeps.map_or("-".into(), pct)
        );
    }
    let _ = writeln!(
        md,
        "\nPer learner and evaluation domain (mean over the last validation rounds):\n"
    );
    let _ = writeln!(
        md,
        "| learner | domain | own | steps | rounds | peers | alone | student | zeros | gain (95%) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for a in &p.ablation {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} {} |",
            a.learner,
            a.domain,
            if a.own { "yes" } else { "" },
            a.steps,
            a.rounds,
            a.peers,
            a.alone,
            a.student,
            a.zeros,
            signed(a.alone - a.peers),
            interval(a.gain_interval.0, a.gain_interval.1)
        );
    }
    let _ = writeln!(md, "\n### Does the incentive follow value?\n");
    let _ = writeln!(
        md,
        "A node's value: summed over the other learners, how much their validation loss rises \
         when its answers are replaced by zeros (a leave-one-out in their evaluation, not read \
         from the chain). Rank correlation (Spearman) over the nodes between value and \
         incentive at the last epoch: {}.\n",
        p.value_incentive_correlation
            .map_or("undefined".into(), |r| format!("{r:.3}"))
    );
    let _ = writeln!(md, "| node | role | domain | value given | incentive |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for v in &p.values {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.4} | {:.4} |",
            v.name,
            v.role.name(),
            v.domain.as_deref().unwrap_or("-"),
            v.value,
            v.incentive
        );
    }
    if let Some(yes) = p.unique_out_earns_shared {
        let _ = writeln!(
            md,
            "\nEvery learner alone on its domain earns {} than every learner that shares one.\n",
            if yes { "more" } else { "NOT more" }
        );
    }
    let _ = writeln!(md);
}
