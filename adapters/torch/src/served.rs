//! The served side: [`TorchModel`], an [`Encoder`] behind the node's [`Model`] seam, which
//! applies the gradients its callers send.

use std::path::Path;
use std::sync::Mutex;

use deepnode_node::{Model, NodeError, Tensor as NodeTensor};
use deepnode_wire::Modality;
use tch::{Device, Tensor, nn};

use crate::TorchError;
use crate::convert::{is_float, to_node, to_tch};
use crate::encoder::{Encoder, EncoderConfig};

/// How a served encoder applies a remote gradient `dL/df(x)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServeConfig {
    /// The step `p -= rate * clip(grad)` (plain SGD: callers' gradients arrive one by one).
    pub rate: f64,
    /// The largest global L2 norm of one update's parameter gradient; larger ones are scaled
    /// down to it (a caller cannot move the model arbitrarily far in one request).
    pub max_norm: f64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            rate: 0.01,
            max_norm: 1.0,
        }
    }
}

struct Inner {
    vs: nn::VarStore,
    encoder: Encoder,
}

/// A node's served encoder `f_i(x)`: TEXT, TENSOR and IMAGE inputs to `[B, S, D]`.
///
/// [`Model::backward`] refuses a gradient that is not `[B, S, D]` of floats or holds NaN or
/// infinity; otherwise it backpropagates `(f(x) * grad).sum()` through the encoder (which is
/// exactly `dL/dtheta = dL/df . df/dtheta`, the caller's chain rule) and takes one clipped
/// SGD step. libtorch runs on one thread per node (`tch::set_num_threads(1)`).
pub struct TorchModel {
    inner: Mutex<Inner>,
    config: ServeConfig,
}

impl TorchModel {
    /// A fresh encoder drawn from `seed`.
    pub fn new(
        seed: i64,
        encoder: EncoderConfig,
        config: ServeConfig,
    ) -> Result<TorchModel, TorchError> {
        if !(config.rate.is_finite() && config.rate >= 0.0 && config.max_norm > 0.0) {
            return Err(TorchError::Config("rate must be >= 0 and max_norm > 0"));
        }
        tch::set_num_threads(1);
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let encoder = Encoder::new(&(vs.root() / "encoder"), encoder)?;
        Ok(TorchModel {
            inner: Mutex::new(Inner { vs, encoder }),
            config,
        })
    }

