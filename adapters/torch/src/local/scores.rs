//! Scoring peers: the gating crate's Fisher scores of a batch (on the CPU reference or the
//! GPU), the same scores in torch from their definition, each peer's leave-one-out benefit,
//! and their sums over an epoch.

use deepnode_gating::{FisherHead, Gpu, reference};
use tch::{Device, Kind, Tensor};

use super::{LocalModel, Loss, Routed};
use crate::TorchError;
use crate::gating;

/// Which implementation computed the gating crate's Fisher scores.
pub enum FisherBackend {
    /// `deepnode_gating::reference` on the CPU.
    Cpu,
    /// The wgpu kernels.
    Gpu(Box<Gpu>),
}

impl FisherBackend {
    /// The GPU where `Gpu::new()` finds an adapter, else the CPU reference.
    pub fn detect() -> FisherBackend {
        Gpu::new().map_or(FisherBackend::Cpu, |g| FisherBackend::Gpu(Box::new(g)))
    }

    /// Fisher scores of the gating crate for `sel`, `responses` `[rows, k, d]`, `head`.
    pub fn scores(
        &self,
        sel: &deepnode_gating::Selection,
        responses: &[f32],
        d: usize,
        head: &FisherHead<'_>,
    ) -> Result<Vec<f32>, TorchError> {
        Ok(match self {
            FisherBackend::Cpu => reference::fisher_scores(sel, responses, d, head)?,
            FisherBackend::Gpu(gpu) => gpu.fisher_scores(sel, responses, d, head)?,
        })
    }
}

impl LocalModel {
    /// This batch's Fisher scores per peer by the gating crate (on the configured backend)
    /// from the torch gate, the slots' responses and `p = softmax(logits)`.
    pub fn fisher_gating(&self, routed: &Routed, loss: &Loss) -> Result<Vec<f32>, TorchError> {
        let sel = routed.gate.selection(self.config.peers)?;
        let responses: Vec<f32> = Vec::try_from(loss.slots.detach().contiguous().view(-1))?;
        let probs: Vec<f32> = Vec::try_from(
            loss.logits
                .detach()
                .softmax(1, Kind::Float)
                .contiguous()
                .view(-1),
        )?;
        let weights: Vec<f32> = Vec::try_from(self.mixing().detach().contiguous().view(-1))?;
        let head = FisherHead {
            weights: &weights,
            probs: &probs,
            classes: 256,
        };
        self.backend
            .scores(&sel, &responses, self.config.encoder.dim as usize, &head)
    }

    /// The same scores in torch (f64), from their definition: for each slot, `u` = the head's
    /// logits with `G(x)` minus those with `G(x) - g_j f_j(x)`, `score_j = mean_x u^T (diag p
    /// - p p^T) u`. The check of [`LocalModel::fisher_gating`].
    pub fn fisher_torch(&self, routed: &Routed, loss: &Loss) -> Result<Vec<f64>, TorchError> {
        tch::no_grad(|| {
            let d = self.config.encoder.dim;
            let rows = routed.targets.numel() as i64;
            let own = routed.own.detach().reshape([rows, d]).to_kind(Kind::Double);
            let slots = loss.slots.detach().to_kind(Kind::Double);
            let gates = routed.gate.gates.detach().to_kind(Kind::Double);
            let mixed = gating::combine(&gates, &slots).to_kind(Kind::Double);
            let (w, b, a) = (
                self.own_w.detach().to_kind(Kind::Double),
                self.own_b.detach().to_kind(Kind::Double),
                self.mixing().detach().to_kind(Kind::Double),
            );
            let head = |g: &Tensor| own.matmul(&w.tr()) + &b + g.matmul(&a.tr());
            let full = head(&mixed);
            let p = full.softmax(1, Kind::Double);
            let mut scores = Tensor::zeros([self.config.peers as i64], (Kind::Double, Device::Cpu));
            for s in 0..self.config.k as i64 {
                let term = gates.narrow(1, s, 1) * slots.select(1, s);
                let u = &full - head(&(&mixed - term));
                let q = (&p * u.square()).sum_dim_intlist(1, false, Kind::Double)
                    - (&p * &u).sum_dim_intlist(1, false, Kind::Double).square();
                scores = scores.scatter_add(0, &routed.gate.indices.select(1, s), &q);
            }
            Ok(Vec::<f64>::try_from(scores / rows as f64)?)
        })
    }

    /// Per peer, the mean over positions of how much the cross-entropy would rise without
    /// its slot: `CE(head(h, G - g_j f_j)) - CE(head(h, G))`, summed over the slots `j` fills.
    /// Positive for a peer that helps; negative for one whose answer hurts (noise). Fisher
    /// scores say how much a peer moves the output; this says in which direction for the loss.
    pub fn benefit(&self, routed: &Routed, loss: &Loss) -> Result<Vec<f64>, TorchError> {
        tch::no_grad(|| {
            let rows = routed.targets.numel() as i64;
            let targets = routed.targets.reshape([rows, 1]);
            let ce = |logits: &Tensor| -> Tensor {
                -logits
                    .log_softmax(1, Kind::Double)
                    .gather(1, &targets, false)
                    .squeeze_dim(1)
            };
            let full = loss.logits.detach().to_kind(Kind::Double);
            let base = ce(&full);
            let a = self.mixing().detach().to_kind(Kind::Double);
            let gates = routed.gate.gates.detach().to_kind(Kind::Double);
            let slots = loss.slots.detach().to_kind(Kind::Double);
            let mut out = Tensor::zeros([self.config.peers as i64], (Kind::Double, Device::Cpu));
            for s in 0..self.config.k as i64 {
                let term = gates.narrow(1, s, 1) * slots.select(1, s);
                let without = &full - term.matmul(&a.tr());
                let delta = ce(&without) - &base;
                out = out.scatter_add(0, &routed.gate.indices.select(1, s), &delta);
            }
            Ok(Vec::<f64>::try_from(out / rows as f64)?)
        })
    }

    /// The epoch's Fisher score per peer: the mean over every position trained on since the
    /// last [`LocalModel::reset_epoch`] (zeros before any step).
    pub fn epoch_scores(&self) -> Vec<f64> {
        let rows = self.fisher_rows.max(1) as f64;
        self.fisher_sum.iter().map(|s| s / rows).collect()
    }

    /// Starts a new epoch of Fisher scores.
    pub fn reset_epoch(&mut self) {
        self.fisher_sum.fill(0.0);
        self.fisher_rows = 0;
    }
}
