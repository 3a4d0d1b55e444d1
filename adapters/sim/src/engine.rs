//! The multi-epoch loop: events, strategies' rows, one call of
//! `deepnode_consensus::epoch_in_place` per epoch (bonds merged in place, outputs in buffers
//! kept across epochs), the controller, and the per-epoch record. No epoch math lives here.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use deepnode_conformance::contract::FromJson;
use deepnode_consensus::{
    BondMode, ControllerState, OutputBuffers, Params, State, Uid, Weight, epoch_in_place,
};
use serde::Serialize;

use crate::SimError;
use crate::rng::Rng;
use crate::scenario::{Action, Emission, Quality, Scenario, Strategy};

/// What one epoch did, for the metrics files and the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochRecord {
    /// 0-based epoch.
    pub epoch: u32,
    /// Units the epoch could mint (`params.emission`).
    pub emission: u64,
    /// Units minted (at most `emission`).
    pub minted: u64,
    /// Total stake after minting.
    pub total_stake: u64,
    /// Consensus loss `L`.
    pub loss: f64,
    /// `min_allowed_weights` in force during this epoch.
    pub min_allowed_weights: u32,
    /// Mean non-zero entries per submitted (non-empty) row.
    pub mean_weights_per_row: f64,
    /// Rows refused because they had fewer than `min_allowed_weights` non-zero entries.
    pub rejected_rows: u32,
    /// Gini coefficient of present nodes' stake after minting.
    pub gini: f64,
    /// One entry per scenario group, in scenario order.
    pub groups: Vec<GroupRecord>,
}

/// One group's figures for one epoch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupRecord {
    /// The group's name.
    pub group: String,
    /// Present nodes.
    pub active: u32,
    /// Stake after minting.
    pub stake: u64,
    /// Share of total stake after minting.
    pub stake_share: f64,
    /// Sum of the group's normalised incentive `i_j`.
    pub incentive_share: f64,
    /// The group's share of all dividends `d_i`.
    pub dividend_share: f64,
    /// Units minted to the group.
    pub minted: u64,
    /// Units the group would have to add after this epoch to keep its share from before it
    /// (`(s * S' - C') / (1 - s)`, 0 when it did not lose share).
    pub hold_stake: u64,
}

/// A population running epoch after epoch on backend `N` (`f64` or `Fx`).
pub struct Simulation<N> {
    scenario: Scenario,
    state: State<N>,
    quality: Vec<f64>,
    group_of: Vec<u32>,
    ranges: Vec<Range<usize>>,
    strategies: Vec<Strategy>,
    active: Vec<bool>,
    active_list: Vec<Uid>,
    dirty: Vec<bool>,
    built_at: Vec<u32>,
    stale_rows: BTreeMap<usize, Vec<(Uid, Weight)>>,
    incentive: Vec<f64>,
    trust: Vec<f64>,
    consensus: Vec<f64>,
    controller: ControllerState,
    rows_built_for: u32,
    rng: Rng,
    epoch: u32,
    prepared: Option<Prepared>,
    records: Vec<EpochRecord>,
    epoch_times: Vec<Duration>,
    /// The epoch's outputs, kept from epoch to epoch so that a steady-state epoch allocates
    /// nothing (bond rows are rewritten in place, in `state.bonds`).
    out: OutputBuffers<N>,
}

struct Prepared {
    rejected: u32,
    stake_before: Vec<u128>,
}

const MAX_WEIGHT: Weight = Weight::MAX;

