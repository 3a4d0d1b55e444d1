//! The numeric backends: [`Fx`] (fixed point, on-chain) and `f64` (float, simulation).
//!
//! The epoch is written once against [`Scalar`]; each method states the fixed-point rounding
//! (conformance/SPEC.md §3). The float backend computes the same expressions in `f64`.

use core::fmt::Debug;

use crate::exp::{mul_shr64, sigmoid_q64};
use deepnode_types::{FromRatio, Fx};

/// A number the epoch can be computed in. Implemented for [`Fx`] and `f64`.
///
/// Fixed-point contract: `add`/`sub`/`mul` saturate at the range of [`Fx`]; `mul` rounds
/// toward negative infinity; `div` and `div_int` are applied to non-negative operands only
/// and round down. Every method is total: none panics on any input.
pub trait Scalar: Copy + PartialOrd + Debug + FromRatio {
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// The largest value a bond may hold.
    const MAX: Self;

    /// `stake / total` for `stake <= total`, `total > 0`: the share `s_i` (floor).
    fn share(stake: u64, total: u128) -> Self;
    /// `self + rhs`, saturating.
    fn add(self, rhs: Self) -> Self;
    /// [`Scalar::add`] for operands the caller knows are `>= 0` (bond values, their products
    /// and the sums of those): the same result there, in fewer instructions for [`Fx`].
    fn add_nonneg(self, rhs: Self) -> Self;
    /// `self - rhs`, saturating.
    fn sub(self, rhs: Self) -> Self;
    /// `self * rhs`, floor, saturating.
    fn mul(self, rhs: Self) -> Self;
    /// `self / rhs` for `self >= 0`, `rhs > 0`: floor, saturating.
    fn div(self, rhs: Self) -> Self;
    /// `self * (x / 2^64)` for `self >= 0`: exactly `self.mul(Self::of_fraction(x))`, in
    /// fewer instructions for [`Fx`] (a factor below 1 cannot saturate).
    #[inline]
    fn mul_fraction(self, x: u64) -> Self {
        self.mul(Self::of_fraction(x))
    }
    /// A row's factor `f_i = s_i / S_i`, carried at higher precision than `Self`.
    type Factor: Copy;
    /// `f_i = self / row_sum` for `self >= 0`, `row_sum > 0` (for [`Fx`]: Q.80 bits,
    /// `floor(s_bits * 2^16 / row_sum)`).
    fn factor(self, row_sum: u64) -> Self::Factor;
    /// `f` stored as a `Self` (in `epoch_in_place`'s scratch buffer between passes).
    fn pack_factor(f: Self::Factor) -> Self;
    /// The factor stored by [`Scalar::pack_factor`].
    fn unpack_factor(self) -> Self::Factor;
    /// `w_ij s_i = weight * f_i` (for [`Fx`]: `floor(weight * F / 2^16)` bits, so one rounding
    /// per entry whatever the weight).
    fn apply(f: Self::Factor, weight: u64) -> Self;
    /// `floor(threshold * row_sum)` (exact for [`Fx`]), for `0 <= threshold < 1`: a weight
    /// counts towards trust when `weight / row_sum > threshold`, i.e. `weight` exceeds this.
    fn max_untrusted(threshold: Self, row_sum: u64) -> u64;
    /// `1 / (1 + exp(-self))`, in `[0, 1]`.
    fn sigmoid(self) -> Self;
    /// [`Scalar::sigmoid`] of two values, bit for bit (for [`Fx`], the two series run side by
    /// side, whose multiply chains overlap).
    #[inline]
    fn sigmoid_pair([a, b]: [Self; 2]) -> [Self; 2] {
        [a.sigmoid(), b.sigmoid()]
    }
    /// `floor(units * clamp(self, 0, 1))`, at most `units`.
    fn of_units(self, units: u64) -> u64;
    /// The nearest value to `x` (for [`Fx`]: nearest grid point, ties to even, saturating;
    /// NaN gives 0). For reading decimal inputs; never on the epoch path.
    fn from_f64(x: f64) -> Self;
    /// The nearest `f64` (ties to even), for reports.
    fn to_f64(self) -> f64;
    /// The exact value as raw fixed-point bits (`value * 2^64`), for a fixed-point backend;
    /// `None` for float, whose `f64` is already exact.
    fn fixed_bits(self) -> Option<i128>;
    /// For a fixed-point backend, a value in `[0, 1)` as its 64 fraction bits
    /// (`value * 2^64`, from [`Scalar::fixed_bits`]); `None` outside `[0, 1)`, and always
    /// `None` for float. The epoch uses it to hold two column sums in one slot
    /// ([`Scalar::pair`]).
    #[inline]
    fn fraction(self) -> Option<u64> {
        self.fixed_bits().and_then(|bits| u64::try_from(bits).ok())
    }
    /// The value `x / 2^64` (exact for [`Fx`]; nearest `f64` for float).
    fn of_fraction(x: u64) -> Self;
    /// Two fractions `hi / 2^64` and `lo / 2^64` held in one `Self` (for [`Fx`]: the raw bits
    /// `hi * 2^64 + lo`), read back by [`Scalar::unpair`]. Only called where
    /// [`Scalar::fraction`] gave `Some`; float, which cannot hold two, returns 0.
    fn pair(hi: u64, lo: u64) -> Self;
    /// The two fractions stored by [`Scalar::pair`].
    fn unpair(self) -> (u64, u64);
    /// A key that orders the values `>= 0` as the values themselves (for [`Fx`]: the raw
    /// bits; for `f64`: the IEEE-754 bits; 0 for a value below 0), so that a bisection can
    /// run on the integers between two values (Yuma's stake-weighted median).
    fn order_key(self) -> u128;
    /// The value whose [`Scalar::order_key`] is `key`, for a key between two such keys.
    fn of_order_key(key: u128) -> Self;
}

