#![doc = include_str!("../README.md")]

mod error;
mod gpu;
pub mod reference;
pub mod shaders;
mod types;

pub use error::GatingError;
pub use gpu::{Gpu, LogitsKernel, ResidentGate};
pub use types::{FisherHead, GateInput, GateRows, LoadBalance, Noise, Selection};

/// `len` standard normal samples from `seed`, for [`Noise::eps`]: SplitMix64 uniforms through
/// the Box-Muller transform in f64, rounded to f32. The same seed gives the same samples on
/// every run of a given platform (the f64 `ln`/`cos` of std are not bit-specified across
/// platforms; pass the samples along when two machines must agree).
pub fn standard_normal(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = deepnode_rng::SplitMix64::new(seed);
    // 53 random bits in (0, 1]: never 0, so ln is finite.
    let mut next_uniform = move || ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let (u1, u2) = (next_uniform(), next_uniform());
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = core::f64::consts::TAU * u2;
        out.push((radius * angle.cos()) as f32);
        if out.len() < len {
            out.push((radius * angle.sin()) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn standard_normal_is_seeded_and_normal() {
        let a = super::standard_normal(7, 20_001);
        assert_eq!(a, super::standard_normal(7, 20_001));
        assert_ne!(a, super::standard_normal(8, 20_001));
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = a
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "mean {mean} var {var}"
        );
    }
}
