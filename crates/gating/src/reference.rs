//! CPU reference of every kernel: plain, sequential Rust, the oracle the GPU is tested against.
//!
//! Each function sums in the same order as its shader, so the two differ only by the
//! rounding of `exp`/`log` and fused multiply-adds (see the tolerances in the crate docs).
//! Non-finite values follow IEEE-754 arithmetic; the selection uses [`order_key`].

#![allow(
    clippy::needless_range_loop,
    reason = "index loops spell out the shaders' summation order, the point of a reference"
)]

#[cfg(test)]
use crate::Noise;
use crate::types::{GateInput, LoadBalance, Selection, check_k, check_len, check_responses, mul};
use crate::{FisherHead, GatingError};

/// `softplus(z) = max(z, 0) + ln(1 + e^{-|z|})`, written with a comparison (not `f32::max`)
/// so that a NaN `z` gives NaN, as in the shader.
pub fn softplus(z: f32) -> f32 {
    (if z > 0.0 { z } else { 0.0 }) + (1.0 + (-z.abs()).exp()).ln()
}

/// The selection order of a logit: a monotone map to `u32` (larger logit, larger key) that is
/// a total order: `+0 == -0`, `-inf` is the lowest number and every NaN ranks below it.
/// Equal keys rank the lower peer index first (the tie rule).
pub fn order_key(v: f32) -> u32 {
    let b = v.to_bits();
    let mag = b & 0x7fff_ffff;
    if mag > 0x7f80_0000 {
        0
    } else if mag == 0 {
        0x8000_0000
    } else if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// The three `[rows, peers]` parts of the noisy logits: clean `x W_g`, noise standard deviation
/// `softplus(x W_noise)` (zeros without noise) and `H = clean + eps * sd`.
fn logit_parts(input: &GateInput<'_>) -> Result<[Vec<f32>; 3], GatingError> {
    input.validate()?;
    let (rows, d, peers) = (input.rows, input.d, input.peers);
    let mut clean = vec![0.0f32; rows * peers];
    let mut sd = vec![0.0f32; rows * peers];
    let mut h = vec![0.0f32; rows * peers];
    let mut acc_noise = vec![0.0f32; peers];
    for r in 0..rows {
        let acc = &mut clean[r * peers..(r + 1) * peers];
        acc_noise.fill(0.0);
        // Loop t outside j for cache order; each element still sums t = 0..d in order.
        for t in 0..d {
            let xv = input.x[r * d + t];
            for j in 0..peers {
                acc[j] += xv * input.w_gate[t * peers + j];
                if let Some(noise) = &input.noise {
                    acc_noise[j] += xv * noise.w_noise[t * peers + j];
                }
            }
        }
        for j in 0..peers {
            let at = r * peers + j;
            h[at] = clean[at];
            if let Some(noise) = &input.noise {
                sd[at] = softplus(acc_noise[j]);
                h[at] = clean[at] + noise.eps[at] * sd[at];
            }
        }
    }
    Ok([clean, sd, h])
}

/// Noisy gating logits `H(x)_j = (x W_g)_j + eps_j softplus((x W_noise)_j)` (Shazeer et al.
/// 2017, eq. 4), `[rows, peers]`; without noise, `x W_g`. Mirrors `shaders/gating_logits.wgsl`.
pub fn gating_logits(input: &GateInput<'_>) -> Result<Vec<f32>, GatingError> {
    let [_, _, h] = logit_parts(input)?;
    Ok(h)
}

/// The peers of one row in rank order: by [`order_key`] descending, ties by lower index.
fn ranked(row: &[f32]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..row.len() as u32).collect();
    order.sort_by(|&a, &b| {
        order_key(row[b as usize])
            .cmp(&order_key(row[a as usize]))
            .then(a.cmp(&b))
    });
    order
}