impl Scalar for Fx {
    const ZERO: Fx = Fx::ZERO;
    const ONE: Fx = Fx::ONE;
    const MAX: Fx = Fx::MAX;

    #[inline]
    fn share(stake: u64, total: u128) -> Fx {
        Fx::from_ratio(u128::from(stake), total)
    }
    #[inline]
    fn add(self, rhs: Fx) -> Fx {
        self.saturating_add(rhs)
    }
    #[inline]
    fn add_nonneg(self, rhs: Fx) -> Fx {
        // Two values in [0, 2^127) add to below 2^128 without wrapping as u128; the sum
        // exceeds Fx::MAX exactly when its top bit is set, where saturating_add gives MAX.
        let sum = self.to_bits().wrapping_add(rhs.to_bits());
        if sum < 0 { Fx::MAX } else { Fx::from_bits(sum) }
    }
    #[inline]
    fn sub(self, rhs: Fx) -> Fx {
        self.saturating_sub(rhs)
    }
    #[inline]
    fn mul(self, rhs: Fx) -> Fx {
        self.saturating_mul(rhs)
    }
    #[inline]
    fn div(self, rhs: Fx) -> Fx {
        // Division by 0 saturates; callers never divide by 0 (each call site says why).
        self.saturating_div(rhs)
    }
    #[inline]
    fn mul_fraction(self, x: u64) -> Fx {
        let Ok(b) = u128::try_from(self.to_bits()) else {
            return self.mul(Fx::of_fraction(x));
        };
        // floor(b x / 2^64) for b < 2^127: at most b, so it fits and never saturates.
        Fx::from_bits(i128::try_from(mul_shr64(b, x)).unwrap_or(i128::MAX))
    }
    type Factor = u128;
    #[inline]
    fn factor(self, row_sum: u64) -> u128 {
        // s <= 1, so s_bits * 2^16 <= 2^80; row_sum > 0 at every call site.
        let s = u128::try_from(self.to_bits()).unwrap_or(0);
        (s << 16).checked_div(u128::from(row_sum)).unwrap_or(0)
    }
    #[inline]
    fn pack_factor(f: u128) -> Fx {
        // f <= 2^80 (s <= 1): the raw bits hold it exactly.
        Fx::from_bits(i128::try_from(f).unwrap_or(i128::MAX))
    }
    #[inline]
    fn unpack_factor(self) -> u128 {
        u128::try_from(self.to_bits()).unwrap_or(0)
    }
    #[inline]
    fn apply(f: u128, weight: u64) -> Fx {
        // f <= 2^80 and weight < 2^16 (a u16 widened), so the product is below 2^96: two
        // 64-bit multiplies, no overflow check (the saturating product is kept for operands
        // outside those bounds, which the epoch never passes).
        let bits = if f >> 80 == 0 && weight >> 16 == 0 {
            f.wrapping_mul(u128::from(weight)) >> 16
        } else {
            f.saturating_mul(u128::from(weight)) >> 16
        };
        Fx::from_bits(i128::try_from(bits).unwrap_or(i128::MAX))
    }
    #[inline]
    fn max_untrusted(threshold: Fx, row_sum: u64) -> u64 {
        // threshold_bits < 2^64 (checked params), so the product is below 2^128 and exact.
        let th = u128::try_from(threshold.to_bits()).unwrap_or(0);
        u64::try_from(th.saturating_mul(u128::from(row_sum)) >> 64).unwrap_or(u64::MAX)
    }
    fn sigmoid(self) -> Fx {
        let [c] = sigmoid_fx([self]);
        c
    }
    fn sigmoid_pair(pair: [Fx; 2]) -> [Fx; 2] {
        sigmoid_fx(pair)
    }
    fn of_units(self, units: u64) -> u64 {
        let frac = u128::try_from(self.to_bits().clamp(0, 1 << 64)).unwrap_or(0);
        // frac <= 2^64 and units < 2^64: the product is below 2^128.
        let minted = frac.saturating_mul(u128::from(units)) >> 64;
        u64::try_from(minted).unwrap_or(units)
    }
    fn from_f64(x: f64) -> Fx {
        Fx::from_f64(x)
    }
    fn to_f64(self) -> f64 {
        Fx::to_f64(self)
    }
    #[inline]
    fn fixed_bits(self) -> Option<i128> {
        Some(self.to_bits())
    }
    #[inline]
    fn of_fraction(x: u64) -> Fx {
        Fx::from_bits(i128::from(x))
    }
    #[inline]
    fn pair(hi: u64, lo: u64) -> Fx {
        Fx::from_bits(i128::from_ne_bytes(
            ((u128::from(hi) << 64) | u128::from(lo)).to_ne_bytes(),
        ))
    }
    #[inline]
    fn unpair(self) -> (u64, u64) {
        let bits = u128::from_ne_bytes(self.to_bits().to_ne_bytes());
        let lo = u64::try_from(bits & u128::from(u64::MAX)).unwrap_or(0);
        (u64::try_from(bits >> 64).unwrap_or(0), lo)
    }
    #[inline]
    fn order_key(self) -> u128 {
        u128::try_from(self.to_bits()).unwrap_or(0)
    }
    #[inline]
    fn of_order_key(key: u128) -> Fx {
        Fx::from_bits(i128::try_from(key).unwrap_or(i128::MAX))
    }
}

