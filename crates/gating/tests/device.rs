//! Device tests: every GPU kernel against its CPU reference over seeded random shapes, with
//! the tolerances stated on each test (see the crate README). They fail without an adapter
//! unless `DEEPNODE_GPU_TESTS=skip` is set.

mod common;

use common::{Rng, assert_close, gate_tol, gpu, mag_tol};
use deepnode_gating::{
    FisherHead, GateInput, GateRows, GatingError, LogitsKernel, Noise, Selection, reference,
    standard_normal,
};

/// Row counts around the workgroup size (64) and a few odd ones.
const ROWS: &[usize] = &[1, 3, 63, 64, 65, 130];

#[derive(Clone)]
struct Case {
    rows: usize,
    d: usize,
    peers: usize,
    x: Vec<f32>,
    w_gate: Vec<f32>,
    w_noise: Vec<f32>,
    eps: Vec<f32>,
}

impl Case {
    fn random(rng: &mut Rng, rows: usize, dyadic: bool) -> Self {
        // Mostly small; one case in three spans several of the logits kernel's x tiles (64).
        let d = if rng.range(0, 3) == 0 {
            rng.range(65, 200)
        } else {
            rng.range(0, 24)
        };
        let peers = rng.range(1, 80);
        let (x, w_gate) = if dyadic {
            (rng.dyadic_f32(rows * d), rng.dyadic_f32(d * peers))
        } else {
            (rng.vec_f32(rows * d), rng.vec_f32(d * peers))
        };
        let w_noise = rng.vec_f32(d * peers);
        let eps = standard_normal(rng.next_u64(), rows * peers);
        Self {
            rows,
            d,
            peers,
            x,
            w_gate,
            w_noise,
            eps,
        }
    }

    fn input(&self, noisy: bool) -> GateInput<'_> {
        GateInput {
            x: &self.x,
            w_gate: &self.w_gate,
            noise: noisy.then_some(Noise {
                w_noise: &self.w_noise,
                eps: &self.eps,
            }),
            rows: self.rows,
            d: self.d,
            peers: self.peers,
        }
    }

    /// The reference logits of `|x|`, `|W|`, `|eps|`: the scale of the logit tolerance.
    fn logit_magnitudes(&self, noisy: bool) -> Vec<f32> {
        let (ax, aw, an, ae) = (
            abs(&self.x),
            abs(&self.w_gate),
            abs(&self.w_noise),
            abs(&self.eps),
        );
        reference::gating_logits(&GateInput {
            x: &ax,
            w_gate: &aw,
            noise: noisy.then_some(Noise {
                w_noise: &an,
                eps: &ae,
            }),
            ..self.input(noisy)
        })
        .unwrap()
    }
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// `k` covering 1, `peers` and values between.
fn pick_k(rng: &mut Rng, peers: usize, case: usize) -> usize {
    match case % 3 {
        0 => 1,
        1 => peers,
        _ => rng.range(1, peers),
    }
}

/// Tolerance: `|gpu - cpu| <= 1e-5 (1 + mag)`, `mag` the logits of `|x|`, `|W|`, `|eps|`.
#[test]
fn gating_logits_matches_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(1);
    for (case, &rows) in ROWS.iter().cycle().take(24).enumerate() {
        let c = Case::random(&mut rng, rows, false);
        let noisy = case % 2 == 0;
        let input = c.input(noisy);
        let mag = c.logit_magnitudes(noisy);
        let cpu = reference::gating_logits(&input).unwrap();
        let got = gpu.gating_logits(&input).unwrap();
        assert_close(
            &format!("case {case} logits"),
            &got,
            &cpu,
            mag_tol(&mag, 1e-5),
        );
    }
}

