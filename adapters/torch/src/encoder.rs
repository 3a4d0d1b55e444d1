//! The served encoder `f_i(x)`: one small network per modality, each to `[batch, seq, dim]`.

use deepnode_wire::Modality;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::TorchError;

/// Sizes of an [`Encoder`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderConfig {
    /// `D`, the width of every output (the network's representation width).
    pub dim: i64,
    /// Width of the hidden layers.
    pub hidden: i64,
    /// Causal convolution width of the TEXT encoder (bytes seen per layer).
    pub kernel: i64,
    /// `F`, the feature width of TENSOR inputs `[B, S, F]`.
    pub features: i64,
    /// `C`, the channels of IMAGE inputs `[B, C, H, W]`.
    pub channels: i64,
    /// Side of the square IMAGE patches; `H` and `W` must be multiples of it.
    pub patch: i64,
}

impl Default for EncoderConfig {
    /// The default model of the figures in `docs/benchmarks.md`: `D = 32`.
    fn default() -> Self {
        EncoderConfig {
            dim: 32,
            hidden: 64,
            kernel: 4,
            features: 16,
            channels: 3,
            patch: 4,
        }
    }
}

impl EncoderConfig {
    fn validate(&self) -> Result<(), TorchError> {
        let all = [
            self.dim,
            self.hidden,
            self.kernel,
            self.features,
            self.channels,
            self.patch,
        ];
        if all.iter().any(|&v| v < 1) {
            return Err(TorchError::Config("encoder sizes must be positive"));
        }
        Ok(())
    }
}

/// The three encoders of a node, under one `nn::Path`:
///
/// - TEXT: bytes `[B, S]` (i64 in `0..256`): embedding, then two causal convolutions (left
///   padded, so position `t` sees bytes `<= t` only: a peer cannot leak the next byte) with a
///   residual, to `[B, S, D]`.
/// - TENSOR: features `[B, S, F]`: a two-layer MLP per position, to `[B, S, D]`.
/// - IMAGE: `[B, C, H, W]`: non-overlapping `patch x patch` patches embedded by a strided
///   convolution, an MLP per patch, mean over patches, to `[B, 1, D]`.
#[derive(Debug)]
pub struct Encoder {
    config: EncoderConfig,
    embed: Tensor,
    conv1: nn::Conv1D,
    conv2: nn::Conv1D,
    feat1: nn::Linear,
    feat2: nn::Linear,
    patches: nn::Conv2D,
    patch_mlp: nn::Linear,
}

impl Encoder {
    /// Creates the encoder's variables under `path` (initialized from libtorch's generator:
    /// call `tch::manual_seed` first for a reproducible model).
    pub fn new(path: &nn::Path<'_>, config: EncoderConfig) -> Result<Encoder, TorchError> {
        config.validate()?;
        let c = config;
        let plain = nn::ConvConfig::default();
        let strided = nn::ConvConfig {
            stride: c.patch,
            ..Default::default()
        };
        Ok(Encoder {
            embed: path.var(
                "embed",
                &[256, c.dim],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            ),
            conv1: nn::conv1d(path / "conv1", c.dim, c.hidden, c.kernel, plain),
            conv2: nn::conv1d(path / "conv2", c.hidden, c.dim, c.kernel, plain),
            feat1: nn::linear(path / "feat1", c.features, c.hidden, Default::default()),
            feat2: nn::linear(path / "feat2", c.hidden, c.dim, Default::default()),
            patches: nn::conv2d(path / "patches", c.channels, c.dim, c.patch, strided),
            patch_mlp: nn::linear(path / "patch_mlp", c.dim, c.dim, Default::default()),
            config,
        })
    }

    /// The sizes this encoder was built with.
    pub fn config(&self) -> EncoderConfig {
        self.config
    }

    /// Whether `modality` has an encoder here (TEXT, TENSOR, IMAGE; not SPEECH).
    pub fn serves(modality: Modality) -> bool {
        matches!(
            modality,
            Modality::Text | Modality::Tensor | Modality::Image
        )
    }

