//! The node's own training: its encoder and the mixture `G(x)` of its peers feed a byte-level
//! next-token head; the gating layer routes, peers get `dL/df_j(x)`, Fisher scores accumulate
//! over the epoch, and a small student learns to stand in for the peers.

use std::path::Path;
use std::time::{Duration, Instant};

use deepnode_gating::standard_normal;
use deepnode_node::Tensor as NodeTensor;
use deepnode_wire::Modality;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::TorchError;
use crate::convert::{is_float, to_node, to_tch, tokens_to_node};
use crate::encoder::Encoder;
use crate::gating::{self, Balance, Gate, Logits};

mod config;
mod scores;

pub use config::{LocalConfig, MUTED_LOGIT, NETWORK_READOUT};
pub use scores::FisherBackend;

/// What stands for `G(x)` in an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mixture {
    /// The peers' responses, mixed by the gate.
    Peers,
    /// The distilled student `dist(x)`.
    Student,
    /// Zeros (no peers at all).
    Zeros,
}

/// A batch routed by the gate: the node's encoding and the chosen peers.
#[derive(Debug)]
pub struct Routed {
    /// Input bytes `[B, S]`.
    pub inputs: Tensor,
    /// Next bytes `[B, S]`.
    pub targets: Tensor,
    /// The node's own encoding `[B, S, D]` (the gate's input).
    pub own: Tensor,
    /// The gate's logits.
    pub logits: Logits,
    /// The gate: `k` peers per position.
    pub gate: Gate,
    /// Every peer chosen by at least one position, ascending: the peers to query.
    pub chosen: Vec<usize>,
}

/// The loss of a routed batch and its parts.
#[derive(Debug)]
pub struct Loss {
    /// Cross-entropy plus the weighted balance terms (what training minimizes).
    pub total: Tensor,
    /// Mean next-byte cross-entropy (nats).
    pub cross_entropy: Tensor,
    /// Head logits `[rows, 256]`.
    pub logits: Tensor,
    /// The slots' responses `[rows, k, D]`.
    pub slots: Tensor,
    /// The load-balancing terms.
    pub balance: Balance,
}

/// One training step's results.
#[derive(Debug)]
pub struct StepReport {
    /// Next-byte cross-entropy of the batch before the step (nats).
    pub loss: f64,
    /// The student's `KL(p_G || p_dist)` before its step.
    pub distill: f64,
    /// `(peer, dL/df_j(x))` for each peer that answered, `[B, S, D]`, ready for Backward.
    pub grads: Vec<(usize, NodeTensor)>,
    /// Peers whose answer was missing or refused (shape, dtype, NaN): zeros or the student
    /// stood in (`LocalConfig::student_stands_in`).
    pub missing: Vec<usize>,
    /// This batch's Fisher scores per peer (gating crate, mean over positions).
    pub fisher: Vec<f32>,
    /// This batch's leave-one-out benefit per peer (see [`LocalModel::benefit`]).
    pub benefit: Vec<f64>,
    /// Where the step's time went.
    pub timings: StepTimings,
}

/// Wall-clock time of each phase of a [`LocalModel::step`], in the order they run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepTimings {
    /// Encoding, the gate's logits and noise, top-k (`LocalModel::route`), the wire inputs.
    pub route: Duration,
    /// Asking the chosen peers (`query`) and checking and converting their answers, and the
    /// student's stand-in for a peer that did not answer.
    pub peers: Duration,
    /// The mixture, the head, the cross-entropies and the balance terms (`LocalModel::loss`).
    pub forward: Duration,
    /// Fisher scores (the gating crate) and each peer's leave-one-out benefit.
    pub scores: Duration,
    /// The backward pass.
    pub backward: Duration,
    /// Adam's step of the node's model.
    pub optimizer: Duration,
    /// `dL/df_j(x)` of each answering peer as node tensors.
    pub grads: Duration,
    /// The student's distillation steps (forward, backward, Adam).
    pub student: Duration,
}

