//! [`Learner`]: a [`LocalModel`] training on its own text shard behind the node's
//! [`Trainer`] seam. Gate slot `j` is the peer with uid `j`; the node fetches what the gate
//! asks, the learner trains on it and hands back the gradients and Fisher scores.

use std::collections::HashMap;
use std::sync::Arc;

use deepnode_node::{Ask, NodeError, Progress, Tensor as NodeTensor, Trainer};
use tch::Tensor;

use crate::TorchError;
use crate::convert::tokens_to_node;
use crate::data::TextCorpus;
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
}

impl Default for LearnerConfig {
    /// The local model's defaults, batches of 4 x 32 bytes, validation every 25 steps, with
    /// the twin.
    fn default() -> Self {
        LearnerConfig {
            local: LocalConfig {
                student_stands_in: true,
                ..LocalConfig::default()
            },
            batch: 4,
            seq: 32,
            eval_every: 25,
            alone: true,
            memory: 0.98,
            confidence: 3.0,
            sync_every: 10,
        }
    }
}

/// What the pending [`Trainer::ask`] was for.
enum Pending {
    None,
    /// A training batch `[B, S + 1]`.
    Train(Tensor),
    /// The validation batch `[B, S + 1]`.
    Eval(Tensor),
}

/// A node's learning side: its [`LocalModel`] (and the optional twin trained alone) on one text
/// shard. Implements [`Trainer`]; [`Trainer::take_scores`] gives the Fisher scores.
pub struct Learner {
    config: LearnerConfig,
    model: LocalModel,
    alone: Option<LocalModel>,
    corpus: TextCorpus,
    pending: Pending,
    evaluated_at: Option<u64>,
    progress: Progress,
    evidence: Vec<Evidence>,
    served: Option<Arc<TorchModel>>,
}

impl Learner {
    /// A learner on `corpus`, its models drawn from `config.local.seed`.
    pub fn new(config: LearnerConfig, corpus: TextCorpus) -> Result<Learner, TorchError> {
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
        let twin = LocalConfig {
            student_stands_in: false,
            ..config.local
        };
        let alone = config.alone.then(|| LocalModel::new(twin)).transpose()?;
        Ok(Learner {
            config,
            model,
            alone,
            corpus,
            pending: Pending::None,
            evaluated_at: None,
            progress: Progress::default(),
            evidence: vec![Evidence::default(); config.local.peers],
            served: None,
        })
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

    /// Validation cross-entropy with the peers' `answers`, with the student standing in for
    /// all of them, with zeros, and of the twin trained alone.
    fn evaluate(
        &mut self,
        batch: &Tensor,
        answers: &HashMap<usize, NodeTensor>,
    ) -> Result<(), TorchError> {
        let mut query = |j: usize, _: &NodeTensor| answers.get(&j).cloned();
        let mut valid = vec![
            (
                "peers".to_owned(),
                self.model.evaluate(batch, Mixture::Peers, &mut query)?,
            ),
            (
                "student".to_owned(),
                self.model.evaluate(batch, Mixture::Student, &mut query)?,
            ),
            (
                "zeros".to_owned(),
                self.model.evaluate(batch, Mixture::Zeros, &mut query)?,
            ),
        ];
        if let Some(alone) = &self.alone {
            valid.push((
                "alone".to_owned(),
                alone.evaluate(batch, Mixture::Zeros, &mut query)?,
            ));
        }
        self.progress.valid = valid;
        Ok(())
    }

    fn learn_inner(
        &mut self,
        answers: Vec<(u32, Option<NodeTensor>)>,
    ) -> Result<Vec<(u32, NodeTensor)>, TorchError> {
        let answers: HashMap<usize, NodeTensor> = answers
            .into_iter()
            .filter_map(|(j, a)| Some((j as usize, a?)))
            .collect();
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::None => Err(TorchError::Config("learn without ask")),
            Pending::Eval(batch) => {
                self.evaluate(&batch, &answers)?;
                Ok(Vec::new())
            }
            Pending::Train(batch) => {
                let report = self
                    .model
                    .step(&batch, &mut |j, _| answers.get(&j).cloned())?;
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
        let (batch, noisy) = if eval {
            self.evaluated_at = Some(steps);
            (
                self.corpus.valid_batch(self.config.batch, self.config.seq),
                false,
            )
        } else {
            let seed = self.config.local.seed.wrapping_mul(1_000_003) ^ steps;
            (
                self.corpus
                    .train_batch(self.config.batch, self.config.seq, seed),
                true,
            )
        };
        let ask = self.ask_for(&batch, noisy)?;
        self.pending = if eval {
            Pending::Eval(batch)
        } else {
            Pending::Train(batch)
        };
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
