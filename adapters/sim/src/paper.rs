//! The paper's claims as scenarios, and the figures of `docs/sim/` (`deepnode sim paper`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use deepnode_consensus::Params;
use serde::Serialize;

use crate::SimError;
use crate::Simulation;
use crate::curve::{consensus_curve, slope_at};
use crate::metrics::EpochRecord;
use crate::output::{create_dir, write_json};
use crate::scenario::{Emission, Group, ParamsSpec, Quality, Scenario, Strategy};
use deepnode_plot::{CurveWithPoints, Lines, save};

/// `scenarios/controller.toml`: a low-connectivity network under the controller.
pub const CONTROLLER_TOML: &str = include_str!("../scenarios/controller.toml");
/// `scenarios/early_bonder.toml`: an early and a late bonder to the same server.
pub const EARLY_BONDER_TOML: &str = include_str!("../scenarios/early_bonder.toml");

/// The honest stake shares of section 11.
pub const SECTION_11_A: [f64; 4] = [0.55, 0.6, 0.7, 0.9];

/// Section 11's population: 20 honest nodes holding `a` of the stake, each weighting the 19
/// others by a noisy quality estimate, and 10 cabal nodes holding `1 - a` that weight only the
/// cabal. Emission rate tau = 0.1, SPEC.md's default parameters.
pub fn section_11(a: f64, epochs: u32) -> Scenario {
    let total = 3.0e12;
    Scenario {
        name: format!("section-11-a{a}"),
        epochs,
        seed: 11,
        params: ParamsSpec::default(),
        emission: Emission::Rate(0.1),
        controller: None,
        groups: vec![
            Group {
                name: "honest".into(),
                count: 20,
                stake: (total * a / 20.0) as u64,
                quality: Quality::Uniform {
                    low: 0.6,
                    high: 1.0,
                },
                strategy: Strategy::Honest {
                    top_k: 19,
                    noise: 0.05,
                    sample: 0,
                    refresh: 1,
                },
                active_at_start: true,
            },
            Group {
                name: "cabal".into(),
                count: 10,
                stake: (total * (1.0 - a) / 10.0) as u64,
                quality: Quality::Uniform {
                    low: 0.0,
                    high: 0.2,
                },
                strategy: Strategy::Cabal,
                active_at_start: true,
            },
        ],
        events: Vec::new(),
    }
}

/// Section 11's figures for one `a`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Section11 {
    /// Honest stake share.
    pub a: f64,
    /// The cabal's incentive share in epoch 0.
    pub cabal_incentive_epoch0: f64,
    /// The cabal's stake share after each epoch.
    pub cabal_share: Vec<f64>,
    /// Units the cabal must add after each epoch to keep its share, over that epoch's emission.
    pub hold_per_emission: Vec<f64>,
}

/// Runs section 11 for every `a` of [`SECTION_11_A`].
pub fn run_section_11(epochs: u32) -> Result<Vec<Section11>, SimError> {
    SECTION_11_A
        .iter()
        .map(|&a| {
            let r = records(section_11(a, epochs))?;
            Ok(Section11 {
                a,
                cabal_incentive_epoch0: r.first().map_or(0.0, |x| x.groups[1].incentive_share),
                cabal_share: r.iter().map(|x| x.groups[1].stake_share).collect(),
                hold_per_emission: r
                    .iter()
                    .map(|x| x.groups[1].hold_stake as f64 / x.emission.max(1) as f64)
                    .collect(),
            })
        })
        .collect()
}

fn records(s: Scenario) -> Result<Vec<EpochRecord>, SimError> {
    let mut sim = Simulation::<f64>::new(s)?;
    sim.run(|_| {})?;
    Ok(sim.records().to_vec())
}

fn epochs_of<T>(v: &[T], f: impl Fn(&T) -> f64) -> Vec<(f64, f64)> {
    v.iter()
        .enumerate()
        .map(|(t, x)| (t as f64, f(x)))
        .collect()
}