/// Every logits kernel (one logit per invocation, tiled by 16 rows, the automatic
/// choice) meets the reference's tolerance, and the kernels agree bit for bit (the same
/// summation order), on shapes spanning several row tiles and x tiles.
#[test]
fn every_logits_kernel_matches_reference() {
    let Some(_) = gpu() else { return };
    let mut gpu = deepnode_gating::Gpu::new().expect("an adapter exists: the shared one opened");
    let mut rng = Rng::new(13);
    for (case, &rows) in ROWS.iter().enumerate() {
        let c = Case::random(&mut rng, rows, false);
        let noisy = case % 2 == 1;
        let input = c.input(noisy);
        let cpu = reference::gating_logits(&input).unwrap();
        let mag = c.logit_magnitudes(noisy);
        gpu.set_logits_kernel(LogitsKernel::PerLogit);
        let per_logit = gpu.gating_logits(&input).unwrap();
        for kernel in LogitsKernel::ALL {
            gpu.set_logits_kernel(kernel);
            let got = gpu.gating_logits(&input).unwrap();
            let what = format!(
                "case {case} {kernel:?} rows {rows} d {} peers {}",
                c.d, c.peers
            );
            assert_close(&what, &got, &cpu, mag_tol(&mag, 1e-5));
            let same = got
                .iter()
                .zip(&per_logit)
                .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
            assert!(same, "{what}: differs from PerLogit");
        }
    }
}

/// Random logits with many ties (small integers), signed zeros, NaN and infinities.
fn nasty_logits(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| match rng.range(0, 19) {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => -0.0,
            4 => 0.0,
            5..=11 => rng.range(0, 4) as f32 - 2.0,
            _ => 3.0 * rng.unit_f32(),
        })
        .collect()
}

/// Indices: exactly equal (same inputs, bit-level order). Gates: `1e-5 + 1e-4 |cpu|`, and
/// NaN / infinities at the same places.
#[test]
fn top_k_softmax_matches_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(2);
    for (case, &rows) in ROWS.iter().cycle().take(36).enumerate() {
        let peers = if case % 5 == 0 {
            rng.range(65, 300)
        } else {
            rng.range(1, 70)
        };
        let k = pick_k(&mut rng, peers, case);
        let logits = match case % 4 {
            0 => rng.vec_f32(rows * peers),
            1 => vec![0.5; rows * peers],
            _ => nasty_logits(&mut rng, rows * peers),
        };
        let cpu = reference::top_k_softmax(&logits, rows, peers, k).unwrap();
        let got = gpu.top_k_softmax(&logits, rows, peers, k).unwrap();
        assert_eq!(
            got.indices, cpu.indices,
            "case {case}: rows {rows} peers {peers} k {k}"
        );
        assert_close(
            &format!("case {case} gates"),
            &got.gates,
            &cpu.gates,
            gate_tol(&cpu.gates),
        );
    }
}

/// `(logits of one row, k, expected indices, expected gates)`.
type RuleCase<'a> = (&'a [f32], usize, &'a [u32], &'a [f32]);

/// The documented tie and non-finite rules, on explicit rows.
#[test]
fn top_k_softmax_tie_and_nan_rules() {
    let Some(gpu) = gpu() else { return };
    const NAN: f32 = f32::NAN;
    const INF: f32 = f32::INFINITY;
    #[rustfmt::skip]
    let rows: &[RuleCase<'_>] = &[
        (&[1.0, 2.0, 2.0, 1.0], 2, &[1, 2], &[0.5, 0.5]),
        (&[NAN, -INF, 0.0, -0.0], 3, &[2, 3, 1], &[0.5, 0.5, 0.0]),
        (&[NAN, -INF, 0.0, -0.0], 4, &[2, 3, 1, 0], &[NAN, NAN, NAN, NAN]),
        (&[INF, 1.0, INF, 3.0], 3, &[0, 2, 3], &[0.5, 0.5, 0.0]),
        (&[-INF, -INF, -INF], 2, &[0, 1], &[0.5, 0.5]),
        (&[NAN, NAN], 1, &[0], &[NAN]),
    ];
    for (logits, k, indices, gates) in rows {
        for sel in [
            reference::top_k_softmax(logits, 1, logits.len(), *k).unwrap(),
            gpu.top_k_softmax(logits, 1, logits.len(), *k).unwrap(),
        ] {
            assert_eq!(&sel.indices, indices, "{logits:?}");
            assert_close(&format!("{logits:?}"), &sel.gates, gates, |_| 1e-6);
        }
    }
}

