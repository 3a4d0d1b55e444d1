//! The fixed-point scalar of the on-chain path.

use core::fmt;

use fixed::types::I64F64;

/// A signed fixed-point number with 64 integer and 64 fractional bits (`I64F64`, raw `i128`).
///
/// The representable grid is `k * 2^-64` for `k` in `i128`. Every quantity of the epoch is a
/// multiple of that grid; conformance/SPEC.md gives the rounding of each operation. The raw bits
/// are the wire format (`codec`: the SCALE encoding of the `i128`).
///
/// The inner `fixed` value is private: its operators panic or wrap on overflow, so `Fx` offers
/// only total operations (saturating, checked, or exact by construction).
///
/// Layout: 16 bytes aligned to 4 (`repr(packed(4))`), not the 16 of `i128`, so an entry
/// `(Uid, Fx)` of a bond row takes 20 bytes instead of 32 (the epoch is memory-bound); each
/// operation copies the bits into registers, and no reference to them is ever formed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(C, packed(4))]
pub struct Fx(I64F64);

impl Fx {
    /// 0.
    pub const ZERO: Fx = Fx(I64F64::ZERO);
    /// 1.
    pub const ONE: Fx = Fx(I64F64::ONE);
    /// The largest value, `2^63 - 2^-64`: where saturating operations stop.
    pub const MAX: Fx = Fx(I64F64::MAX);

    /// The number whose raw bits are `bits` (value `bits * 2^-64`).
    #[inline]
    pub const fn from_bits(bits: i128) -> Fx {
        Fx(I64F64::from_bits(bits))
    }

    /// The raw bits (value `bits * 2^-64`).
    #[inline]
    pub const fn to_bits(self) -> i128 {
        self.0.to_bits()
    }

    /// `floor(num / den * 2^64) * 2^-64`, or `None` when `den == 0` or the quotient exceeds
    /// [`Fx::MAX`].
    #[inline]
    pub fn checked_from_ratio(num: u128, den: u128) -> Option<Fx> {
        // `checked_div`/`checked_rem` are `None` exactly when `den == 0`.
        if let (Ok(num), Ok(den)) = (u64::try_from(num), u64::try_from(den)) {
            // Both below 2^64 (every share of a stake total that fits u64): the quotient
            // `num * 2^64 / den` is one u128 division, exact, the same floor as below.
            let q = (u128::from(num) << 64).checked_div(u128::from(den))?;
            return i128::try_from(q).ok().map(Fx::from_bits);
        }
        let int = num.checked_div(den)?;
        let rem = num.checked_rem(den)?;
        if int >> 63 != 0 {
            return None;
        }
        // int < 2^63, so `int << 64` keeps every bit and stays below 2^127; frac < 2^64 fills
        // the low half. rem < den, so rem * 2^64 / den < 2^64: long division keeps every step
        // inside u128.
        let frac = frac_of(rem, den);
        let bits = (int << 64) | frac;
        i128::try_from(bits).ok().map(Fx::from_bits)
    }

    /// `floor(num / den)` on the grid, saturating at [`Fx::MAX`]; 0 when `den == 0`.
    ///
    /// Used for constants and for parameters given as ratios; the epoch divides through
    /// `deepnode-consensus`.
    #[inline]
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

    /// `self + rhs`, saturating at the range of `Fx` (exact when it fits).
    #[inline]
    #[must_use]
    pub fn saturating_add(self, rhs: Fx) -> Fx {
        Fx(self.0.saturating_add(rhs.0))
    }

    /// `self - rhs`, saturating at the range of `Fx` (exact when it fits).
    #[inline]
    #[must_use]
    pub fn saturating_sub(self, rhs: Fx) -> Fx {
        Fx(self.0.saturating_sub(rhs.0))
    }

    /// `self * rhs` rounded toward negative infinity (the exact product's bits shifted right by
    /// 64), saturating at the range of `Fx`.
    #[inline]
    #[must_use]
    pub fn saturating_mul(self, rhs: Fx) -> Fx {
        if let (Ok(a), Ok(b)) = (u64::try_from(self.to_bits()), u64::try_from(rhs.to_bits())) {
            // Both in [0, 1): the product fits u128.
            let p = u128::from(a).wrapping_mul(u128::from(b)) >> 64;
            return Fx::from_bits(i128::try_from(p).unwrap_or(i128::MAX));
        }
        if let (Ok(a), Ok(b)) = (
            u128::try_from(self.to_bits()),
            u128::try_from(rhs.to_bits()),
        ) {
            // Both non-negative (every product of the epoch): the 256-bit product shifted
            // right by 64 from four 64 x 64 products; the same floor and saturation as below.
            return Fx::from_bits(i128::try_from(mul_shr64_u128(a, b)).unwrap_or(i128::MAX));
        }
        Fx(self.0.saturating_mul(rhs.0))
    }