impl<N: FromJson> Simulation<N> {
    /// Builds the population at epoch 0: qualities drawn from the seed, stakes set, no bonds.
    pub fn new(scenario: Scenario) -> Result<Self, SimError> {
        let n = scenario.nodes();
        let mut rng = Rng::new(scenario.seed);
        let mut quality = Vec::with_capacity(n);
        let mut group_of = Vec::with_capacity(n);
        let mut ranges = Vec::with_capacity(scenario.groups.len());
        let mut stake = Vec::with_capacity(n);
        let mut active = Vec::with_capacity(n);
        for (gi, g) in scenario.groups.iter().enumerate() {
            let start = quality.len();
            for _ in 0..g.count {
                let q = match g.quality {
                    Quality::Constant(v) => v,
                    Quality::Uniform { low, high } => low + (high - low) * rng.unit(),
                    Quality::Normal { mean, sd } => mean + sd * rng.normal(),
                };
                quality.push(q.max(0.0));
                // gi < groups.len() <= u32 nodes: the scenario checked the node count.
                group_of.push(gi as u32);
                stake.push(if g.active_at_start { g.stake } else { 0 });
                active.push(g.active_at_start);
            }
            ranges.push(start..quality.len());
        }
        let p = scenario.params;
        let params = Params {
            rho: N::from_json(p.rho),
            kappa: N::from_json(p.kappa),
            self_share: N::from_json(p.self_share),
            emission: 0,
            bonds: match p.ema_alpha {
                None => BondMode::Cumulative,
                Some(alpha) => BondMode::Ema {
                    alpha: N::from_json(alpha),
                },
            },
            mask_self_weights: p.mask_self_weights,
            trust_threshold: N::from_json(p.trust_threshold),
            min_allowed_weights: p.min_allowed_weights,
        };
        deepnode_consensus::check_params(&params)
            .map_err(|source| SimError::Epoch { epoch: 0, source })?;
        let strategies = scenario.groups.iter().map(|g| g.strategy.clone()).collect();
        let mut sim = Simulation {
            state: State {
                params,
                stake,
                weights: vec![Vec::new(); n],
                bonds: vec![Vec::new(); n],
            },
            quality,
            group_of,
            ranges,
            strategies,
            active_list: Vec::new(),
            dirty: vec![true; n],
            built_at: vec![0; n],
            stale_rows: BTreeMap::new(),
            incentive: vec![0.0; n],
            trust: vec![0.0; n],
            consensus: vec![0.0; n],
            controller: ControllerState {
                min_allowed_weights: p.min_allowed_weights,
                calm_epochs: 0,
            },
            rows_built_for: p.min_allowed_weights,
            rng: Rng::fork(scenario.seed, 1),
            epoch: 0,
            prepared: None,
            records: Vec::with_capacity(scenario.epochs as usize),
            epoch_times: Vec::with_capacity(scenario.epochs as usize),
            out: OutputBuffers::new(n),
            active,
            scenario,
        };
        sim.refresh_active_list();
        sim.set_next_params();
        Ok(sim)
    }

    /// Runs every remaining epoch of the scenario, calling `on_epoch` after each.
    pub fn run(&mut self, mut on_epoch: impl FnMut(&EpochRecord)) -> Result<(), SimError> {
        while self.epoch < self.scenario.epochs {
            on_epoch(self.step()?);
        }
        Ok(())
    }

    /// Runs one epoch and returns its record.
    pub fn step(&mut self) -> Result<&EpochRecord, SimError> {
        self.prepare();
        self.finish()
    }

    /// Applies this epoch's events, sets emission and `min_allowed_weights`, and builds every
    /// row; returns the state the next epoch will run on (the `deepnode epoch` input). Calling
    /// it twice before [`Simulation::finish`] changes nothing.
    pub fn prepare(&mut self) -> &State<N> {
        if self.prepared.is_none() {
            let prep = self.prepare_inner();
            self.prepared = Some(prep);
        }
        &self.state
    }

    fn prepare_inner(&mut self) -> Prepared {
        {
            let t = self.epoch;
            let events: Vec<_> = self
                .scenario
                .events
                .iter()
                .filter(|e| e.epoch == t)
                .cloned()
                .collect();
            for e in events {
                self.apply(e.group, e.action);
            }
            self.set_next_params();
            let m = self.state.params.min_allowed_weights;
            if m != self.rows_built_for {
                self.dirty.fill(true);
                self.rows_built_for = m;
            }
            let rejected = self.build_rows();
            let mut stake_before = vec![0u128; self.ranges.len()];
            for (i, &s) in self.state.stake.iter().enumerate() {
                stake_before[self.group_of[i] as usize] += u128::from(s);
            }
            Prepared {
                rejected,
                stake_before,
            }
        }
    }

