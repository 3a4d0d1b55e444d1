#![doc = include_str!("../README.md")]
#![no_std]

/// The increment of the state per draw: `2^64 / phi`, odd.
pub const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijection of `u64` whose output bits each depend on every
/// input bit (the finalizer of MurmurHash3 with Stafford's variant 13 constants). A draw is
/// `mix(state)` after the state advanced by [`GAMMA`]; on its own it hashes an index into
/// random bits.
pub const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A SplitMix64 stream: one state word, the seed itself at the start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The stream of `seed`.
    pub const fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits: the state advances by [`GAMMA`] (wrapping), the draw is
    /// [`mix`] of the new state.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// Uniform in `[0, 1)`: the top 53 bits of a draw over `2^53`.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[-1, 1)`: the top 24 bits of a draw over `2^23`, less 1.
    pub fn signed_unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::{GAMMA, SplitMix64, mix};

    #[test]
    fn the_reference_stream_from_seed_0() {
        let mut r = SplitMix64::new(0);
        let first: [u64; 3] = core::array::from_fn(|_| r.next_u64());
        assert_eq!(
            first,
            [
                0xe220_a839_7b1d_cdaf,
                0x6e78_9e6a_a1b9_65f4,
                0x06c4_5d18_8009_454f
            ]
        );
        // A draw is the mix of the advanced state.
        assert_eq!(SplitMix64::new(5).next_u64(), mix(5u64.wrapping_add(GAMMA)));
    }

    #[test]
    fn floats_stay_in_range() {
        let mut r = SplitMix64::new(9);
        for _ in 0..10_000 {
            assert!((0.0..1.0).contains(&r.unit_f64()));
            assert!((-1.0..1.0).contains(&r.signed_unit_f32()));
        }
    }
}
