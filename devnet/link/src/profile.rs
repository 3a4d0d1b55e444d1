//! A link's profile: what the relay does to each direction of a connection.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::LinkError;

/// What a link does to the bytes it carries, in each direction. The default is a perfect link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// One-way delay of every byte, in milliseconds.
    pub delay_ms: u64,
    /// Each chunk's delay is `delay_ms` plus a uniform draw in `[-jitter_ms, jitter_ms]` (at
    /// most `delay_ms`); bytes stay in order, so a chunk never leaves before the one ahead.
    pub jitter_ms: u64,
    /// The cap on each direction's rate, in megabits (10^6 bits) per second; 0: no cap.
    pub bandwidth_mbit: f64,
    /// Stalls a minute (Poisson): the link carries nothing for `stall_ms`.
    pub stall_per_min: f64,
    /// Length of a stall, in milliseconds.
    pub stall_ms: u64,
    /// Resets a minute of each connection (Poisson): both of its sockets are closed with a
    /// TCP RST.
    pub reset_per_min: f64,
}

impl Profile {
    /// Checks every value; the error names the key.
    pub fn check(&self) -> Result<(), LinkError> {
        let bad = |key, why| Err(LinkError::Profile { key, why });
        if self.jitter_ms > self.delay_ms {
            return bad("jitter_ms", "must not exceed delay_ms");
        }
        if self.delay_ms > 60_000 {
            return bad("delay_ms", "must be at most 60000");
        }
        for (key, x) in [
            ("bandwidth_mbit", self.bandwidth_mbit),
            ("stall_per_min", self.stall_per_min),
            ("reset_per_min", self.reset_per_min),
        ] {
            if !x.is_finite() || x < 0.0 {
                return bad(key, "must be a finite number, at least 0");
            }
        }
        if self.bandwidth_mbit > 0.0 && self.bandwidth_mbit < 0.001 {
            return bad("bandwidth_mbit", "must be 0 (no cap) or at least 0.001");
        }
        if (self.stall_per_min > 0.0) != (self.stall_ms > 0) {
            return bad("stall_ms", "stall_per_min and stall_ms go together");
        }
        if self.stall_ms > 60_000 {
            return bad("stall_ms", "must be at most 60000");
        }
        Ok(())
    }

    /// Whether the link changes nothing (no relay needed).
    pub fn is_perfect(&self) -> bool {
        *self == Profile::default()
    }

    /// The one-way delay.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms)
    }

    /// The time `bytes` take through the cap; zero without one.
    pub(crate) fn transmission(&self, bytes: usize) -> Duration {
        if self.bandwidth_mbit > 0.0 {
            Duration::from_secs_f64(bytes as f64 * 8.0 / (self.bandwidth_mbit * 1e6))
        } else {
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let with = |p: Profile| p.check().unwrap_err().to_string();
        let base = Profile {
            delay_ms: 50,
            jitter_ms: 10,
            ..Profile::default()
        };
        assert!(base.check().is_ok());
        assert!(Profile::default().check().is_ok());
        for (p, key) in [
            (
                Profile {
                    jitter_ms: 60,
                    ..base
                },
                "link.jitter_ms",
            ),
            (
                Profile {
                    bandwidth_mbit: -1.0,
                    ..base
                },
                "link.bandwidth_mbit",
            ),
            (
                Profile {
                    reset_per_min: f64::NAN,
                    ..base
                },
                "link.reset_per_min",
            ),
            (
                Profile {
                    stall_per_min: 2.0,
                    ..base
                },
                "link.stall_ms",
            ),
        ] {
            let e = with(p);
            assert!(e.starts_with(key), "{e}");
        }
    }
}