    /// Runs the prepared epoch through the consensus crate, advances stake, bonds and the
    /// controller, and records the epoch.
    pub fn finish(&mut self) -> Result<&EpochRecord, SimError> {
        let prep = match self.prepared.take() {
            Some(p) => p,
            None => self.prepare_inner(),
        };
        let t = self.epoch;
        let emission = self.state.params.emission;
        let min_allowed_weights = self.state.params.min_allowed_weights;
        let start = Instant::now();
        // Rows are built sorted by uid and bonds come sorted out of the previous epoch, as
        // the buffer API requires; bond rows are merged in place.
        let loss = epoch_in_place(
            &self.state.params,
            &self.state.stake,
            &self.state.weights,
            &mut self.state.bonds,
            self.out.outputs(),
        )
        .map_err(|source| SimError::Epoch { epoch: t, source })?;
        self.epoch_times.push(start.elapsed());
        let out = &self.out;

        let g = self.ranges.len();
        let mut incentive = vec![0.0; g];
        let mut dividends = vec![0.0; g];
        let mut minted = vec![0u64; g];
        let mut stake = vec![0u128; g];
        for i in 0..out.stake.len() {
            let gi = self.group_of[i] as usize;
            self.incentive[i] = out.incentive[i].to_json();
            self.trust[i] = out.trust[i].to_json();
            self.consensus[i] = out.consensus[i].to_json();
            incentive[gi] += self.incentive[i];
            dividends[gi] += out.dividends[i].to_json();
            minted[gi] += out.minted[i];
            stake[gi] += u128::from(out.stake[i]);
        }
        let total: u128 = stake.iter().sum();
        let total_before: u128 = prep.stake_before.iter().sum();
        let div_total: f64 = dividends.iter().sum();
        let share = |x: u128, of: u128| if of == 0 { 0.0 } else { x as f64 / of as f64 };
        let groups = (0..g)
            .map(|gi| {
                let before = share(prep.stake_before[gi], total_before);
                let hold = if before < 1.0 {
                    ((before * total as f64 - stake[gi] as f64) / (1.0 - before)).max(0.0)
                } else {
                    0.0
                };
                GroupRecord {
                    group: self.scenario.groups[gi].name.clone(),
                    active: self.ranges[gi].clone().filter(|&i| self.active[i]).count() as u32,
                    stake: u64::try_from(stake[gi]).unwrap_or(u64::MAX),
                    stake_share: share(stake[gi], total),
                    incentive_share: incentive[gi],
                    dividend_share: if div_total > 0.0 {
                        dividends[gi] / div_total
                    } else {
                        0.0
                    },
                    minted: minted[gi],
                    hold_stake: hold.round() as u64,
                }
            })
            .collect();
        let (entries, rows) = self
            .state
            .weights
            .iter()
            .filter(|r| !r.is_empty())
            .fold((0usize, 0usize), |(e, r), row| {
                (e + row.iter().filter(|x| x.1 > 0).count(), r + 1)
            });
        let present: Vec<u64> = (0..out.stake.len())
            .filter(|&i| self.active[i])
            .map(|i| out.stake[i])
            .collect();
        let record = EpochRecord {
            epoch: t,
            emission,
            minted: out.minted.iter().sum(),
            total_stake: u64::try_from(total).unwrap_or(u64::MAX),
            loss: loss.to_json(),
            min_allowed_weights,
            mean_weights_per_row: if rows == 0 {
                0.0
            } else {
                entries as f64 / rows as f64
            },
            rejected_rows: prep.rejected,
            gini: gini(&present),
            groups,
        };
        if let Some(policy) = self.scenario.controller {
            self.controller = policy.next(self.controller, loss);
        }
        std::mem::swap(&mut self.state.stake, &mut self.out.stake);
        self.set_next_params();
        self.epoch += 1;
        self.records.push(record);
        // Just pushed.
        Ok(self.records.last().expect("a record was pushed"))
    }

    /// The scenario being run.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The current state: the input of the next epoch (stake and bonds after the last one,
    /// next emission and `min_allowed_weights`; the rows are the last submitted until
    /// [`Simulation::prepare`] builds the next ones).
    pub fn state(&self) -> &State<N> {
        &self.state
    }