/// Noise-free dyadic inputs: the logits are exact on both sides, so indices are exactly equal
/// (ties included); gates within `1e-5 + 1e-4 |cpu|`. Noisy inputs: indices exactly equal to
/// the reference selection of the GPU's logits, and to the full reference on every row whose
/// k-th and (k+1)-th reference logits differ by more than the logit tolerance.
#[test]
fn gating_forward_matches_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(3);
    for (case, &rows) in ROWS.iter().cycle().take(24).enumerate() {
        let c = Case::random(&mut rng, rows, true);
        let k = pick_k(&mut rng, c.peers, case);
        let input = c.input(false);
        let cpu = reference::gating_forward(&input, k).unwrap();
        let got = gpu.gating_forward(&input, k).unwrap();
        assert_eq!(
            got.indices, cpu.indices,
            "case {case}: rows {rows} peers {} k {k}",
            c.peers
        );
        assert_close(
            &format!("case {case} gates"),
            &got.gates,
            &cpu.gates,
            gate_tol(&cpu.gates),
        );

        let c = Case::random(&mut rng, rows, false);
        let k = pick_k(&mut rng, c.peers, case);
        let input = c.input(true);
        let got = gpu.gating_forward(&input, k).unwrap();
        let gpu_logits = gpu.gating_logits(&input).unwrap();
        let same_logits = reference::top_k_softmax(&gpu_logits, rows, c.peers, k).unwrap();
        assert_eq!(
            got.indices, same_logits.indices,
            "case {case}: noisy, GPU logits"
        );
        let cpu_logits = reference::gating_logits(&input).unwrap();
        let cpu = reference::gating_forward(&input, k).unwrap();
        for r in 0..rows {
            let row = &cpu_logits[r * c.peers..(r + 1) * c.peers];
            let mut sorted = row.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let margin = if k < c.peers {
                sorted[k - 1] - sorted[k]
            } else {
                f32::INFINITY
            };
            if margin > 1e-3 {
                assert_eq!(
                    got.indices[r * k..(r + 1) * k],
                    cpu.indices[r * k..(r + 1) * k],
                    "case {case} row {r}"
                );
                let cg = &cpu.gates[r * k..(r + 1) * k];
                assert_close(
                    &format!("case {case} row {r} gates"),
                    &got.gates[r * k..(r + 1) * k],
                    cg,
                    gate_tol(cg),
                );
            }
        }
    }
}

/// Resident weights give what per-call uploads give, bit for bit (the same kernels on the
/// same data), noisy or not, over several batches on one upload.
#[test]
fn resident_gate_matches_per_call_upload() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(11);
    for case in 0..6 {
        let rows = ROWS[case % ROWS.len()];
        let c = Case::random(&mut rng, rows, case % 2 == 0);
        let noisy = case % 3 != 0;
        let k = pick_k(&mut rng, c.peers, case);
        let gate = gpu
            .upload_gate(&c.w_gate, noisy.then_some(&c.w_noise[..]), c.d, c.peers)
            .unwrap();
        for _ in 0..2 {
            let want = gpu.gating_forward(&c.input(noisy), k).unwrap();
            let eps = noisy.then_some(&c.eps[..]);
            let got = gpu
                .gating_forward_resident(&gate, &c.x, eps, rows, k)
                .unwrap();
            assert_eq!(
                got, want,
                "case {case}: rows {rows} peers {} k {k}",
                c.peers
            );
        }
        let mut long_x = c.x.clone();
        long_x.push(0.0);
        let eps = noisy.then_some(&c.eps[..]);
        let err = gpu.gating_forward_resident(&gate, &long_x, eps, rows, k);
        assert!(
            matches!(err, Err(GatingError::ShapeMismatch { .. })),
            "case {case}: {err:?}"
        );
        if noisy {
            let err = gpu.gating_forward_resident(&gate, &c.x, None, rows, k);
            assert!(matches!(
                err,
                Err(GatingError::ShapeMismatch { operand: "eps", .. })
            ));
        }
    }
}

