//! A small seeded generator (splitmix64) for the relay's random times; not for keys.

use std::time::Duration;

/// splitmix64: each state gives the next value; every seed is a valid state.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The wait until the next event of a Poisson process of `per_min` events a minute;
    /// `None` when the rate is zero.
    pub(crate) fn wait(&mut self, per_min: f64) -> Option<Duration> {
        if per_min <= 0.0 {
            return None;
        }
        let mean = 60.0 / per_min;
        Some(Duration::from_secs_f64(-mean * (1.0 - self.unit()).ln()))
    }
}