impl StepTimings {
    /// The phases by name, in the order they run.
    pub fn phases(&self) -> [(&'static str, Duration); 8] {
        [
            ("route", self.route),
            ("peers", self.peers),
            ("forward", self.forward),
            ("scores", self.scores),
            ("backward", self.backward),
            ("optimizer", self.optimizer),
            ("grads", self.grads),
            ("student", self.student),
        ]
    }

    /// The whole step.
    pub fn total(&self) -> Duration {
        self.phases().iter().map(|(_, d)| *d).sum()
    }
}

impl std::ops::AddAssign for StepTimings {
    /// Phase by phase (the time of several steps).
    fn add_assign(&mut self, other: StepTimings) {
        self.route += other.route;
        self.peers += other.peers;
        self.forward += other.forward;
        self.scores += other.scores;
        self.backward += other.backward;
        self.optimizer += other.optimizer;
        self.grads += other.grads;
        self.student += other.student;
    }
}

/// The node's own model: encoder, gating layer over `peers`, head, and the student.
///
/// The head's logits are `W_o h(x) + b + A G(x)`, linear in `G`, so removing peer `j`
/// changes them by exactly `u = A g_j f_j(x)`: the gating crate's Fisher form with
/// `FisherHead { weights: A }` is the exact `u^T (diag p - p p^T) u`.
pub struct LocalModel {
    config: LocalConfig,
    vs: nn::VarStore,
    encoder: Encoder,
    w_gate: Tensor,
    w_noise: Tensor,
    own_w: Tensor,
    own_b: Tensor,
    /// The shared readout `E`, the node's bias `c` and the scale `s` of `E` in the mixing
    /// matrix ([`LocalConfig::readout`]).
    readout: Option<(Tensor, Tensor, Tensor)>,
    mix_w: Tensor,
    opt: nn::Optimizer,
    student_vs: nn::VarStore,
    student: Encoder,
    student_opt: nn::Optimizer,
    step: u64,
    fisher_sum: Vec<f64>,
    fisher_rows: u64,
    backend: FisherBackend,
    /// Per peer: training asks in a row it failed to answer.
    silent: Vec<u32>,
    /// Per peer: the training step until which it is muted (exclusive).
    muted_until: Vec<u64>,
}

impl LocalModel {
    /// A fresh model (parameters from `config.seed`), Fisher scores on the CPU reference.
    pub fn new(config: LocalConfig) -> Result<LocalModel, TorchError> {
        if config.k == 0 || config.k > config.peers {
            return Err(TorchError::Config("k must be in 1..=peers"));
        }
        if config.student_steps == 0 {
            return Err(TorchError::Config("student_steps must be at least 1"));
        }
        if config.student.dim != config.encoder.dim {
            return Err(TorchError::Config(
                "the student's dim must equal the encoder's",
            ));
        }
        tch::set_num_threads(1);
        tch::manual_seed(config.seed as i64);
        let (d, p) = (config.encoder.dim, config.peers as i64);
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let encoder = Encoder::new(&(&root / "encoder"), config.encoder)?;
        let scale = 1.0 / (d as f64).sqrt();
        let w_gate = root.var(
            "w_gate",
            &[d, p],
            nn::Init::Randn {
                mean: 0.0,
                stdev: scale,
            },
        );
        let w_noise = root.var("w_noise", &[d, p], nn::Init::Const(0.0));
        let init = nn::Init::Randn {
            mean: 0.0,
            stdev: scale,
        };
        let own_w = root.var("own_w", &[256, d], init);
        let readout = config.readout.map(|seed| {
            let values: Vec<f32> = standard_normal(seed, 256 * d as usize)
                .into_iter()
                .map(|v| v * scale as f32)
                .collect();
            (
                Tensor::from_slice(&values).view([256, d]),
                root.var("readout_b", &[256], nn::Init::Const(0.0)),
                root.var("readout_s", &[1], nn::Init::Const(0.0)),
            )
        });
        let own_b = root.var("own_b", &[256], nn::Init::Const(0.0));
        // A' = 0: without a shared readout, a peer's answer has no say in the output until
        // training gives it one, so no peer (useful or not) moves the loss at the start.
        let mix_w = root.var("mix_w", &[256, d], nn::Init::Const(0.0));
        let opt = nn::Adam::default().build(&vs, config.lr)?;
        let student_vs = nn::VarStore::new(Device::Cpu);
        let student = Encoder::new(&(student_vs.root() / "student"), config.student)?;
        let student_opt = nn::Adam::default().build(&student_vs, config.student_lr)?;
        Ok(LocalModel {
            fisher_sum: vec![0.0; config.peers],
            fisher_rows: 0,
            silent: vec![0; config.peers],
            muted_until: vec![0; config.peers],
            config,
            vs,
            encoder,
            w_gate,
            w_noise,
            own_w,
            own_b,
            readout,
            mix_w,
            opt,
            student_vs,
            student,
            student_opt,
            step: 0,
            backend: FisherBackend::Cpu,
        })
    }

