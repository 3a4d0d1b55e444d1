//! The sweep of attacks: an adversarial group's final stake share and dividend yield
//! over its initial stake x strategy (cabal, selfish, copier, stale) x bond mode.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use deepnode_consensus::{BondMode, Fx};
use serde::Serialize;

use crate::Simulation;
use crate::metrics::EpochRecord;
use crate::output::{create_dir, write_json};
use crate::scenario::{Emission, Group, ParamsSpec, Quality, Scenario, Strategy};
use crate::{Backend, SimError};
use deepnode_plot::{Heatmap, save};

/// The sweep's grid and population.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    /// Nodes in all (a quarter of them adversarial, at least 1).
    pub nodes: u32,
    /// Epochs per run.
    pub epochs: u32,
    /// Seed of every run.
    pub seed: u64,
    /// The adversary's initial stake shares (columns).
    pub shares: Vec<f64>,
    /// Emission rate tau (`S_{t+1} = S_t + tau dS`).
    pub rate: f64,
    /// EMA alpha of the second bond mode.
    pub ema_alpha: f64,
    /// Honest nodes' `top_k`.
    pub top_k: u32,
    /// Backend of every run.
    pub backend: Backend,
    /// When set, the second bond axis is this Yuma rule (SPEC.md §10, self weights masked as
    /// subtensor does) instead of EMA: every attack under both mechanisms, side by side.
    pub yuma: Option<BondMode<f64>>,
}

impl Default for SweepConfig {
    /// 40 nodes, 50 epochs, shares 0.05..=0.5 by 0.05, tau 0.1, EMA alpha 0.1, top_k 8, float.
    fn default() -> Self {
        SweepConfig {
            nodes: 40,
            epochs: 50,
            seed: 1,
            shares: (1..=10).map(|k| f64::from(k) * 0.05).collect(),
            rate: 0.1,
            ema_alpha: 0.1,
            top_k: 8,
            backend: Backend::Float,
            yuma: None,
        }
    }
}

/// One run of the sweep.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepCell {
    /// `cabal`, `selfish`, `copier` or `stale`.
    pub strategy: String,
    /// `cumulative` or `ema(alpha)`.
    pub bonds: String,
    /// The adversary's initial stake share.
    pub initial_share: f64,
    /// Its share after the last epoch.
    pub final_share: f64,
    /// Mean over epochs of its dividends per unit stake over honest nodes' (1 = same yield).
    pub dividend_yield_vs_honest: f64,
    /// Mean over epochs of the units it would have to add to keep its share, per unit minted.
    pub hold_per_emission: f64,
}

const STRATEGIES: [&str; 4] = ["cabal", "selfish", "copier", "stale"];

/// The scenario of one cell: honest nodes of quality U(0.5, 1) setting honest rows, and an
/// adversarial group of quality U(0, 0.3) playing `strategy` with `share` of the stake.
pub fn cell_scenario(cfg: &SweepConfig, strategy: &str, ema: bool, share: f64) -> Scenario {
    let adv = (cfg.nodes / 4).max(1);
    let honest = cfg.nodes.saturating_sub(adv).max(1);
    let total = 1e12;
    let per = |part: f64, count: u32| (total * part / f64::from(count)).round() as u64;
    let strategy = match strategy {
        "cabal" => Strategy::Cabal,
        "selfish" => Strategy::Selfish,
        // Stale rows: the honest row it built when it joined, submitted every epoch after.
        "stale" => Strategy::Stale {
            top_k: cfg.top_k,
            noise: 0.1,
        },
        _ => Strategy::Copier { top_k: cfg.top_k },
    };
    Scenario {
        name: "sweep".into(),
        epochs: cfg.epochs,
        seed: cfg.seed,
        params: match (ema, cfg.yuma) {
            (true, Some(rule)) => ParamsSpec {
                yuma: Some(rule),
                mask_self_weights: true,
                ..ParamsSpec::default()
            },
            _ => ParamsSpec {
                ema_alpha: ema.then_some(cfg.ema_alpha),
                ..ParamsSpec::default()
            },
        },
        emission: Emission::Rate(cfg.rate),
        controller: None,
        groups: vec![
            Group {
                name: "honest".into(),
                count: honest,
                stake: per(1.0 - share, honest),
                quality: Quality::Uniform {
                    low: 0.5,
                    high: 1.0,
                },
                strategy: Strategy::Honest {
                    top_k: cfg.top_k,
                    noise: 0.1,
                    sample: 0,
                    refresh: 1,
                },
                active_at_start: true,
            },
            Group {
                name: "adversary".into(),
                count: adv,
                stake: per(share, adv),
                quality: Quality::Uniform {
                    low: 0.0,
                    high: 0.3,
                },
                strategy,
                active_at_start: true,
            },
        ],
        events: Vec::new(),
    }
}

