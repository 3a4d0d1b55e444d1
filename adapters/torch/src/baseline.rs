//! The learner's training step as named tensors, for the PyTorch baseline
//! (`adapters/torch/bench/pytorch_step.py`, the same model and step written in PyTorch eager):
//! a [`Fixture`] (the model's configuration and initial tensors, batches, the gate's noise and
//! every peer's answers) and the results of [`LocalModel::step`] on it (losses, gradients,
//! scores, the final parameters), both as safetensors files that either side reads.
//!
//! Names in a fixture: `config.<field>` (f64 scalars: `k`, `peers`, `dim`, `kernel`, `lr`,
//! `student_lr`, `student_steps`, `balance_weight`), `param.<name>` (the tensors of
//! [`LocalModel::named_tensors`]), and per batch `i`: `batch.<i>` `[B, S + 1]` bytes (i64),
//! `eps.<i>` `[B S, peers]` (the gate's noise of step `i`) and `answers.<i>` `[peers, B, S, D]`.
//!
//! Names in the results, per step `i`: `loss.<i>` and `distill.<i>` (f64 scalars),
//! `fisher.<i>` `[peers]`, `benefit.<i>` `[peers]` (f64), `peer_grads.<i>` `[peers, B, S, D]`
//! (`dL/df_j`, zeros for a peer not asked), `grad.<i>.<name>` (every node variable's gradient
//! after the backward, before Adam); after the last step, `final.<name>` (every variable,
//! the student's included).

use std::path::Path;

use deepnode_gating::standard_normal;
use deepnode_node::{Model, Tensor as NodeTensor};
use deepnode_wire::Modality;
use tch::{Kind, Tensor};

use crate::TorchError;
use crate::convert::{to_tch, tokens_to_node};
use crate::data::TextCorpus;
use crate::local::{LocalConfig, LocalModel, StepReport};

/// Batches, the gate's noise and the peers' answers of a run of training steps, shared by the
/// tch step and the PyTorch baseline.
pub struct Fixture {
    config: LocalConfig,
    batches: Vec<Tensor>,
    /// Per batch, every peer's answer (index = peer).
    answers: Vec<Vec<NodeTensor>>,
}

impl Fixture {
    /// `count` training batches of `batch` windows of `seq` bytes from `corpus` (seeds `0..count`),
    /// each answered by every one of `peers` (`peers[j]` is slot `j`), for a model of `config`.
    ///
    /// The baseline covers the devnet learner's model: the shared readout, the context gate,
    /// the noisy gate, `k < peers`; other configurations are refused.
    pub fn new(
        config: LocalConfig,
        corpus: &TextCorpus,
        batch: usize,
        seq: usize,
        count: usize,
        peers: &[&dyn Model],
    ) -> Result<Fixture, TorchError> {
        if config.readout.is_none() || !config.context_gate || !config.noise {
            return Err(TorchError::Config(
                "the PyTorch baseline covers the shared readout, the context gate and the noise",
            ));
        }
        if config.k >= config.peers || peers.len() != config.peers {
            return Err(TorchError::Config(
                "the PyTorch baseline needs k < peers and one model per peer",
            ));
        }
        let mut batches = Vec::with_capacity(count);
        let mut answers = Vec::with_capacity(count);
        for i in 0..count {
            let b = corpus.train_batch(batch, seq, i as u64);
            let inputs = tokens_to_node(&b.narrow(1, 0, seq as i64))?;
            let row = peers
                .iter()
                .map(|p| p.forward(Modality::Text, &inputs))
                .collect::<Result<Vec<_>, _>>()?;
            batches.push(b);
            answers.push(row);
        }
        Ok(Fixture {
            config,
            batches,
            answers,
        })
    }