/// The kernel-only time grows with the repeats and stays within the wall time around the
/// call; bad shapes, zero repeats and a missing timestamp feature are typed errors.
#[test]
fn logits_kernel_time_counts_the_dispatches() {
    let Some(gpu) = gpu() else { return };
    let (rows, d, peers) = (64, 256, 1024);
    let w_gate = standard_normal(21, d * peers);
    let w_noise = standard_normal(22, d * peers);
    let x = standard_normal(23, rows * d);
    let eps = standard_normal(24, rows * peers);
    let gate = gpu.upload_gate(&w_gate, Some(&w_noise), d, peers).unwrap();
    let time = |repeats| gpu.logits_kernel_time(&gate, &x, Some(&eps), rows, repeats);
    let err = gpu.logits_kernel_time(&gate, &x, None, rows, 1);
    assert!(
        matches!(err, Err(GatingError::ShapeMismatch { operand: "eps", .. })),
        "{err:?}"
    );
    let one = match time(1) {
        Err(GatingError::Unsupported(what)) => {
            eprintln!("{}: no {what}", gpu.adapter_info().name);
            assert_eq!(what, "timestamp queries");
            return;
        }
        other => other.unwrap(),
    };
    assert!(matches!(time(0), Err(GatingError::Unsupported(_))));
    let start = std::time::Instant::now();
    let many = time(300).unwrap();
    let wall = start.elapsed();
    assert!(one > std::time::Duration::ZERO, "{one:?}");
    assert!(
        many <= wall,
        "kernel {many:?} over the call's wall time {wall:?}"
    );
    assert!(many > 20 * one, "300 dispatches {many:?}, one {one:?}");
}

/// Many callers' batches through one submission give each caller what its own call gives,
/// bit for bit, while the gate's reused buffers grow, shrink and change `k` between calls.
#[test]
fn batched_calls_match_separate_calls() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(12);
    for case in 0..4 {
        let noisy = case % 2 == 0;
        // One gate; each batch its own rows (0 rows included).
        let template = Case::random(&mut rng, 1, case % 3 == 0);
        let (d, peers) = (template.d, template.peers);
        let gate = gpu
            .upload_gate(
                &template.w_gate,
                noisy.then_some(&template.w_noise[..]),
                d,
                peers,
            )
            .unwrap();
        let cases: Vec<Case> = [130, 0, 1, 65, 3, 64]
            .iter()
            .map(|&rows| Case {
                rows,
                x: rng.vec_f32(rows * d),
                eps: standard_normal(rng.next_u64(), rows * peers),
                ..template.clone()
            })
            .collect();
        for k in [pick_k(&mut rng, peers, case), 1] {
            let batches: Vec<GateRows<'_>> = cases
                .iter()
                .map(|c| GateRows {
                    x: &c.x,
                    eps: noisy.then_some(&c.eps[..]),
                    rows: c.rows,
                })
                .collect();
            let together = gpu.gating_forward_batched(&gate, &batches, k).unwrap();
            assert_eq!(together.len(), cases.len());
            for (i, c) in cases.iter().enumerate() {
                let alone = gpu.gating_forward(&c.input(noisy), k).unwrap();
                assert_eq!(together[i], alone, "case {case} batch {i} k {k}");
                let resident = gpu
                    .gating_forward_resident(&gate, &c.x, noisy.then_some(&c.eps[..]), c.rows, k)
                    .unwrap();
                assert_eq!(resident, alone, "case {case} batch {i} k {k} resident");
            }
        }
        assert!(
            gpu.gating_forward_batched(&gate, &[], 1)
                .unwrap()
                .is_empty()
        );
        let bad = [GateRows {
            x: &cases[2].x,
            eps: (!noisy).then_some(&cases[2].eps[..]),
            rows: 1,
        }];
        assert!(matches!(
            gpu.gating_forward_batched(&gate, &bad, 1),
            Err(GatingError::ShapeMismatch { operand: "eps", .. })
        ));
    }
}

