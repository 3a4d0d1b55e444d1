//! A node that goes away without deregistering (`leave` with `stop`): how long its bonds go
//! on paying under each rule for the bonds of absent nodes, and whether the activity cutoff
//! changes the paper's claims (`deepnode sim departure`, docs/sim).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::SimError;
use crate::Simulation;
use crate::metrics::{EpochRecord, GroupRecord};
use crate::output::{create_dir, write_json};
use crate::paper::{SECTION_11_A, section_11};
use crate::scenario::{Action, Emission, Event, Group, ParamsSpec, Quality, Scenario, Strategy};
use crate::sweep::{SweepConfig, cell_scenario};
use deepnode_plot::{Lines, save};

/// Epochs of the study.
pub const EPOCHS: u32 = 60;
/// The epoch before which the departing node stops.
pub const LEAVE_AT: u32 = 20;
/// The epoch before which it comes back, in the runs where it returns.
pub const RETURN_AT: u32 = 40;
/// The activity cutoff of the study, in epochs.
pub const CUTOFF: u64 = 5;

/// What happens to the bonds of an absent node in one run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Rule {
    /// No activity cutoff: its last row and its bonds count for ever.
    Off,
    /// Cutoff on, no dividends while absent.
    Withhold,
    /// Cutoff on, bonds decay by this rate per absent epoch.
    Decay(f64),
}

impl Rule {
    /// Every rule the study compares.
    pub const ALL: [Rule; 5] = [
        Rule::Off,
        Rule::Withhold,
        Rule::Decay(0.1),
        Rule::Decay(0.25),
        Rule::Decay(0.5),
    ];

    /// A label for tables and legends.
    pub fn label(self) -> String {
        match self {
            Rule::Off => "no cutoff".into(),
            Rule::Withhold => format!("cutoff {CUTOFF}, withhold"),
            Rule::Decay(r) => format!("cutoff {CUTOFF}, decay {r}"),
        }
    }

    /// `params` with this rule.
    pub fn apply(self, params: ParamsSpec) -> ParamsSpec {
        match self {
            Rule::Off => ParamsSpec {
                activity_cutoff: 0,
                ..params
            },
            Rule::Withhold => ParamsSpec {
                activity_cutoff: CUTOFF,
                departed_decay: None,
                ..params
            },
            Rule::Decay(rate) => ParamsSpec {
                activity_cutoff: CUTOFF,
                departed_decay: Some(rate),
                ..params
            },
        }
    }
}

/// 19 honest nodes and one more (`departing`, the best server) of equal stake, weighting
/// their top 8 peers by a noisy estimate of quality, emission rate 0.05; the departing node
/// stops before epoch [`LEAVE_AT`] (and, with `returns`, comes back before [`RETURN_AT`]).
pub fn departure_scenario(rule: Rule, returns: bool) -> Scenario {
    let honest = Strategy::Honest {
        top_k: 8,
        noise: 0.05,
        sample: 0,
        refresh: 1,
    };
    let mut events = vec![Event {
        epoch: LEAVE_AT,
        group: 1,
        action: Action::Stop,
    }];
    if returns {
        events.push(Event {
            epoch: RETURN_AT,
            group: 1,
            action: Action::Join,
        });
    }
    Scenario {
        name: "departure".into(),
        epochs: EPOCHS,
        seed: 7,
        params: rule.apply(ParamsSpec::default()),
        emission: Emission::Rate(0.05),
        controller: None,
        groups: vec![
            Group {
                name: "honest".into(),
                count: 19,
                stake: 1_000_000_000,
                quality: Quality::Uniform {
                    low: 0.5,
                    high: 0.9,
                },
                strategy: honest.clone(),
                active_at_start: true,
            },
            Group {
                name: "departing".into(),
                count: 1,
                stake: 1_000_000_000,
                quality: Quality::Constant(1.0),
                strategy: honest,
                active_at_start: true,
            },
        ],
        events,
    }
}

/// The departing node's figures under one rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Departure {
    /// The rule.
    pub rule: Rule,
    /// Its share of all dividends, each epoch.
    pub dividend_share: Vec<f64>,
    /// Its share of all stake after each epoch.
    pub stake_share: Vec<f64>,
    /// Its incentive share, each epoch.
    pub incentive_share: Vec<f64>,
    /// Units minted to it from [`LEAVE_AT`] to the end, over all units minted then.
    pub minted_share_after_leaving: f64,
    /// The first epoch from [`LEAVE_AT`] at which it is paid nothing (`None`: never).
    pub first_unpaid_epoch: Option<u32>,
    /// In the run where it returns: its mean dividend share over the 10 epochs after
    /// [`RETURN_AT`], over its mean over the 10 epochs before [`LEAVE_AT`].
    pub dividends_after_return_vs_before: f64,
}