    /// `self / rhs` rounded toward zero (floor for operands of one sign), saturating at the
    /// range of `Fx`.
    ///
    /// Division by zero saturates too: to the largest value for `self >= 0`, to the smallest
    /// (`-2^63`) for `self < 0`. Never panics.
    #[inline]
    #[must_use]
    pub fn saturating_div(self, rhs: Fx) -> Fx {
        if rhs.to_bits() == 0 {
            return if self.to_bits() < 0 {
                Fx(I64F64::MIN)
            } else {
                Fx::MAX
            };
        }
        if let (Ok(a), Ok(b)) = (u64::try_from(self.to_bits()), u128::try_from(rhs.to_bits())) {
            // 0 <= self < 1 and rhs > 0 (every quotient of the epoch): `self * 2^64` fits
            // u128, so the quotient is one u128 division (toward zero, as below).
            let q = (u128::from(a) << 64).checked_div(b).unwrap_or(u128::MAX);
            return Fx::from_bits(i128::try_from(q).unwrap_or(i128::MAX));
        }
        Fx(self.0.saturating_div(rhs.0))
    }
}

/// `floor(a * b / 2^64)` for unsigned `a`, `b`, saturating at `u128::MAX`.
#[inline]
fn mul_shr64_u128(a: u128, b: u128) -> u128 {
    const LO: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & LO);
    let (b1, b0) = (b >> 64, b & LO);
    // Each partial product of two 64-bit halves is below 2^128.
    let p00 = a0.wrapping_mul(b0);
    let p01 = a0.wrapping_mul(b1);
    let p10 = a1.wrapping_mul(b0);
    let p11 = a1.wrapping_mul(b1);
    // Bits 64..192 of the product: mid carries below 3 * 2^64 into bit 128.
    let mid = (p00 >> 64).wrapping_add(p01 & LO).wrapping_add(p10 & LO);
    let low = mid & LO;
    let high = (p01 >> 64).wrapping_add(p10 >> 64).wrapping_add(mid >> 64);
    // The result is p11 * 2^64 + high * 2^64 + low, saturating when it needs bit 128 or more.
    if p11 >> 64 != 0 {
        return u128::MAX;
    }
    let top = (p11 & LO).saturating_add(high);
    if top >> 64 != 0 {
        return u128::MAX;
    }
    (top << 64) | low
}

/// `floor(rem * 2^64 / den)` for `rem < den`, without overflowing `u128`.
///
/// The precondition `rem < den` is the caller's (`rem` is a remainder of `den`); under it no
/// step below wraps, and the result is below 2^64.
fn frac_of(rem: u128, den: u128) -> u128 {
    // Long division, one bit at a time: 64 steps of a shift and a compare. `r < den` holds
    // before each step, so `2r + 1` is below `2 den`; when `den` exceeds 2^127 the doubled
    // remainder is compared through `r >= den - r` instead of being formed.
    let mut r = rem;
    let mut q: u128 = 0;
    for _ in 0..64 {
        // r < den, so `den - r` is in 1..=den and does not wrap.
        let gap = den.wrapping_sub(r);
        if r >= gap {
            // 2r >= den: the next bit is 1 and the new remainder is `2r - den = r - gap`,
            // which is below `r` (gap >= 1), hence below den; no wrap since r >= gap.
            r = r.wrapping_sub(gap);
            q = (q << 1) | 1;
        } else {
            // 2r < den <= u128::MAX: doubling keeps every bit, and the new r stays below den.
            r <<= 1;
            q <<= 1;
        }
    }
    q
}

impl fmt::Debug for Fx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Fx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A copy: the field of a packed struct is never borrowed.
        let x = self.0;
        fmt::Display::fmt(&x, f)
    }
}

#[cfg(feature = "codec")]
mod codec {
    use parity_scale_codec::{
        Decode, DecodeWithMemTracking, Encode, EncodeLike, Error, Input, MaxEncodedLen, Output,
    };

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

    /// Decoding an `Fx` allocates nothing (it is 16 bytes), as FRAME's call and event types
    /// require.
    impl DecodeWithMemTracking for Fx {}

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

/// Metadata: `Fx` is described as a composite of its raw `i128` bits, which is its encoding.
#[cfg(feature = "scale-info")]
impl scale_info::TypeInfo for Fx {
    type Identity = Self;
    fn type_info() -> scale_info::Type {
        scale_info::Type::builder()
            .path(scale_info::Path::new("Fx", module_path!()))
            .docs(&["64.64 fixed point: the value is `bits * 2^-64`."])
            .composite(
                scale_info::build::Fields::unnamed().field(|f| f.ty::<i128>().type_name("i128")),
            )
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
    fn long_division_matches_wide_division() {
        // Where `rem * 2^64` fits in u128 (den <= 2^64), plain division is the oracle.
        let mut x: u128 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let den = (x >> 64).max(1);
            let rem = (x & u128::from(u64::MAX)) % den;
            assert_eq!(super::frac_of(rem, den), (rem << 64) / den, "{rem} / {den}");
        }
        // den above 2^127, where doubling the remainder would overflow: just over 1/2 floors
        // to 2^-1, and (2^128 - 2) / (2^128 - 1) to 1 - 2^-64.
        assert_eq!(super::frac_of(1 << 127, u128::MAX), 1 << 63);
        assert_eq!(
            super::frac_of(u128::MAX - 1, u128::MAX),
            u128::from(u64::MAX)
        );
    }