    /// Computes Fisher scores with `backend` from now on.
    pub fn set_fisher_backend(&mut self, backend: FisherBackend) {
        self.backend = backend;
    }

    /// The configuration.
    pub fn config(&self) -> LocalConfig {
        self.config
    }

    /// Training steps taken (restored by [`LocalModel::load`]).
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Splits `batch` `[B, S + 1]` into inputs and targets, encodes, and gates: with the
    /// seeded noise (`standard_normal(seed + step)`) when `noisy`, noise-free otherwise.
    pub fn route(&self, batch: &Tensor, noisy: bool) -> Result<Routed, TorchError> {
        let size = batch.size();
        if size.len() != 2 || size[1] < 2 {
            return Err(TorchError::Shape {
                what: "batch",
                got: size,
                expected: "[B, S + 1] bytes".into(),
            });
        }
        let seq = size[1] - 1;
        let inputs = batch.narrow(1, 0, seq);
        let targets = batch.narrow(1, 1, seq);
        let own = self.encoder.forward(Modality::Text, &inputs)?;
        let rows = size[0] * seq;
        let x = if self.config.context_gate {
            running_mean(&own).reshape([rows, self.config.encoder.dim])
        } else {
            own.reshape([rows, self.config.encoder.dim])
        };
        let eps = (noisy && self.config.noise).then(|| {
            let peers = self.config.peers;
            let e = standard_normal(
                self.config.seed.wrapping_add(self.step),
                rows as usize * peers,
            );
            Tensor::from_slice(&e).view([rows, peers as i64])
        });
        let mut logits = gating::logits(&x, &self.w_gate, &self.w_noise, eps.as_ref());
        let muted: Vec<f32> = self
            .muted_until
            .iter()
            .map(|&until| {
                if until > self.step {
                    MUTED_LOGIT as f32
                } else {
                    0.0
                }
            })
            .collect();
        if muted.iter().any(|&m| m != 0.0) {
            logits = logits.lowered(&Tensor::from_slice(&muted));
        }
        let gate = gating::top_k_softmax(&logits.noisy, self.config.k as i64)?;
        let mut chosen: Vec<usize> = Vec::<i64>::try_from(gate.indices.contiguous().view(-1))?
            .into_iter()
            .map(|i| i as usize)
            .collect();
        chosen.sort_unstable();
        chosen.dedup();
        Ok(Routed {
            inputs,
            targets,
            own,
            logits,
            gate,
            chosen,
        })
    }

    /// The mixing matrix `A = A' + s E`: the trained `A'`, plus the shared readout `E`
    /// scaled by the trained `s` when the network has one. Both start at zero: a peer's answer
    /// has no say until training gives it one, and `E` is the direction in which every peer's
    /// answer gains it at once.
    fn mixing(&self) -> Tensor {
        match &self.readout {
            Some((e, _, scale)) => &self.mix_w + e * scale,
            None => self.mix_w.shallow_clone(),
        }
    }

    /// Head logits `W_o h + b + A G`, `[rows, 256]`, for `own` `[rows, D]` and `mixed`
    /// `[rows, D]`; with `frozen`, the head's parameters are detached (the student's loss
    /// trains the student only).
    fn head(&self, own: &Tensor, mixed: &Tensor, frozen: bool) -> Tensor {
        let pick = |t: &Tensor| {
            if frozen {
                t.detach()
            } else {
                t.shallow_clone()
            }
        };
        own.matmul(&pick(&self.own_w).tr())
            + pick(&self.own_b)
            + mixed.matmul(&pick(&self.mixing()).tr())
    }

