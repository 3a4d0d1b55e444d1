//! Integer-only `exp(-x)` and the logistic sigmoid on the 64.64 grid (conformance/SPEC.md §4).
//!
//! `exp(-x)` for `x >= 0`: range reduction `x = k ln2 + r` with `k = floor(x / LN2)` and
//! `r = x - k LN2` (both exact on the grid), then the Taylor series of `exp(-r)` summed in
//! Q1.127 (63 guard bits), each term `t_n = floor(floor(t_{n-1} r) / n)`, until a term is 0;
//! finally `>> k`. The guard bits keep the result within 2^-120 of the exact value, so it is
//! monotone in `x` except where two neighbours differ by less than that.
//!
//! The sigmoid needs only the top 64 of those bits, which a shorter computation settles for
//! all but about one input in 2^46: `exp(-r) = exp(-a/64) exp(-c)` from a table of 45 series
//! values and a 15-term polynomial ([`exp_neg_q64_fast`]), within 2^9 of the series' sum.
//! Where that margin straddles a multiple of the output's unit, the series itself runs.
//!
//! Each step of the series waits on the one before (a product, then a division), so one series
//! is bound by multiply latency: the functions here run `L` independent series side by side,
//! whose steps overlap, with the same steps and so the same bits as one at a time (`L = 1`).

/// `floor(ln 2 * 2^64)`. Regenerate: `python3 -c "import mpmath as m; m.mp.prec=200;
/// print(hex(int(m.floor(m.log(2)*2**64))))"`.
pub(crate) const LN2_Q64: u128 = 0xb172_17f7_d1cf_79ab;

/// 1.0 in Q1.127.
const ONE_Q127: u128 = 1 << 127;

/// SPEC.md §4 step 3 with its sum `pos - neg` (before the clamp), for `r = R / 2^64 < ln 2`, in
/// plain arithmetic: every term until one is 0. Within 2^7 of `exp(-r) 2^127`: a term's
/// rounding error `d_m < d_{m-1} r / m + 1` stays below 2, for at most 63 terms, and the terms
/// left out are below 2 (an alternating, falling tail).
#[allow(
    clippy::arithmetic_side_effects,
    reason = "m >= 1; pos - neg > 0 (an alternating series with falling terms)"
)]
const fn series_q127(r: u64) -> u128 {
    let (mut term, mut pos, mut neg) = (ONE_Q127, ONE_Q127, 0u128);
    let mut m = 1u128;
    while m < 64 {
        term = mul_shr64(term, r) / m;
        if term == 0 {
            break;
        }
        if m % 2 == 1 {
            neg += term;
        } else {
            pos += term;
        }
        m += 1;
    }
    pos - neg
}

/// `exp(-a/64)` in Q1.127 for `a` in `0..=44` (`a/64 < ln 2`): [`series_q127`] of
/// `R = a 2^58`, computed at compile time; each within 2^7 of the exact value.
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "evaluated at compile time: a < 45 indexes a [_; 45]"
)]
const EXP_STEPS: [u128; 45] = {
    let mut t = [0u128; 45];
    let mut a = 0;
    while a < 45 {
        t[a] = series_q127((a as u64) << 58);
        a += 1;
    }
    t
};

/// `floor(2^127 / m!)` for `m` in `0..=14`: the Taylor coefficients of [`exp_neg_q127_fast`].
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "evaluated at compile time: m < 15 indexes a [_; 15], and divides by m >= 1"
)]
const INVERSE_FACTORIALS: [u128; 15] = {
    let mut t = [0u128; 15];
    t[0] = ONE_Q127;
    let mut m = 1;
    while m < 15 {
        t[m] = t[m - 1] / m as u128;
        m += 1;
    }
    t
};

