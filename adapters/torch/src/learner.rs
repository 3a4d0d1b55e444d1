//! [`Learner`]: a [`LocalModel`] training on its own text domain behind the node's
//! [`Trainer`] seam. Gate slot `j` is the peer with uid `j`; the node fetches what the gate
//! asks, the learner trains on it and hands back the gradients and Fisher scores.

use std::collections::HashMap;
use std::sync::Arc;

use deepnode_node::{Ask, NodeError, Progress, Tensor as NodeTensor, Trainer};
use deepnode_rng::SplitMix64;
use tch::Tensor;

use crate::TorchError;
use crate::convert::tokens_to_node;
use crate::data::{Domain, TextCorpus};
use crate::encoder::EncoderConfig;
use crate::local::{LocalConfig, LocalModel, Mixture};
use crate::served::TorchModel;

/// How a [`Learner`] trains and evaluates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnerConfig {
    /// The local model; `local.peers` is the number of uids the gate chooses among.
    pub local: LocalConfig,
    /// Training batch `[batch, seq]` (and the validation batch's size).
    pub batch: usize,
    /// Bytes per window.
    pub seq: usize,
    /// Every this many training steps, one validation round (peers, student, zeros, alone).
    pub eval_every: u64,
    /// Also train a twin of the same seed on the same batches with no peers at all (zeros in
    /// every slot): the "alone" line of the ablation. Doubles the local training work.
    pub alone: bool,
    /// Every this many steps the served encoder takes the trained encoder's parameters (the
    /// node serves what it learns; gradients its callers sent since are overwritten). 0: never.
    pub sync_every: u64,
    /// Memory, per training step, of each peer's benefit statistics (an exponentially weighted
    /// mean and variance over the steps it answered; 0.98 keeps about the last 50).
    pub memory: f64,
    /// A peer's Fisher score enters the row only while its mean benefit exceeds `confidence`
    /// standard errors (a one-sided test that the peer lowers the loss).
    pub confidence: f64,
    /// Share of training windows drawn from the other domains of the network (a trickle of
    /// the text its users bring); the rest come from its own domain.
    pub visitors: f64,
    /// Windows per validation batch.
    pub eval_batch: usize,
    /// Validation rounds per domain that the reported means and intervals cover (the last
    /// ones).
    pub window: usize,
}

impl Default for LearnerConfig {
    /// The local model's defaults with the network's shared readout, the context gate and
    /// `k = 4`; a peer silent for 8 asks in a row muted for 150 steps; two student steps per
    /// training step at half the rate; batches of 4 x 32 bytes, a quarter of the windows from the other domains;
    /// validation every 10 steps on 16 windows of one domain at a time; the twin.
    fn default() -> Self {
        LearnerConfig {
            local: LocalConfig {
                student_stands_in: true,
                readout: Some(crate::local::NETWORK_READOUT),
                context_gate: true,
                k: 4,
                mute_after: 8,
                mute_steps: 150,
                student_steps: 2,
                student_lr: 1.5e-3,
                student: EncoderConfig {
                    hidden: 256,
                    ..EncoderConfig::default()
                },
                ..LocalConfig::default()
            },
            batch: 4,
            seq: 32,
            eval_every: 10,
            alone: true,
            memory: 0.98,
            confidence: 3.0,
            sync_every: 10,
            visitors: 0.25,
            eval_batch: 16,
            window: 12,
        }
    }
}

/// What the pending [`Trainer::ask`] was for.
enum Pending {
    None,
    /// A training batch `[B, S + 1]`.
    Train(Tensor),
    /// A validation batch `[B, S + 1]` of the domain at this index of `Learner::domains`.
    Eval(Tensor, usize),
}

/// One validation round of one domain: the cross-entropy with each stand-in for `G(x)`, and
/// per peer asked the rise when its answer is replaced by zeros.
#[derive(Debug, Clone)]
struct Round {
    peers: f64,
    student: f64,
    zeros: f64,
    alone: Option<f64>,
    without: Vec<(usize, f64)>,
}

/// A domain the learner trains and is evaluated on: its own, or another of the network's.
struct Field {
    name: String,
    text: TextCorpus,
    rounds: Vec<Round>,
}

