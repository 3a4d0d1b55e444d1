//! Steps 1 to 4 (SPEC.md §5): stake shares, row factors, rank `r_j` and trust `t_j`, with
//! the checks of each row in the same pass.

use deepnode_types::{Params, Uid, Weight};

use crate::bonds::BondRowMut;
use crate::prefetch::{AHEAD, PREFETCH_MIN, fetch_rows_ahead, head, prefetch, prefetch_at};
use crate::rows::{RowsRef, live, row_sum};
use crate::validate::{check_bonds, check_row, uids_ok_and_sum};
use crate::{Error, Scalar};

/// Steps 1 to 4 for a run of rows, with the checks of its weights and bond rows (the first
/// failing row's error, rows in uid order): `s_i = stake_i / total`; with
/// `f_i = s_i / sum_j weight_ij`: `r_j += weight_ij f_i`, and `t_j += s_i` where
/// `weight_ij / sum > trust_threshold`, added row after row onto the column sums `cols`
/// (`n` columns, all 0 on entry). `factors` (one per row of the run) receives `f_i` for the
/// bond update.
pub(crate) fn rank_and_trust<N, W, B, C>(
    params: &Params<N>,
    total: u128,
    rows: RowsRef<'_, W>,
    bonds: &[B],
    factors: &mut [N],
    cols: &mut C,
) -> Result<(), Error>
where
    N: Scalar,
    W: AsRef<[(Uid, Weight)]>,
    B: BondRowMut<N>,
    C: RankTrust<N> + ?Sized,
{
    let n = cols.columns();
    let far = n > PREFETCH_MIN;
    let mask = params.mask_self_weights;
    for (k, ((b, &x), f_out)) in bonds
        .iter()
        .zip(rows.stake)
        .zip(factors.iter_mut())
        .enumerate()
    {
        let i = rows.first.wrapping_add(k);
        let row = rows.row(i);
        if far {
            fetch_rows_ahead(rows, bonds, k);
        }
        // Columns are fetched AHEAD entries before their update: the next row's first ones
        // now, this row's further ones along the way (in `scatter_row`).
        for &(j, _) in head(rows.row(i.wrapping_add(1)), AHEAD) {
            cols.fetch(j);
        }
        let Some((f, s, cutoff)) = row_factor(params, total, i, row, b, x, n, f_out)? else {
            continue;
        };
        if rows.absent(i) {
            // Checked like any row, but it adds nothing (and no bonds: factor 0).
            *f_out = N::pack_factor(N::factor(N::ZERO, 1));
            continue;
        }
        let s = cols.share(s);
        let (before, after) = live(row, i, mask);
        for part in [before, after] {
            if far {
                scatter_row::<N, C, true>(part, f, s, cutoff, cols);
            } else {
                scatter_row::<N, C, false>(part, f, s, cutoff, cols);
            }
        }
    }
    Ok(())
}

/// Where pass 1 adds `r_j` and `t_j`: two buffers, or one of adjacent pairs `[r_j, t_j]`
/// (one cache line per weight instead of two). Uids were checked against `n`: a column out
/// of range (a broken invariant) is skipped.
pub(crate) trait RankTrust<N> {
    /// A row's `s_i` as [`RankTrust::add`] adds it.
    type Share: Copy;
    /// `n`.
    fn columns(&self) -> usize;
    /// Asks the cache for column `j`'s sums ([`prefetch`]).
    fn fetch(&self, j: Uid);
    /// `s_i`, once per row, for its adds.
    fn share(&mut self, s: N) -> Self::Share;
    /// `r_j += x`, and `t_j += s` where `s` is `Some`.
    fn add(&mut self, j: usize, x: N, s: Option<Self::Share>);
}

impl<N: Scalar> RankTrust<N> for (&mut [N], &mut [N]) {
    type Share = N;
    #[inline(always)]
    fn share(&mut self, s: N) -> N {
        s
    }
    #[inline(always)]
    fn columns(&self) -> usize {
        self.0.len()
    }
    #[inline(always)]
    fn fetch(&self, j: Uid) {
        prefetch(self.0, j);
        prefetch(self.1, j);
    }
    #[inline(always)]
    fn add(&mut self, j: usize, x: N, y: Option<N>) {
        if let Some(slot) = self.0.get_mut(j) {
            *slot = slot.add(x);
        }
        if let Some(y) = y
            && let Some(slot) = self.1.get_mut(j)
        {
            *slot = slot.add(y);
        }
    }
}

/// `r_j` and `t_j` side by side: `[r_0, t_0, r_1, t_1, ...]` (`2n` entries).
pub(crate) struct Adjacent<'a, N>(pub(crate) &'a mut [N]);

impl<N: Scalar> RankTrust<N> for Adjacent<'_, N> {
    type Share = N;
    #[inline(always)]
    fn share(&mut self, s: N) -> N {
        s
    }
    #[inline(always)]
    fn columns(&self) -> usize {
        self.0.len() / 2
    }
    #[inline(always)]
    fn fetch(&self, j: Uid) {
        if let Ok(j) = usize::try_from(j) {
            prefetch_at(self.0, j.wrapping_mul(2));
        }
    }
    #[inline(always)]
    fn add(&mut self, j: usize, x: N, y: Option<N>) {
        // Both halves at once: t_j + 0 is t_j (a sum of terms >= 0, never -0.0).
        let at = j.wrapping_mul(2);
        if let Some([r, t]) = self.0.get_mut(at..at.wrapping_add(2)) {
            (*r, *t) = (r.add(x), t.add(y.unwrap_or(N::ZERO)));
        }
    }
}