/// `exp(-r)` in Q1.127 for `r = R / 2^64 < ln 2`, within 2^8 of the exact value: with
/// `a = R >> 58` (at most 44) and `c = (R mod 2^58) / 2^64 < 2^-6`, the table's `exp(-a/64)`
/// times `exp(-c)` by Horner's rule on the Taylor polynomial of degree 14.
///
/// Error: `floor(2^127 / m!)` and each step's floor are each 1 off at most and earlier errors
/// shrink by `c` a step, so the polynomial is within 2.1 of its exact value, itself within
/// `2^127 c^15 / 15! < 1` of `2^127 exp(-c)`; the table entry is within 2^7; the product's
/// floor adds 1: at most 2^7 + 3.1 + 1 < 2^8.
fn exp_neg_q127_fast(r: u64) -> u128 {
    let a = usize::try_from(r >> 58).unwrap_or(usize::MAX);
    let c = r & ((1 << 58) - 1);
    let (&last, rest) = INVERSE_FACTORIALS.split_last().unwrap_or((&0, &[]));
    let mut p = last;
    for &coefficient in rest.iter().rev() {
        // p < 2 coefficient / (m + 1) and c < 2^-6: the product is far below coefficient.
        p = coefficient.wrapping_sub(mul_shr64(p, c));
    }
    mul_q127(EXP_STEPS.get(a).copied().unwrap_or(0), p)
}

/// `floor(x y / 2^127)` for `x, y <= 2^127`: exact (the product is below 2^254).
fn mul_q127(x: u128, y: u128) -> u128 {
    let (high, low) = mul_wide(x, y);
    (high << 1) | (low >> 127)
}

/// The 256-bit product `x y` as its high and low 128-bit words, from four 64 x 64 products.
#[inline(always)]
fn mul_wide(x: u128, y: u128) -> (u128, u128) {
    const LO: u128 = u64::MAX as u128;
    let (x1, x0) = (x >> 64, x & LO);
    let (y1, y0) = (y >> 64, y & LO);
    let (p00, p01, p10) = (
        x0.wrapping_mul(y0),
        x0.wrapping_mul(y1),
        x1.wrapping_mul(y0),
    );
    // The middle column: three parts below 2^64 each, so no wrap.
    let mid = (p00 >> 64).wrapping_add(p01 & LO).wrapping_add(p10 & LO);
    let high = x1
        .wrapping_mul(y1)
        .wrapping_add(p01 >> 64)
        .wrapping_add(p10 >> 64)
        .wrapping_add(mid >> 64);
    (high, (mid << 64) | (p00 & LO))
}

/// How far [`exp_neg_q127_fast`] may be from the series' sum: below 2^7 + 2^8 (their bounds
/// above), taken 2^7 times wider.
const FAST_MARGIN: u128 = 1 << 16;

/// SPEC.md §4's `exp_neg(x) >> 63` (`exp(-x)` as Q64.64 bits, the sigmoid's `e`) from
/// [`exp_neg_q127_fast`], for Q64.64 bits `x >= 0`, given a `margin` that bounds its distance
/// from the series' sum ([`FAST_MARGIN`]); `None` where the margin straddles two results,
/// which only the series can settle.
fn exp_neg_q64_fast(x: u128, margin: u128) -> Option<u128> {
    let (k, r) = reduce(x);
    if k >= 128 {
        return Some(0);
    }
    let f = exp_neg_q127_fast(r);
    // The series' sum lies in (f - margin, f + margin); where that is below 2^127 the clamp
    // does nothing, and both ends give the same e exactly when the sum does.
    let low = f.checked_sub(margin)?;
    let high = f.checked_add(margin).filter(|&h| h < ONE_Q127)?;
    // k < 128, so the shift is below 191; from 128 on both ends give 0 (they are below 2^127).
    let shift = u32::try_from(k.wrapping_add(63)).unwrap_or(u32::MAX);
    let e = |v: u128| v.checked_shr(shift).unwrap_or(0);
    (e(low) == e(high)).then_some(e(low))
}

/// `floor(a * r / 2^64)` for `a <= 2^127`, `r < 2^64`: exact, no overflow. `const` for the
/// tables below, which [`series_q127`] fills at compile time.
pub(crate) const fn mul_shr64(a: u128, r: u64) -> u128 {
    let r = r as u128;
    let hi = a >> 64;
    let lo = a & (u64::MAX as u128);
    // hi <= 2^63 and r < 2^64, so hi * r < 2^127; lo * r < 2^128; the sum < 2^128.
    hi.wrapping_mul(r).wrapping_add(lo.wrapping_mul(r) >> 64)
}

