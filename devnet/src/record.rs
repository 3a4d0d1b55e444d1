//! What the devnet records each epoch, and the summary computed from it (the numbers of the
//! report, each a plain function of the records).

use std::collections::BTreeMap;

use deepnode_node::life::Status;
use serde::Serialize;

use crate::roles::Role;
use crate::scenario::Scenario;

/// One node at the end of one epoch: the ledger's view and the node's own metrics.
#[derive(Clone, Debug, PartialEq)]
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
    /// The last line of its metrics file (requests served and refused, answers, failed
    /// queries, rows committed and refused, training steps and loss); the default before its
    /// first line.
    pub metrics: Status,
}

/// A node record in `metagraph.json`: the ledger's view, then the counters of its metrics
/// (`served`, `refused`, `answers`, `failed`, `rows_set`, `rows_refused`, `steps`, `loss`),
/// in one flat object.
impl Serialize for NodeRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let m = &self.metrics;
        let mut o = s.serialize_struct("NodeRecord", 20)?;
        o.serialize_field("name", &self.name)?;
        o.serialize_field("role", &self.role)?;
        o.serialize_field("uid", &self.uid)?;
        o.serialize_field("alive", &self.alive)?;
        o.serialize_field("stake", &self.stake)?;
        o.serialize_field("rank", &self.rank)?;
        o.serialize_field("trust", &self.trust)?;
        o.serialize_field("consensus", &self.consensus)?;
        o.serialize_field("incentive", &self.incentive)?;
        o.serialize_field("dividends", &self.dividends)?;
        o.serialize_field("emission", &self.emission)?;
        o.serialize_field("weights", &self.weights)?;
        o.serialize_field("served", &m.served)?;
        o.serialize_field("refused", &m.refused)?;
        o.serialize_field("answers", &m.answers)?;
        o.serialize_field("failed", &m.failed)?;
        o.serialize_field("rows_set", &m.rows_set)?;
        o.serialize_field("rows_refused", &m.rows_refused)?;
        o.serialize_field("steps", &m.steps)?;
        o.serialize_field("loss", &m.loss)?;
        o.end()
    }
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

/// A learner's last validation summary, as its metrics file has it.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// `node-<index>`.
    pub name: String,
    /// Its seed (models and batches).
    pub seed: u64,
    /// Training steps at the evaluation.
    pub steps: u64,
    /// The learner's validation keys (`D/peers`, `D/gain_lo`, `others/gain`, `value/J`, ...).
    pub valid: BTreeMap<String, f64>,
}

/// One learner on one evaluation domain: mean validation cross-entropy (nats per byte) over
/// its last rounds there.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DomainLoss {
    /// `node-<index>`.
    pub learner: String,
    /// The evaluation domain.
    pub domain: String,
    /// Whether it is the learner's own domain.
    pub own: bool,
    /// With the peers' answers mixed by the gate.
    pub peers: f64,
    /// The twin of the same seed trained on the same batches with no peers.
    pub alone: f64,
    /// With the distilled student standing in for every peer.
    pub student: f64,
    /// With zeros for every peer.
    pub zeros: f64,
    /// 95% bootstrap interval of `alone - peers` (over validation batches).
    pub gain_interval: (f64, f64),
    /// Validation rounds the means cover.
    pub rounds: u64,
    /// The learner's seed and training steps.
    pub seed: u64,
    /// Training steps at the evaluation.
    pub steps: u64,
}

/// What one learner gains from its peers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gain {
    /// `node-<index>`.
    pub learner: String,
    /// Its own domain.
    pub domain: String,
    /// `alone - peers` on its own domain, and its 95% interval.
    pub own: (f64, f64, f64),
    /// The mean over the other domains of `alone - peers`, and its 95% interval (a bootstrap
    /// stratified by domain); `None` when the network has one domain.
    pub others: Option<(f64, f64, f64)>,
    /// On the other domains, the share of the peers' gain that the student keeps:
    /// `mean(alone - student) / mean(alone - peers)`.
    pub student_keeps: Option<f64>,
}

/// The value one node gives the learners, beside what it earns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeValue {
    /// `node-<index>`.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its domain (learners).
    pub domain: Option<String>,
    /// Summed over the other learners: how much their validation loss rises when its answers
    /// are replaced by zeros (mean over their evaluation domains; nats per byte; a learner
    /// whose loss falls without them counts 0).
    pub value: f64,
    /// Its incentive at the last epoch.
    pub incentive: f64,
}