/// A node's learning side: its [`LocalModel`] (and the optional twin trained alone) on its own
/// text, with a trickle of the network's other domains. Implements [`Trainer`];
/// [`Trainer::take_scores`] gives the Fisher scores.
pub struct Learner {
    config: LearnerConfig,
    model: LocalModel,
    alone: Option<LocalModel>,
    /// The own domain first, then the others.
    domains: Vec<Field>,
    pending: Pending,
    evaluated_at: Option<u64>,
    evaluations: u64,
    progress: Progress,
    evidence: Vec<Evidence>,
    served: Option<Arc<TorchModel>>,
}

impl Learner {
    /// A learner on `corpus` alone (one domain, named `text` in its progress), its models
    /// drawn from `config.local.seed`.
    pub fn new(config: LearnerConfig, corpus: TextCorpus) -> Result<Learner, TorchError> {
        Learner::with_domains(config, ("text".to_owned(), corpus), Vec::new())
    }

    /// A specialist of `own` in a network whose learners cover `network` (its own domain may
    /// be among them): most of its training windows come from its own domain, a `visitors`
    /// share from the others, and it is evaluated on every one.
    pub fn specialist(
        config: LearnerConfig,
        own: Domain,
        network: &[Domain],
    ) -> Result<Learner, TorchError> {
        let mut others = Vec::new();
        for &d in network {
            if d != own && !others.iter().any(|(n, _)| n == d.name()) {
                others.push((d.name().to_owned(), d.corpus()?));
            }
        }
        Learner::with_domains(config, (own.name().to_owned(), own.corpus()?), others)
    }

    /// A learner on its `own` named text and `others` (name, text; training windows come
    /// from each one's training part, validation from its held-out part).
    pub fn with_domains(
        config: LearnerConfig,
        own: (String, TextCorpus),
        others: Vec<(String, TextCorpus)>,
    ) -> Result<Learner, TorchError> {
        if !(0.0..=1.0).contains(&config.visitors) {
            return Err(TorchError::Config("visitors must be in [0, 1]"));
        }
        if config.eval_batch == 0 || config.window == 0 {
            return Err(TorchError::Config("eval_batch and window must be positive"));
        }
        if !(0.0..1.0).contains(&config.memory) {
            return Err(TorchError::Config("memory must be in [0, 1)"));
        }
        if !(config.confidence >= 0.0 && config.confidence.is_finite()) {
            return Err(TorchError::Config("confidence must be finite and >= 0"));
        }
        if config.batch == 0 || config.seq == 0 || config.eval_every == 0 {
            return Err(TorchError::Config(
                "batch, seq and eval_every must be positive",
            ));
        }
        let model = LocalModel::new(config.local)?;
        // The twin has no peers and nothing stands in for them: zeros, as it is evaluated.
        // Its peers never answer; muting them would only move its gate.
        let twin = LocalConfig {
            student_stands_in: false,
            mute_after: 0,
            ..config.local
        };
        let alone = config.alone.then(|| LocalModel::new(twin)).transpose()?;
        let domains = std::iter::once(own)
            .chain(others)
            .map(|(name, text)| Field {
                name,
                text,
                rounds: Vec::new(),
            })
            .collect();
        Ok(Learner {
            config,
            model,
            alone,
            domains,
            pending: Pending::None,
            evaluated_at: None,
            evaluations: 0,
            progress: Progress::default(),
            evidence: vec![Evidence::default(); config.local.peers],
            served: None,
        })
    }

    /// The training batch of step `steps`: each window from the own domain, or with
    /// probability `visitors` from one of the other domains (drawn from the seed).
    fn train_batch(&self, steps: u64) -> Tensor {
        let (b, s) = (self.config.batch, self.config.seq);
        let seed = self.config.local.seed.wrapping_mul(1_000_003) ^ steps;
        let others = self.domains.len() - 1;
        if others == 0 || self.config.visitors == 0.0 {
            return self.domains[0].text.train_batch(b, s, seed);
        }
        let mut rng = SplitMix64::new(seed ^ 0xd0_3a1a);
        let windows: Vec<Tensor> = (0..b as u64)
            .map(|w| {
                let draw = rng.unit_f64();
                let field = if draw < self.config.visitors {
                    1 + (rng.next_u64() % others as u64) as usize
                } else {
                    0
                };
                self.domains[field].text.train_batch(
                    1,
                    s,
                    seed.wrapping_add(w.wrapping_mul(0x51_7cc1)),
                )
            })
            .collect();
        Tensor::cat(&windows, 0)
    }

    /// Makes `served` (the model this node serves, same encoder configuration) follow the
    /// trained encoder every `sync_every` steps, starting now.
    pub fn serve_through(&mut self, served: Arc<TorchModel>) -> Result<(), TorchError> {
        served.set_parameters(&self.model.encoder_parameters())?;
        self.served = Some(served);
        Ok(())
    }