/// `floor(x / n)` for `1 <= n < 64`, exactly: [`div_small`] on 64-bit operands (one 64 x 64
/// product instead of four).
fn div_small_64(x: u64, n: u64) -> u64 {
    // The high half of floor((2^128 - 1) / n) is floor((2^64 - 1) / n): both are 2^64 / n
    // rounded down, less one where n divides 2^64.
    let m = u64::try_from(reciprocal(n) >> 64).unwrap_or(0);
    if m == 0 {
        return x.checked_div(n).unwrap_or(0);
    }
    // m >= (2^64 - n) / n, so x m / 2^64 > x / n - 1 and q is floor(x / n) or one less;
    // q n <= x, and the remainder is below 2n.
    let q = u64::try_from(u128::from(x).wrapping_mul(u128::from(m)) >> 64).unwrap_or(0);
    let rem = x.wrapping_sub(q.wrapping_mul(n));
    if rem >= n { q.wrapping_add(1) } else { q }
}

/// `floor((2^128 - 1) / n)` for `n` in `1..64` (index 0 unused).
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "evaluated at compile time: n < 64 indexes a [_; 64] and divides without overflow"
)]
const RECIPROCALS: [u128; 64] = {
    let mut t = [0u128; 64];
    let mut n = 1;
    while n < 64 {
        t[n] = u128::MAX / n as u128;
        n += 1;
    }
    t
};

/// `floor((2^128 - 1) / n)` for `1 <= n < 64`; 0 for any other `n`.
#[inline(always)]
fn reciprocal(n: u64) -> u128 {
    usize::try_from(n)
        .ok()
        .and_then(|k| RECIPROCALS.get(k))
        .copied()
        .unwrap_or(0)
}

/// `floor(x / n)` for `1 <= n < 64`, exactly, by a multiplication instead of a 128-bit
/// division: with `m = floor((2^128 - 1) / n)`, `q = floor(x m / 2^128)` is `floor(x / n)` or
/// one less (`x m / 2^128 > x / n - 1`), and one comparison of the remainder settles it.
fn div_small(x: u128, n: u64) -> u128 {
    let m = reciprocal(n);
    let n = u128::from(n);
    if m == 0 {
        return x.checked_div(n).unwrap_or(0);
    }
    // The high 128 bits of the 256-bit product x m.
    let (q, _) = mul_wide(x, m);
    // q <= x / n, so q n <= x; the remainder is below 2n.
    let rem = x.wrapping_sub(q.wrapping_mul(n));
    if rem >= n { q.wrapping_add(1) } else { q }
}

/// `exp(-x)` in Q1.127 for each `x` given as Q64.64 raw bits (`x >= 0`).
pub(crate) fn exp_neg_q127<const L: usize>(x: [u128; L]) -> [u128; L] {
    // Where k >= 128 the result is 0: r = 0 ends that lane's series at once.
    let reduced = x.map(reduce);
    let k = reduced.map(|(k, _)| k);
    let r = reduced.map(|(_, r)| r);
    // A series' sum, pos - neg, in one accumulator that wraps modulo 2^128: the same value
    // as two sums subtracted at the end.
    let mut sum = [ONE_Q127; L];
    let mut term = [ONE_Q127; L];
    let mut n: u64 = 1;
    // Terms fall by at least r/n < 0.7 a step, so a series ends after < 50 steps; once a
    // term is 0 every later one is, and adds nothing. While a term needs more than 64 bits,
    // a step is a 128-bit product and division ...
    while term.iter().any(|&t| t > u128::from(u64::MAX)) && n < 64 {
        for ((t, s), &r) in term.iter_mut().zip(&mut sum).zip(&r) {
            *t = div_small(mul_shr64(*t, r), n);
            *s = alternate(*s, *t, n);
        }
        n = n.wrapping_add(1);
    }
    // ... and from there on the same step in 64 bits: for t < 2^64, mul_shr64(t, r) is the
    // high half of one 64 x 64 product, below 2^64, and div_small_64 divides it exactly.
    let mut small = term.map(|t| u64::try_from(t).unwrap_or(0));
    while small.iter().any(|&t| t != 0) && n < 64 {
        for ((t, s), &r) in small.iter_mut().zip(&mut sum).zip(&r) {
            let product = mul_shr64(u128::from(*t), r);
            *t = div_small_64(u64::try_from(product).unwrap_or(0), n);
            *s = alternate(*s, u128::from(*t), n);
        }
        n = n.wrapping_add(1);
    }
    // An alternating series with falling terms: 0 < sum <= 2^127 + term_2.
    core::array::from_fn(|l| match (sum.get(l), k.get(l)) {
        (Some(&s), Some(&k)) if k < 128 => s.min(ONE_Q127) >> k,
        _ => 0,
    })
}