/// Runs every claim and draws its figures into `out`; returns the files and a text report
/// with the numbers.
pub fn write_paper_figures(out: &Path) -> Result<(Vec<PathBuf>, String), SimError> {
    create_dir(out)?;
    let mut files = Vec::new();
    let mut text = String::new();

    // Consensus curve, rho = 10, kappa = 0.5.
    let curve = consensus_curve(&Params::<f64>::default(), 400);
    let slope = slope_at(&curve, 200).unwrap_or(f64::NAN);
    let _ = writeln!(
        text,
        "consensus curve (rho 10, kappa 0.5): c(0.5) = {:.6}, dc/dt at 0.5 = {slope:.4} \
         (paper: 5/2)",
        curve[200].1
    );
    files.extend(save(
        &CurveWithPoints {
            title: "Consensus c(t) = sigmoid(rho (t - kappa)), rho = 10, kappa = 0.5".into(),
            tangent: Some((0.5, curve[200].1, slope)),
            curve,
            points: Vec::new(),
        },
        &out.join("consensus_curve"),
    )?);

    // Section 11.
    let s11 = run_section_11(30)?;
    for s in &s11 {
        let _ = writeln!(
            text,
            "section 11, a = {:.2}: cabal incentive in epoch 0 {:.4}; cabal share {:.3} -> {:.4} \
             after 1 epoch -> {:.4} after {}; to hold its share it must add {:.3}x the \
             epoch's emission in epoch 0 ({:.3}x on average)",
            s.a,
            s.cabal_incentive_epoch0,
            1.0 - s.a,
            s.cabal_share[0],
            s.cabal_share.last().copied().unwrap_or(0.0),
            s.cabal_share.len(),
            s.hold_per_emission[0],
            s.hold_per_emission.iter().sum::<f64>() / s.hold_per_emission.len() as f64,
        );
    }
    let start = |s: &Section11| {
        let mut v = vec![(0.0, 1.0 - s.a)];
        v.extend(
            epochs_of(&s.cabal_share, |x| *x)
                .into_iter()
                .map(|(t, y)| (t + 1.0, y)),
        );
        v
    };
    files.extend(save(
        &Lines {
            title: "Section 11: cabal's stake share (honest stake a, tau = 0.1)".into(),
            x_label: "epochs run".into(),
            y_label: "cabal's share of stake".into(),
            series: s11
                .iter()
                .map(|s| (format!("a = {}", s.a), start(s)))
                .collect(),
            reference: None,
            y_range: Some((0.0, 0.5)),
        },
        &out.join("section11_cabal_share"),
    )?);
    files.extend(save(
        &Lines {
            title: "Section 11: stake the cabal must add to hold its share".into(),
            x_label: "epoch".into(),
            y_label: "units added / units minted that epoch".into(),
            series: s11
                .iter()
                .map(|s| {
                    (
                        format!("a = {}", s.a),
                        epochs_of(&s.hold_per_emission, |x| *x),
                    )
                })
                .collect(),
            reference: None,
            y_range: None,
        },
        &out.join("section11_hold_cost"),
    )?);
    write_json(&out.join("section11.json"), &s11)?;
    files.push(out.join("section11.json"));

    // Controller.
    let controller = records(Scenario::from_toml(
        CONTROLLER_TOML,
        "scenarios/controller.toml",
        "controller",
    )?)?;
    let crossed = controller.iter().position(|r| r.loss < 0.0);
    let _ = writeln!(
        text,
        "controller: L = {:+.4} at epoch 0 (min_allowed_weights 1); first L < 0 at epoch {} \
         (min_allowed_weights {}); L = {:+.4} after {} epochs",
        controller[0].loss,
        crossed.map_or("never".into(), |t| t.to_string()),
        crossed.map_or(0, |t| controller[t].min_allowed_weights),
        controller.last().map_or(0.0, |r| r.loss),
        controller.len()
    );
    files.extend(save(
        &Lines {
            title: "Controller: loss L of a low-connectivity network (100 nodes)".into(),
            x_label: "epoch".into(),
            y_label: "L".into(),
            series: vec![("L".into(), epochs_of(&controller, |r: &EpochRecord| r.loss))],
            reference: Some(0.0),
            y_range: None,
        },
        &out.join("controller_loss"),
    )?);
    files.extend(save(
        &Lines {
            title: "Controller: min_allowed_weights and honest rows widening to meet it".into(),
            x_label: "epoch".into(),
            y_label: "weights per row".into(),
            series: vec![
                (
                    "min_allowed_weights".into(),
                    epochs_of(&controller, |r: &EpochRecord| {
                        f64::from(r.min_allowed_weights)
                    }),
                ),
                (
                    "mean non-zero weights per row".into(),
                    epochs_of(&controller, |r: &EpochRecord| r.mean_weights_per_row),
                ),
            ],
            reference: None,
            y_range: None,
        },
        &out.join("controller_min_allowed_weights"),
    )?);

    // Early and late bonders.
    let bond = Scenario::from_toml(EARLY_BONDER_TOML, "scenarios/early_bonder.toml", "b")?;
    let g = |name: &str| bond.groups.iter().position(|x| x.name == name).unwrap_or(0);
    let (early, late) = (g("early"), g("late"));
    let r = records(bond)?;
    let cumulative = |grp: usize| {
        let mut acc = 0.0;
        r.iter()
            .map(|x| {
                acc += x.groups[grp].dividend_share;
                (f64::from(x.epoch), acc)
            })
            .collect::<Vec<_>>()
    };
    let (ce, cl) = (cumulative(early), cumulative(late));
    let after = |c: &[(f64, f64)]| c.last().map_or(0.0, |x| x.1) - c.get(19).map_or(0.0, |x| x.1);
    let _ = writeln!(
        text,
        "bonds: dividends from epoch 20 (when the majority recognises the server) to {}: \
         early bonder {:.4}, late bonder {:.4} (ratio {:.3}); final stake early {} vs late {}",
        r.len() - 1,
        after(&ce),
        after(&cl),
        after(&ce) / after(&cl),
        r.last().map_or(0, |x| x.groups[early].stake),
        r.last().map_or(0, |x| x.groups[late].stake),
    );
    files.extend(save(
        &Lines {
            title: "Bonds: cumulative dividend share, early vs late bonder".into(),
            x_label: "epoch (majority recognises the server at 20)".into(),
            y_label: "sum of dividend shares".into(),
            series: vec![("early bonder".into(), ce), ("late bonder".into(), cl)],
            reference: None,
            y_range: None,
        },
        &out.join("early_bonder_dividends"),
    )?);
    Ok((files, text))
}