    /// The model being trained.
    pub fn model(&self) -> &LocalModel {
        &self.model
    }

    fn ask_for(&self, batch: &Tensor, noisy: bool) -> Result<Ask, TorchError> {
        let routed = self.model.route(batch, noisy)?;
        let uids = routed
            .chosen
            .iter()
            .map(|&j| u32::try_from(j).map_err(|_| TorchError::Config("slot out of range")))
            .collect::<Result<_, _>>()?;
        Ok(Ask {
            inputs: tokens_to_node(&routed.inputs)?,
            uids,
        })
    }

    /// One validation round of domain `field`: cross-entropy with the peers' `answers`, with
    /// each answering peer's answer replaced by zeros, with the student standing in for all
    /// of them, with zeros, and of the twin trained alone.
    fn evaluate(
        &mut self,
        batch: &Tensor,
        field: usize,
        answers: &HashMap<usize, NodeTensor>,
    ) -> Result<(), TorchError> {
        let mut query = |j: usize, _: &NodeTensor| answers.get(&j).cloned();
        let peers = self.model.evaluate(batch, Mixture::Peers, &mut query)?;
        let mut without = Vec::with_capacity(answers.len());
        let mut asked: Vec<usize> = answers.keys().copied().collect();
        asked.sort_unstable();
        for j in asked {
            let mut query = |i: usize, _: &NodeTensor| {
                if i == j {
                    None
                } else {
                    answers.get(&i).cloned()
                }
            };
            let loss = self.model.evaluate(batch, Mixture::Peers, &mut query)?;
            without.push((j, loss - peers));
        }
        let round = Round {
            peers,
            student: self.model.evaluate(batch, Mixture::Student, &mut query)?,
            zeros: self.model.evaluate(batch, Mixture::Zeros, &mut query)?,
            alone: match &self.alone {
                Some(alone) => Some(alone.evaluate(batch, Mixture::Zeros, &mut query)?),
                None => None,
            },
            without,
        };
        let rounds = &mut self.domains[field].rounds;
        rounds.push(round);
        let excess = rounds.len().saturating_sub(self.config.window);
        rounds.drain(..excess);
        self.progress.valid = self.summary();
        Ok(())
    }

    /// The validation summary, over the last `window` rounds of each domain evaluated:
    /// `D/peers`, `D/student`, `D/zeros`, `D/alone` (mean cross-entropy, nats per byte),
    /// `D/gain_lo` and `D/gain_hi` (a 95% bootstrap interval of the mean of `alone - peers`
    /// over those rounds), `D/rounds`, `D/own` (1 for the learner's own domain) and
    /// `D/value/J` per peer uid `J` (how much the cross-entropy rises without its answers, 0 in
    /// rounds that did not ask it); then `value/J`, the mean of `D/value/J` over the domains,
    /// and `others/gain`, `others/gain_lo`, `others/gain_hi` (the mean gain over the domains
    /// other than the own one, with a 95% bootstrap interval stratified by domain).
    fn summary(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        let mut value: std::collections::BTreeMap<usize, f64> = Default::default();
        let mut evaluated = 0usize;
        for (i, field) in self.domains.iter().enumerate() {
            let rounds = &field.rounds;
            if rounds.is_empty() {
                continue;
            }
            evaluated += 1;
            let n = rounds.len() as f64;
            let mean = |f: &dyn Fn(&Round) -> f64| rounds.iter().map(f).sum::<f64>() / n;
            let name = &field.name;
            out.push((format!("{name}/own"), if i == 0 { 1.0 } else { 0.0 }));
            out.push((format!("{name}/rounds"), n));
            out.push((format!("{name}/peers"), mean(&|r| r.peers)));
            out.push((format!("{name}/student"), mean(&|r| r.student)));
            out.push((format!("{name}/zeros"), mean(&|r| r.zeros)));
            let gains: Vec<f64> = rounds
                .iter()
                .filter_map(|r| Some(r.alone? - r.peers))
                .collect();
            if gains.len() == rounds.len() {
                out.push((format!("{name}/alone"), mean(&|r| r.alone.unwrap_or(0.0))));
                let (lo, hi) = bootstrap_interval(&gains);
                out.push((format!("{name}/gain_lo"), lo));
                out.push((format!("{name}/gain_hi"), hi));
            }
            let mut here: std::collections::BTreeMap<usize, f64> = Default::default();
            for r in rounds {
                for &(j, rise) in &r.without {
                    *here.entry(j).or_default() += rise / n;
                }
            }
            for (j, v) in here {
                out.push((format!("{name}/value/{j}"), v));
                *value.entry(j).or_default() += v;
            }
        }
        for (j, v) in value {
            out.push((format!("value/{j}"), v / evaluated.max(1) as f64));
        }
        // The other domains together: the mean over them of each one's mean gain, with a
        // bootstrap that resamples each domain's rounds on its own (stratified).
        let others: Vec<Vec<f64>> = self.domains[1..]
            .iter()
            .map(|f| {
                f.rounds
                    .iter()
                    .filter_map(|r| Some(r.alone? - r.peers))
                    .collect()
            })
            .filter(|g: &Vec<f64>| !g.is_empty())
            .collect();
        if !others.is_empty() {
            let mean = others
                .iter()
                .map(|g| g.iter().sum::<f64>() / g.len() as f64)
                .sum::<f64>()
                / others.len() as f64;
            let (lo, hi) = stratified_interval(&others);
            out.push(("others/gain".to_owned(), mean));
            out.push(("others/gain_lo".to_owned(), lo));
            out.push(("others/gain_hi".to_owned(), hi));
        }
        out
    }