/// SPEC.md §4 steps 1 and 2: `k = floor(x / LN2)` and `R = x - k LN2` (below `LN2 < 2^64`);
/// `R = 0` where `k >= 128`, whose result is 0 whatever `R`.
fn reduce(x: u128) -> (u128, u64) {
    let k = x / LN2_Q64;
    // k LN2 <= x by the definition of k, so the difference is R, in [0, LN2).
    let r = if k < 128 {
        u64::try_from(x.wrapping_sub(k.wrapping_mul(LN2_Q64))).unwrap_or(u64::MAX)
    } else {
        0
    };
    (k, r)
}

/// `sum - term` for an odd step `n`, `sum + term` for an even one (wrapping).
#[inline(always)]
fn alternate(sum: u128, term: u128, n: u64) -> u128 {
    if n % 2 == 1 {
        sum.wrapping_sub(term)
    } else {
        sum.wrapping_add(term)
    }
}

/// `1 / (1 + exp(-z))` as Q64.64 raw bits for each Q64.64 `z`, in `[0, 2^64]`.
///
/// With `e = floor(exp(-|z|) 2^64)`: `z >= 0` gives `floor(2^128 / (2^64 + e))`, `z < 0` gives
/// `floor(e 2^64 / (2^64 + e))`; `z = 0` is exactly 1/2.
pub(crate) fn sigmoid_q64<const L: usize>(z: [i128; L]) -> [u128; L] {
    sigmoid_q64_with(z, FAST_MARGIN)
}

/// [`sigmoid_q64`] with the fast path's margin as a parameter (tests widen it to force the
/// series).
fn sigmoid_q64_with<const L: usize>(z: [i128; L], margin: u128) -> [u128; L] {
    let x = z.map(i128::unsigned_abs);
    let fast = x.map(|x| exp_neg_q64_fast(x, margin));
    // The series for every lane where any needs it (about one input in 2^46).
    let e = if fast.iter().all(Option::is_some) {
        fast.map(|e| e.unwrap_or(0))
    } else {
        exp_neg_q127(x).map(|e| e >> 63)
    };
    core::array::from_fn(|l| match (z.get(l), e.get(l)) {
        (Some(&z), Some(&e)) => sigmoid_of_exp(z, e),
        _ => 0,
    })
}