    /// Every finished epoch's record, in order.
    pub fn records(&self) -> &[EpochRecord] {
        &self.records
    }

    /// Epochs finished.
    pub fn epochs_done(&self) -> u32 {
        self.epoch
    }

    /// Wall time spent inside `deepnode_consensus::epoch_in_place` so far.
    pub fn epoch_time(&self) -> Duration {
        self.epoch_times.iter().sum()
    }

    /// Wall time inside `deepnode_consensus::epoch_in_place`, one entry per finished epoch.
    pub fn epoch_times(&self) -> &[Duration] {
        &self.epoch_times
    }

    /// Last epoch's `(trust, consensus, group)` for every present node.
    pub fn trust_consensus(&self) -> Vec<(f64, f64, usize)> {
        (0..self.trust.len())
            .filter(|&i| self.active[i])
            .map(|i| (self.trust[i], self.consensus[i], self.group_of[i] as usize))
            .collect()
    }

    /// The uids of group `g` (by scenario order).
    pub fn group_uids(&self, g: usize) -> Range<usize> {
        self.ranges[g].clone()
    }

    /// The hidden quality of each node.
    pub fn quality(&self) -> &[f64] {
        &self.quality
    }

    /// Emission and `min_allowed_weights` of the next epoch, from the current stake and the
    /// controller, so that [`Simulation::state`] is always a valid next input.
    fn set_next_params(&mut self) {
        let total: u128 = self.state.stake.iter().map(|&s| u128::from(s)).sum();
        self.state.params.emission = match self.scenario.emission {
            Emission::Fixed(units) => units,
            // `as` saturates: a rate beyond u64 mints u64::MAX.
            Emission::Rate(tau) => (tau * total as f64) as u64,
        };
        self.state.params.min_allowed_weights = match self.scenario.controller {
            Some(_) => self.controller.min_allowed_weights,
            None => self.scenario.params.min_allowed_weights,
        };
    }

    fn refresh_active_list(&mut self) {
        self.active_list = (0..self.active.len())
            .filter(|&i| self.active[i])
            .map(|i| i as Uid)
            .collect();
    }

    fn apply(&mut self, g: usize, action: Action) {
        let range = self.ranges[g].clone();
        match action {
            Action::Join => {
                let stake = self.scenario.groups[g].stake;
                for i in range {
                    if !self.active[i] {
                        self.active[i] = true;
                        self.state.stake[i] = stake;
                    }
                }
                self.dirty.fill(true);
                self.refresh_active_list();
            }
            Action::Leave => {
                for i in range {
                    self.active[i] = false;
                    self.state.stake[i] = 0;
                    self.state.weights[i].clear();
                    if let Some(row) = self.state.bonds.get_mut(i) {
                        row.clear();
                    }
                    self.stale_rows.remove(&i);
                }
                self.dirty.fill(true);
                self.refresh_active_list();
            }
            Action::AddStake(units) => {
                for i in range.filter(|&i| self.active[i]) {
                    self.state.stake[i] = self.state.stake[i].saturating_add(units);
                }
            }
            Action::SetStrategy(s) => {
                self.strategies[g] = s;
                for i in range {
                    self.dirty[i] = true;
                    self.stale_rows.remove(&i);
                }
            }
        }
    }