    fn learn_inner(
        &mut self,
        answers: Vec<(u32, Option<NodeTensor>)>,
    ) -> Result<Vec<(u32, NodeTensor)>, TorchError> {
        let mut answers: HashMap<usize, NodeTensor> = answers
            .into_iter()
            .filter_map(|(j, a)| Some((j as usize, a?)))
            .collect();
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::None => Err(TorchError::Config("learn without ask")),
            Pending::Eval(batch, field) => {
                self.evaluate(&batch, field, &answers)?;
                Ok(Vec::new())
            }
            Pending::Train(batch) => {
                let report = self
                    .model
                    // The step asks each peer once: its answer moves in, uncopied.
                    .step(&batch, &mut |j, _| answers.remove(&j))?;
                for (j, _) in &report.grads {
                    if let (Some(e), Some(&b)) = (self.evidence.get_mut(*j), report.benefit.get(*j))
                    {
                        e.add(b, self.config.memory);
                    }
                }
                if let Some(alone) = &mut self.alone {
                    alone.step(&batch, &mut |_, _| None)?;
                }
                self.progress.steps = self.model.steps();
                self.progress.loss = Some(report.loss);
                let every = self.config.sync_every;
                if let Some(served) = &self.served
                    && every > 0
                    && self.progress.steps.is_multiple_of(every)
                {
                    served.set_parameters(&self.model.encoder_parameters())?;
                }
                Ok(report
                    .grads
                    .into_iter()
                    .filter_map(|(j, g)| Some((u32::try_from(j).ok()?, g)))
                    .collect())
            }
        }
    }
}

impl Trainer for Learner {
    fn ask(&mut self, _me: u32) -> Result<Ask, NodeError> {
        let steps = self.model.steps();
        let eval = steps > 0
            && steps.is_multiple_of(self.config.eval_every)
            && self.evaluated_at != Some(steps);
        if eval {
            self.evaluated_at = Some(steps);
            // Domains take turns; each one's rounds walk through its held-out text.
            let m = self.domains.len() as u64;
            let field = (self.evaluations % m) as usize;
            let batch = self.domains[field].text.valid_batch_at(
                self.config.eval_batch,
                self.config.seq,
                self.evaluations / m,
            );
            self.evaluations += 1;
            let ask = self.ask_for(&batch, false)?;
            self.pending = Pending::Eval(batch, field);
            return Ok(ask);
        }
        let batch = self.train_batch(steps);
        let ask = self.ask_for(&batch, true)?;
        self.pending = Pending::Train(batch);
        Ok(ask)
    }

    fn learn(
        &mut self,
        answers: Vec<(u32, Option<NodeTensor>)>,
    ) -> Result<Vec<(u32, NodeTensor)>, NodeError> {
        Ok(self.learn_inner(answers)?)
    }

