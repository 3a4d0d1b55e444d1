//! Shared helpers of the device tests: the GPU handle, a seeded RNG and the comparisons.

#![allow(dead_code, reason = "each test binary uses a subset")]

use std::sync::OnceLock;

use deepnode_gating::Gpu;

/// The shared GPU, or `None` when `DEEPNODE_GPU_TESTS=skip` and no adapter exists.
/// Without that variable a missing adapter fails the test: device tests never pass silently.
pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new() {
        Ok(gpu) => {
            eprintln!("device: {:?}", gpu.adapter_info());
            Some(gpu)
        }
        Err(e) if std::env::var("DEEPNODE_GPU_TESTS").as_deref() == Ok("skip") => {
            eprintln!("DEEPNODE_GPU_TESTS=skip: no GPU ({e}); device tests skipped");
            None
        }
        Err(e) => panic!("{e} (set DEEPNODE_GPU_TESTS=skip to skip the device tests)"),
    })
    .as_ref()
}

/// The seeded generator of every test and bench: every failure names a reproducible case.
pub use deepnode_testkit::Rng;

/// The class of a non-finite value, or `None` for a finite one.
fn class(v: f32) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f32::INFINITY {
        Some("+inf")
    } else if v == f32::NEG_INFINITY {
        Some("-inf")
    } else {
        None
    }
}

/// Asserts `|gpu - cpu| <= tol(i)` element-wise, and equal classes for non-finite values.
pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], tol: impl Fn(usize) -> f32) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        match (class(g), class(c)) {
            (None, None) => {
                let t = tol(i);
                assert!(
                    (g - c).abs() <= t,
                    "{what}[{i}]: gpu {g} vs cpu {c} (tolerance {t})"
                );
            }
            (a, b) => assert_eq!(a, b, "{what}[{i}]: gpu {g} vs cpu {c}"),
        }
    }
}

/// Gate and probability tolerance: `1e-5 + 1e-4 |cpu|`.
pub fn gate_tol(cpu: &[f32]) -> impl Fn(usize) -> f32 + '_ {
    |i| 1e-5 + 1e-4 * cpu[i].abs()
}

/// Sum-like tolerance: `rel * (1 + mag)` with `mag` the computation on absolute values.
pub fn mag_tol(mag: &[f32], rel: f32) -> impl Fn(usize) -> f32 + '_ {
    move |i| rel * (1.0 + mag[i])
}