/// A random selection (distinct peers per row, gates summing to 1).
fn random_selection(rng: &mut Rng, rows: usize, peers: usize, k: usize) -> Selection {
    let logits = rng
        .vec_f32(rows * peers)
        .iter()
        .map(|v| 4.0 * v)
        .collect::<Vec<_>>();
    reference::top_k_softmax(&logits, rows, peers, k).unwrap()
}

/// Tolerance: `1e-5 (1 + mag)`, `mag = sum_s |g_s| |f_s|`.
#[test]
fn combine_matches_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(4);
    for (case, &rows) in ROWS.iter().cycle().take(24).enumerate() {
        let peers = rng.range(1, 40);
        let k = pick_k(&mut rng, peers, case);
        let d_out = rng.range(1, 90);
        let sel = random_selection(&mut rng, rows, peers, k);
        let responses: Vec<f32> = rng
            .vec_f32(rows * k * d_out)
            .iter()
            .map(|v| 10.0 * v)
            .collect();
        let cpu = reference::combine(&sel, &responses, d_out).unwrap();
        let abs_sel = Selection {
            gates: abs(&sel.gates),
            ..sel.clone()
        };
        let mag = reference::combine(&abs_sel, &abs(&responses), d_out).unwrap();
        let got = gpu.combine(&sel, &responses, d_out).unwrap();
        assert_close(
            &format!("case {case} mixed"),
            &got,
            &cpu,
            mag_tol(&mag, 1e-5),
        );
    }
}

/// Tolerance: `1e-5 (1 + mass)`; with repeated indices (hand-built selections) too.
#[test]
fn gate_mass_matches_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(5);
    for (case, &rows) in ROWS.iter().cycle().take(24).enumerate() {
        let peers = rng.range(1, 300);
        let k = pick_k(&mut rng, peers.min(20), case);
        let mut sel = random_selection(&mut rng, rows, peers, k);
        if case % 4 == 3 {
            for i in &mut sel.indices {
                *i = (rng.next_u64() % peers as u64) as u32;
            }
        }
        let cpu = reference::gate_mass(&sel).unwrap();
        let got = gpu.gate_mass(&sel).unwrap();
        assert_close(
            &format!("case {case} mass"),
            &got,
            &cpu,
            mag_tol(&cpu, 1e-5),
        );
        let total: f32 = got.iter().sum();
        assert!(
            (total - 1.0).abs() < 1e-4,
            "case {case}: total gate mass {total}"
        );
    }
}

fn softmax_rows(logits: &[f32], classes: usize) -> Vec<f32> {
    let mut p = Vec::with_capacity(logits.len());
    for row in logits.chunks(classes) {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
        let s: f32 = e.iter().sum();
        p.extend(e.iter().map(|v| v / s));
    }
    p
}

/// Tolerance: `1e-4 (1 + mag)` with `mag_i = mean_x sum_s [sum_c p_c U_c^2 + (sum_c p_c U_c)^2]`
/// and `U = |A| |g f|` (the quadratic form's terms before cancellation).
#[test]
fn fisher_scores_matches_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(6);
    for (case, &rows) in ROWS.iter().cycle().take(24).enumerate() {
        let peers = rng.range(1, 100);
        let k = pick_k(&mut rng, peers.min(12), case);
        let (d_out, classes) = (rng.range(1, 40), rng.range(1, 12));
        let sel = random_selection(&mut rng, rows, peers, k);
        let responses = rng.vec_f32(rows * k * d_out);
        let weights = rng.vec_f32(classes * d_out);
        let probs = softmax_rows(&rng.vec_f32(rows * classes), classes);
        let head = FisherHead {
            weights: &weights,
            probs: &probs,
            classes,
        };
        let cpu = reference::fisher_scores(&sel, &responses, d_out, &head).unwrap();
        let got = gpu.fisher_scores(&sel, &responses, d_out, &head).unwrap();
        let mut mag = vec![0.0f32; peers];
        for e in 0..rows * k {
            let (r, g) = (e / k, sel.gates[e].abs());
            let (mut a, mut b) = (0.0, 0.0);
            for c in 0..classes {
                let u: f32 = (0..d_out)
                    .map(|t| weights[c * d_out + t].abs() * g * responses[e * d_out + t].abs())
                    .sum();
                a += probs[r * classes + c] * u * u;
                b += probs[r * classes + c] * u;
            }
            mag[sel.indices[e] as usize] += (a + b * b) / rows as f32;
        }
        assert_close(
            &format!("case {case} fisher"),
            &got,
            &cpu,
            mag_tol(&mag, 1e-4),
        );
        assert!(
            cpu.iter().all(|&v| v >= -1e-4 * (1.0 + v.abs())),
            "quadratic form is PSD"
        );
    }
}

