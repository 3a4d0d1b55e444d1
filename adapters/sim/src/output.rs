//! Files a run leaves in its output directory, and the summary table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use deepnode_consensus::Scalar;

use serde_json::json;

use crate::SimError;
use crate::Simulation;
use crate::metrics::EpochRecord;

/// Writes `path` with `contents`, naming the file on failure.
pub(crate) fn write(path: &Path, contents: &[u8]) -> Result<(), SimError> {
    std::fs::write(path, contents).map_err(|source| SimError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Creates `dir` and its parents.
pub(crate) fn create_dir(dir: &Path) -> Result<(), SimError> {
    std::fs::create_dir_all(dir).map_err(|source| SimError::Io {
        path: dir.to_owned(),
        source,
    })
}

/// Writes `value` as pretty JSON.
pub(crate) fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), SimError> {
    let text = serde_json::to_vec_pretty(value).map_err(|source| SimError::Json {
        path: path.to_owned(),
        source,
    })?;
    write(path, &text)
}

/// The header of `metrics.csv`: global columns, then five per group.
pub fn csv_header(groups: &[String]) -> Vec<String> {
    let mut h: Vec<String> = [
        "epoch",
        "emission",
        "minted",
        "total_stake",
        "loss",
        "min_allowed_weights",
        "mean_weights_per_row",
        "rejected_rows",
        "gini",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for g in groups {
        for col in [
            "stake_share",
            "incentive_share",
            "dividend_share",
            "minted",
            "hold_stake",
        ] {
            h.push(format!("{g}.{col}"));
        }
    }
    h
}

fn csv_row(r: &EpochRecord) -> Vec<String> {
    let mut row = vec![
        r.epoch.to_string(),
        r.emission.to_string(),
        r.minted.to_string(),
        r.total_stake.to_string(),
        r.loss.to_string(),
        r.min_allowed_weights.to_string(),
        r.mean_weights_per_row.to_string(),
        r.rejected_rows.to_string(),
        r.gini.to_string(),
    ];
    for g in &r.groups {
        row.push(g.stake_share.to_string());
        row.push(g.incentive_share.to_string());
        row.push(g.dividend_share.to_string());
        row.push(g.minted.to_string());
        row.push(g.hold_stake.to_string());
    }
    row
}

/// Writes `metrics.csv`, `metrics.json` and `final_state.json` into `dir`; returns the paths.
pub fn write_metrics<N: Scalar>(
    sim: &Simulation<N>,
    backend: &str,
    dir: &Path,
) -> Result<Vec<PathBuf>, SimError> {
    create_dir(dir)?;
    let names: Vec<String> = sim
        .scenario()
        .groups
        .iter()
        .map(|g| g.name.clone())
        .collect();
    let csv_path = dir.join("metrics.csv");
    let csv_err = |source| SimError::Csv {
        path: csv_path.clone(),
        source,
    };
    let mut w = csv::Writer::from_path(&csv_path).map_err(csv_err)?;
    w.write_record(csv_header(&names)).map_err(csv_err)?;
    for r in sim.records() {
        w.write_record(csv_row(r)).map_err(csv_err)?;
    }
    w.flush().map_err(|source| SimError::Io {
        path: csv_path.clone(),
        source,
    })?;

    let json_path = dir.join("metrics.json");
    let s = sim.scenario();
    write_json(
        &json_path,
        &json!({
            "scenario": s.name,
            "backend": backend,
            "seed": s.seed,
            "epochs": sim.epochs_done(),
            "nodes": s.nodes(),
            "groups": names,
            "records": sim.records(),
        }),
    )?;
    let state_path = dir.join("final_state.json");
    write_json(&state_path, &deepnode_contract::render_state(sim.state()))?;
    Ok(vec![csv_path, json_path, state_path])
}

/// The table printed at the end of a run: one line per group, then the network's figures.
pub fn summary<N: Scalar>(sim: &Simulation<N>) -> String {
    let records = sim.records();
    let mut out = String::new();
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return "no epoch was run\n".into();
    };
    let n = records.len() as f64;
    let _ = writeln!(
        out,
        "{:<16} {:>6} {:>10} {:>10} {:>9} {:>10} {:>10} {:>12}",
        "group", "nodes", "share@0", "share@end", "change", "mean inc", "mean div", "hold/epoch"
    );
    for (g, group) in sim.scenario().groups.iter().enumerate() {
        let start = first.groups[g].stake_share - stake_gain(first, g);
        let end = last.groups[g].stake_share;
        let mean = |f: &dyn Fn(&EpochRecord) -> f64| records.iter().map(f).sum::<f64>() / n;
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>10.4} {:>10.4} {:>+9.4} {:>10.4} {:>10.4} {:>12.0}",
            group.name,
            group.count,
            start,
            end,
            end - start,
            mean(&|r| r.groups[g].incentive_share),
            mean(&|r| r.groups[g].dividend_share),
            mean(&|r| r.groups[g].hold_stake as f64),
        );
    }
    let _ = writeln!(
        out,
        "epochs {}  loss L: {:+.4} -> {:+.4}  min_allowed_weights: {} -> {}  gini: {:.4} -> {:.4}  \
         total stake: {}",
        records.len(),
        first.loss,
        last.loss,
        first.min_allowed_weights,
        last.min_allowed_weights,
        first.gini,
        last.gini,
        last.total_stake
    );
    out
}

/// The group's share change during epoch 0 (its share before epoch 0 is share@0 minus this).
fn stake_gain(first: &EpochRecord, g: usize) -> f64 {
    let r = &first.groups[g];
    let before_total = first.total_stake.saturating_sub(first.minted) as f64;
    let before = r.stake.saturating_sub(r.minted) as f64;
    if before_total > 0.0 {
        r.stake_share - before / before_total
    } else {
        0.0
    }
}
