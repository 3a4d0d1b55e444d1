//! The gating layer in torch: noisy top-k over peers (Shazeer et al. 2017) with the
//! load-balancing terms, under exactly the definitions, tie rule and NaN rules of
//! `deepnode_gating::reference` (tested for parity in `tests/parity.rs`). Differentiable, so
//! the node trains `W_g` and `W_noise` with its loss.

use deepnode_gating::Selection;
use tch::{Kind, Tensor};

use crate::TorchError;

/// The three `[rows, peers]` parts of the noisy logits, as in the gating crate.
#[derive(Debug)]
pub struct Logits {
    /// `x W_g`.
    pub clean: Tensor,
    /// `softplus(x W_noise)`; zeros without noise.
    pub sd: Tensor,
    /// `H = clean + eps * sd`.
    pub noisy: Tensor,
    /// Whether the noise term was used (`eps` given).
    pub with_noise: bool,
}

/// `H(x) = x W_g + eps * softplus(x W_noise)` for `x` `[rows, d]`, `W` `[d, peers]` and `eps`
/// `[rows, peers]` (`None`: the noise-free gate `x W_g`).
pub fn logits(x: &Tensor, w_gate: &Tensor, w_noise: &Tensor, eps: Option<&Tensor>) -> Logits {
    let clean = x.matmul(w_gate);
    match eps {
        Some(eps) => {
            let sd = softplus(&x.matmul(w_noise));
            let noisy = &clean + eps * &sd;
            Logits {
                clean,
                sd,
                noisy,
                with_noise: true,
            }
        }
        None => Logits {
            sd: clean.zeros_like(),
            noisy: clean.shallow_clone(),
            clean,
            with_noise: false,
        },
    }
}

impl Logits {
    /// The logits with `bias` `[peers]` added to every row of `clean` and `noisy` (a gate
    /// that must not choose some peers lowers their logits; the noise scale is unchanged).
    pub fn lowered(self, bias: &Tensor) -> Logits {
        Logits {
            clean: &self.clean + bias,
            noisy: &self.noisy + bias,
            ..self
        }
    }
}

/// `softplus(z) = max(z, 0) + ln(1 + e^{-|z|})`, the gating crate's formula (NaN stays NaN).
pub fn softplus(z: &Tensor) -> Tensor {
    z.relu() + (-z.abs()).exp().log1p()
}

/// `deepnode_gating::reference::order_key` on every element, as i64 in `0..2^32`: larger
/// logit, larger key; `+0 == -0`; `-inf` lowest number; every NaN below it.
pub fn order_key(v: &Tensor) -> Tensor {
    let b = v
        .to_kind(Kind::Float)
        .contiguous()
        .view_dtype(Kind::Int)
        .to_kind(Kind::Int64)
        .bitwise_and(0xffff_ffff_i64);
    let mag = b.bitwise_and(0x7fff_ffff_i64);
    let negative = b.ge(0x8000_0000_i64);
    // !b for a u32 is 2^32 - 1 - b; a positive b gets the top bit set.
    let key = (b.neg() + 0xffff_ffff_i64).where_self(&negative, &(&b + 0x8000_0000_i64));
    let key = key.where_self(&mag.ne(0), &key.full_like(0x8000_0000_i64));
    key.where_self(&mag.le(0x7f80_0000_i64), &key.zeros_like())
}

/// The sparse gate of a batch in torch.
#[derive(Debug)]
pub struct Gate {
    /// Chosen peers `[rows, k]` (i64), best first, ties to the lower index.
    pub indices: Tensor,
    /// Their gates `[rows, k]` (differentiable in the logits).
    pub gates: Tensor,
    /// All peers in rank order `[rows, peers]` (i64).
    pub order: Tensor,
}

impl Gate {
    /// The gate as the gating crate's [`Selection`], for its kernels (Fisher scores, mass).
    pub fn selection(&self, peers: usize) -> Result<Selection, TorchError> {
        let size = self.indices.size();
        let (rows, k) = (size[0] as usize, size[1] as usize);
        let indices: Vec<i64> = Vec::try_from(self.indices.contiguous().view(-1))?;
        let gates: Vec<f32> = Vec::try_from(self.gates.detach().contiguous().view(-1))?;
        Ok(Selection {
            indices: indices.into_iter().map(|i| i as u32).collect(),
            gates,
            rows,
            k,
            peers,
        })
    }
}