/// The learners' gains, the value each node gives, and how the incentive follows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Premise {
    /// Per learner and evaluation domain.
    pub ablation: Vec<DomainLoss>,
    /// Per learner.
    pub gains: Vec<Gain>,
    /// Per node.
    pub values: Vec<NodeValue>,
    /// Spearman's rank correlation over the nodes between value given and incentive earned
    /// at the last epoch (`None` with fewer than three nodes or a constant side).
    pub value_incentive_correlation: Option<f64>,
    /// Learners alone on their domain, and learners that share theirs, with their incentive:
    /// whether every unique specialist out-earns every learner of a shared domain.
    pub unique_out_earns_shared: Option<bool>,
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
    /// Its share of the dividends paid at the epoch it left and at the last epoch.
    pub dividend_share: (f64, f64),
    /// The first epoch after it left from which, to the last, its incentive and dividends are
    /// both 0 (`None`: paid at the last epoch).
    pub unpaid_from: Option<u64>,
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
    /// The mechanism the chain's epochs ran (`paper`, `yuma`, `yuma3`), with `kappa` when the
    /// scenario set it.
    pub mechanism: String,
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
    /// Claim 4: what the learners gain from their peers, and what the market pays for it.
    pub premise: Premise,
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
            (total > 0.0 && n.metrics.steps >= warmup).then(|| {
                n.weights
                    .iter()
                    .filter(|w| cabal.contains(&(w.0 as usize)))
                    .map(|w| f64::from(w.1) / total)
                    .collect()
            })
        })
        .collect()
}

/// The summary of `epochs` (in order) of a run of `sc` (its seed, mechanism, trust threshold
/// and warm-up), with the ablation and the departures supplied by the run.
pub fn summarize(
    sc: &Scenario,
    epochs: &[EpochRecord],
    chain_verified: Option<u64>,
    evaluations: &[Evaluation],
    left: &[(String, u64, String)],
) -> Summary {
    let (trust_threshold, warmup) = (sc.trust_threshold, sc.warmup_steps);
    let mechanism = match sc.kappa {
        Some(kappa) => format!("{} (kappa {kappa})", sc.mechanism.name()),
        None => sc.mechanism.name().to_owned(),
    };
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
        e.nodes.iter().fold((0, 0), |a, n| {
            (a.0 + n.metrics.rows_set, a.1 + n.metrics.rows_refused)
        })
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
                dividend_share: (
                    share_of(&at.nodes, name, |n| n.dividends),
                    share_of(&end.nodes, name, |n| n.dividends),
                ),
                unpaid_from: unpaid_from(epochs, name, *epoch),
            })
        })
        .collect();
    Summary {
        epochs: epochs.len() as u64,
        nodes: epochs.first().map_or(0, |e| e.nodes.len()),
        seed: sc.seed,
        mechanism,
        stake_share,
        incentive_share,
        learner_vs_noise_lazy,
        learner_weight_on_cabal,
        honest_rows_from,
        cabal_share_falls,
        rows,
        chain_verified,
        premise: premise(epochs, evaluations),
        departures,
    }
}

/// The first epoch after `left` from which, to the last, node `name` has no incentive and no
/// dividends (`None` when it is paid at the last epoch or was never recorded after leaving).
fn unpaid_from(epochs: &[EpochRecord], name: &str, left: u64) -> Option<u64> {
    let paid = |e: &EpochRecord| {
        e.nodes
            .iter()
            .any(|n| n.name == name && (n.incentive > 0.0 || n.dividends > 0.0))
    };
    let after: Vec<&EpochRecord> = epochs.iter().filter(|e| e.epoch > left).collect();
    let last_paid = after.iter().rposition(|e| paid(e));
    let from = last_paid.map_or(0, |i| i + 1);
    after.get(from).map(|e| e.epoch)
}