fn records(s: Scenario) -> Result<Vec<EpochRecord>, SimError> {
    let mut sim = Simulation::<f64>::new(s)?;
    sim.run(|_| {})?;
    Ok(sim.records().to_vec())
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Runs the departure (and the return) under `rule`.
pub fn run_departure(rule: Rule) -> Result<Departure, SimError> {
    let r = records(departure_scenario(rule, false))?;
    fn g(x: &EpochRecord) -> &GroupRecord {
        &x.groups[1]
    }
    let leave = LEAVE_AT as usize;
    let after = &r[leave..];
    let minted: u64 = after.iter().map(|x| g(x).minted).sum();
    let all: u64 = after.iter().map(|x| x.minted).sum();
    let back = records(departure_scenario(rule, true))?;
    let share = |from: usize, to: usize| {
        mean(
            &back[from..to]
                .iter()
                .map(|x| g(x).dividend_share)
                .collect::<Vec<_>>(),
        )
    };
    let ret = RETURN_AT as usize;
    Ok(Departure {
        rule,
        dividend_share: r.iter().map(|x| g(x).dividend_share).collect(),
        stake_share: r.iter().map(|x| g(x).stake_share).collect(),
        incentive_share: r.iter().map(|x| g(x).incentive_share).collect(),
        minted_share_after_leaving: if all == 0 {
            0.0
        } else {
            minted as f64 / all as f64
        },
        first_unpaid_epoch: after.iter().find(|x| g(x).minted == 0).map(|x| x.epoch),
        dividends_after_return_vs_before: share(ret, ret + 10) / share(leave - 10, leave),
    })
}

/// Whether a run with `rule` gives the same records as without a cutoff, for every section 11
/// network (`SECTION_11_A`, 30 epochs) and every cell of the sweep of `cfg`: where every node
/// sets a row each epoch, no row turns absent and the claims are those of the paper runs.
pub fn claims_unchanged(rule: Rule, cfg: &SweepConfig) -> Result<(usize, usize), SimError> {
    let mut same = 0;
    let mut runs = 0;
    let mut check = |s: Scenario| -> Result<(), SimError> {
        let mut with = s.clone();
        with.params = rule.apply(s.params);
        runs += 1;
        if records(s)? == records(with)? {
            same += 1;
        }
        Ok(())
    };
    for a in SECTION_11_A {
        check(section_11(a, 30))?;
    }
    for strategy in ["cabal", "selfish", "copier"] {
        for ema in [false, true] {
            for &share in &cfg.shares {
                check(cell_scenario(cfg, strategy, ema, share))?;
            }
        }
    }
    Ok((same, runs))
}

/// Runs the study and draws its figure into `out`; returns the files and a text report.
pub fn write_departure(out: &Path, cfg: &SweepConfig) -> Result<(Vec<PathBuf>, String), SimError> {
    create_dir(out)?;
    let runs = Rule::ALL
        .iter()
        .map(|&rule| run_departure(rule))
        .collect::<Result<Vec<_>, _>>()?;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "departure: 20 honest nodes (top 8 peers), the best one stops before epoch {LEAVE_AT} \
         of {EPOCHS}; its last row set at epoch {}; emission rate 0.05",
        LEAVE_AT - 1
    );
    let last = (EPOCHS - 1) as usize;
    let at = |v: &[f64], t: u32| v.get(t as usize).copied().unwrap_or(0.0);
    for d in &runs {
        let _ = writeln!(
            text,
            "{}: dividend share at epoch {} {:.4}, at {} {:.4}, at {} {:.4}, at {last} {:.4}; \
             stake share {:.4} -> {:.4}; minted to it after leaving {:.4} of all; first \
             unpaid epoch {}; back at {RETURN_AT}: dividends over 10 epochs {:.3}x those \
             before it left",
            d.rule.label(),
            LEAVE_AT - 1,
            at(&d.dividend_share, LEAVE_AT - 1),
            LEAVE_AT + CUTOFF as u32 - 1,
            at(&d.dividend_share, LEAVE_AT + CUTOFF as u32 - 1),
            LEAVE_AT + CUTOFF as u32,
            at(&d.dividend_share, LEAVE_AT + CUTOFF as u32),
            d.dividend_share.get(last).copied().unwrap_or(0.0),
            at(&d.stake_share, LEAVE_AT - 1),
            d.stake_share.get(last).copied().unwrap_or(0.0),
            d.minted_share_after_leaving,
            d.first_unpaid_epoch
                .map_or("never".into(), |t| t.to_string()),
            d.dividends_after_return_vs_before,
        );
    }
    for rule in [Rule::Withhold, Rule::Decay(0.25)] {
        let (same, n) = claims_unchanged(rule, cfg)?;
        let _ = writeln!(
            text,
            "{}: {same} of {n} runs (section 11 and the sweep) give the same records as \
             without a cutoff",
            rule.label()
        );
    }
    let series = |f: fn(&Departure) -> &Vec<f64>| {
        runs.iter()
            .map(|d| {
                (
                    d.rule.label(),
                    f(d).iter()
                        .enumerate()
                        .map(|(t, &y)| (t as f64, y))
                        .collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    };
    let mut files = save(
        &Lines {
            title: format!("A node that stops at epoch {LEAVE_AT}: its share of the dividends"),
            x_label: "epoch".into(),
            y_label: "departed node's dividend share".into(),
            series: series(|d| &d.dividend_share),
            reference: None,
            y_range: None,
        },
        &out.join("departure_dividends"),
    )?;
    files.extend(save(
        &Lines {
            title: format!("A node that stops at epoch {LEAVE_AT}: its share of the stake"),
            x_label: "epoch".into(),
            y_label: "departed node's stake share".into(),
            series: series(|d| &d.stake_share),
            reference: None,
            y_range: None,
        },
        &out.join("departure_stake"),
    )?);
    write_json(&out.join("departure.json"), &runs)?;
    files.push(out.join("departure.json"));
    Ok((files, text))
}
