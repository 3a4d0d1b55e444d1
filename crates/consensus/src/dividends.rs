//! Steps 9 and 10 (SPEC.md §5): the factor `g_j = i_j / C_j` of each bond column and the
//! dividends `d_i = sum_j B_ij g_j`.

use deepnode_types::{Uid, Weight};

use crate::Scalar;
use crate::bonds::BondRowMut;
use crate::prefetch::{AHEAD, PREFETCH_MIN, ROWS_AHEAD, prefetch, prefetch_row};
use crate::rows::RowsRef;

/// Which rows step 10 pays: every row, except the absent ones under [`Departed::Withhold`].
#[derive(Clone, Copy)]
pub(crate) struct Paid<'a, W> {
    /// The run's rows (for their activity).
    pub(crate) rows: RowsRef<'a, W>,
    /// `params.departed` is [`Departed::Withhold`].
    pub(crate) withhold: bool,
}

/// Step 9's factor per column, in place: `c` holds `C_j` on entry and `g_j = i_j / C_j` on
/// return (0 for an empty column, whose bonds pay no one: beta_ij = 0). Each column on its own.
pub(crate) fn column_factors<N: Scalar>(c: &mut [N], incentive: &[N]) {
    for (g, &inc) in c.iter_mut().zip(incentive) {
        *g = if *g > N::ZERO { inc.div(*g) } else { N::ZERO };
    }
}

/// Step 10 for a run of rows: `d_i = sum_j B_ij g_j` (`g` holds `n` columns; `dividends`
/// and `bonds` hold the run's rows), 0 for an absent row under [`Departed::Withhold`]. Each
/// row on its own.
pub(crate) fn pay_dividends<N, W, B, G>(paid: Paid<'_, W>, bonds: &[B], g: &G, dividends: &mut [N])
where
    N: Scalar,
    W: AsRef<[(Uid, Weight)]>,
    B: BondRowMut<N>,
    G: ColumnFactors<N> + ?Sized,
{
    for (i, d) in dividends.iter_mut().enumerate() {
        if paid.withhold && paid.rows.absent(paid.rows.first.wrapping_add(i)) {
            *d = N::ZERO;
            continue;
        }
        if g.columns() > PREFETCH_MIN
            && let Some(b) = bonds.get(i.wrapping_add(ROWS_AHEAD))
        {
            prefetch_row(b.entries());
        }
        if let Some(next) = bonds.get(i.wrapping_add(1)) {
            for &(j, _) in next.entries().get(..AHEAD).unwrap_or(next.entries()) {
                g.fetch(j);
            }
        }
        *d = row_dividend(bonds.get(i).map_or(&[][..], BondRowMut::entries), g);
    }
}

/// `d_i = sum_j B_ij g_j` for one bond row, in uid order (uids were checked against `n`).
/// Not inlined: the loop keeps its operands in registers.
#[inline(never)]
pub(crate) fn row_dividend<N: Scalar, G: ColumnFactors<N> + ?Sized>(
    entries: &[(Uid, N)],
    g: &G,
) -> N {
    entries
        .iter()
        .fold(N::ZERO, |acc, &(j, v)| acc.add_nonneg(g.times(j, v)))
}

/// Step 10's `g_j`, as pass 3 reads them: one per slot (`[N]`), or two fractions per slot
/// ([`Halves`]).
pub(crate) trait ColumnFactors<N> {
    /// `n`.
    fn columns(&self) -> usize;
    /// Asks the cache for `g_j` ([`prefetch`]).
    fn fetch(&self, j: Uid);
    /// `B_ij g_j` for `B_ij >= 0`, exactly `v.mul(g_j)` (0 for a uid out of range, a broken
    /// invariant).
    fn times(&self, j: Uid, v: N) -> N;
}

impl<N: Scalar> ColumnFactors<N> for [N] {
    #[inline(always)]
    fn columns(&self) -> usize {
        self.len()
    }
    #[inline(always)]
    fn fetch(&self, j: Uid) {
        prefetch(self, j);
    }
    #[inline(always)]
    fn times(&self, j: Uid, v: N) -> N {
        let g = usize::try_from(j)
            .ok()
            .and_then(|k| self.get(k))
            .copied()
            .unwrap_or(N::ZERO);
        v.mul(g)
    }
}

/// For a fixed-point backend whose every `g_j` is below 1: `g_2m` and `g_2m+1` as their 64
/// fraction bits in slot `m` ([`Scalar::pair`]), 8 bytes per `g_j` instead of 16, so pass 3's
/// scattered reads of `g` span half the memory; `B_ij g_j` is [`Scalar::mul_fraction`], the
/// same bits as `mul`.
pub(crate) struct Halves<'a, N>(pub(crate) &'a [N]);

impl<N: Scalar> ColumnFactors<N> for Halves<'_, N> {
    #[inline(always)]
    fn columns(&self) -> usize {
        self.0.len().saturating_mul(2)
    }
    #[inline(always)]
    fn fetch(&self, j: Uid) {
        prefetch(self.0, j >> 1);
    }
    #[inline(always)]
    fn times(&self, j: Uid, v: N) -> N {
        let (even, odd) = usize::try_from(j >> 1)
            .ok()
            .and_then(|k| self.0.get(k))
            .map_or((0, 0), |g| g.unpair());
        v.mul_fraction(if j & 1 == 0 { even } else { odd })
    }
}

/// Where every `g_j` is in `[0, 1)` as a fraction ([`Scalar::fraction`]: a fixed-point backend
/// only, never float): packs them two to a slot in place (see [`Halves`]) and returns the
/// `ceil(n / 2)` slots; `None` (`g` untouched) otherwise.
pub(crate) fn pack_fractions<N: Scalar>(g: &mut [N]) -> Option<&[N]> {
    if !g.iter().all(|x| x.fraction().is_some()) {
        return None;
    }
    let slots = g.len().div_ceil(2);
    // Slot m is written after g_2m and g_2m+1 are read, and before any later pair, which lie
    // at 2m + 2 and above.
    for m in 0..slots {
        let at = |k: usize| g.get(k).and_then(|x| x.fraction()).unwrap_or(0);
        let pair = N::pair(at(m.wrapping_mul(2)), at(m.wrapping_mul(2).wrapping_add(1)));
        if let Some(slot) = g.get_mut(m) {
            *slot = pair;
        }
    }
    g.get(..slots)
}