/// Group 1's mean dividend yield relative to group 0's, over epochs where both are defined.
pub fn yield_ratio(records: &[EpochRecord]) -> f64 {
    let per_stake = |r: &EpochRecord, g: usize| {
        let before = r.groups[g].stake.saturating_sub(r.groups[g].minted) as f64;
        (before > 0.0).then(|| r.groups[g].dividend_share / before)
    };
    let ratios: Vec<f64> = records
        .iter()
        .filter_map(|r| match (per_stake(r, 1), per_stake(r, 0)) {
            (Some(a), Some(h)) if h > 0.0 => Some(a / h),
            _ => None,
        })
        .collect();
    if ratios.is_empty() {
        0.0
    } else {
        ratios.iter().sum::<f64>() / ratios.len() as f64
    }
}

/// Runs every cell; `on_cell` is called after each (for a progress bar).
pub fn run_sweep(
    cfg: &SweepConfig,
    mut on_cell: impl FnMut(&SweepCell),
) -> Result<Vec<SweepCell>, SimError> {
    let mut cells = Vec::new();
    for strategy in STRATEGIES {
        for ema in [false, true] {
            for &share in &cfg.shares {
                let scenario = cell_scenario(cfg, strategy, ema, share);
                let records = match cfg.backend {
                    Backend::Float => records::<f64>(scenario)?,
                    Backend::Fixed => records::<Fx>(scenario)?,
                };
                let last = records.last().map_or(0.0, |r| r.groups[1].stake_share);
                let hold = records
                    .iter()
                    .map(|r| r.groups[1].hold_stake as f64 / r.emission.max(1) as f64)
                    .sum::<f64>()
                    / records.len().max(1) as f64;
                let cell = SweepCell {
                    strategy: strategy.into(),
                    bonds: match (ema, cfg.yuma) {
                        (false, _) => "cumulative".into(),
                        (true, None) => format!("ema({})", cfg.ema_alpha),
                        (true, Some(rule)) => yuma_label(rule),
                    },
                    initial_share: share,
                    final_share: last,
                    dividend_yield_vs_honest: yield_ratio(&records),
                    hold_per_emission: hold,
                };
                on_cell(&cell);
                cells.push(cell);
            }
        }
    }
    Ok(cells)
}

/// `yuma(m, p)` or `yuma3(m, p)` (moving average, penalty; `, liquid` with liquid alpha).
fn yuma_label(rule: BondMode<f64>) -> String {
    match rule {
        BondMode::Yuma {
            bonds_moving_average: m,
            bonds_penalty: p,
        } => format!("yuma({m}, {p})"),
        BondMode::Yuma3 {
            bonds_moving_average: m,
            bonds_penalty: p,
            liquid_alpha,
        } => format!(
            "yuma3({m}, {p}{})",
            if liquid_alpha.is_some() {
                ", liquid"
            } else {
                ""
            }
        ),
        BondMode::Cumulative | BondMode::Ema { .. } => "paper".into(),
    }
}