/// Importance: `1e-5 (1 + importance)`. Load: `1e-5 rows + 1e-4 load` (a sum over rows of
/// probabilities each within `1e-5 + 1e-4 p`). `CV^2`: `1e-3 (1 + cv2)` relative to the
/// reference's vectors. Noise-free dyadic cases compare the hard load exactly.
#[test]
fn load_balance_matches_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(7);
    for (case, &rows) in ROWS.iter().cycle().take(24).enumerate() {
        let noisy = case % 2 == 0;
        let c = Case::random(&mut rng, rows, !noisy);
        let k = pick_k(&mut rng, c.peers, case);
        let input = c.input(noisy);
        let cpu = reference::load_balance(&input, k).unwrap();
        let got = gpu.load_balance(&input, k).unwrap();
        let what = format!(
            "case {case} (rows {rows} peers {} k {k} noisy {noisy})",
            c.peers
        );
        if noisy {
            // Noisy selections may legitimately differ on near-tied rows (see
            // gating_forward_matches_reference); the per-peer sums absorb one such row.
            let probs = reference::load_probability(&input, k).unwrap();
            assert!(
                probs.iter().all(|p| (0.0..=1.0).contains(p)),
                "{what}: P in [0, 1]"
            );
            assert_close(&format!("{what} load"), &got.load, &cpu.load, |i| {
                1e-5 * rows as f32 + 1e-4 * cpu.load[i]
            });
            assert_close(
                &format!("{what} importance"),
                &got.importance,
                &cpu.importance,
                mag_tol(&cpu.importance, 1e-5),
            );
        } else {
            assert_eq!(got.load, cpu.load, "{what}: hard load counts");
            assert_close(
                &format!("{what} importance"),
                &got.importance,
                &cpu.importance,
                mag_tol(&cpu.importance, 1e-5),
            );
        }
        for (g, c) in [
            (got.cv2_importance, cpu.cv2_importance),
            (got.cv2_load, cpu.cv2_load),
        ] {
            assert!(
                (g - c).abs() <= 1e-3 * (1.0 + c.abs()),
                "{what}: cv2 {g} vs {c}"
            );
        }
        let total_load: f32 = cpu.load.iter().sum();
        if !noisy {
            assert_eq!(
                total_load,
                (rows * k) as f32,
                "{what}: hard load counts rows * k"
            );
        }
    }
}

