//! The fixed-point scalar of the on-chain path.

use core::fmt;

use fixed::types::I64F64;

/// A signed fixed-point number with 64 integer and 64 fractional bits (`I64F64`, raw `i128`).
///
/// The representable grid is `k * 2^-64` for `k` in `i128`. Every quantity of the epoch is a
/// multiple of that grid; conformance/SPEC.md gives the rounding of each operation. The raw bits
/// are the wire format (`codec`: the SCALE encoding of the `i128`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Fx(pub I64F64);

impl Fx {
    /// 0.
    pub const ZERO: Fx = Fx(I64F64::ZERO);
    /// 1.
    pub const ONE: Fx = Fx(I64F64::ONE);
    /// The largest value, `2^63 - 2^-64`: where saturating operations stop.
    pub const MAX: Fx = Fx(I64F64::MAX);

    /// The number whose raw bits are `bits` (value `bits * 2^-64`).
    pub const fn from_bits(bits: i128) -> Fx {
        Fx(I64F64::from_bits(bits))
    }

    /// The raw bits (value `bits * 2^-64`).
    pub const fn to_bits(self) -> i128 {
        self.0.to_bits()
    }

    /// `floor(num / den * 2^64) * 2^-64`, or `None` when `den == 0` or the quotient exceeds
    /// [`Fx::MAX`].
    pub fn checked_from_ratio(num: u128, den: u128) -> Option<Fx> {
        if den == 0 {
            return None;
        }
        let int = num / den;
        let rem = num % den;
        if int >> 63 != 0 {
            return None;
        }
        // rem < den, so rem * 2^64 / den < 2^64; split to keep every step inside u128.
        let frac = frac_of(rem, den);
        let bits = (int << 64) | frac;
        i128::try_from(bits).ok().map(Fx::from_bits)
    }

    /// `floor(num / den)` on the grid, saturating at [`Fx::MAX`]; 0 when `den == 0`.
    ///
    /// Used for constants and for parameters given as ratios; the epoch divides through
    /// `deepnode-consensus`.
    pub fn from_ratio(num: u128, den: u128) -> Fx {
        match Fx::checked_from_ratio(num, den) {
            Some(x) => x,
            None if den == 0 => Fx::ZERO,
            None => Fx::MAX,
        }
    }

    /// The nearest grid value to `x` (ties to even), saturating at the range; NaN gives 0.
    ///
    /// Exact for every `f64` that lies on the grid. Used to read decimal parameters; never on
    /// the epoch path.
    pub fn from_f64(x: f64) -> Fx {
        Fx(I64F64::saturating_from_num(if x.is_nan() {
            0.0
        } else {
            x
        }))
    }

    /// The nearest `f64` (ties to even).
    pub fn to_f64(self) -> f64 {
        self.0.to_num::<f64>()
    }
}

/// `floor(rem * 2^64 / den)` for `rem < den`, without overflowing `u128`.
fn frac_of(rem: u128, den: u128) -> u128 {
    // Long division, one bit at a time: 64 steps of a shift and a compare. `r < den` holds
    // before each step, so `2r + 1` is below `2 den`; when `den` exceeds 2^127 the doubled
    // remainder is compared through `r >= den - r` instead of being formed.
    let mut r = rem;
    let mut q: u128 = 0;
    for _ in 0..64 {
        q <<= 1;
        if r >= den - r {
            r -= den - r;
            q |= 1;
        } else {
            r <<= 1;
        }
    }
    q
}

impl fmt::Debug for Fx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for Fx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(feature = "codec")]
mod codec {
    use parity_scale_codec::{Decode, Encode, EncodeLike, Error, Input, MaxEncodedLen, Output};

    use super::Fx;

    impl Encode for Fx {
        fn size_hint(&self) -> usize {
            16
        }
        fn encode_to<O: Output + ?Sized>(&self, dest: &mut O) {
            self.to_bits().encode_to(dest)
        }
    }

    impl EncodeLike for Fx {}

    impl Decode for Fx {
        fn decode<I: Input>(input: &mut I) -> Result<Self, Error> {
            i128::decode(input).map(Fx::from_bits)
        }
    }

    impl MaxEncodedLen for Fx {
        fn max_encoded_len() -> usize {
            16
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Fx;

    #[test]
    fn ratio_is_floor_of_exact_quotient() {
        assert_eq!(Fx::from_ratio(1, 2).to_bits(), 1 << 63);
        assert_eq!(Fx::from_ratio(1, 3).to_bits(), 0x5555_5555_5555_5555);
        assert_eq!(Fx::from_ratio(2, 3).to_bits(), 0xaaaa_aaaa_aaaa_aaaa);
        assert_eq!(Fx::from_ratio(7, 1).to_bits(), 7 << 64);
        let big = u128::MAX - 1;
        assert_eq!(Fx::from_ratio(big - 1, big).to_bits(), (1i128 << 64) - 1);
        assert_eq!(Fx::from_ratio(u128::MAX, u128::MAX), Fx::ONE);
        assert_eq!(Fx::from_ratio(1, 0), Fx::ZERO);
        assert_eq!(Fx::from_ratio(1 << 70, 1), Fx::MAX);
        assert_eq!(Fx::checked_from_ratio(1 << 70, 1), None);
    }

    #[test]
    fn f64_conversion_is_exact_on_the_grid() {
        assert_eq!(Fx::from_f64(0.5), Fx::from_ratio(1, 2));
        assert_eq!(Fx::from_f64(10.0).to_f64(), 10.0);
        assert_eq!(Fx::from_f64(f64::NAN), Fx::ZERO);
        assert_eq!(Fx::from_f64(f64::INFINITY), Fx::MAX);
    }
}