/// Softmax over one row's kept logits (given best first), with the limit rules of the shader:
/// a NaN among them makes every gate NaN; else `+inf` entries share the mass equally; else if
/// all are `-inf` the gates are `1/k`; else `exp(v - v_max) / sum` with `exp(-inf) = 0`.
fn kept_softmax(kept: &[f32]) -> Vec<f32> {
    let k = kept.len();
    if kept.iter().any(|v| v.is_nan()) {
        return vec![f32::NAN; k];
    }
    let n_pos_inf = kept.iter().filter(|&&v| v == f32::INFINITY).count();
    if n_pos_inf > 0 {
        let share = 1.0 / n_pos_inf as f32;
        return kept
            .iter()
            .map(|&v| if v == f32::INFINITY { share } else { 0.0 })
            .collect();
    }
    let v_max = kept[0];
    if v_max == f32::NEG_INFINITY {
        return vec![1.0 / k as f32; k];
    }
    let e: Vec<f32> = kept
        .iter()
        .map(|&v| {
            if v == f32::NEG_INFINITY {
                0.0
            } else {
                (v - v_max).exp()
            }
        })
        .collect();
    let mut sum = 0.0f32;
    for &x in &e {
        sum += x;
    }
    e.iter().map(|&x| x / sum).collect()
}

/// `Softmax(KeepTopK(logits, k))` per row of `logits` (`[rows, peers]`): the `k` best peers in
/// rank order (see [`order_key`] for ties and NaN) and their gates. Mirrors
/// `shaders/top_k_softmax.wgsl`.
pub fn top_k_softmax(
    logits: &[f32],
    rows: usize,
    peers: usize,
    k: usize,
) -> Result<Selection, GatingError> {
    check_k(k, peers)?;
    check_len("logits", mul("rows * peers", rows, peers)?, logits.len())?;
    let mut indices = Vec::with_capacity(rows * k);
    let mut gates = Vec::with_capacity(rows * k);
    for r in 0..rows {
        let row = &logits[r * peers..(r + 1) * peers];
        let top = &ranked(row)[..k];
        let kept: Vec<f32> = top.iter().map(|&j| row[j as usize]).collect();
        indices.extend_from_slice(top);
        gates.extend(kept_softmax(&kept));
    }
    Ok(Selection {
        indices,
        gates,
        rows,
        k,
        peers,
    })
}

/// The gating layer's forward pass: [`top_k_softmax`] of [`gating_logits`].
pub fn gating_forward(input: &GateInput<'_>, k: usize) -> Result<Selection, GatingError> {
    check_k(k, input.peers)?;
    top_k_softmax(&gating_logits(input)?, input.rows, input.peers, k)
}

/// The mixed output `G(x) = sum_s g_s(x) f_s(x)` over the `k` selected peers, `[rows, d_out]`;
/// `responses` is `[rows, k, d_out]`, slot `s` holding the response of `sel.indices[r, s]`.
/// Mirrors `shaders/combine.wgsl`.
pub fn combine(sel: &Selection, responses: &[f32], d_out: usize) -> Result<Vec<f32>, GatingError> {
    sel.validate()?;
    check_responses(sel, responses, d_out)?;
    let mut mixed = vec![0.0f32; sel.rows * d_out];
    for r in 0..sel.rows {
        for t in 0..d_out {
            let mut acc = 0.0f32;
            for s in 0..sel.k {
                let slot = r * sel.k + s;
                acc += sel.gates[slot] * responses[slot * d_out + t];
            }
            mixed[r * d_out + t] = acc;
        }
    }
    Ok(mixed)
}

/// Sums `values[r, s]` into `out[indices[r, s]]` in the order `r`, then `s` (per-row dense
/// accumulation then a column sum over rows, as the scatter and column-sum shaders do).
fn per_peer_sum(sel: &Selection, values: &[f32]) -> Vec<f32> {
    let mut dense_row = vec![0.0f32; sel.peers];
    let mut out = vec![0.0f32; sel.peers];
    for r in 0..sel.rows {
        dense_row.fill(0.0);
        for s in 0..sel.k {
            dense_row[sel.indices[r * sel.k + s] as usize] += values[r * sel.k + s];
        }
        for (o, v) in out.iter_mut().zip(&dense_row) {
            *o += *v;
        }
    }
    out
}

/// Mean gate mass per peer, `m_i = (1 / rows) sum_x g_i(x)` (`g_i = 0` where not selected):
/// the cheap proxy of a peer's weight. Zeros when `rows == 0`.
pub fn gate_mass(sel: &Selection) -> Result<Vec<f32>, GatingError> {
    sel.validate()?;
    let sums = per_peer_sum(sel, &sel.gates);
    Ok(mean_over_rows(sums, sel.rows))
}

pub(crate) fn mean_over_rows(mut sums: Vec<f32>, rows: usize) -> Vec<f32> {
    if rows > 0 {
        let inv = rows as f32;
        for v in &mut sums {
            *v /= inv;
        }
    }
    sums
}

