#![doc = include_str!("../README.md")]

mod curve;
pub mod departure;
mod engine;
mod error;
mod metrics;
mod output;
pub mod paper;
mod rng;
mod scenario;
mod strategies;
pub mod sweep;

use std::path::{Path, PathBuf};

use deepnode_consensus::Fx;
use deepnode_consensus::Scalar;
use deepnode_plot as plot;

pub use curve::{consensus_curve, slope_at};
pub use deepnode_contract::Backend;
pub use engine::Simulation;
pub use error::SimError;
pub use metrics::{EpochRecord, GroupRecord, Population, epoch_record, gini};
pub use output::{csv_header, summary, write_metrics};
pub use rng::Rng;
pub use scenario::{Action, Emission, Event, Group, ParamsSpec, Quality, Scenario, Strategy};

/// What [`run_scenario`] writes besides the metrics and final state.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Draw the figures (PNG and SVG).
    pub plots: bool,
    /// Also write the input state of every epoch as `states/epoch-NNNNN.json`.
    pub save_states: bool,
}

/// What a finished run leaves behind.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The summary table ([`summary`]).
    pub summary: String,
    /// Every record.
    pub records: Vec<EpochRecord>,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Runs `scenario` on `backend` and writes its outputs into `out`: `metrics.csv`,
/// `metrics.json`, `final_state.json` (the `deepnode epoch` input contract) and, with
/// `opts.plots`, `stake_share`, `loss`, `min_allowed_weights` and `consensus_curve` figures.
/// `on_epoch` is called after each epoch (for a progress bar).
pub fn run_scenario(
    scenario: Scenario,
    backend: Backend,
    out: &Path,
    opts: &RunOptions,
    on_epoch: impl FnMut(&EpochRecord),
) -> Result<RunReport, SimError> {
    match backend {
        Backend::Fixed => run_with::<Fx>(scenario, backend, out, opts, on_epoch),
        Backend::Float => run_with::<f64>(scenario, backend, out, opts, on_epoch),
    }
}

fn run_with<N: Scalar>(
    scenario: Scenario,
    backend: Backend,
    out: &Path,
    opts: &RunOptions,
    mut on_epoch: impl FnMut(&EpochRecord),
) -> Result<RunReport, SimError> {
    output::create_dir(out)?;
    let mut sim = Simulation::<N>::new(scenario)?;
    let mut files = Vec::new();
    if opts.save_states {
        output::create_dir(&out.join("states"))?;
    }
    while sim.epochs_done() < sim.scenario().epochs {
        if opts.save_states {
            let path = out.join(format!("states/epoch-{:05}.json", sim.epochs_done()));
            output::write_json(&path, &deepnode_contract::render_state(sim.prepare()))?;
        }
        on_epoch(sim.finish()?);
    }
    files.extend(write_metrics(&sim, backend.name(), out)?);
    if opts.plots {
        files.extend(run_figures(&sim, out)?);
    }
    Ok(RunReport {
        summary: summary(&sim),
        records: sim.records().to_vec(),
        files,
    })
}

/// At most this many nodes per group are scattered on the consensus curve.
const MAX_POINTS: usize = 2000;

/// Draws a run's figures into `out`; returns the files.
pub fn run_figures<N: Scalar>(sim: &Simulation<N>, out: &Path) -> Result<Vec<PathBuf>, SimError> {
    let s = sim.scenario();
    let records = sim.records();
    let mut files = Vec::new();
    let per_group = |f: &dyn Fn(&GroupRecord) -> f64| {
        s.groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                let pts = records
                    .iter()
                    .map(|r| (f64::from(r.epoch), f(&r.groups[g])))
                    .collect();
                (group.name.clone(), pts)
            })
            .collect()
    };
    files.extend(plot::save(
        &plot::Lines {
            title: format!("{}: stake share by group", s.name),
            x_label: "epoch".into(),
            y_label: "share of total stake".into(),
            series: per_group(&|g| g.stake_share),
            reference: None,
            y_range: Some((0.0, 1.0)),
        },
        &out.join("stake_share"),
    )?);
    let global = |f: &dyn Fn(&EpochRecord) -> f64| -> Vec<(f64, f64)> {
        records.iter().map(|r| (f64::from(r.epoch), f(r))).collect()
    };
    files.extend(plot::save(
        &plot::Lines {
            title: format!("{}: consensus loss L", s.name),
            x_label: "epoch".into(),
            y_label: "L = -sum r_j (c_j - 1/2)".into(),
            series: vec![(String::new(), global(&|r| r.loss))],
            reference: Some(0.0),
            y_range: None,
        },
        &out.join("loss"),
    )?);
    files.extend(plot::save(
        &plot::Lines {
            title: format!("{}: min_allowed_weights and mean row length", s.name),
            x_label: "epoch".into(),
            y_label: "weights per row".into(),
            series: vec![
                (
                    "min_allowed_weights".into(),
                    global(&|r| f64::from(r.min_allowed_weights)),
                ),
                (
                    "mean non-zero weights per row".into(),
                    global(&|r| r.mean_weights_per_row),
                ),
            ],
            reference: None,
            y_range: None,
        },
        &out.join("min_allowed_weights"),
    )?);
    let curve = consensus_curve(&sim.state().params, 200);
    let tc = sim.trust_consensus();
    let points = s
        .groups
        .iter()
        .enumerate()
        .map(|(g, group)| {
            let pts: Vec<(f64, f64)> = tc.iter().filter(|p| p.2 == g).map(|p| (p.0, p.1)).collect();
            let step = pts.len().div_ceil(MAX_POINTS).max(1);
            (group.name.clone(), pts.into_iter().step_by(step).collect())
        })
        .collect();
    let k = s.params.kappa;
    let idx = (k * 200.0).round() as usize;
    files.extend(plot::save(
        &plot::CurveWithPoints {
            title: format!(
                "{}: consensus curve (rho = {}, kappa = {}), last epoch's nodes",
                s.name, s.params.rho, k
            ),
            tangent: slope_at(&curve, idx).map(|m| (k, curve[idx].1, m)),
            curve,
            points,
        },
        &out.join("consensus_curve"),
    )?);
    Ok(files)
}