/// NaN and infinities in the inputs: same class at the same places on both sides (IEEE
/// propagation; the top-k rules for the gates), finite values within the usual tolerances.
#[test]
fn non_finite_inputs_match_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(8);
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
    for case in 0..12 {
        let rows = ROWS[case % ROWS.len()];
        let mut c = Case::random(&mut rng, rows, true);
        if c.d == 0 {
            c.d = 1;
            c.x = rng.dyadic_f32(rows);
            c.w_gate = rng.dyadic_f32(c.peers);
            c.w_noise = rng.vec_f32(c.peers);
        }
        for _ in 0..3 {
            let at = rng.range(0, c.x.len() - 1);
            c.x[at] = specials[rng.range(0, 2)];
        }
        let at = rng.range(0, c.w_gate.len() - 1);
        c.w_gate[at] = specials[rng.range(0, 2)];
        let k = pick_k(&mut rng, c.peers, case);
        let input = c.input(false);
        let cpu_logits = reference::gating_logits(&input).unwrap();
        assert_close(
            &format!("case {case} logits"),
            &gpu.gating_logits(&input).unwrap(),
            &cpu_logits,
            |_| 0.0,
        );
        let cpu = reference::gating_forward(&input, k).unwrap();
        let got = gpu.gating_forward(&input, k).unwrap();
        assert_eq!(got.indices, cpu.indices, "case {case}");
        assert_close(
            &format!("case {case} gates"),
            &got.gates,
            &cpu.gates,
            gate_tol(&cpu.gates),
        );

        let d_out = rng.range(1, 20);
        let mut responses = rng.vec_f32(rows * k * d_out);
        let at = rng.range(0, responses.len() - 1);
        responses[at] = specials[rng.range(0, 2)];
        let mixed = reference::combine(&cpu, &responses, d_out).unwrap();
        assert_close(
            &format!("case {case} mixed"),
            &gpu.combine(&cpu, &responses, d_out).unwrap(),
            &mixed,
            |_| 1e-4 * 20.0,
        );
        let classes = 3;
        let weights = rng.vec_f32(classes * d_out);
        let probs = softmax_rows(&rng.vec_f32(rows * classes), classes);
        let head = FisherHead {
            weights: &weights,
            probs: &probs,
            classes,
        };
        let fisher = reference::fisher_scores(&cpu, &responses, d_out, &head).unwrap();
        let got_fisher = gpu.fisher_scores(&cpu, &responses, d_out, &head).unwrap();
        assert_close(&format!("case {case} fisher"), &got_fisher, &fisher, |i| {
            1e-4 * (1.0 + fisher[i].abs())
        });
        assert!(
            fisher.iter().any(|v| !v.is_finite()) || mixed.iter().all(|v| v.is_finite()),
            "case {case}: a non-finite response reaches the scores"
        );
    }
}

/// A binding cap far below the device limit splits every call into many chunks of rows; the
/// results stay within the tolerances above. A weight matrix over the cap is an error.
#[test]
fn chunked_calls_match_reference() {
    let Some(shared) = gpu() else { return };
    let mut gpu = deepnode_gating::Gpu::new().expect("an adapter exists: the shared one opened");
    let mut rng = Rng::new(9);
    let (rows, d, peers, k, d_out, classes) = (200, 8, 12, 3, 5, 4);
    let x = rng.dyadic_f32(rows * d);
    let w_gate = rng.dyadic_f32(d * peers);
    let w_noise = rng.vec_f32(d * peers);
    let eps = standard_normal(9, rows * peers);
    let input = GateInput {
        x: &x,
        w_gate: &w_gate,
        noise: Some(Noise {
            w_noise: &w_noise,
            eps: &eps,
        }),
        rows,
        d,
        peers,
    };
    gpu.set_max_binding_bytes(4 * (d * peers) as u64);
    assert_eq!(gpu.max_binding_bytes(), 4 * (d * peers) as u64);

    let plain = GateInput {
        noise: None,
        ..input
    };
    let sel = gpu.gating_forward(&plain, k).unwrap();
    assert_eq!(
        sel,
        shared.gating_forward(&plain, k).unwrap(),
        "chunked == unchunked"
    );
    assert_eq!(
        sel.indices,
        reference::gating_forward(&plain, k).unwrap().indices
    );
    let logits = gpu.gating_logits(&input).unwrap();
    assert_eq!(
        logits,
        shared.gating_logits(&input).unwrap(),
        "logits do not depend on chunks"
    );
    let gate = gpu.upload_gate(&w_gate, Some(&w_noise), d, peers).unwrap();
    let noisy = gpu.gating_forward(&input, k).unwrap();
    assert_eq!(
        gpu.gating_forward_resident(&gate, &x, Some(&eps), rows, k)
            .unwrap(),
        noisy,
        "chunked resident == chunked per-call"
    );
    let (a, b) = (70, rows - 70);
    let split = gpu
        .gating_forward_batched(
            &gate,
            &[
                GateRows {
                    x: &x[..a * d],
                    eps: Some(&eps[..a * peers]),
                    rows: a,
                },
                GateRows {
                    x: &x[a * d..],
                    eps: Some(&eps[a * peers..]),
                    rows: b,
                },
            ],
            k,
        )
        .unwrap();
    assert_eq!(split[0].indices, noisy.indices[..a * k], "chunked batch 0");
    assert_eq!(split[1].gates, noisy.gates[a * k..], "chunked batch 1");
    let lb = gpu.load_balance(&input, k).unwrap();
    let lb_cpu = reference::load_balance(&input, k).unwrap();
    assert_close("chunked load", &lb.load, &lb_cpu.load, |i| {
        1e-5 * rows as f32 + 1e-4 * lb_cpu.load[i]
    });
    let responses = rng.vec_f32(rows * k * d_out);
    assert_close(
        "chunked combine",
        &gpu.combine(&sel, &responses, d_out).unwrap(),
        &reference::combine(&sel, &responses, d_out).unwrap(),
        |_| 1e-5 * 10.0,
    );
    let mass = reference::gate_mass(&sel).unwrap();
    assert_close(
        "chunked mass",
        &gpu.gate_mass(&sel).unwrap(),
        &mass,
        mag_tol(&mass, 1e-5),
    );
    let weights = rng.vec_f32(classes * d_out);
    let probs = softmax_rows(&rng.vec_f32(rows * classes), classes);
    let head = FisherHead {
        weights: &weights,
        probs: &probs,
        classes,
    };
    let fisher = reference::fisher_scores(&sel, &responses, d_out, &head).unwrap();
    assert_close(
        "chunked fisher",
        &gpu.fisher_scores(&sel, &responses, d_out, &head).unwrap(),
        &fisher,
        |i| 1e-4 * (1.0 + fisher[i]),
    );

    gpu.set_max_binding_bytes(4 * (d * peers - 1) as u64);
    match gpu.gating_forward(&plain, k) {
        Err(GatingError::BufferTooLarge {
            operand: "w_gate",
            bytes,
            limit,
        }) => {
            assert_eq!(
                (bytes, limit),
                (4 * (d * peers) as u64, 4 * (d * peers - 1) as u64)
            );
        }
        other => panic!("expected BufferTooLarge for w_gate, got {other:?}"),
    }
    gpu.set_max_binding_bytes(4 * peers as u64 - 4);
    let err = gpu.top_k_softmax(&logits, rows, peers, k).unwrap_err();
    assert!(
        matches!(
            err,
            GatingError::BufferTooLarge {
                operand: "logits row",
                ..
            }
        ),
        "{err}"
    );
}

