//! The seam between the node and a model: [`Model`], and two small pure-Rust models for tests
//! and for running without libtorch.

use std::sync::Mutex;

use deepnode_rng::{GAMMA, SplitMix64, mix};
use deepnode_wire::{DType, Modality};

use crate::{NodeError, Tensor};

/// What a node serves: its encoder `f_i`. The node checks shapes, dtypes, finiteness and
/// deadlines before calling it; the model never sees a socket, and the node never sees the
/// model's framework.
pub trait Model: Send + Sync + 'static {
    /// The network's representation width `D` (the last dimension of every output).
    fn dim(&self) -> u32;
    /// Whether the model takes inputs of `modality`.
    fn serves(&self, modality: Modality) -> bool;
    /// `f_i(x)`: inputs whose first two dimensions are `[B, S]` (images: `[B, C, H, W]` with
    /// `S = 1`) to an f32 tensor `[B, S, D]`.
    fn forward(&self, modality: Modality, inputs: &Tensor) -> Result<Tensor, NodeError>;
    /// Applies a caller's gradient `dL/df_i(x)` (`[B, S, D]`) for `inputs` to the model's
    /// own parameters (scaled, clipped: the model's policy). Finite and shaped, checked.
    fn backward(&self, modality: Modality, inputs: &Tensor, grad: &Tensor)
    -> Result<(), NodeError>;
}

/// `[B, S]` of the output for `inputs` of `modality`.
fn batch_seq(modality: Modality, inputs: &Tensor) -> Result<(u32, u32), NodeError> {
    match (modality, inputs.shape.dims()) {
        (Modality::Image, &[b, ..]) => Ok((b, 1)),
        (_, &[b, s, ..]) => Ok((b, s)),
        _ => Err(NodeError::Model(
            "inputs need at least two dimensions".into(),
        )),
    }
}

/// A fixed random projection: TEXT token `t` maps to row `t mod 256` of a seeded matrix,
/// float features `[B, S, F]` to `x W` with a seeded `W` (`F x D`), images to the projection of
/// their flattened pixels. Parameters never change (`backward` only checks its inputs).
pub struct RandomProjection {
    seed: u64,
    dim: u32,
}

impl RandomProjection {
    /// A projection to width `dim` drawn from `seed`.
    pub fn new(seed: u64, dim: u32) -> RandomProjection {
        RandomProjection { seed, dim }
    }

    /// Entry `(row, col)` of the seeded matrix, uniform in `[-1, 1)` (SplitMix64 of the index).
    fn weight(&self, row: u64, col: u64) -> f32 {
        unit(
            self.seed
                .wrapping_add(row.wrapping_mul(GAMMA))
                .wrapping_add(col.wrapping_mul(0xbf58_476d_1ce4_e5b9)),
        )
    }
}