/// [`sigmoid_q64`] on `Fx` values, `L` series side by side (results in `[0, 1]`, so the
/// conversion back never saturates).
fn sigmoid_fx<const L: usize>(z: [Fx; L]) -> [Fx; L] {
    sigmoid_q64(z.map(Fx::to_bits))
        .map(|bits| Fx::from_bits(i128::try_from(bits).unwrap_or(i128::MAX)))
}

#[allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    reason = "the float backend: f64 arithmetic is its purpose"
)]
impl Scalar for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    const MAX: f64 = f64::MAX;

    #[inline]
    fn share(stake: u64, total: u128) -> f64 {
        stake as f64 / total as f64
    }
    #[inline]
    fn add(self, rhs: f64) -> f64 {
        self + rhs
    }
    #[inline]
    fn add_nonneg(self, rhs: f64) -> f64 {
        self + rhs
    }
    #[inline]
    fn sub(self, rhs: f64) -> f64 {
        self - rhs
    }
    #[inline]
    fn mul(self, rhs: f64) -> f64 {
        self * rhs
    }
    #[inline]
    fn div(self, rhs: f64) -> f64 {
        self / rhs
    }
    type Factor = f64;
    #[inline]
    fn factor(self, row_sum: u64) -> f64 {
        self / row_sum as f64
    }
    #[inline]
    fn pack_factor(f: f64) -> f64 {
        f
    }
    #[inline]
    fn unpack_factor(self) -> f64 {
        self
    }
    #[inline]
    fn apply(f: f64, weight: u64) -> f64 {
        f * weight as f64
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "floor of [0, S)"
    )]
    #[inline]
    fn max_untrusted(threshold: f64, row_sum: u64) -> u64 {
        libm::floor(threshold * row_sum as f64) as u64
    }
    fn sigmoid(self) -> f64 {
        if self >= 0.0 {
            1.0 / (1.0 + libm::exp(-self))
        } else {
            let e = libm::exp(self);
            e / (1.0 + e)
        }
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "clamped first"
    )]
    fn of_units(self, units: u64) -> u64 {
        let frac = if self.is_nan() {
            0.0
        } else {
            self.clamp(0.0, 1.0)
        };
        // `as` saturates; the product is at most `units`.
        ((units as f64 * frac) as u64).min(units)
    }
    fn from_f64(x: f64) -> f64 {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn fixed_bits(self) -> Option<i128> {
        None
    }
    fn of_fraction(x: u64) -> f64 {
        // 2^-64 is exact; the product rounds once.
        x as f64 * (1.0 / 18_446_744_073_709_551_616.0)
    }
    fn pair(_hi: u64, _lo: u64) -> f64 {
        0.0
    }
    fn unpair(self) -> (u64, u64) {
        (0, 0)
    }
    #[inline]
    fn order_key(self) -> u128 {
        // Non-negative floats order as their bits; -0.0 and below take key 0 (the value 0).
        if self > 0.0 {
            u128::from(self.to_bits())
        } else {
            0
        }
    }
    #[inline]
    fn of_order_key(key: u128) -> f64 {
        f64::from_bits(u64::try_from(key).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::{Fx, Scalar};

    /// Values of every magnitude, from a few bits to the top of their range.
    fn spread(seed: u128) -> impl FnMut() -> u128 {
        let mut x = seed;
        move || {
            x = x
                .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
                .wrapping_add(0x5851_f42d_4c95_7f2d_1405_7b7e_f767_814f);
            x >> (x >> 121)
        }
    }

    #[test]
    fn add_nonneg_is_the_saturating_sum_of_nonnegative_values() {
        let mut next = spread(3);
        let max = i128::MAX;
        let edges = [
            (max, 1),
            (max, max),
            (max - 5, 5),
            (max - 5, 6),
            (0, 0),
            (0, max),
        ];
        let random = (0..20_000).map(|_| {
            let a = i128::try_from(next() >> 1).unwrap_or(max);
            (a, i128::try_from(next() >> 1).unwrap_or(max))
        });
        for (a, b) in edges.into_iter().chain(random) {
            let (a, b) = (Fx::from_bits(a), Fx::from_bits(b));
            assert_eq!(a.add_nonneg(b), Scalar::add(a, b), "{a:?} + {b:?}");
        }
    }

    #[test]
    fn apply_matches_the_saturating_product() {
        let mut next = spread(5);
        let top = 1u128 << 80;
        let edges = [
            (top, 0xffff),
            (top, 0x1_0000),
            (top + 1, 1),
            (u128::MAX, 2),
            (0, 7),
        ];
        let random = (0..20_000).map(|_| (next() >> 47, (next() >> 112) as u64));
        for (f, w) in edges.into_iter().chain(random) {
            let want = f.saturating_mul(u128::from(w)) >> 16;
            let want = Fx::from_bits(i128::try_from(want).unwrap_or(i128::MAX));
            assert_eq!(<Fx as Scalar>::apply(f, w), want, "{f} x {w}");
        }
    }

    #[test]
    fn mul_fraction_is_the_saturating_product() {
        let mut next = spread(9);
        let max = i128::MAX;
        let top = u64::MAX;
        let edges = [
            (max, top),
            (max, 0),
            (max, 1),
            (0, top),
            (1, top),
            (1 << 64, top),
            ((1 << 64) - 1, top),
            (-1, top),
            (i128::MIN, 1 << 63),
        ];
        let random = (0..20_000).map(|_| {
            let a = i128::from_ne_bytes(next().to_ne_bytes());
            (
                a >> (next() >> 122),
                u64::try_from(next() >> 64).unwrap_or(top),
            )
        });
        for (a, x) in edges.into_iter().chain(random) {
            let a = Fx::from_bits(a);
            let want = Scalar::mul(a, <Fx as Scalar>::of_fraction(x));
            assert_eq!(a.mul_fraction(x), want, "{a:?} x {x}");
        }
    }
}