    /// Builds this epoch's rows; returns how many were refused for `min_allowed_weights`.
    fn build_rows(&mut self) -> u32 {
        let t = self.epoch;
        let m = self.state.params.min_allowed_weights as usize;
        // Copiers share one ranking of last epoch's incentive.
        let needs_ranking = self
            .strategies
            .iter()
            .any(|s| matches!(s, Strategy::Copier { .. }));
        let ranking = if needs_ranking {
            let mut r: Vec<Uid> = self
                .active_list
                .iter()
                .copied()
                .filter(|&j| self.incentive[j as usize] > 0.0)
                .collect();
            r.sort_by(|&a, &b| {
                self.incentive[b as usize]
                    .total_cmp(&self.incentive[a as usize])
                    .then(a.cmp(&b))
            });
            r
        } else {
            Vec::new()
        };
        let mut rejected = 0;
        for i in 0..self.state.stake.len() {
            if !self.active[i] {
                self.state.weights[i].clear();
                continue;
            }
            let g = self.group_of[i] as usize;
            let rebuild = self.dirty[i] || self.state.weights[i].is_empty();
            let row = match &self.strategies[g] {
                Strategy::Honest {
                    top_k,
                    noise,
                    sample,
                    refresh,
                } => {
                    let due = *refresh > 0 && t.saturating_sub(self.built_at[i]) >= *refresh;
                    (rebuild || due).then(|| {
                        honest_row(
                            i,
                            &self.quality,
                            &self.active_list,
                            (*top_k as usize).max(m),
                            *noise,
                            *sample as usize,
                            &mut self.rng,
                        )
                    })
                }
                Strategy::Stale { top_k, noise } => {
                    let row = self.stale_rows.entry(i).or_insert_with(|| {
                        honest_row(
                            i,
                            &self.quality,
                            &self.active_list,
                            *top_k as usize,
                            *noise,
                            0,
                            &mut self.rng,
                        )
                    });
                    Some(row.clone())
                }
                Strategy::Cabal => rebuild.then(|| self.members(&[g])),
                Strategy::Support { groups } => rebuild.then(|| {
                    let gs: Vec<usize> = groups
                        .iter()
                        .filter_map(|n| self.scenario.groups.iter().position(|x| x.name == *n))
                        .collect();
                    self.members(&gs)
                }),
                Strategy::Selfish => rebuild.then(|| vec![(i as Uid, MAX_WEIGHT)]),
                Strategy::Copier { top_k } => Some(copier_row(
                    i,
                    &ranking,
                    &self.incentive,
                    &self.active_list,
                    (*top_k as usize).max(m),
                    &mut self.rng,
                )),
                Strategy::Random { k } => Some(random_row(
                    i,
                    &self.active_list,
                    (*k as usize).max(m),
                    &mut self.rng,
                )),
            };
            if let Some(row) = row {
                self.state.weights[i] = row;
                self.built_at[i] = t;
            }
            self.dirty[i] = false;
            // The rule of `deepnode_consensus::validate_row` for rows built sorted and unique
            // (that function's duplicate scan is quadratic in the row length).
            let mask = self.state.params.mask_self_weights;
            let nonzero = self.state.weights[i]
                .iter()
                .filter(|&&(u, w)| w > 0 && !(mask && u as usize == i))
                .count();
            if nonzero < m {
                self.state.weights[i].clear();
                self.dirty[i] = true;
                rejected += 1;
            }
        }
        rejected
    }

    fn members(&self, groups: &[usize]) -> Vec<(Uid, Weight)> {
        let mut row: Vec<(Uid, Weight)> = groups
            .iter()
            .flat_map(|&g| self.ranges[g].clone())
            .filter(|&j| self.active[j])
            .map(|j| (j as Uid, MAX_WEIGHT))
            .collect();
        row.sort_unstable_by_key(|e| e.0);
        row.dedup_by_key(|e| e.0);
        row
    }
}

