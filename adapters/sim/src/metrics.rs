//! The per-epoch metrics: a pure function of the epoch's input state and its outputs.

use std::ops::Range;

use deepnode_consensus::{OutputBuffers, Scalar, State};
use serde::Serialize;

use crate::scenario::Group;

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

/// What the metrics know of the population besides the state: its groups and who is present.
pub struct Population<'a> {
    /// The scenario's groups, in order.
    pub groups: &'a [Group],
    /// Each node's group index.
    pub group_of: &'a [u32],
    /// Each group's uids.
    pub ranges: &'a [Range<usize>],
    /// Whether each node is present.
    pub active: &'a [bool],
}

/// The record of epoch `epoch`: `input` is the state it ran on (stake, rows and params before
/// minting), `out` and `loss` what `deepnode_consensus::epoch_in_place` returned, `rejected`
/// the rows refused for `min_allowed_weights` while building the input.
pub fn epoch_record<N: Scalar>(
    epoch: u32,
    input: &State<N>,
    population: &Population<'_>,
    rejected: u32,
    out: &OutputBuffers<N>,
    loss: N,
) -> EpochRecord {
    let Population {
        groups: group_specs,
        group_of,
        ranges,
        active,
    } = *population;
    let g = ranges.len();
    let mut stake_before = vec![0u128; g];
    for (i, &s) in input.stake.iter().enumerate() {
        stake_before[group_of[i] as usize] += u128::from(s);
    }
    let mut incentive = vec![0.0; g];
    let mut dividends = vec![0.0; g];
    let mut minted = vec![0u64; g];
    let mut stake = vec![0u128; g];
    for (i, &gi) in group_of.iter().enumerate().take(out.stake.len()) {
        let gi = gi as usize;
        incentive[gi] += out.incentive[i].to_f64();
        dividends[gi] += out.dividends[i].to_f64();
        minted[gi] += out.minted[i];
        stake[gi] += u128::from(out.stake[i]);
    }
    let total: u128 = stake.iter().sum();
    let total_before: u128 = stake_before.iter().sum();
    let div_total: f64 = dividends.iter().sum();
    let share = |x: u128, of: u128| if of == 0 { 0.0 } else { x as f64 / of as f64 };
    let groups = (0..g)
        .map(|gi| {
            let before = share(stake_before[gi], total_before);
            let hold = if before < 1.0 {
                ((before * total as f64 - stake[gi] as f64) / (1.0 - before)).max(0.0)
            } else {
                0.0
            };
            GroupRecord {
                group: group_specs[gi].name.clone(),
                active: ranges[gi].clone().filter(|&i| active[i]).count() as u32,
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
    let (entries, rows) = input
        .weights
        .iter()
        .filter(|r| !r.is_empty())
        .fold((0usize, 0usize), |(e, r), row| {
            (e + row.iter().filter(|x| x.1 > 0).count(), r + 1)
        });
    let present: Vec<u64> = (0..out.stake.len())
        .filter(|&i| active[i])
        .map(|i| out.stake[i])
        .collect();
    EpochRecord {
        epoch,
        emission: input.params.emission,
        minted: out.minted.iter().sum(),
        total_stake: u64::try_from(total).unwrap_or(u64::MAX),
        loss: loss.to_f64(),
        min_allowed_weights: input.params.min_allowed_weights,
        mean_weights_per_row: if rows == 0 {
            0.0
        } else {
            entries as f64 / rows as f64
        },
        rejected_rows: rejected,
        gini: gini(&present),
        groups,
    }
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
    use deepnode_consensus::{Params, epoch_in_place};

    use super::*;
    use crate::scenario::{Quality, Strategy};

    #[test]
    fn a_record_is_a_function_of_the_input_and_the_outputs() {
        let group = |name: &str, count| Group {
            name: name.into(),
            count,
            stake: 100,
            quality: Quality::Constant(1.0),
            strategy: Strategy::Selfish,
            active_at_start: true,
        };
        let groups = [group("a", 2), group("b", 1)];
        let input = State::<f64> {
            params: Params {
                emission: 1000,
                min_allowed_weights: 1,
                ..Params::default()
            },
            stake: vec![300, 100, 0],
            weights: vec![vec![(1, 1)], vec![(0, 1)], vec![]],
            bonds: vec![Vec::new(); 3],
            block: 0,
            last_update: Vec::new(),
        };
        let population = Population {
            groups: &groups,
            group_of: &[0, 0, 1],
            ranges: &[0..2, 2..3],
            active: &[true, true, false],
        };
        let mut out = OutputBuffers::new(3);
        let mut bonds = input.bonds.clone();
        let loss = epoch_in_place(
            &input.params,
            &input.stake,
            &input.weights,
            &mut bonds,
            out.outputs(),
        )
        .unwrap();
        let record = epoch_record(7, &input, &population, 1, &out, loss);
        assert_eq!(record, epoch_record(7, &input, &population, 1, &out, loss));
        assert_eq!(
            (record.epoch, record.emission, record.rejected_rows),
            (7, 1000, 1)
        );
        assert_eq!(record.minted, out.minted.iter().sum::<u64>());
        assert_eq!(record.total_stake, 400 + record.minted);
        assert_eq!(record.mean_weights_per_row, 1.0);
        let (a, b) = (&record.groups[0], &record.groups[1]);
        assert_eq!((a.active, b.active), (2, 0));
        assert_eq!((a.stake_share, b.stake_share), (1.0, 0.0));
        assert!((a.incentive_share - 1.0).abs() < 1e-12 && b.incentive_share == 0.0);
        assert_eq!(a.hold_stake, 0);
    }

    #[test]
    fn gini_of_known_distributions() {
        assert_eq!(gini(&[5, 5, 5, 5]), 0.0);
        assert!((gini(&[0, 0, 0, 10]) - 0.75).abs() < 1e-12);
        assert_eq!(gini(&[]), 0.0);
    }
}