    #[test]
    fn saturating_ops_are_total() {
        let third = Fx::from_ratio(1, 3);
        let min = Fx::from_bits(i128::MIN);
        assert_eq!(Fx::ONE.saturating_add(Fx::ONE), Fx::from_ratio(2, 1));
        assert_eq!(Fx::MAX.saturating_add(Fx::ONE), Fx::MAX);
        assert_eq!(Fx::ZERO.saturating_sub(Fx::ONE), Fx::from_bits(-(1 << 64)));
        assert_eq!(min.saturating_sub(Fx::ONE), min);
        // 1/3 * 1/3 = 0x1c71..c71c.7: the exact product's low bits are dropped (floor).
        assert_eq!(third.saturating_mul(third).to_bits(), 0x1c71_c71c_71c7_1c71);
        assert_eq!(Fx::MAX.saturating_mul(Fx::from_ratio(2, 1)), Fx::MAX);
        assert_eq!(Fx::ONE.saturating_div(Fx::from_ratio(3, 1)), third);
        assert_eq!(Fx::MAX.saturating_div(Fx::from_ratio(1, 2)), Fx::MAX);
        // Toward zero for a negative quotient: -1/3 is -(1/3 floored), not its floor.
        assert_eq!(
            Fx::from_bits(-(1 << 64))
                .saturating_div(Fx::from_ratio(3, 1))
                .to_bits(),
            -third.to_bits()
        );
        assert_eq!(Fx::ONE.saturating_div(Fx::ZERO), Fx::MAX);
        assert_eq!(Fx::ZERO.saturating_div(Fx::ZERO), Fx::MAX);
        assert_eq!(min.saturating_div(Fx::ZERO), min);
    }

    #[test]
    fn fast_paths_match_the_fixed_crate() {
        use fixed::types::I64F64;
        let mut x: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
        let mut next = || {
            x = x
                .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
                .wrapping_add(0x5851_f42d_4c95_7f2d_1405_7b7e_f767_814f);
            // Vary the magnitude: from a few bits to all 128.
            let shift = (x >> 121) as u32;
            (x >> shift) as i128
        };
        for _ in 0..20_000 {
            let (a, b) = (next(), next());
            for (a, b) in [
                (a, b),
                (a.abs() >> 1, b.abs() >> 1),
                (a & ((1 << 64) - 1), b),
            ] {
                let (fa, fb) = (Fx::from_bits(a), Fx::from_bits(b));
                let (ia, ib) = (I64F64::from_bits(a), I64F64::from_bits(b));
                assert_eq!(
                    fa.saturating_mul(fb).to_bits(),
                    ia.saturating_mul(ib).to_bits(),
                    "{a} * {b}"
                );
                if b != 0 {
                    assert_eq!(
                        fa.saturating_div(fb).to_bits(),
                        ia.saturating_div(ib).to_bits(),
                        "{a} / {b}"
                    );
                }
            }
            let (n, d) = (next().unsigned_abs() >> 64, next().unsigned_abs() >> 64);
            if d != 0 && n <= d {
                // The u64 fast path against the long division.
                let int = n / d;
                let want = (int << 64) | super::frac_of(n % d, d);
                assert_eq!(Fx::from_ratio(n, d).to_bits() as u128, want, "{n} / {d}");
            }
        }
        assert_eq!(Fx::MAX.saturating_mul(Fx::MAX), Fx::MAX);
        assert_eq!(
            Fx::from_ratio(3, 4).saturating_div(Fx::from_bits(1)),
            Fx::MAX
        );
    }

    #[test]
    fn bond_entries_are_twenty_bytes() {
        use core::mem::{align_of, size_of};
        assert_eq!(size_of::<Fx>(), 16);
        assert_eq!(align_of::<Fx>(), 4);
        assert_eq!(size_of::<(crate::Uid, Fx)>(), 20);
        // Entries of a row lie at every 20 bytes, so most values sit off any 16-byte
        // boundary: each one reads and writes its own bits.
        let mut row: [(crate::Uid, Fx); 4] = [(0, Fx::ZERO); 4];
        for (k, e) in row.iter_mut().enumerate() {
            let k = i128::try_from(k).unwrap_or(0);
            *e = (7, Fx::from_bits(-(k << 100) - k));
        }
        for (k, &(u, v)) in row.iter().enumerate() {
            let k = i128::try_from(k).unwrap_or(0);
            assert_eq!((u, v.to_bits()), (7, -(k << 100) - k));
            assert_eq!(v.cmp(&Fx::ZERO), (-(k << 100) - k).cmp(&0));
        }
    }

    #[test]
    fn f64_conversion_is_exact_on_the_grid() {
        assert_eq!(Fx::from_f64(0.5), Fx::from_ratio(1, 2));
        assert_eq!(Fx::from_f64(10.0).to_f64(), 10.0);
        assert_eq!(Fx::from_f64(f64::NAN), Fx::ZERO);
        assert_eq!(Fx::from_f64(f64::INFINITY), Fx::MAX);
    }
}