fn records<N: deepnode_consensus::Scalar>(
    scenario: Scenario,
) -> Result<Vec<EpochRecord>, SimError> {
    let mut sim = Simulation::<N>::new(scenario)?;
    sim.run(|_| {})?;
    Ok(sim.records().to_vec())
}

/// The sweep as a text table: one line per (strategy, bond mode), one column per share.
pub fn sweep_table(cells: &[SweepCell], value: fn(&SweepCell) -> f64) -> String {
    let mut out = String::new();
    let shares = initial_shares(cells);
    let _ = write!(out, "{:<24}", "strategy / bonds");
    for s in &shares {
        let _ = write!(out, " {s:>6.2}");
    }
    out.push('\n');
    for (label, row) in rows(cells, &shares) {
        let _ = write!(out, "{label:<24}");
        for c in row {
            let _ = write!(out, " {:>6.3}", c.map_or(f64::NAN, value));
        }
        out.push('\n');
    }
    out
}

/// The distinct initial shares of `cells`, ascending (the columns of the table and heat-maps).
fn initial_shares(cells: &[SweepCell]) -> Vec<f64> {
    let mut shares: Vec<f64> = cells.iter().map(|c| c.initial_share).collect();
    shares.sort_by(f64::total_cmp);
    shares.dedup();
    shares
}

type Row<'a> = (String, Vec<Option<&'a SweepCell>>);

fn rows<'a>(cells: &'a [SweepCell], shares: &[f64]) -> Vec<Row<'a>> {
    let mut labels: Vec<(String, String)> = Vec::new();
    for c in cells {
        let l = (c.strategy.clone(), c.bonds.clone());
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    labels
        .into_iter()
        .map(|(s, b)| {
            let row = shares
                .iter()
                .map(|&x| {
                    cells
                        .iter()
                        .find(|c| c.strategy == s && c.bonds == b && c.initial_share == x)
                })
                .collect();
            (format!("{s} / {b}"), row)
        })
        .collect()
}

/// Writes `sweep.csv`, `sweep.json` and the heat-maps `sweep_final_share` and
/// `sweep_dividend_yield` (PNG and SVG) into `out`.
pub fn write_sweep(cells: &[SweepCell], out: &Path) -> Result<Vec<PathBuf>, SimError> {
    create_dir(out)?;
    let csv_path = out.join("sweep.csv");
    let err = |source| SimError::Csv {
        path: csv_path.clone(),
        source,
    };
    let mut w = csv::Writer::from_path(&csv_path).map_err(err)?;
    for c in cells {
        w.serialize(c).map_err(err)?;
    }
    w.flush().map_err(|source| SimError::Io {
        path: csv_path.clone(),
        source,
    })?;
    let json_path = out.join("sweep.json");
    write_json(&json_path, &cells)?;
    let mut files = vec![csv_path, json_path];
    let shares = initial_shares(cells);
    let grid = rows(cells, &shares);
    let columns: Vec<String> = shares.iter().map(|s| format!("{s:.2}")).collect();
    let labels: Vec<String> = grid.iter().map(|r| r.0.clone()).collect();
    let values = |f: fn(&SweepCell) -> f64| -> Vec<Vec<f64>> {
        grid.iter()
            .map(|r| r.1.iter().map(|c| c.map_or(f64::NAN, f)).collect())
            .collect()
    };
    files.extend(save(
        &Heatmap {
            title: "Adversary's final stake share (columns: initial share)".into(),
            columns: columns.clone(),
            rows: labels.clone(),
            values: values(|c| c.final_share),
            range: (0.0, 0.5),
        },
        &out.join("sweep_final_share"),
    )?);
    files.extend(save(
        &Heatmap {
            title: "Adversary's dividend yield / honest yield (columns: initial share)".into(),
            columns,
            rows: labels,
            values: values(|c| c.dividend_yield_vs_honest),
            range: (0.0, 2.0),
        },
        &out.join("sweep_dividend_yield"),
    )?);
    Ok(files)
}