/// `Softmax(KeepTopK(logits, k))` per row of `logits` `[rows, peers]`, with the gating
/// crate's rules: rank by [`order_key`] (a stable sort keeps the lower index first on ties);
/// a NaN among the kept makes the row's gates NaN; else kept `+inf` share the mass equally;
/// else if all kept are `-inf` the gates are `1/k`; else the softmax (`exp(-inf) = 0`).
pub fn top_k_softmax(logits: &Tensor, k: i64) -> Result<Gate, TorchError> {
    let peers = logits.size().get(1).copied().unwrap_or(0);
    if k < 1 || k > peers {
        return Err(TorchError::Config("k must be in 1..=peers"));
    }
    let (_, order) = order_key(logits).sort_stable(true, 1, true);
    let indices = order.narrow(1, 0, k);
    let kept = logits.gather(1, &indices, false);
    let nan_row = kept.isnan().any_dim(1, true);
    let pos_inf = kept.eq(f64::INFINITY);
    let n_pos_inf = pos_inf.sum_dim_intlist(1, true, Kind::Float);
    let inf_row = n_pos_inf.gt(0.0);
    let first_neg_inf = kept.narrow(1, 0, 1).eq(f64::NEG_INFINITY);
    let regular = nan_row
        .logical_not()
        .logical_and(&inf_row.logical_not())
        .logical_and(&first_neg_inf.logical_not());
    // Irregular rows become zeros, whose softmax is the all -inf rule's 1/k; the other
    // irregular cases are overwritten below. Keeping them finite keeps the backward finite.
    let safe = kept.where_self(&regular, &kept.zeros_like());
    let soft = safe.softmax(1, Kind::Float);
    let share = pos_inf.to_kind(Kind::Float) / n_pos_inf.clamp_min(1.0);
    let gates = soft.where_self(&inf_row.logical_not(), &share);
    let gates = gates.where_self(&nan_row.logical_not(), &gates.full_like(f64::NAN));
    Ok(Gate {
        indices,
        gates,
        order,
    })
}

/// `G(x) = sum_s g_s f_s`, `[rows, d]`, from gates `[rows, k]` and the slots' responses
/// `[rows, k, d]`.
pub fn combine(gates: &Tensor, responses: &Tensor) -> Tensor {
    (gates.unsqueeze(-1) * responses).sum_dim_intlist(1, false, Kind::Float)
}

/// `CV(v)^2 = Var(v) / (Mean(v)^2 + 1e-10)`, population variance.
pub fn cv_squared(v: &Tensor) -> Tensor {
    let mean = v.mean(Kind::Float);
    let var = (v - &mean).square().mean(Kind::Float);
    var / (mean.square() + 1e-10)
}

/// The load-balancing terms in torch (differentiable).
#[derive(Debug)]
pub struct Balance {
    /// `Importance_i = sum_x g_i(x)`, `[peers]`.
    pub importance: Tensor,
    /// `Load_i = sum_x P(x, i)`, `[peers]`.
    pub load: Tensor,
    /// `CV(Importance)^2`.
    pub cv2_importance: Tensor,
    /// `CV(Load)^2`.
    pub cv2_load: Tensor,
}

/// Importance and smooth load (appendix A) of a gate: `P(x, i) = Phi((clean_i - t_i) / sd_i)`
/// with `t_i` the `k`-th best noisy logit of the other peers; 1 or 0 (selected or not)
/// without noise or where `sd_i = 0`; all ones when `k = peers`.
pub fn balance(logits: &Logits, gate: &Gate, k: i64) -> Balance {
    let peers = logits.noisy.size()[1];
    let dense = logits
        .noisy
        .zeros_like()
        .scatter_add(1, &gate.indices, &gate.gates);
    let importance = dense.sum_dim_intlist(0, false, Kind::Float);
    let selected = logits
        .noisy
        .zeros_like()
        .scatter_add(1, &gate.indices, &gate.gates.ones_like())
        .gt(0.0);
    let load = if k == peers {
        logits.noisy.ones_like()
    } else {
        let ranked = logits.noisy.gather(1, &gate.order, false);
        let kth = ranked.narrow(1, k - 1, 1);
        let next = ranked.narrow(1, k, 1);
        let threshold = next.where_self(&selected, &kth);
        let hard = selected.to_kind(Kind::Float);
        if logits.with_noise {
            let zero_sd = logits.sd.eq(0.0);
            let sd = logits
                .sd
                .where_self(&zero_sd.logical_not(), &logits.sd.ones_like());
            let z = (&logits.clean - threshold) / sd;
            let phi = (-z * std::f64::consts::FRAC_1_SQRT_2).erfc() * 0.5;
            phi.where_self(&zero_sd.logical_not(), &hard)
        } else {
            hard
        }
    };
    let load = load.sum_dim_intlist(0, false, Kind::Float);
    Balance {
        cv2_importance: cv_squared(&importance),
        cv2_load: cv_squared(&load),
        importance,
        load,
    }
}
