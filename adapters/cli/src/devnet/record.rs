//! What the devnet records each epoch, and the summary computed from it (the numbers of the
//! report, each a plain function of the records).

use std::collections::BTreeMap;

use serde::Serialize;

use super::scenario::Role;

/// One node at the end of one epoch: the ledger's view and the node's own metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeRecord {
    /// `node-<index>`.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its uid on the ledger.
    pub uid: usize,
    /// Whether its process was running.
    pub alive: bool,
    /// Stake after the epoch.
    pub stake: u64,
    /// `R_i`.
    pub rank: f64,
    /// `T_i`.
    pub trust: f64,
    /// `C_i`.
    pub consensus: f64,
    /// `I_i`.
    pub incentive: f64,
    /// `D_i`.
    pub dividends: f64,
    /// Units minted to it by the epoch.
    pub emission: u64,
    /// Its weights row on the ledger `(uid, w)`.
    pub weights: Vec<(u32, u16)>,
    /// Requests it served and refused, answers it got, queries that failed (its metrics).
    pub served: u64,
    /// Requests it refused.
    pub refused: u64,
    /// Peer answers it received.
    pub answers: u64,
    /// Peer queries that failed.
    pub failed: u64,
    /// Rows it submitted that the ledger committed, and refused.
    pub rows_set: u64,
    /// Rows the ledger refused.
    pub rows_refused: u64,
    /// Training steps and the last batch loss (learners).
    pub steps: u64,
    /// The last training loss.
    pub loss: Option<f64>,
}

/// The metagraph and the nodes' metrics at the end of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochRecord {
    /// Epoch of the run, from 1.
    pub epoch: u64,
    /// The ledger's block.
    pub block: u64,
    /// Seconds since the run started.
    pub t: f64,
    /// In scenario order.
    pub nodes: Vec<NodeRecord>,
}

/// Validation losses of one learner (the ablation) at its last evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ablation {
    /// `node-<index>`.
    pub name: String,
    /// Its seed (models and batches).
    pub seed: u64,
    /// Training steps at the evaluation.
    pub steps: u64,
    /// Validation loss by mixture: `peers`, `student`, `zeros`, `alone`.
    pub valid: BTreeMap<String, f64>,
}

/// A node that left during the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Departure {
    /// `node-<index>`.
    pub name: String,
    /// Epoch it left at.
    pub epoch: u64,
    /// `kill` or `term`.
    pub signal: String,
    /// Its stake share at the epoch it left and at the last epoch.
    pub stake_share: (f64, f64),
    /// Its incentive share at the epoch it left and at the last epoch.
    pub incentive_share: (f64, f64),
}

/// The report's numbers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Epochs recorded.
    pub epochs: u64,
    /// Nodes.
    pub nodes: usize,
    /// Scenario seed.
    pub seed: u64,
    /// Stake share by role, per epoch.
    pub stake_share: BTreeMap<String, Vec<f64>>,
    /// Incentive share by role, per epoch.
    pub incentive_share: BTreeMap<String, Vec<f64>>,
    /// Claim 1: learners' and (noise + lazy) nodes' incentive share at the last epoch.
    pub learner_vs_noise_lazy: (f64, f64),
    /// Per epoch, the learners' mean normalised weight on cabal members.
    pub learner_weight_on_cabal: Vec<f64>,
    /// The first epoch from which, to the end, every running learner has trained at least the
    /// warm-up steps, has a row, and gives no cabal member a normalised weight above the trust
    /// threshold (honest rows).
    pub honest_rows_from: Option<u64>,
    /// Claim 2: the cabal's stake share fell at every epoch from `honest_rows_from` on.
    pub cabal_share_falls: Option<bool>,
    /// Claim 3: rows committed and refused over all nodes.
    pub rows: (u64, u64),
    /// Claim 3: whether `deepnode ledger verify` passed on the chain, and its blocks.
    pub chain_verified: Option<u64>,
    /// Claim 4, per learner.
    pub ablation: Vec<Ablation>,
    /// Nodes that left.
    pub departures: Vec<Departure>,
}

/// Share of each role in `value` over all nodes (0 for every role when the total is 0).
pub fn shares(nodes: &[NodeRecord], value: impl Fn(&NodeRecord) -> f64) -> BTreeMap<String, f64> {
    let total: f64 = nodes.iter().map(&value).sum();
    let mut out = BTreeMap::new();
    for n in nodes {
        let v = if total > 0.0 { value(n) / total } else { 0.0 };
        *out.entry(n.role.name().to_owned()).or_insert(0.0) += v;
    }
    out
}