    /// `f(x)` for `inputs` of `modality`, `[B, S, D]` (IMAGE: `[B, 1, D]`); shapes, dtypes,
    /// token range and finiteness are checked before libtorch sees the inputs.
    pub fn forward(&self, modality: Modality, inputs: &Tensor) -> Result<Tensor, TorchError> {
        match modality {
            Modality::Text => self.text(inputs),
            Modality::Tensor => self.features(inputs),
            Modality::Image => self.image(inputs),
            other => Err(TorchError::Modality(other)),
        }
    }

    /// `[B, S]` of the output for `inputs` of `modality` (checked as in [`Encoder::forward`]).
    pub fn output_shape(
        &self,
        modality: Modality,
        inputs: &Tensor,
    ) -> Result<[i64; 3], TorchError> {
        let size = inputs.size();
        let ok = match modality {
            Modality::Text => size.len() == 2,
            Modality::Tensor => size.len() == 3 && size[2] == self.config.features,
            Modality::Image => {
                size.len() == 4
                    && size[1] == self.config.channels
                    && size[2] % self.config.patch == 0
                    && size[3] % self.config.patch == 0
                    && size[2] > 0
                    && size[3] > 0
            }
            other => return Err(TorchError::Modality(other)),
        };
        if !ok {
            let c = &self.config;
            let expected = match modality {
                Modality::Text => "[B, S] bytes".to_string(),
                Modality::Tensor => format!("[B, S, {}]", c.features),
                _ => format!(
                    "[B, {}, H, W], H and W multiples of {}",
                    c.channels, c.patch
                ),
            };
            return Err(TorchError::Shape {
                what: "inputs",
                got: size,
                expected,
            });
        }
        let seq = if modality == Modality::Image {
            1
        } else {
            size[1]
        };
        Ok([size[0], seq, self.config.dim])
    }

    fn text(&self, tokens: &Tensor) -> Result<Tensor, TorchError> {
        self.output_shape(Modality::Text, tokens)?;
        if tokens.kind() != Kind::Int64 {
            return Err(TorchError::DType("TEXT inputs (i64 bytes)"));
        }
        if tokens.numel() > 0 {
            let (lo, hi) = (tokens.min().int64_value(&[]), tokens.max().int64_value(&[]));
            if !(0..256).contains(&lo) || !(0..256).contains(&hi) {
                return Err(TorchError::Token(if lo < 0 { lo } else { hi }));
            }
        }
        let e = Tensor::f_embedding(&self.embed, tokens, -1, false, false)?;
        let pad = [self.config.kernel - 1, 0];
        let t = e.f_transpose(1, 2)?;
        let t = t.f_constant_pad_nd(pad)?.apply(&self.conv1).gelu("none");
        let t = t.f_constant_pad_nd(pad)?.apply(&self.conv2);
        Ok(t.f_transpose(1, 2)? + e)
    }

    fn features(&self, x: &Tensor) -> Result<Tensor, TorchError> {
        self.output_shape(Modality::Tensor, x)?;
        let x = finite_float(x, "TENSOR inputs")?;
        Ok(x.apply(&self.feat1).gelu("none").apply(&self.feat2))
    }

    fn image(&self, x: &Tensor) -> Result<Tensor, TorchError> {
        self.output_shape(Modality::Image, x)?;
        let x = finite_float(x, "IMAGE inputs")?;
        // [B, D, H/p, W/p] -> [B, N, D]: one row per patch.
        let p = self
            .patches
            .forward(&x)
            .f_flatten(2, 3)?
            .f_transpose(1, 2)?;
        let p = p.gelu("none").apply(&self.patch_mlp);
        Ok(p.f_mean_dim(1, true, Kind::Float)?)
    }
}

/// `x` as f32, refusing NaN and infinity.
pub(crate) fn finite_float(x: &Tensor, what: &'static str) -> Result<Tensor, TorchError> {
    if !x.is_floating_point() {
        return Err(TorchError::DType(what));
    }
    let x = x.f_to_kind(Kind::Float)?;
    if x.numel() > 0 && !bool::try_from(x.f_isfinite()?.f_all()?)? {
        return Err(TorchError::NonFinite(what));
    }
    Ok(x)
}