/// Shape errors are the same typed errors on both paths, before any dispatch; empty batches
/// give empty results.
#[test]
fn bad_shapes_are_typed_errors() {
    let Some(gpu) = gpu() else { return };
    let x = [0.0f32; 6];
    let w = [0.0f32; 8];
    let input = GateInput {
        x: &x,
        w_gate: &w,
        noise: None,
        rows: 3,
        d: 2,
        peers: 4,
    };
    for k in [0, 5] {
        assert_eq!(
            gpu.gating_forward(&input, k),
            Err(GatingError::InvalidK { k, peers: 4 })
        );
        assert_eq!(
            reference::gating_forward(&input, k),
            Err(GatingError::InvalidK { k, peers: 4 })
        );
    }
    let short = GateInput {
        x: &x[..5],
        ..input
    };
    let want = Err(GatingError::ShapeMismatch {
        operand: "x",
        expected: 6,
        got: 5,
    });
    assert_eq!(gpu.gating_logits(&short), want);
    assert_eq!(reference::gating_logits(&short), want);
    let sel = Selection {
        indices: vec![0, 4],
        gates: vec![0.5, 0.5],
        rows: 1,
        k: 2,
        peers: 4,
    };
    let want = Err(GatingError::IndexOutOfRange {
        row: 0,
        slot: 1,
        index: 4,
        peers: 4,
    });
    assert_eq!(gpu.gate_mass(&sel), want);
    assert_eq!(reference::gate_mass(&sel), want);
    let empty = GateInput {
        x: &[],
        rows: 0,
        ..input
    };
    let sel = gpu.gating_forward(&empty, 2).unwrap();
    assert_eq!((sel.indices.len(), sel.gates.len()), (0, 0));
    assert_eq!(gpu.gate_mass(&sel).unwrap(), vec![0.0; 4]);
}