/// The premise's numbers from the learners' last evaluations and the last epoch.
pub fn premise(epochs: &[EpochRecord], evaluations: &[Evaluation]) -> Premise {
    let mut ablation = Vec::new();
    let mut gains = Vec::new();
    for e in evaluations {
        let get = |k: &str| e.valid.get(k).copied();
        let mut domains: Vec<&str> = e
            .valid
            .keys()
            .filter_map(|k| k.strip_suffix("/own"))
            .collect();
        domains.sort_unstable();
        let mut own_gain = None;
        let mut own_domain = String::new();
        let (mut alone_sum, mut student_sum, mut peers_sum, mut others) = (0.0, 0.0, 0.0, 0);
        for d in domains {
            let k = |m: &str| get(&format!("{d}/{m}"));
            let (Some(peers), Some(alone), Some(student), Some(zeros)) =
                (k("peers"), k("alone"), k("student"), k("zeros"))
            else {
                continue;
            };
            let own = k("own") == Some(1.0);
            let interval = (k("gain_lo").unwrap_or(0.0), k("gain_hi").unwrap_or(0.0));
            if own {
                own_gain = Some((alone - peers, interval.0, interval.1));
                own_domain = d.to_owned();
            } else {
                alone_sum += alone;
                student_sum += student;
                peers_sum += peers;
                others += 1;
            }
            ablation.push(DomainLoss {
                learner: e.name.clone(),
                domain: d.to_owned(),
                own,
                peers,
                alone,
                student,
                zeros,
                gain_interval: interval,
                rounds: k("rounds").unwrap_or(0.0) as u64,
                seed: e.seed,
                steps: e.steps,
            });
        }
        let Some(own) = own_gain else { continue };
        let others_gain = match (
            get("others/gain"),
            get("others/gain_lo"),
            get("others/gain_hi"),
        ) {
            (Some(g), Some(lo), Some(hi)) => Some((g, lo, hi)),
            _ => None,
        };
        let gain = alone_sum - peers_sum;
        gains.push(Gain {
            learner: e.name.clone(),
            domain: own_domain,
            own,
            others: others_gain,
            student_keeps: (others > 0 && gain > 0.0).then(|| (alone_sum - student_sum) / gain),
        });
    }
    let last = epochs.last();
    let values: Vec<NodeValue> = last
        .map(|l| {
            l.nodes
                .iter()
                .map(|n| {
                    let key = format!("value/{}", n.uid);
                    // Answers that raise a learner's loss give it nothing: what it pays is
                    // never below zero either.
                    let value = evaluations
                        .iter()
                        .filter(|e| e.name != n.name)
                        .filter_map(|e| e.valid.get(&key))
                        .map(|v| v.max(0.0))
                        .sum();
                    NodeValue {
                        name: n.name.clone(),
                        role: n.role,
                        domain: gains
                            .iter()
                            .find(|g| g.learner == n.name)
                            .map(|g| g.domain.clone()),
                        value,
                        incentive: n.incentive,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let value_incentive_correlation = spearman(
        &values.iter().map(|v| v.value).collect::<Vec<_>>(),
        &values.iter().map(|v| v.incentive).collect::<Vec<_>>(),
    );
    let learners: Vec<&NodeValue> = values.iter().filter(|v| v.domain.is_some()).collect();
    let sharing = |v: &NodeValue| learners.iter().filter(|o| o.domain == v.domain).count();
    let unique: Vec<f64> = learners
        .iter()
        .filter(|v| sharing(v) == 1)
        .map(|v| v.incentive)
        .collect();
    let shared: Vec<f64> = learners
        .iter()
        .filter(|v| sharing(v) > 1)
        .map(|v| v.incentive)
        .collect();
    let unique_out_earns_shared = (!unique.is_empty() && !shared.is_empty()).then(|| {
        let low = unique.iter().copied().fold(f64::INFINITY, f64::min);
        shared.iter().all(|&s| low > s)
    });
    Premise {
        ablation,
        gains,
        values,
        value_incentive_correlation,
        unique_out_earns_shared,
    }
}

/// Spearman's rank correlation of `x` and `y` (ties take their mean rank): Pearson's
/// correlation of the ranks. `None` for fewer than three pairs or a side without spread.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 3 {
        return None;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// The rank of each value (1-based; ties share the mean of their ranks).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scenario with the tests' trust threshold (0.05), seed 7 and `warmup_steps`.
    fn run(warmup_steps: u64) -> Scenario {
        Scenario {
            trust_threshold: 0.05,
            warmup_steps,
            seed: 7,
            ..Scenario::default()
        }
    }

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
            metrics: Status {
                rows_set: u64::from(row),
                ..Status::default()
            },
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
        let s = summarize(&run(0), &epochs, Some(40), &[], &left);
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
        // Still paid incentive at the last epoch: no epoch from which it is unpaid.
        assert_eq!(s.departures[0].unpaid_from, None);
        assert_eq!(s.departures[0].dividend_share, (0.0, 0.0));
        // A rise anywhere after the honest rows breaks the claim.
        let epochs = vec![
            epoch(1, 100, true, false),
            epoch(2, 90, true, false),
            epoch(3, 95, true, false),
        ];
        let s = summarize(&run(0), &epochs, None, &[], &[]);
        assert_eq!(s.honest_rows_from, Some(1));
        assert_eq!(s.cabal_share_falls, Some(false));
        // Before the warm-up, rows do not count as informed.
        let mut epochs = epochs;
        for (e, steps) in epochs.iter_mut().zip([10, 20, 30]) {
            for n in &mut e.nodes {
                n.metrics.steps = steps;
            }
        }
        let s = summarize(&run(20), &epochs, None, &[], &[]);
        assert_eq!(s.honest_rows_from, Some(2));
        // Dishonest to the end: no verdict.
        let epochs = vec![epoch(1, 100, true, true), epoch(2, 90, true, true)];
        let s = summarize(&run(0), &epochs, None, &[], &[]);
        assert_eq!((s.honest_rows_from, s.cabal_share_falls), (None, None));
    }

    #[test]
    fn spearman_ranks_ties_together_and_needs_spread() {
        let r = spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]).unwrap();
        assert!((r - 1.0).abs() < 1e-12);
        let r = spearman(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]).unwrap();
        assert!((r + 1.0).abs() < 1e-12);
        // Ties share their mean rank: [1.5, 1.5, 3] against [1, 2, 3].
        let r = spearman(&[0.0, 0.0, 5.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!((r - 0.866_025_403_784_438_6).abs() < 1e-12, "{r}");
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0, 2.0], &[1.0, 2.0]), None);
    }

    #[test]
    fn the_premise_reads_gains_values_and_the_pair() {
        // node-0 and node-1 share "a", node-2 alone on "b"; node-3 is noise.
        let mut e = epoch(1, 100, true, false);
        e.nodes = vec![
            node("node-0", Role::Learner, 100, 0.2, true),
            node("node-1", Role::Learner, 100, 0.25, true),
            node("node-2", Role::Learner, 100, 0.55, true),
            node("node-3", Role::Noise, 100, 0.0, false),
        ];
        let eval = |name: &str, own: &str, other: &str, gain_other: f64, values: [f64; 4]| {
            let mut valid = BTreeMap::new();
            for (d, own_flag, gain) in [(own, 1.0, 0.01), (other, 0.0, gain_other)] {
                valid.insert(format!("{d}/own"), own_flag);
                valid.insert(format!("{d}/peers"), 2.0 - gain);
                valid.insert(format!("{d}/alone"), 2.0);
                valid.insert(format!("{d}/student"), 2.0 - gain / 2.0);
                valid.insert(format!("{d}/zeros"), 2.1);
                valid.insert(format!("{d}/gain_lo"), gain - 0.01);
                valid.insert(format!("{d}/gain_hi"), gain + 0.01);
                valid.insert(format!("{d}/rounds"), 12.0);
            }
            valid.insert("others/gain".into(), gain_other);
            valid.insert("others/gain_lo".into(), gain_other - 0.01);
            valid.insert("others/gain_hi".into(), gain_other + 0.01);
            for (uid, v) in values.iter().enumerate() {
                valid.insert(format!("value/{uid}"), *v);
            }
            Evaluation {
                name: name.into(),
                seed: 1,
                steps: 100,
                valid,
            }
        };
        let evals = [
            eval("node-0", "a", "b", 0.4, [9.0, 0.1, 0.5, -0.01]),
            eval("node-1", "a", "b", 0.5, [0.1, 9.0, 0.6, -0.02]),
            eval("node-2", "b", "a", 0.3, [0.2, 0.2, 9.0, 0.0]),
        ];
        let p = premise(&[e], &evals);
        assert_eq!(p.ablation.len(), 6);
        assert_eq!(p.gains.len(), 3);
        let g = &p.gains[0];
        assert_eq!(g.domain, "a");
        assert!((g.own.0 - 0.01).abs() < 1e-12);
        assert_eq!(g.others.map(|o| o.0), Some(0.4));
        assert!((g.student_keeps.unwrap() - 0.5).abs() < 1e-12);
        // Own value (9.0) is not counted: node-0 gave 0.1 + 0.2 to the others.
        assert!((p.values[0].value - 0.3).abs() < 1e-12, "{:?}", p.values[0]);
        assert!((p.values[2].value - 1.1).abs() < 1e-12);
        assert_eq!(p.values[3].value, 0.0, "harmful answers give nothing");
        assert_eq!(p.unique_out_earns_shared, Some(true));
        // Values 0.3, 0.3, 1.1, 0 against incentives 0.2, 0.25, 0.55, 0.
        let r = p.value_incentive_correlation.unwrap();
        assert!(r > 0.7, "{r}");
    }
}