fn share_of(nodes: &[NodeRecord], name: &str, value: impl Fn(&NodeRecord) -> f64) -> f64 {
    let total: f64 = nodes.iter().map(&value).sum();
    let mine: f64 = nodes.iter().filter(|n| n.name == name).map(&value).sum();
    if total > 0.0 { mine / total } else { 0.0 }
}

/// Per learner row of `e` (running learners only), the normalised weights it gives cabal
/// members, or `None` for a learner without a row or with fewer than `warmup` steps.
fn learner_rows_on_cabal(e: &EpochRecord, warmup: u64) -> Vec<Option<Vec<f64>>> {
    let cabal: Vec<usize> = e
        .nodes
        .iter()
        .filter(|n| n.role == Role::Cabal)
        .map(|n| n.uid)
        .collect();
    e.nodes
        .iter()
        .filter(|n| n.role == Role::Learner && n.alive)
        .map(|n| {
            let total: f64 = n.weights.iter().map(|w| f64::from(w.1)).sum();
            (total > 0.0 && n.steps >= warmup).then(|| {
                n.weights
                    .iter()
                    .filter(|w| cabal.contains(&(w.0 as usize)))
                    .map(|w| f64::from(w.1) / total)
                    .collect()
            })
        })
        .collect()
}

/// The summary of `epochs` (in order), with the trust threshold of the run, the ablation and
/// the departures supplied by the run.
pub fn summarize(
    epochs: &[EpochRecord],
    trust_threshold: f64,
    warmup: u64,
    seed: u64,
    chain_verified: Option<u64>,
    ablation: Vec<Ablation>,
    left: &[(String, u64, String)],
) -> Summary {
    let roles: Vec<String> = {
        let mut r: Vec<Role> = epochs
            .iter()
            .flat_map(|e| e.nodes.iter().map(|n| n.role))
            .collect();
        r.sort();
        r.dedup();
        r.into_iter().map(|r| r.name().to_owned()).collect()
    };
    let series = |value: &dyn Fn(&NodeRecord) -> f64| {
        let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for e in epochs {
            let s = shares(&e.nodes, value);
            for r in &roles {
                out.entry(r.clone())
                    .or_default()
                    .push(s.get(r).copied().unwrap_or(0.0));
            }
        }
        out
    };
    let stake_share = series(&|n| n.stake as f64);
    let incentive_share = series(&|n| n.incentive);
    let last = |m: &BTreeMap<String, Vec<f64>>, role: &str| {
        m.get(role).and_then(|v| v.last().copied()).unwrap_or(0.0)
    };
    let learner_vs_noise_lazy = (
        last(&incentive_share, "learner"),
        last(&incentive_share, "noise") + last(&incentive_share, "lazy"),
    );
    let learner_weight_on_cabal = epochs
        .iter()
        .map(|e| {
            let rows = learner_rows_on_cabal(e, 0);
            let sum: f64 = rows.iter().flatten().flatten().sum();
            // `+ 0.0`: an empty sum is -0.0.
            sum / rows.len().max(1) as f64 + 0.0
        })
        .collect();
    let honest = |e: &EpochRecord| {
        let rows = learner_rows_on_cabal(e, warmup);
        !rows.is_empty()
            && rows.iter().all(|r| {
                r.as_ref()
                    .is_some_and(|r| r.iter().all(|&w| w <= trust_threshold))
            })
    };
    let honest_rows_from = epochs
        .iter()
        .rposition(|e| !honest(e))
        .map_or(Some(0), |i| (i + 1 < epochs.len()).then_some(i + 1))
        .and_then(|i| epochs.get(i))
        .map(|e| e.epoch);
    let cabal_share_falls = match (honest_rows_from, stake_share.get("cabal")) {
        (Some(from), Some(cabal)) => {
            let from = epochs.iter().position(|e| e.epoch == from).unwrap_or(0);
            let tail = cabal.get(from..).unwrap_or_default();
            (tail.len() >= 2).then(|| tail.windows(2).all(|w| w[1] < w[0]))
        }
        _ => None,
    };
    let rows = epochs.last().map_or((0, 0), |e| {
        e.nodes
            .iter()
            .fold((0, 0), |a, n| (a.0 + n.rows_set, a.1 + n.rows_refused))
    });
    let departures = left
        .iter()
        .filter_map(|(name, epoch, signal)| {
            let at = epochs.iter().find(|e| e.epoch == *epoch)?;
            let end = epochs.last()?;
            Some(Departure {
                name: name.clone(),
                epoch: *epoch,
                signal: signal.clone(),
                stake_share: (
                    share_of(&at.nodes, name, |n| n.stake as f64),
                    share_of(&end.nodes, name, |n| n.stake as f64),
                ),
                incentive_share: (
                    share_of(&at.nodes, name, |n| n.incentive),
                    share_of(&end.nodes, name, |n| n.incentive),
                ),
            })
        })
        .collect();
    Summary {
        epochs: epochs.len() as u64,
        nodes: epochs.first().map_or(0, |e| e.nodes.len()),
        seed,
        stake_share,
        incentive_share,
        learner_vs_noise_lazy,
        learner_weight_on_cabal,
        honest_rows_from,
        cabal_share_falls,
        rows,
        chain_verified,
        ablation,
        departures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, role: Role, stake: u64, incentive: f64, row: bool) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            role,
            uid: name[5..].parse().unwrap(),
            alive: true,
            stake,
            rank: 0.0,
            trust: 0.0,
            consensus: 0.0,
            incentive,
            dividends: 0.0,
            emission: 0,
            weights: if row { vec![(1, 1)] } else { Vec::new() },
            served: 0,
            refused: 0,
            answers: 0,
            failed: 0,
            rows_set: u64::from(row),
            rows_refused: 0,
            steps: 0,
            loss: None,
        }
    }

    /// Learners 0 and 1 weight node 2 (noise); with `dishonest`, learner 0 also gives the
    /// cabal (node 3) half its row.
    fn epoch(e: u64, cabal_stake: u64, learner_rows: bool, dishonest: bool) -> EpochRecord {
        let mut nodes = vec![
            node("node-0", Role::Learner, 100, 0.6, learner_rows),
            node("node-1", Role::Learner, 100, 0.3, learner_rows),
            node("node-2", Role::Noise, 100, 0.1, true),
            node("node-3", Role::Cabal, cabal_stake, 0.0, true),
        ];
        if dishonest {
            nodes[0].weights = vec![(2, 1), (3, 1)];
        }
        EpochRecord {
            epoch: e,
            block: e * 10,
            t: e as f64,
            nodes,
        }
    }

    #[test]
    fn the_summary_reads_the_claims_off_the_records() {
        let epochs = vec![
            epoch(1, 100, false, false),
            epoch(2, 110, true, true),
            epoch(3, 100, true, false),
            epoch(4, 90, true, false),
            epoch(5, 80, true, false),
        ];
        let left = [("node-1".to_owned(), 3, "kill".to_owned())];
        let s = summarize(&epochs, 0.05, 0, 7, Some(40), Vec::new(), &left);
        assert_eq!(s.epochs, 5);
        let (l, nl) = s.learner_vs_noise_lazy;
        assert!(
            (l - 0.9).abs() < 1e-12 && (nl - 0.1).abs() < 1e-12,
            "{l} {nl}"
        );
        // Epoch 2 weights the cabal: honest rows from epoch 3 on (the rise at 2 is before).
        assert_eq!(s.learner_weight_on_cabal[1], 0.25);
        assert_eq!(s.honest_rows_from, Some(3));
        // From epoch 3 on: 100 -> 90 -> 80 out of 400, 390, 380: falls at every step.
        assert_eq!(s.cabal_share_falls, Some(true));
        assert_eq!(s.rows, (4, 0), "a row each, summed at the last epoch");
        assert_eq!(s.stake_share["cabal"][0], 0.25);
        let (then, last) = s.departures[0].incentive_share;
        assert!((then - 0.3).abs() < 1e-12 && (last - 0.3).abs() < 1e-12);
        // A rise anywhere after the honest rows breaks the claim.
        let epochs = vec![
            epoch(1, 100, true, false),
            epoch(2, 90, true, false),
            epoch(3, 95, true, false),
        ];
        let s = summarize(&epochs, 0.05, 0, 7, None, Vec::new(), &[]);
        assert_eq!(s.honest_rows_from, Some(1));
        assert_eq!(s.cabal_share_falls, Some(false));
        // Before the warm-up, rows do not count as informed.
        let mut epochs = epochs;
        for (e, steps) in epochs.iter_mut().zip([10, 20, 30]) {
            for n in &mut e.nodes {
                n.steps = steps;
            }
        }
        let s = summarize(&epochs, 0.05, 20, 7, None, Vec::new(), &[]);
        assert_eq!(s.honest_rows_from, Some(2));
        // Dishonest to the end: no verdict.
        let epochs = vec![epoch(1, 100, true, true), epoch(2, 90, true, true)];
        let s = summarize(&epochs, 0.05, 0, 7, None, Vec::new(), &[]);
        assert_eq!((s.honest_rows_from, s.cabal_share_falls), (None, None));
    }
}