/// The Fisher quadratic form of removing the peer in each slot, `[rows, k]`:
/// `dF = -g f`, `u = A dF`, `q = sum_c p_c u_c^2 - (sum_c p_c u_c)^2 = dF^T H dF` with `H` the
/// Fisher information of the head's softmax cross-entropy at `p`. `q >= 0` up to rounding
/// (no clamp). Mirrors `shaders/fisher_terms.wgsl`.
pub fn fisher_terms(
    sel: &Selection,
    responses: &[f32],
    d_out: usize,
    head: &FisherHead<'_>,
) -> Result<Vec<f32>, GatingError> {
    sel.validate()?;
    check_responses(sel, responses, d_out)?;
    head.validate(sel.rows, d_out)?;
    let classes = head.classes;
    let mut terms = vec![0.0f32; sel.rows * sel.k];
    // `W^T`, `[d_out, classes]`: the class sums below run over `t` in the same order as the
    // shader's, one class per lane, so they round alike and vectorise across classes.
    let mut w_t = vec![0.0f32; d_out * classes];
    for c in 0..classes {
        for t in 0..d_out {
            w_t[t * classes + c] = head.weights[c * d_out + t];
        }
    }
    let mut u = vec![0.0f32; classes];
    for r in 0..sel.rows {
        let probs = &head.probs[r * classes..(r + 1) * classes];
        for s in 0..sel.k {
            let e = r * sel.k + s;
            let g = sel.gates[e];
            u.fill(0.0);
            for t in 0..d_out {
                let w_row = &w_t[t * classes..(t + 1) * classes];
                let d_f = -g * responses[e * d_out + t];
                for (u_c, w) in u.iter_mut().zip(w_row) {
                    *u_c += w * d_f;
                }
            }
            let (mut mean_u, mut mean_u2) = (0.0f32, 0.0f32);
            for (&u_c, &p) in u.iter().zip(probs) {
                mean_u += p * u_c;
                mean_u2 += p * u_c * u_c;
            }
            terms[e] = mean_u2 - mean_u * mean_u;
        }
    }
    Ok(terms)
}

/// Fisher pruning score per peer (`docs/mechanism.md`, "Scoring peers"),
/// `r_i = (1 / rows) sum_x dF_i^T H dF_i`: the per-slot [`fisher_terms`] summed per peer and
/// divided by `rows` (a peer not selected in a row contributes 0 there). Zeros when `rows == 0`.
pub fn fisher_scores(
    sel: &Selection,
    responses: &[f32],
    d_out: usize,
    head: &FisherHead<'_>,
) -> Result<Vec<f32>, GatingError> {
    let terms = fisher_terms(sel, responses, d_out, head)?;
    Ok(mean_over_rows(per_peer_sum(sel, &terms), sel.rows))
}