    /// Each peer's Fisher score since the last call, kept only while its answers lower the
    /// loss with confidence: the weighted mean of its per-step [`LocalModel::benefit`] exceeds
    /// `confidence` standard errors. A noise peer moves the output (a high Fisher score) but
    /// raises the loss; one that helps by chance in a few steps is not yet trusted.
    fn take_scores(&mut self) -> Vec<(u32, f64)> {
        let fisher = self.model.epoch_scores();
        self.model.reset_epoch();
        let z = self.config.confidence;
        fisher
            .into_iter()
            .zip(&self.evidence)
            .enumerate()
            .filter_map(|(j, (f, e))| {
                Some((u32::try_from(j).ok()?, if e.helps(z) { f } else { 0.0 }))
            })
            .collect()
    }

    fn progress(&self) -> Progress {
        self.progress.clone()
    }
}

/// The 2.5% and 97.5% points of the mean of `x` over bootstrap resamples (see
/// [`stratified_interval`]).
fn bootstrap_interval(x: &[f64]) -> (f64, f64) {
    stratified_interval(&[x.to_vec()])
}

/// A 95% bootstrap interval of the mean over `groups` of each group's mean: 2,000 resamples,
/// each drawing every group's values with replacement within the group, from a fixed seed (the
/// same values give the same interval). A group of one value counts as exact.
fn stratified_interval(groups: &[Vec<f64>]) -> (f64, f64) {
    const RESAMPLES: usize = 2000;
    let groups: Vec<&Vec<f64>> = groups.iter().filter(|g| !g.is_empty()).collect();
    if groups.is_empty() {
        return (0.0, 0.0);
    }
    let mut rng = SplitMix64::new(0xb007_5742);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let total: f64 = groups
                .iter()
                .map(|g| {
                    let sum: f64 = (0..g.len())
                        .map(|_| g[(rng.next_u64() % g.len() as u64) as usize])
                        .sum();
                    sum / g.len() as f64
                })
                .sum();
            total / groups.len() as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    (means[RESAMPLES / 40], means[RESAMPLES - 1 - RESAMPLES / 40])
}

/// The least effective number of steps [`Evidence::helps`] decides on.
const MIN_STEPS: f64 = 5.0;

/// One peer's benefit evidence: exponentially weighted sums over the steps it answered,
/// `S0 = sum w`, `S1 = sum w b`, `S2 = sum w b^2`, `Q = sum w^2` with `w = m^age`.
#[derive(Debug, Clone, Copy, Default)]
struct Evidence {
    s0: f64,
    s1: f64,
    s2: f64,
    q: f64,
}

impl Evidence {
    /// Ages the sums by `m` and adds one step's benefit `b`.
    fn add(&mut self, b: f64, m: f64) {
        if !b.is_finite() {
            return;
        }
        self.s0 = m * self.s0 + 1.0;
        self.s1 = m * self.s1 + b;
        self.s2 = m * self.s2 + b * b;
        self.q = m * m * self.q + 1.0;
    }

    /// Whether the weighted mean exceeds `z` standard errors: `mean > z sqrt(var / n)` with
    /// the effective count `n = S0^2 / Q`, over at least [`MIN_STEPS`] steps' worth of evidence
    /// (with fewer, a few lucky batches pass a z test by chance).
    fn helps(&self, z: f64) -> bool {
        if self.s0 <= 0.0 || self.q <= 0.0 {
            return false;
        }
        let mean = self.s1 / self.s0;
        let var = (self.s2 / self.s0 - mean * mean).max(0.0);
        let n = self.s0 * self.s0 / self.q;
        n >= MIN_STEPS && mean > 0.0 && mean * mean * n > z * z * var
    }
}

#[cfg(test)]
mod tests {
    use super::Evidence;

    #[test]
    fn evidence_needs_a_steady_positive_mean() {
        let mut steady = Evidence::default();
        let mut blips = Evidence::default();
        let mut hurts = Evidence::default();
        for t in 0..60 {
            steady.add(0.02 + if t % 2 == 0 { 0.005 } else { -0.005 }, 0.98);
            // Mean +0.0001 with a spread a hundred times larger: chance, not help.
            blips.add(if t % 2 == 0 { 0.0101 } else { -0.0099 }, 0.98);
            hurts.add(-0.003, 0.98);
        }
        assert!(steady.helps(3.0));
        assert!(!blips.helps(3.0));
        assert!(!hurts.helps(3.0));
        assert!(!Evidence::default().helps(0.0));
        let mut few = Evidence::default();
        for _ in 0..4 {
            few.add(1.0, 0.98);
        }
        assert!(!few.helps(0.0), "four steps are not evidence yet");
        few.add(f64::NAN, 0.98);
        assert!(few.s1.is_finite(), "a NaN benefit is skipped");
    }
}
