//! Inputs and outputs shared by the GPU kernels and the CPU reference, and their shape checks.

use crate::GatingError;

/// The noise term of noisy top-k gating: `eps * softplus(x W_noise)`.
#[derive(Debug, Clone, Copy)]
pub struct Noise<'a> {
    /// `W_noise`, `[d, peers]` row-major.
    pub w_noise: &'a [f32],
    /// Standard normal samples, `[rows, peers]` row-major (seeded, e.g. from
    /// [`crate::standard_normal`]), so a run is reproducible.
    pub eps: &'a [f32],
}

/// Input of the gating layer: a batch of `rows` examples of width `d` and the gate weights.
#[derive(Debug, Clone, Copy)]
pub struct GateInput<'a> {
    /// Examples, `[rows, d]` row-major.
    pub x: &'a [f32],
    /// `W_g`, `[d, peers]` row-major.
    pub w_gate: &'a [f32],
    /// The noise term; `None` gives the plain (noise-free) top-k gate.
    pub noise: Option<Noise<'a>>,
    /// Number of examples.
    pub rows: usize,
    /// Width of an example.
    pub d: usize,
    /// Number of peers (experts).
    pub peers: usize,
}

/// One caller's batch for [`crate::Gpu::gating_forward_batched`] on a [`crate::ResidentGate`].
#[derive(Debug, Clone, Copy)]
pub struct GateRows<'a> {
    /// Examples, `[rows, d]` row-major.
    pub x: &'a [f32],
    /// Standard normal samples, `[rows, peers]`: given exactly when the gate is noisy.
    pub eps: Option<&'a [f32]>,
    /// Number of examples.
    pub rows: usize,
}

/// The sparse gate of a batch: for each row the `k` chosen peers, best first, and their gates.
///
/// Produced by `gating_forward` / `top_k_softmax`; may also be built by hand (then `indices`
/// must be below `peers`, repeats allowed: they add up in the per-peer sums).
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Chosen peers, `[rows, k]` row-major, in rank order (highest logit first).
    pub indices: Vec<u32>,
    /// Gates `g`, `[rows, k]`, the softmax over the kept logits; each finite row sums to 1.
    pub gates: Vec<f32>,
    /// Number of rows.
    pub rows: usize,
    /// Peers kept per row.
    pub k: usize,
    /// Number of peers the indices refer to.
    pub peers: usize,
}

/// The node's output head, for the Fisher information of its softmax cross-entropy.
#[derive(Debug, Clone, Copy)]
pub struct FisherHead<'a> {
    /// Head weights `A`, `[classes, d_out]` row-major: the head's logits are `A G(x)` (+ bias).
    pub weights: &'a [f32],
    /// Output probabilities `p = softmax(A G(x) + b)`, `[rows, classes]` row-major.
    pub probs: &'a [f32],
    /// Number of classes of the head.
    pub classes: usize,
}

/// The load-balancing terms of Shazeer et al. 2017 (section 4 and appendix A) for a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalance {
    /// `Importance_i = sum_x g_i(x)`, `[peers]`.
    pub importance: Vec<f32>,
    /// `Load_i = sum_x P(x, i)`, the smooth expected number of rows choosing peer `i`
    /// (`[peers]`); without noise, the number of rows that chose `i`.
    pub load: Vec<f32>,
    /// `CV(Importance)^2`, see [`crate::reference::cv_squared`].
    pub cv2_importance: f32,
    /// `CV(Load)^2`.
    pub cv2_load: f32,
}

pub(crate) fn mul(operand: &'static str, a: usize, b: usize) -> Result<usize, GatingError> {
    a.checked_mul(b).ok_or(GatingError::TooLargeForU32 {
        operand,
        value: usize::MAX,
    })
}

pub(crate) fn check_len(
    operand: &'static str,
    expected: usize,
    got: usize,
) -> Result<(), GatingError> {
    if expected == got {
        Ok(())
    } else {
        Err(GatingError::ShapeMismatch {
            operand,
            expected,
            got,
        })
    }
}

pub(crate) fn check_k(k: usize, peers: usize) -> Result<(), GatingError> {
    if k == 0 || k > peers {
        Err(GatingError::InvalidK { k, peers })
    } else {
        Ok(())
    }
}

impl GateInput<'_> {
    /// Checks every slice against `rows`, `d`, `peers`.
    pub(crate) fn validate(&self) -> Result<(), GatingError> {
        check_len("x", mul("rows * d", self.rows, self.d)?, self.x.len())?;
        let wd = mul("d * peers", self.d, self.peers)?;
        check_len("w_gate", wd, self.w_gate.len())?;
        if let Some(noise) = &self.noise {
            check_len("w_noise", wd, noise.w_noise.len())?;
            check_len(
                "eps",
                mul("rows * peers", self.rows, self.peers)?,
                noise.eps.len(),
            )?;
        }
        Ok(())
    }
}

impl Selection {
    /// Checks lengths, `k` and that every index is below `peers`.
    pub(crate) fn validate(&self) -> Result<(), GatingError> {
        check_k(self.k, self.peers)?;
        let n = mul("rows * k", self.rows, self.k)?;
        check_len("indices", n, self.indices.len())?;
        check_len("gates", n, self.gates.len())?;
        for (at, &index) in self.indices.iter().enumerate() {
            if index as usize >= self.peers {
                return Err(GatingError::IndexOutOfRange {
                    row: at / self.k,
                    slot: at % self.k,
                    index,
                    peers: self.peers,
                });
            }
        }
        Ok(())
    }
}

impl FisherHead<'_> {
    /// Checks the head against `d_out` and the selection's `rows`.
    pub(crate) fn validate(&self, rows: usize, d_out: usize) -> Result<(), GatingError> {
        check_len(
            "head.weights",
            mul("classes * d_out", self.classes, d_out)?,
            self.weights.len(),
        )?;
        check_len(
            "head.probs",
            mul("rows * classes", rows, self.classes)?,
            self.probs.len(),
        )
    }
}

/// Checks `responses` against `[rows, k, d_out]`.
pub(crate) fn check_responses(
    sel: &Selection,
    responses: &[f32],
    d_out: usize,
) -> Result<(), GatingError> {
    let n = mul("rows * k * d_out", mul("rows * k", sel.rows, sel.k)?, d_out)?;
    check_len("responses", n, responses.len())
}