/// For a fixed-point backend: `r_j` and `t_j` as their 64 fraction bits in one slot
/// ([`Scalar::pair`], all 0 on entry), one scattered slot per weight instead of two. Every
/// term and sum is exact while it stays below 1, where the saturating sums of [`Scalar::add`]
/// are plain sums; `fits` turns false as soon as a term or a sum might reach 1 (a share or a
/// term of 1, a carry out of 64 bits: possible when a column gets all the stake), and the
/// pairs are then to be discarded.
pub(crate) struct Paired<'a, N> {
    pub(crate) cols: &'a mut [N],
    pub(crate) fits: bool,
}

impl<N: Scalar> RankTrust<N> for Paired<'_, N> {
    /// The fraction bits of `s_i`.
    type Share = u64;
    #[inline(always)]
    fn share(&mut self, s: N) -> u64 {
        let bits = s.fraction();
        self.fits &= bits.is_some();
        bits.unwrap_or(0)
    }
    #[inline(always)]
    fn columns(&self) -> usize {
        self.cols.len()
    }
    #[inline(always)]
    fn fetch(&self, j: Uid) {
        prefetch(self.cols, j);
    }
    #[inline(always)]
    fn add(&mut self, j: usize, x: N, s: Option<u64>) {
        if let Some(slot) = self.cols.get_mut(j) {
            let term = x.fraction();
            let (r, t) = slot.unpair();
            let (r, carry_r) = r.overflowing_add(term.unwrap_or(0));
            let (t, carry_t) = t.overflowing_add(s.unwrap_or(0));
            self.fits &= term.is_some() & !carry_r & !carry_t;
            *slot = N::pair(r, t);
        }
    }
}

/// Whether a backend sums `r_j` and `t_j` paired in one slot of `rank` (fixed point, see
/// [`Scalar::pair`]); float instead wants `2n` entries of `scratch` to hold them side by side.
pub(crate) fn pairs_in_rank<N: Scalar>() -> bool {
    N::ZERO.fraction().is_some()
}

/// Splits the pairs of [`Paired`] into `r_j` (left in `rank`) and `t_j`.
pub(crate) fn unpair_columns<N: Scalar>(rank: &mut [N], trust: &mut [N]) {
    for (r, t) in rank.iter_mut().zip(trust.iter_mut()) {
        let (hi, lo) = r.unpair();
        *r = N::of_fraction(hi);
        *t = N::of_fraction(lo);
    }
}

/// Steps 1 and 2 for row `i` with the checks of its weights and bond row: writes `f_i` to
/// `f_out` and returns `(f_i, s_i, cutoff)` (the trust cutoff of [`Scalar::max_untrusted`]),
/// or `None` for a row whose live weights sum to 0 (it adds nothing).
#[allow(
    clippy::too_many_arguments,
    reason = "one row's inputs, inlined into pass 1"
)]
#[inline(always)]
pub(crate) fn row_factor<N, B>(
    params: &Params<N>,
    total: u128,
    i: usize,
    row: &[(Uid, Weight)],
    b: &B,
    x: u64,
    n: usize,
    f_out: &mut N,
) -> Result<Option<(N::Factor, N, u64)>, Error>
where
    N: Scalar,
    B: BondRowMut<N>,
{
    let mask = params.mask_self_weights;
    let (ok, full_sum) = uids_ok_and_sum(row, n);
    if !ok {
        check_row("weights", i, row.iter().map(|&(u, _)| u), n)?;
    }
    check_bonds(params, i, b, row, x, n)?;
    let s = if total == 0 {
        N::ZERO
    } else {
        N::share(x, total)
    };
    let sum = if mask {
        row_sum(row, i, mask)
    } else {
        full_sum
    };
    if sum == 0 {
        *f_out = N::pack_factor(N::factor(N::ZERO, 1));
        return Ok(None);
    }
    let f = s.factor(sum);
    *f_out = N::pack_factor(f);
    Ok(Some((f, s, N::max_untrusted(params.trust_threshold, sum))))
}

/// Steps 3 and 4 for one run of a row's live entries: `r_j += weight_ij f_i`, and
/// `t_j += s_i` where `weight_ij > cutoff`. Uids were checked against `n` (a `get` that
/// fails skips the entry, which cannot happen after the check).
/// `FAR`: the columns are prefetched `AHEAD` entries before their update.
#[inline(always)]
pub(crate) fn scatter_row<N: Scalar, C: RankTrust<N> + ?Sized, const FAR: bool>(
    part: &[(Uid, Weight)],
    f: N::Factor,
    s: C::Share,
    cutoff: u64,
    cols: &mut C,
) {
    for (k, &(j, w)) in part.iter().enumerate() {
        if FAR && let Some(&(a, _)) = part.get(k.wrapping_add(AHEAD)) {
            cols.fetch(a);
        }
        let Ok(j) = usize::try_from(j) else { continue };
        cols.add(
            j,
            N::apply(f, u64::from(w)),
            (u64::from(w) > cutoff).then_some(s),
        );
    }
}