/// Top `k` peers of node `i` by a noisy quality estimate, weights proportional to it.
fn honest_row(
    i: usize,
    quality: &[f64],
    active: &[Uid],
    k: usize,
    noise: f64,
    sample: usize,
    rng: &mut Rng,
) -> Vec<(Uid, Weight)> {
    let me = i as Uid;
    let examine = sample.max(k.saturating_mul(2));
    let candidates: Vec<Uid> = if sample == 0 || examine >= active.len() {
        active.iter().copied().filter(|&j| j != me).collect()
    } else {
        let mut c: Vec<Uid> = (0..examine)
            .map(|_| active[rng.below(active.len())])
            .filter(|&j| j != me)
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    let mut est: Vec<(f64, Uid)> = candidates
        .into_iter()
        .map(|j| (quality[j as usize] + noise * rng.normal(), j))
        .collect();
    let keep = k.min(est.len());
    if keep == 0 {
        return Vec::new();
    }
    let by_estimate = |a: &(f64, Uid), b: &(f64, Uid)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if keep < est.len() {
        est.select_nth_unstable_by(keep - 1, by_estimate);
        est.truncate(keep);
    }
    proportional(est)
}

/// Scales positive scores to u16 weights (largest = 65535, every kept peer at least 1).
fn proportional(mut scored: Vec<(f64, Uid)>) -> Vec<(Uid, Weight)> {
    let top = scored.iter().map(|e| e.0).fold(0.0f64, f64::max);
    scored.sort_unstable_by_key(|e| e.1);
    scored
        .into_iter()
        .map(|(s, j)| {
            let w = if top > 0.0 {
                (f64::from(MAX_WEIGHT) * s.max(0.0) / top).round()
            } else {
                1.0
            };
            (j, w.clamp(1.0, f64::from(MAX_WEIGHT)) as Weight)
        })
        .collect()
}

fn copier_row(
    i: usize,
    ranking: &[Uid],
    incentive: &[f64],
    active: &[Uid],
    k: usize,
    rng: &mut Rng,
) -> Vec<(Uid, Weight)> {
    if ranking.is_empty() {
        return random_row(i, active, k, rng);
    }
    let top: Vec<(f64, Uid)> = ranking
        .iter()
        .copied()
        .filter(|&j| j as usize != i)
        .take(k)
        .map(|j| (incentive[j as usize], j))
        .collect();
    proportional(top)
}

fn random_row(i: usize, active: &[Uid], k: usize, rng: &mut Rng) -> Vec<(Uid, Weight)> {
    let me = i as Uid;
    let others = active.len() - usize::from(active.contains(&me));
    let k = k.min(others);
    let mut picked: Vec<Uid> = Vec::with_capacity(k);
    if k.saturating_mul(2) >= others {
        // Dense: a partial shuffle of the candidates.
        let mut c: Vec<Uid> = active.iter().copied().filter(|&j| j != me).collect();
        for s in 0..k {
            let r = s + rng.below(c.len() - s);
            c.swap(s, r);
        }
        picked.extend_from_slice(&c[..k]);
        picked.sort_unstable();
    } else {
        while picked.len() < k {
            for _ in picked.len()..k {
                let j = active[rng.below(active.len())];
                if j != me {
                    picked.push(j);
                }
            }
            picked.sort_unstable();
            picked.dedup();
        }
    }
    picked
        .into_iter()
        .map(|j| (j, (1 + rng.below(usize::from(MAX_WEIGHT))) as Weight))
        .collect()
}

/// Gini coefficient of non-negative amounts (0: equal; towards 1: one holds all).
pub fn gini(values: &[u64]) -> f64 {
    let mut v: Vec<u64> = values.to_vec();
    v.sort_unstable();
    let n = v.len() as f64;
    let total: f64 = v.iter().map(|&x| x as f64).sum();
    if v.is_empty() || total == 0.0 {
        return 0.0;
    }
    let weighted: f64 = v
        .iter()
        .enumerate()
        .map(|(k, &x)| (k as f64 + 1.0) * x as f64)
        .sum();
    2.0 * weighted / (n * total) - (n + 1.0) / n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_of_known_distributions() {
        assert_eq!(gini(&[5, 5, 5, 5]), 0.0);
        assert!((gini(&[0, 0, 0, 10]) - 0.75).abs() < 1e-12);
        assert_eq!(gini(&[]), 0.0);
    }

    #[test]
    fn rows_are_sorted_unique_and_sized() {
        let mut rng = Rng::new(3);
        let active: Vec<Uid> = (0..50).collect();
        let quality: Vec<f64> = (0..50).map(|j| j as f64 / 50.0).collect();
        let h = honest_row(7, &quality, &active, 5, 0.0, 0, &mut rng);
        assert_eq!(
            h.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![45, 46, 47, 48, 49]
        );
        assert_eq!(h[4].1, MAX_WEIGHT);
        for k in [1, 10, 30, 49, 80] {
            let r = random_row(7, &active, k, &mut rng);
            assert_eq!(r.len(), k.min(49));
            assert!(r.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(r.iter().all(|e| e.0 != 7 && e.1 > 0));
        }
        let sampled = honest_row(7, &quality, &active, 4, 0.1, 10, &mut rng);
        assert_eq!(sampled.len(), 4);
        assert!(sampled.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