/// Complementary error function by the Numerical Recipes Chebyshev fit `erfcc` (fractional
/// error below 1.2e-7), in the exact expression order of `shaders/load_prob.wgsl`.
#[allow(
    clippy::excessive_precision,
    reason = "the literals are the shader's, digit for digit, so both round to the same f32"
)]
pub fn erfc(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223
        + t * (1.00002368
            + t * (0.37409196
                + t * (0.09678418
                    + t * (-0.18628806
                        + t * (0.27886807
                            + t * (-1.13520398
                                + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let ans = t * (-z * z + poly).exp();
    if x >= 0.0 { ans } else { 2.0 - ans }
}

/// Standard normal CDF, `Phi(z) = erfc(-z / sqrt 2) / 2`.
pub fn normal_cdf(z: f32) -> f32 {
    0.5 * erfc(-z * core::f32::consts::FRAC_1_SQRT_2)
}

/// The smooth load estimator of Shazeer et al. 2017, appendix A, `[rows, peers]`:
/// `P(x, i) = Phi((clean_i - kth_excluding(H, k, i)) / sd_i)`, where `kth_excluding` is the
/// `k`-th largest noisy logit among the other peers (`-inf` when `k == peers`, so `P = 1`).
/// Without noise, or where `sd_i == 0`, `P` is 1 if peer `i` is selected and 0 if not.
/// Mirrors `shaders/load_prob.wgsl`.
pub fn load_probability(input: &GateInput<'_>, k: usize) -> Result<Vec<f32>, GatingError> {
    check_k(k, input.peers)?;
    let [clean, sd, h] = logit_parts(input)?;
    let peers = input.peers;
    let mut prob = vec![0.0f32; input.rows * peers];
    for r in 0..input.rows {
        let row = &h[r * peers..(r + 1) * peers];
        let order = ranked(row);
        let kth = row[order[k - 1] as usize];
        let next = if k < peers {
            row[order[k] as usize]
        } else {
            f32::NEG_INFINITY
        };
        for (rank, &j) in order.iter().enumerate() {
            let at = r * peers + j as usize;
            let selected = rank < k;
            prob[at] = if input.noise.is_none() || sd[at] == 0.0 {
                if selected { 1.0 } else { 0.0 }
            } else {
                let threshold = if selected { next } else { kth };
                normal_cdf((clean[at] - threshold) / sd[at])
            };
        }
    }
    Ok(prob)
}

/// Squared coefficient of variation, `CV(v)^2 = Var(v) / (Mean(v)^2 + 1e-10)` with the
/// population variance (the `cv_squared` of Shazeer et al.'s implementation); 0 for an empty
/// slice. Used on the GPU path too, on the per-peer sums the GPU returns.
pub fn cv_squared(v: &[f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let n = v.len() as f32;
    let mean = v.iter().sum::<f32>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
    var / (mean * mean + 1e-10)
}

/// Importance, load and their `CV^2` for a batch (Shazeer et al. 2017, eq. 6-7 and 10-11):
/// `Importance_i = sum_x g_i(x)` from [`gating_forward`], `Load_i = sum_x P(x, i)` from
/// [`load_probability`]. A trainer adds `w_imp CV(Importance)^2 + w_load CV(Load)^2`.
pub fn load_balance(input: &GateInput<'_>, k: usize) -> Result<LoadBalance, GatingError> {
    let sel = gating_forward(input, k)?;
    let importance = per_peer_sum(&sel, &sel.gates);
    let prob = load_probability(input, k)?;
    let mut load = vec![0.0f32; input.peers];
    for r in 0..input.rows {
        for (j, l) in load.iter_mut().enumerate() {
            *l += prob[r * input.peers + j];
        }
    }
    Ok(LoadBalance {
        cv2_importance: cv_squared(&importance),
        cv2_load: cv_squared(&load),
        importance,
        load,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`fisher_terms`] rounds as its definition, term for term: each class's sum over `t` in
    /// ascending order, then the probability-weighted moments over the classes in order.
    #[test]
    fn fisher_terms_round_as_the_definition() {
        let mut rng = deepnode_rng::SplitMix64::new(7);
        for (rows, k, d_out, classes) in [(3, 2, 5, 7), (4, 4, 32, 256), (1, 1, 1, 1), (2, 3, 4, 0)]
        {
            let mut draw =
                |n: usize| -> Vec<f32> { (0..n).map(|_| rng.signed_unit_f32()).collect() };
            let gates = draw(rows * k);
            let responses = draw(rows * k * d_out);
            let weights = draw(classes * d_out);
            let probs: Vec<f32> = draw(rows * classes).iter().map(|p| p.abs()).collect();
            let sel = Selection {
                indices: (0..rows * k).map(|e| (e % k) as u32).collect(),
                gates,
                rows,
                k,
                peers: k,
            };
            let head = FisherHead {
                weights: &weights,
                probs: &probs,
                classes,
            };
            let got = fisher_terms(&sel, &responses, d_out, &head).expect("valid");
            for e in 0..rows * k {
                let r = e / k;
                let g = sel.gates[e];
                let d_f: Vec<f32> = (0..d_out).map(|t| -g * responses[e * d_out + t]).collect();
                let (mut mean_u, mut mean_u2) = (0.0f32, 0.0f32);
                for c in 0..classes {
                    let mut u = 0.0f32;
                    for t in 0..d_out {
                        u += weights[c * d_out + t] * d_f[t];
                    }
                    let p = probs[r * classes + c];
                    mean_u += p * u;
                    mean_u2 += p * u * u;
                }
                let want = mean_u2 - mean_u * mean_u;
                assert_eq!(
                    got[e].to_bits(),
                    want.to_bits(),
                    "{rows}x{k}x{d_out}x{classes} term {e}"
                );
            }
        }
    }

    #[test]
    fn order_key_is_monotone_with_documented_specials() {
        let ordered = [
            f32::NAN,
            f32::NEG_INFINITY,
            f32::MIN,
            -1.0,
            -f32::MIN_POSITIVE,
            0.0,
            1e-40,
            1.0,
            f32::MAX,
            f32::INFINITY,
        ];
        for w in ordered.windows(2) {
            assert!(order_key(w[0]) < order_key(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(order_key(-0.0), order_key(0.0));
        assert_eq!(order_key(-f32::NAN), order_key(f32::NAN));
    }

    #[test]
    fn ties_go_to_the_lower_index() {
        let sel = top_k_softmax(&[1.0, 3.0, 3.0, 3.0], 1, 4, 2).unwrap();
        assert_eq!(sel.indices, [1, 2]);
        assert_eq!(sel.gates, [0.5, 0.5]);
    }

    /// The quadratic form against an explicit `H = A^T (diag p - p p^T) A`, in f64.
    #[test]
    fn fisher_term_equals_explicit_matrix_form() {
        let (d_out, classes) = (3, 4);
        let weights: Vec<f32> = (0..classes * d_out)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0)
            .collect();
        let probs = [0.1f32, 0.2, 0.3, 0.4];
        let responses = [0.5f32, -1.0, 2.0, 1.5, 0.25, -0.75];
        let sel = Selection {
            indices: vec![2, 0],
            gates: vec![0.7, 0.3],
            rows: 1,
            k: 2,
            peers: 3,
        };
        let head = FisherHead {
            weights: &weights,
            probs: &probs,
            classes,
        };
        let terms = fisher_terms(&sel, &responses, d_out, &head).unwrap();
        for s in 0..2 {
            let df: Vec<f64> = (0..d_out)
                .map(|t| -f64::from(sel.gates[s]) * f64::from(responses[s * d_out + t]))
                .collect();
            let mut q = 0.0f64;
            for a in 0..d_out {
                for b in 0..d_out {
                    let mut h = 0.0f64;
                    for c in 0..classes {
                        for e in 0..classes {
                            let fisher = if c == e { f64::from(probs[c]) } else { 0.0 }
                                - f64::from(probs[c]) * f64::from(probs[e]);
                            h += f64::from(weights[c * d_out + a])
                                * fisher
                                * f64::from(weights[e * d_out + b]);
                        }
                    }
                    q += df[a] * h * df[b];
                }
            }
            assert!(
                (f64::from(terms[s]) - q).abs() < 1e-5 * (1.0 + q.abs()),
                "slot {s}: {} vs {q}",
                terms[s]
            );
        }
        let scores = fisher_scores(&sel, &responses, d_out, &head).unwrap();
        assert_eq!(scores, [terms[1], 0.0, terms[0]]);
    }

    #[test]
    fn normal_cdf_matches_known_values() {
        for (z, want) in [
            (0.0f32, 0.5f32),
            (1.0, 0.841_344_7),
            (-1.96, 0.024_997_9),
            (3.0, 0.998_650_1),
        ] {
            assert!(
                (normal_cdf(z) - want).abs() < 1e-6,
                "Phi({z}) = {} != {want}",
                normal_cdf(z)
            );
        }
        assert_eq!(normal_cdf(f32::INFINITY), 1.0);
        assert_eq!(normal_cdf(f32::NEG_INFINITY), 0.0);
        assert!(normal_cdf(f32::NAN).is_nan());
    }

    /// With tiny noise the smooth load tends to the hard count; `k = peers` gives `rows`.
    #[test]
    fn load_limits() {
        let x = [1.0f32, -0.5, 0.25, 2.0];
        let w = [0.5f32, -1.0, 2.0, 0.0, 1.0, -0.5];
        let w_noise = [-30.0f32; 6];
        let eps = [0.3f32, -0.2, 0.1, 0.4, -0.1, 0.2];
        let noisy = GateInput {
            x: &x,
            w_gate: &w,
            noise: Some(Noise {
                w_noise: &w_noise,
                eps: &eps,
            }),
            rows: 2,
            d: 2,
            peers: 3,
        };
        let hard = load_balance(
            &GateInput {
                noise: None,
                ..noisy
            },
            1,
        )
        .unwrap();
        let soft = load_balance(&noisy, 1).unwrap();
        for (s, h) in soft.load.iter().zip(&hard.load) {
            assert!((s - h).abs() < 1e-3, "{s} vs {h}");
        }
        assert_eq!(load_balance(&noisy, 3).unwrap().load, [2.0, 2.0, 2.0]);
        assert_eq!(cv_squared(&[2.0, 2.0, 2.0]), 0.0);
        assert!((cv_squared(&[1.0, 3.0]) - 0.25).abs() < 1e-6);
    }
}