/// SplitMix64's output function of `z`, as a float uniform in `[-1, 1)`.
fn unit(z: u64) -> f32 {
    (mix(z) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

impl Model for RandomProjection {
    fn dim(&self) -> u32 {
        self.dim
    }

    fn serves(&self, _: Modality) -> bool {
        true
    }

    fn forward(&self, modality: Modality, inputs: &Tensor) -> Result<Tensor, NodeError> {
        let (b, s) = batch_seq(modality, inputs)?;
        let d = self.dim as usize;
        let positions = b as usize * s as usize;
        let mut out = vec![0f32; positions * d];
        if let Some(tokens) = inputs.to_i64() {
            for (p, &t) in tokens.iter().enumerate().take(positions) {
                let row = t.rem_euclid(256) as u64;
                for (k, o) in out[p * d..(p + 1) * d].iter_mut().enumerate() {
                    *o = self.weight(row, k as u64);
                }
            }
        } else {
            let x = inputs.to_f32();
            let f = x.len() / positions.max(1);
            let scale = 1.0 / (f.max(1) as f32).sqrt();
            for p in 0..positions {
                for (k, o) in out[p * d..(p + 1) * d].iter_mut().enumerate() {
                    let dot: f32 = (0..f)
                        .map(|i| x[p * f + i] * self.weight(i as u64, k as u64))
                        .sum();
                    *o = dot * scale;
                }
            }
        }
        Tensor::from_f32(&[b, s, self.dim], &out)
    }

    fn backward(
        &self,
        modality: Modality,
        inputs: &Tensor,
        grad: &Tensor,
    ) -> Result<(), NodeError> {
        check_grad(modality, inputs, grad, self.dim)
    }
}

/// A model whose output is a learned bias `beta` (`[D]`, broadcast to `[B, S, D]`) whatever
/// the inputs; `backward` applies `beta -= rate * mean_{b,s} grad`. It shows that a caller's
/// gradient reaches the served parameters.
pub struct EchoBias {
    bias: Mutex<Vec<f32>>,
    rate: f32,
}

impl EchoBias {
    /// A bias of `dim` zeros, learning at `rate`.
    pub fn new(dim: u32, rate: f32) -> EchoBias {
        EchoBias {
            bias: Mutex::new(vec![0.0; dim as usize]),
            rate,
        }
    }

    /// The current bias.
    pub fn bias(&self) -> Vec<f32> {
        self.bias.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl Model for EchoBias {
    fn dim(&self) -> u32 {
        self.bias().len() as u32
    }

    fn serves(&self, _: Modality) -> bool {
        true
    }

    fn forward(&self, modality: Modality, inputs: &Tensor) -> Result<Tensor, NodeError> {
        let (b, s) = batch_seq(modality, inputs)?;
        let bias = self.bias();
        let out: Vec<f32> = (0..b as usize * s as usize)
            .flat_map(|_| bias.iter().copied())
            .collect();
        Tensor::from_f32(&[b, s, bias.len() as u32], &out)
    }

    fn backward(
        &self,
        modality: Modality,
        inputs: &Tensor,
        grad: &Tensor,
    ) -> Result<(), NodeError> {
        let (b, s) = batch_seq(modality, inputs)?;
        let mut bias = self
            .bias
            .lock()
            .map_err(|_| NodeError::Model("poisoned".into()))?;
        let d = bias.len();
        if grad.shape.dims() != [b, s, d as u32] || grad.dtype == DType::I64 {
            return Err(NodeError::Model("gradient shape is not [B, S, D]".into()));
        }
        let g = grad.to_f32();
        let positions = (b as usize * s as usize).max(1) as f32;
        for (k, beta) in bias.iter_mut().enumerate() {
            let mean: f32 = g.iter().skip(k).step_by(d).sum::<f32>() / positions;
            *beta -= self.rate * mean;
        }
        Ok(())
    }
}

/// A model that serves seeded noise, uniform in `[-scale, scale)`, fresh on every call, and
/// ignores the gradients it gets (a node that answers but helps nobody).
pub struct Noise {
    dim: u32,
    scale: f32,
    rng: Mutex<SplitMix64>,
}

impl Noise {
    /// Noise of width `dim` and amplitude `scale`, drawn from `seed`.
    pub fn new(seed: u64, dim: u32, scale: f32) -> Noise {
        Noise {
            dim,
            scale,
            rng: Mutex::new(SplitMix64::new(seed)),
        }
    }
}

impl Model for Noise {
    fn dim(&self) -> u32 {
        self.dim
    }

    fn serves(&self, _: Modality) -> bool {
        true
    }

    fn forward(&self, modality: Modality, inputs: &Tensor) -> Result<Tensor, NodeError> {
        let (b, s) = batch_seq(modality, inputs)?;
        let len = b as usize * s as usize * self.dim as usize;
        let mut rng = self
            .rng
            .lock()
            .map_err(|_| NodeError::Model("poisoned".into()))?;
        let out: Vec<f32> = (0..len)
            .map(|_| rng.signed_unit_f32() * self.scale)
            .collect();
        Tensor::from_f32(&[b, s, self.dim], &out)
    }

    fn backward(
        &self,
        modality: Modality,
        inputs: &Tensor,
        grad: &Tensor,
    ) -> Result<(), NodeError> {
        check_grad(modality, inputs, grad, self.dim)
    }
}

/// A model that serves the same value everywhere (zeros: a lazy node) and ignores gradients.
pub struct Constant {
    dim: u32,
    value: f32,
}

impl Constant {
    /// `value` in every entry of `[B, S, dim]`.
    pub fn new(dim: u32, value: f32) -> Constant {
        Constant { dim, value }
    }
}

impl Model for Constant {
    fn dim(&self) -> u32 {
        self.dim
    }

    fn serves(&self, _: Modality) -> bool {
        true
    }

    fn forward(&self, modality: Modality, inputs: &Tensor) -> Result<Tensor, NodeError> {
        let (b, s) = batch_seq(modality, inputs)?;
        let len = b as usize * s as usize * self.dim as usize;
        Tensor::from_f32(&[b, s, self.dim], &vec![self.value; len])
    }

    fn backward(
        &self,
        modality: Modality,
        inputs: &Tensor,
        grad: &Tensor,
    ) -> Result<(), NodeError> {
        check_grad(modality, inputs, grad, self.dim)
    }
}

/// `grad` must be `[B, S, dim]` for `inputs`.
fn check_grad(
    modality: Modality,
    inputs: &Tensor,
    grad: &Tensor,
    dim: u32,
) -> Result<(), NodeError> {
    let (b, s) = batch_seq(modality, inputs)?;
    if grad.shape.dims() != [b, s, dim] {
        return Err(NodeError::Model("gradient shape is not [B, S, D]".into()));
    }
    Ok(())
}