    /// The loss of a routed batch given every peer's response `[B, S, D]` (index = peer;
    /// zeros for a peer not asked). Responses may be leaves that require grad (the remote
    /// path) or attached to a peer's graph (end to end in one process).
    pub fn loss(&self, routed: &Routed, responses: &[Tensor]) -> Result<Loss, TorchError> {
        let d = self.config.encoder.dim;
        if responses.len() != self.config.peers {
            return Err(TorchError::Config("one response per peer"));
        }
        let rows = routed.targets.numel() as i64;
        let flat: Vec<Tensor> = responses.iter().map(|r| r.reshape([rows, d])).collect();
        let all = Tensor::stack(&flat, 1);
        let k = self.config.k as i64;
        let index = routed
            .gate
            .indices
            .unsqueeze(-1)
            .expand([rows, k, d], false);
        let slots = all.gather(1, &index, false);
        let mixed = gating::combine(&routed.gate.gates, &slots);
        let own = routed.own.reshape([rows, d]);
        let logits = self.head(&own, &mixed, false);
        let targets = routed.targets.reshape([rows]);
        let cross_entropy = logits.cross_entropy_for_logits(&targets);
        let balance = gating::balance(&routed.logits, &routed.gate, k);
        let mut total = &cross_entropy
            + (&balance.cv2_importance + &balance.cv2_load) * self.config.balance_weight;
        if let Some((e, c, _)) = &self.readout {
            total += (own.matmul(&e.tr()) + c).cross_entropy_for_logits(&targets);
        }
        Ok(Loss {
            total,
            cross_entropy,
            logits,
            slots,
            balance,
        })
    }

    /// Checks a peer's answer: `[B, S, D]` floats, all finite; `None` when refused.
    fn accept(&self, answer: Option<NodeTensor>, shape: [i64; 3]) -> Option<Tensor> {
        let answer = answer?;
        let dims: Vec<i64> = answer.shape.dims().iter().map(|&v| i64::from(v)).collect();
        if dims != shape || !is_float(&answer) || !answer.is_finite() {
            return None;
        }
        to_tch(&answer).ok()
    }

