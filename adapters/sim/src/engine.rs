//! The multi-epoch loop: events, strategies' rows, one call of
//! `deepnode_consensus::epoch_in_place` per epoch (bonds merged in place, outputs in buffers
//! kept across epochs), the controller, and the per-epoch record. No epoch math lives here.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use deepnode_consensus::Scalar;
use deepnode_consensus::{
    Activity, ControllerState, OutputBuffers, State, Uid, Weight, epoch_in_place_at, row_room,
    validate_row,
};

use crate::SimError;
use crate::metrics::{EpochRecord, Population, epoch_record};
use crate::rng::Rng;
use crate::scenario::{Action, Emission, Quality, Scenario, Strategy};
use crate::strategies::{MAX_WEIGHT, copier_row, honest_row, random_row};

/// A population running epoch after epoch on backend `N` (`f64` or `Fx`).
pub struct Simulation<N> {
    scenario: Scenario,
    state: State<N>,
    quality: Vec<f64>,
    group_of: Vec<u32>,
    ranges: Vec<Range<usize>>,
    strategies: Vec<Strategy>,
    active: Vec<bool>,
    /// Nodes stopped by a `leave` event with `stop`: inactive, their state kept.
    stopped: Vec<bool>,
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
}

impl<N: Scalar> Simulation<N> {
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
        let params = p.to_params::<N>(0);
        deepnode_consensus::check_params(&params)
            .map_err(|source| SimError::Epoch { epoch: 0, source })?;
        let strategies = scenario.groups.iter().map(|g| g.strategy.clone()).collect();
        let mut sim = Simulation {
            state: State {
                params,
                stake,
                weights: vec![Vec::new(); n],
                bonds: vec![Vec::new(); n],
                block: 0,
                last_update: vec![0; n],
            },
            stopped: vec![false; n],
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
            Prepared {
                rejected: self.build_rows(),
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
        let start = Instant::now();
        // Rows are built sorted by uid and bonds come sorted out of the previous epoch, as
        // the buffer API requires; bond rows are merged in place.
        self.state.block = u64::from(t);
        let activity = Activity {
            block: self.state.block,
            last_update: &self.state.last_update,
        };
        let loss = epoch_in_place_at(
            &self.state.params,
            &self.state.stake,
            &self.state.weights,
            activity,
            &mut self.state.bonds,
            self.out.outputs(),
        )
        .map_err(|source| SimError::Epoch { epoch: t, source })?;
        self.epoch_times.push(start.elapsed());
        let population = Population {
            groups: &self.scenario.groups,
            group_of: &self.group_of,
            ranges: &self.ranges,
            active: &self.active,
        };
        let record = epoch_record(t, &self.state, &population, prep.rejected, &self.out, loss);
        for (i, ((inc, tr), c)) in self
            .incentive
            .iter_mut()
            .zip(&mut self.trust)
            .zip(&mut self.consensus)
            .enumerate()
        {
            *inc = self.out.incentive[i].to_f64();
            *tr = self.out.trust[i].to_f64();
            *c = self.out.consensus[i].to_f64();
        }
        if let Some(policy) = self.scenario.controller {
            let room = row_room(self.active_list.len(), self.state.params.mask_self_weights);
            self.controller = policy.next(self.controller, loss, room);
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
                        if !self.stopped[i] {
                            self.state.stake[i] = stake;
                        }
                        self.stopped[i] = false;
                    }
                }
                self.dirty.fill(true);
                self.refresh_active_list();
            }
            Action::Leave => {
                for i in range {
                    self.active[i] = false;
                    self.stopped[i] = false;
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
            Action::Stop => {
                for i in range {
                    if self.active[i] {
                        self.active[i] = false;
                        self.stopped[i] = true;
                    }
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
        let n = self.state.stake.len();
        for i in 0..n {
            if !self.active[i] {
                // A stopped node's last row stays as it was, never set again.
                if !self.stopped[i] {
                    self.state.weights[i].clear();
                }
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
            // Rows are built sorted, so the ledger's check is linear here.
            let params = &self.state.params;
            let refused = validate_row(params, i, &self.state.weights[i], n, usize::MAX).is_err();
            if refused {
                self.state.weights[i].clear();
                self.dirty[i] = true;
                rejected += 1;
            } else {
                self.state.last_update[i] = u64::from(t);
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