    /// Number of batches.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// Whether there are no batches.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The fixture as named tensors (see the module docs), with `model`'s tensors as
    /// `param.*`; `model` must be fresh (step 0) and of the fixture's configuration.
    pub fn tensors(&self, model: &LocalModel) -> Result<Vec<(String, Tensor)>, TorchError> {
        self.check(model)?;
        let c = &self.config;
        let scalars = [
            ("k", c.k as f64),
            ("peers", c.peers as f64),
            ("dim", c.encoder.dim as f64),
            ("kernel", c.encoder.kernel as f64),
            ("lr", c.lr),
            ("student_lr", c.student_lr),
            ("student_steps", f64::from(c.student_steps)),
            ("balance_weight", c.balance_weight),
        ];
        let mut out: Vec<(String, Tensor)> = scalars
            .iter()
            .map(|(n, v)| (format!("config.{n}"), Tensor::from(*v)))
            .collect();
        for (name, t) in model.named_tensors() {
            out.push((format!("param.{name}"), t.detach().copy()));
        }
        for (i, (b, row)) in self.batches.iter().zip(&self.answers).enumerate() {
            let rows = b.size()[0] * (b.size()[1] - 1);
            let eps = standard_normal(c.seed.wrapping_add(i as u64), rows as usize * c.peers);
            let answers = row.iter().map(to_tch).collect::<Result<Vec<_>, _>>()?;
            out.push((format!("batch.{i}"), b.copy()));
            out.push((
                format!("eps.{i}"),
                Tensor::from_slice(&eps).view([rows, c.peers as i64]),
            ));
            out.push((format!("answers.{i}"), Tensor::stack(&answers, 0)));
        }
        Ok(out)
    }

    /// Writes [`Fixture::tensors`] to `path` (safetensors).
    pub fn write(&self, model: &LocalModel, path: &Path) -> Result<(), TorchError> {
        write(&self.tensors(model)?, path)
    }

    /// `model.step` on batch `i` (modulo the count) with the peers' answers given.
    pub fn step(&self, model: &mut LocalModel, i: usize) -> Result<StepReport, TorchError> {
        let i = i % self.batches.len().max(1);
        let row = self
            .answers
            .get(i)
            .ok_or(TorchError::Config("an empty fixture"))?;
        model.step(&self.batches[i], &mut |j, _| row.get(j).cloned())
    }

    /// Runs `model` (fresh, of the fixture's configuration) through every batch in order and
    /// returns the results as named tensors (see the module docs).
    pub fn run(&self, model: &mut LocalModel) -> Result<Vec<(String, Tensor)>, TorchError> {
        self.check(model)?;
        let mut out = Vec::new();
        for i in 0..self.batches.len() {
            let report = self.step(model, i)?;
            let size = self.batches[i].size();
            let shape = [size[0], size[1] - 1, self.config.encoder.dim];
            let mut grads: Vec<Tensor> = (0..self.config.peers)
                .map(|_| Tensor::zeros(shape, (Kind::Float, tch::Device::Cpu)))
                .collect();
            for (j, g) in &report.grads {
                grads[*j] = to_tch(g)?;
            }
            out.push((format!("loss.{i}"), Tensor::from(report.loss)));
            out.push((format!("distill.{i}"), Tensor::from(report.distill)));
            out.push((format!("fisher.{i}"), Tensor::from_slice(&report.fisher)));
            out.push((format!("benefit.{i}"), Tensor::from_slice(&report.benefit)));
            out.push((format!("peer_grads.{i}"), Tensor::stack(&grads, 0)));
            for (name, t) in model.named_tensors() {
                let g = t.grad();
                if !name.starts_with("student.") && g.defined() {
                    out.push((format!("grad.{i}.{name}"), g.copy()));
                }
            }
        }
        for (name, t) in model.named_tensors() {
            out.push((format!("final.{name}"), t.detach().copy()));
        }
        Ok(out)
    }

    fn check(&self, model: &LocalModel) -> Result<(), TorchError> {
        if model.steps() != 0 || model.config() != self.config {
            return Err(TorchError::Config(
                "the fixture needs a fresh model of its configuration",
            ));
        }
        Ok(())
    }
}

/// Writes named tensors to `path` as safetensors.
pub fn write(tensors: &[(String, Tensor)], path: &Path) -> Result<(), TorchError> {
    let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    Ok(Tensor::write_safetensors(&named, path)?)
}

/// Reads the named tensors of a safetensors file.
pub fn read(path: &Path) -> Result<Vec<(String, Tensor)>, TorchError> {
    Ok(Tensor::read_safetensors(path)?)
}