    /// The gradient policy.
    pub fn config(&self) -> ServeConfig {
        self.config
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, TorchError> {
        self.inner
            .lock()
            .map_err(|_| TorchError::Config("model lock poisoned by a panic"))
    }

    /// `f(x)` with the graph attached, for training this encoder end to end in one process
    /// (the reference the remote-gradient path is tested against).
    pub fn forward_attached(
        &self,
        modality: Modality,
        inputs: &Tensor,
    ) -> Result<Tensor, TorchError> {
        self.lock()?.encoder.forward(modality, inputs)
    }

    /// `f(x)` without a graph.
    pub fn forward_tch(&self, modality: Modality, inputs: &Tensor) -> Result<Tensor, TorchError> {
        let inner = self.lock()?;
        tch::no_grad(|| inner.encoder.forward(modality, inputs))
    }

    /// Applies the remote gradient `grad` (`[B, S, D]`) of `f(inputs)`: checks, backward,
    /// clip, step (see the type's docs).
    pub fn apply_gradient(
        &self,
        modality: Modality,
        inputs: &Tensor,
        grad: &Tensor,
    ) -> Result<(), TorchError> {
        let inner = self.lock()?;
        let expected = inner.encoder.output_shape(modality, inputs)?;
        if grad.size() != expected {
            return Err(TorchError::Shape {
                what: "gradient",
                got: grad.size(),
                expected: format!("{expected:?}"),
            });
        }
        let grad = crate::encoder::finite_float(grad, "gradient")?;
        let h = inner.encoder.forward(modality, inputs)?;
        zero_grads(&inner.vs);
        (h * grad).sum(tch::Kind::Float).f_backward()?;
        self.step(&inner.vs)
    }

    /// One clipped SGD step with the gradients accumulated in the parameters (by
    /// [`TorchModel::apply_gradient`], or by an end-to-end backward through
    /// [`TorchModel::forward_attached`]); clears them. Refuses non-finite gradients.
    pub fn step_accumulated(&self) -> Result<(), TorchError> {
        let inner = self.lock()?;
        self.step(&inner.vs)
    }

    fn step(&self, vs: &nn::VarStore) -> Result<(), TorchError> {
        let vars = vs.trainable_variables();
        let grads: Vec<Tensor> = vars.iter().map(|v| v.grad()).collect();
        let mut sq = 0f64;
        for g in grads.iter().filter(|g| g.defined()) {
            sq += g.square().sum(tch::Kind::Double).double_value(&[]);
        }
        if !sq.is_finite() {
            zero_grads(vs);
            return Err(TorchError::NonFinite("parameter gradient"));
        }
        let norm = sq.sqrt();
        let scale = if norm > self.config.max_norm {
            self.config.max_norm / norm
        } else {
            1.0
        };
        tch::no_grad(|| {
            for (v, g) in vars.iter().zip(&grads) {
                if g.defined() {
                    let mut v = v.shallow_clone();
                    if scale == 1.0 {
                        let _ = v.f_sub_(&(g * self.config.rate));
                    } else {
                        let _ = v.f_sub_(&(g * (self.config.rate * scale)));
                    }
                }
            }
        });
        zero_grads(vs);
        Ok(())
    }

    /// All parameters by name (copies), e.g. to compare two models.
    pub fn parameters(&self) -> Result<Vec<(String, Tensor)>, TorchError> {
        let inner = self.lock()?;
        let mut out: Vec<(String, Tensor)> = inner
            .vs
            .variables()
            .into_iter()
            .map(|(name, t)| (name, t.detach().copy()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Copies every parameter of `other` (same configuration) into this model.
    pub fn copy_from(&self, other: &TorchModel) -> Result<(), TorchError> {
        let src = other.lock()?;
        let mut dst = self.lock()?;
        dst.vs.copy(&src.vs)?;
        Ok(())
    }

    /// Overwrites the parameters named in `params` (e.g. [`crate::LocalModel::encoder_parameters`]
    /// of a model with the same encoder configuration) with their values; every name must
    /// exist here with the same shape. Returns how many were copied.
    pub fn set_parameters(&self, params: &[(String, Tensor)]) -> Result<usize, TorchError> {
        let inner = self.lock()?;
        let mut vars = inner.vs.variables();
        tch::no_grad(|| {
            for (name, value) in params {
                let dst = vars
                    .get_mut(name)
                    .ok_or(TorchError::Config("a parameter this model does not have"))?;
                if dst.size() != value.size() {
                    return Err(TorchError::Shape {
                        what: "parameter",
                        got: value.size(),
                        expected: format!("{:?}", dst.size()),
                    });
                }
                dst.f_copy_(value)?;
            }
            Ok(params.len())
        })
    }

    /// Saves the parameters (a VarStore file; `.safetensors` selects that format).
    pub fn save(&self, path: &Path) -> Result<(), TorchError> {
        Ok(self.lock()?.vs.save(path)?)
    }

    /// Loads parameters saved by [`TorchModel::save`] from a model of the same configuration.
    pub fn load(&self, path: &Path) -> Result<(), TorchError> {
        Ok(self.lock()?.vs.load(path)?)
    }
}

/// Clears the gradients of every trainable variable.
pub(crate) fn zero_grads(vs: &nn::VarStore) {
    for mut v in vs.trainable_variables() {
        v.zero_grad();
    }
}

impl Model for TorchModel {
    fn dim(&self) -> u32 {
        self.lock()
            .map(|inner| inner.encoder.config().dim as u32)
            .unwrap_or(0)
    }

    fn serves(&self, modality: Modality) -> bool {
        Encoder::serves(modality)
    }

    fn forward(&self, modality: Modality, inputs: &NodeTensor) -> Result<NodeTensor, NodeError> {
        let x = to_tch(inputs)?;
        Ok(to_node(&self.forward_tch(modality, &x)?)?)
    }

    fn backward(
        &self,
        modality: Modality,
        inputs: &NodeTensor,
        grad: &NodeTensor,
    ) -> Result<(), NodeError> {
        if !is_float(grad) {
            return Err(TorchError::DType("gradient").into());
        }
        if !grad.is_finite() {
            return Err(TorchError::NonFinite("gradient").into());
        }
        let x = to_tch(inputs)?;
        let g = to_tch(grad)?;
        Ok(self.apply_gradient(modality, &x, &g)?)
    }
}