/// The sigmoid of `z` from `e = floor(exp(-|z|) 2^64)`.
fn sigmoid_of_exp(z: i128, e: u128) -> u128 {
    let one: u128 = 1 << 64;
    if z == 0 {
        return one >> 1;
    }
    if e == 0 {
        return if z > 0 { one } else { 0 };
    }
    // 0 < e < 2^64 for z != 0, so 2^64 < den < 2^65.
    let den = one.wrapping_add(e);
    if z > 0 {
        // floor(2^128 / den) from u128::MAX = 2^128 - 1: add one when den divides 2^128,
        // which for 2^64 < den < 2^65 never happens (den is not a power of two).
        u128::MAX.checked_div(den).unwrap_or(0)
    } else {
        (e << 64).checked_div(den).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_f64_q127(x: u128) -> f64 {
        #[allow(clippy::float_arithmetic, reason = "test oracle")]
        let v = (x >> 64) as f64 / (1u128 << 63) as f64;
        v
    }

    #[test]
    #[allow(clippy::float_arithmetic, reason = "test oracle")]
    fn exp_matches_libm() {
        for i in 0..2000u32 {
            let x = f64::from(i) * 0.025;
            let bits = (x * 18446744073709551616.0) as u128;
            let want = libm::exp(-(bits as f64 / 18446744073709551616.0));
            let got = to_f64_q127(exp_neg_q127([bits])[0]);
            assert!(
                (got - want).abs() <= 1e-17 + 1e-15 * want,
                "x={x} got={got} want={want}"
            );
        }
        assert_eq!(exp_neg_q127([0]), [ONE_Q127]);
        assert_eq!(exp_neg_q127([u128::MAX]), [0]);
    }

    /// SPEC.md §4 step by step for one `x`, with plain 128-bit division: every term, until
    /// one is 0.
    #[allow(
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        reason = "test oracle: plain arithmetic, every value fits (r < 2^64, sums < 2^128)"
    )]
    fn exp_neg_spec(x: u128) -> u128 {
        let k = x / LN2_Q64;
        if k >= 128 {
            return 0;
        }
        let r = u64::try_from(x - k * LN2_Q64).unwrap();
        series_q127(r).min(ONE_Q127) >> k
    }

    /// SPEC.md §4's sigmoid from [`exp_neg_spec`].
    fn sigmoid_spec(z: i128) -> u128 {
        sigmoid_of_exp(z, exp_neg_spec(z.unsigned_abs()) >> 63)
    }

    /// Random values below `bound` (> 0), from a fixed seed.
    #[allow(clippy::arithmetic_side_effects, reason = "bound > 0 at every call")]
    fn below(seed: u128, bound: u128) -> impl FnMut() -> u128 {
        let mut x = seed;
        move || {
            x = x
                .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
                .wrapping_add(0x5851_f42d_4c95_7f2d_1405_7b7e_f767_814f);
            x % bound
        }
    }

    #[test]
    #[allow(clippy::unwrap_used, reason = "values below ln 2 < 2^64")]
    fn fast_exp_is_within_its_bound_of_the_series() {
        // Every table step's ends, and random r below ln 2.
        let steps = (0..45u64).flat_map(|a| [a << 58, (a << 58) + 1, ((a + 1) << 58) - 1]);
        let mut next = below(7, LN2_Q64);
        let random = (0..200_000).map(|_| u64::try_from(next()).unwrap());
        let mut worst = 0;
        for r in steps.chain([0, 1, 2, LN2_Q64 as u64 - 1]).chain(random) {
            let (fast, series) = (exp_neg_q127_fast(r), series_q127(r));
            worst = worst.max(fast.abs_diff(series));
        }
        // The bounds give < 2^7 + 2^8, which FAST_MARGIN (2^16) covers 2^7 times over.
        assert!(worst < 1 << 9, "worst distance {worst}");
    }

    #[test]
    #[allow(
        clippy::unwrap_used,
        clippy::arithmetic_side_effects,
        clippy::cast_possible_wrap,
        reason = "test inputs: every value is below 2^72"
    )]
    fn sigmoid_gives_the_spec_bits_by_either_path() {
        // z over +-130 ln 2 (past k = 128 both ways), and the edges of each k.
        let mut next = below(11, 260 * LN2_Q64);
        let mid = 130 * LN2_Q64 as i128;
        let random = (0..100_000).map(|_| i128::try_from(next()).unwrap() - mid);
        let edges = [0u128, 1, 5, 127, 128, 200].into_iter().flat_map(|k| {
            [0u128, 1, 1 << 58, LN2_Q64 / 2, LN2_Q64 - 1].map(|r| (k * LN2_Q64 + r) as i128)
        });
        let z: alloc::vec::Vec<i128> = random
            .chain(edges.flat_map(|x| [x, -x]))
            .chain([i128::MAX, i128::MIN, i128::MIN + 1])
            .collect();
        let mut series_only = 0;
        for &z in &z {
            let want = sigmoid_spec(z);
            assert_eq!(sigmoid_q64([z]), [want], "z = {z}");
            // A margin of 2^100 straddles two results wherever k < 37: the series' bits.
            assert_eq!(sigmoid_q64_with([z], 1 << 100), [want], "z = {z}");
            series_only += usize::from(exp_neg_q64_fast(z.unsigned_abs(), 1 << 100).is_none());
        }
        // About 37 in 130 of the random z have k < 37.
        assert!(series_only > z.len() / 5, "{series_only} of {}", z.len());
    }

    #[test]
    fn exp_gives_the_spec_bits_in_any_width_and_lanes() {
        // Random x below 130 ln 2 (past the k >= 128 cut), so each lane's 64-bit tail starts
        // at a different step, and the edges: r = 0, r just below ln 2.
        let mut x: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
        let mut next = || {
            x = x
                .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
                .wrapping_add(0x5851_f42d_4c95_7f2d_1405_7b7e_f767_814f);
            x % (130 * LN2_Q64)
        };
        let check = |xs: [u128; 6]| {
            let want = xs.map(exp_neg_spec);
            assert_eq!(xs.map(|x| exp_neg_q127([x])[0]), want, "x = {xs:x?}");
            let [a, b, c, d, e, f] = xs;
            let pairs = [[a, b], [c, d], [e, f]].map(exp_neg_q127);
            assert_eq!(pairs.as_flattened(), want, "x = {xs:x?}");
            let threes = [[a, b, c], [d, e, f]].map(exp_neg_q127);
            assert_eq!(threes.as_flattened(), want, "x = {xs:x?}");
        };
        for _ in 0..10_000 {
            check(core::array::from_fn(|_| next()));
        }
        for k in [0u128, 1, 5, 127, 128, 200] {
            check([0u128, 1, 2, 1 << 32, LN2_Q64 / 2, LN2_Q64 - 1].map(|r| k * LN2_Q64 + r));
        }
        check([u128::MAX, 0, u128::MAX, LN2_Q64 - 1, 1, u128::MAX]);
    }

    #[test]
    fn sigmoid_lanes_give_each_lanes_bits() {
        for i in -400..400i128 {
            let z = [i * ((1i128 << 64) / 37) + i, (i * 7919) << 56];
            assert_eq!(sigmoid_q64(z), z.map(|z| sigmoid_q64([z])[0]), "z = {z:?}");
        }
    }

    #[test]
    fn small_division_is_exact() {
        let mut x: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
        for i in 0..200_000u32 {
            x = x
                .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
                .wrapping_add(0x5851_f42d_4c95_7f2d_1405_7b7e_f767_814f);
            let v = x >> (i % 128);
            let n = u64::from(i % 63 + 1);
            assert_eq!(div_small(v, n), v / u128::from(n), "{v} / {n}");
        }
        for n in 1..64u64 {
            let w = u128::from(n);
            for v in [0, 1, w - 1, w, u128::MAX, u128::MAX - 1, u128::MAX / w * w] {
                assert_eq!(div_small(v, n), v / w, "{v} / {n}");
            }
        }
        for i in 0..200_000u64 {
            x = x
                .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
                .wrapping_add(0x5851_f42d_4c95_7f2d_1405_7b7e_f767_814f);
            let v = ((x >> 64) as u64) >> (i % 64);
            let n = i % 63 + 1;
            assert_eq!(div_small_64(v, n), v / n, "{v} / {n}");
        }
        for n in 1..64u64 {
            for v in [0, 1, n - 1, n, u64::MAX, u64::MAX - 1, u64::MAX / n * n] {
                assert_eq!(div_small_64(v, n), v / n, "{v} / {n}");
            }
        }
    }

    #[test]
    fn sigmoid_is_monotone_and_bounded() {
        let mut last = 0u128;
        let mut z: i128 = -(50i128 << 64);
        while z < (50i128 << 64) {
            let [s] = sigmoid_q64([z]);
            assert!(s >= last && s <= 1 << 64, "z={z}");
            last = s;
            z += (1i128 << 64) / 997;
        }
        assert_eq!(sigmoid_q64([0]), [1 << 63]);
        assert_eq!(sigmoid_q64([i128::MAX]), [1 << 64]);
        assert_eq!(sigmoid_q64([i128::MIN]), [0]);
    }
}