    /// One training step on `batch` `[B, S + 1]`: route (noisy), ask each chosen peer through
    /// `query(peer, inputs)` (inputs `[B, S]` bytes as on the wire; `None` = no answer),
    /// Fisher scores of the batch, Adam step of the node's model, one distillation step of
    /// the student. Returns the gradients to send back.
    pub fn step(
        &mut self,
        batch: &Tensor,
        query: &mut dyn FnMut(usize, &NodeTensor) -> Option<NodeTensor>,
    ) -> Result<StepReport, TorchError> {
        let mut timings = StepTimings::default();
        let mut clock = Instant::now();
        let mut lap = |phase: &mut Duration| {
            let now = Instant::now();
            *phase = now - clock;
            clock = now;
        };
        let routed = self.route(batch, true)?;
        let wire_inputs = tokens_to_node(&routed.inputs)?;
        lap(&mut timings.route);
        let size = routed.inputs.size();
        let shape = [size[0], size[1], self.config.encoder.dim];
        let mut responses: Vec<Tensor> = Vec::with_capacity(self.config.peers);
        let mut answered = Vec::new();
        let mut missing = Vec::new();
        // What fills a chosen peer's slot when it does not answer: computed at the first miss.
        let mut stand_in: Option<Tensor> = None;
        for peer in 0..self.config.peers {
            if routed.chosen.binary_search(&peer).is_err() {
                responses.push(Tensor::zeros(shape, (Kind::Float, Device::Cpu)));
                continue;
            }
            match self.accept(query(peer, &wire_inputs), shape) {
                Some(r) => {
                    answered.push(peer);
                    responses.push(r.set_requires_grad(true));
                }
                None => {
                    missing.push(peer);
                    let fill = match &stand_in {
                        Some(t) => t.shallow_clone(),
                        None if self.config.student_stands_in => {
                            self.student_forward(&routed.inputs)?
                        }
                        None => Tensor::zeros(shape, (Kind::Float, Device::Cpu)),
                    };
                    responses.push(fill.shallow_clone());
                    stand_in = Some(fill);
                }
            }
        }
        self.note_silence(&answered, &missing);
        lap(&mut timings.peers);
        let loss = self.loss(&routed, &responses)?;
        lap(&mut timings.forward);
        let mut fisher = self.fisher_gating(&routed, &loss)?;
        let mut benefit = self.benefit(&routed, &loss)?;
        for &peer in &missing {
            fisher[peer] = 0.0;
            benefit[peer] = 0.0;
        }
        let rows = routed.targets.numel() as u64;
        for (sum, f) in self.fisher_sum.iter_mut().zip(&fisher) {
            *sum += f64::from(*f) * rows as f64;
        }
        self.fisher_rows += rows;
        lap(&mut timings.scores);
        self.opt.zero_grad();
        loss.total.f_backward()?;
        lap(&mut timings.backward);
        self.opt.step();
        lap(&mut timings.optimizer);
        let mut grads = Vec::with_capacity(answered.len());
        for peer in answered {
            grads.push((peer, to_node(&responses[peer].grad())?));
        }
        lap(&mut timings.grads);
        let distill = self.distill(&routed, &loss.logits)?;
        lap(&mut timings.student);
        self.step += 1;
        Ok(StepReport {
            loss: loss.cross_entropy.double_value(&[]),
            distill,
            grads,
            missing,
            fisher,
            benefit,
            timings,
        })
    }

    /// Counts each asked peer's failures in a row and mutes the ones that reach
    /// [`LocalConfig::mute_after`] (see there).
    fn note_silence(&mut self, answered: &[usize], missing: &[usize]) {
        for &peer in answered {
            self.silent[peer] = 0;
        }
        if self.config.mute_after == 0 {
            return;
        }
        for &peer in missing {
            self.silent[peer] = self.silent[peer].saturating_add(1);
            if self.silent[peer] >= self.config.mute_after {
                self.muted_until[peer] = self.step.saturating_add(1 + self.config.mute_steps);
            }
        }
    }

    /// The peers the gate does not choose at the next step ([`LocalConfig::mute_after`]).
    pub fn muted(&self) -> Vec<usize> {
        (0..self.config.peers)
            .filter(|&p| self.muted_until[p] > self.step)
            .collect()
    }

    /// [`LocalConfig::student_steps`] student steps on
    /// `KL(softmax(head(h, G)) || softmax(head(h, dist(x))))` with the head frozen and the
    /// teacher's logits detached; returns the KL before the first.
    fn distill(&mut self, routed: &Routed, teacher: &Tensor) -> Result<f64, TorchError> {
        let d = self.config.encoder.dim;
        let rows = routed.targets.numel() as i64;
        let own = routed.own.detach().reshape([rows, d]);
        let teacher = teacher.detach().log_softmax(1, Kind::Float);
        let mut first = None;
        for _ in 0..self.config.student_steps {
            let dist = self
                .student
                .forward(Modality::Text, &routed.inputs)?
                .reshape([rows, d]);
            let student = self.head(&own, &dist, true).log_softmax(1, Kind::Float);
            let kl = (teacher.exp() * (&teacher - &student))
                .sum_dim_intlist(1, false, Kind::Float)
                .mean(Kind::Float);
            self.student_opt.backward_step(&kl);
            first.get_or_insert(kl.double_value(&[]));
        }
        Ok(first.unwrap_or(0.0))
    }

    /// The node's own encoder's parameters by name (`encoder.*`, copies): what it serves
    /// when its served model follows its training ([`crate::TorchModel::set_parameters`]).
    pub fn encoder_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .filter(|(name, _)| name.starts_with("encoder."))
            .map(|(name, t)| (name, t.detach().copy()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every tensor of the model by name, sharing storage with it (so `grad()` gives the last
    /// backward's gradient): the node's variables (`encoder.*`, `w_gate`, `w_noise`, `own_w`,
    /// `own_b`, `mix_w`, and with a shared readout `readout_b` and `readout_s`), the student's
    /// (`student.*`), and the fixed shared readout `E` as `readout_e`; sorted by name.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = self.vs.variables();
        out.extend(self.student_vs.variables());
        let mut out: Vec<(String, Tensor)> = out.into_iter().collect();
        if let Some((e, _, _)) = &self.readout {
            out.push(("readout_e".to_owned(), e.shallow_clone()));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// `dist(x)`, the student's stand-in for `G(x)`, `[B, S, D]`, for inputs `[B, S]`.
    pub fn student_forward(&self, inputs: &Tensor) -> Result<Tensor, TorchError> {
        tch::no_grad(|| self.student.forward(Modality::Text, inputs))
    }

    /// Mean next-byte cross-entropy on `batch` (noise-free gate, no update) with `mixture`
    /// standing for `G(x)`; `query` is asked only for [`Mixture::Peers`].
    pub fn evaluate(
        &self,
        batch: &Tensor,
        mixture: Mixture,
        query: &mut dyn FnMut(usize, &NodeTensor) -> Option<NodeTensor>,
    ) -> Result<f64, TorchError> {
        tch::no_grad(|| {
            let routed = self.route(batch, false)?;
            let d = self.config.encoder.dim;
            let rows = routed.targets.numel() as i64;
            let own = routed.own.reshape([rows, d]);
            let targets = routed.targets.reshape([rows]);
            let mixed = match mixture {
                Mixture::Peers => {
                    let wire_inputs = tokens_to_node(&routed.inputs)?;
                    let size = routed.inputs.size();
                    let shape = [size[0], size[1], d];
                    let responses: Vec<Tensor> = (0..self.config.peers)
                        .map(|peer| {
                            let asked = routed.chosen.binary_search(&peer).is_ok();
                            asked
                                .then(|| self.accept(query(peer, &wire_inputs), shape))
                                .flatten()
                                .unwrap_or_else(|| Tensor::zeros(shape, (Kind::Float, Device::Cpu)))
                        })
                        .collect();
                    return Ok(self
                        .loss(&routed, &responses)?
                        .cross_entropy
                        .double_value(&[]));
                }
                Mixture::Student => self
                    .student
                    .forward(Modality::Text, &routed.inputs)?
                    .reshape([rows, d]),
                Mixture::Zeros => own.zeros_like(),
            };
            let logits = self.head(&own, &mixed, false);
            Ok(logits.cross_entropy_for_logits(&targets).double_value(&[]))
        })
    }

    /// Saves the model and the student into `dir` (`local.ot`, `student.ot`, `step`), so a
    /// restarted node resumes (Adam's moments restart from zero).
    pub fn save(&self, dir: &Path) -> Result<(), TorchError> {
        std::fs::create_dir_all(dir)?;
        self.vs.save(dir.join("local.ot"))?;
        self.student_vs.save(dir.join("student.ot"))?;
        std::fs::write(dir.join("step"), self.step.to_string())?;
        Ok(())
    }

    /// Loads what [`LocalModel::save`] wrote, into a model of the same configuration.
    pub fn load(&mut self, dir: &Path) -> Result<(), TorchError> {
        self.vs.load(dir.join("local.ot"))?;
        self.student_vs.load(dir.join("student.ot"))?;
        let step = std::fs::read_to_string(dir.join("step"))?;
        self.step = step
            .trim()
            .parse()
            .map_err(|_| TorchError::Checkpoint("step is not a number"))?;
        Ok(())
    }
}

/// The causal running mean over positions of `x` `[B, S, D]`: position `t` holds the mean of
/// positions `0..=t`.
fn running_mean(x: &Tensor) -> Tensor {
    let seq = x.size()[1];
    let counts = Tensor::arange_start(1, seq + 1, (Kind::Float, Device::Cpu)).view([1, seq, 1]);
    x.cumsum(1, Kind::Float) / counts
}
