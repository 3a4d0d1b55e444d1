//! One epoch, SPEC.md §5 steps 1 to 11, over caller-provided buffers.
#![doc = include_str!("../docs/memory.md")]

use deepnode_types::{BondMode, Departed, Params, Uid, Weight};

use crate::bonds::BondRowMut;
use crate::validate::{check_params, check_row, consensus_of, consensus_of_pair};
use crate::{Error, Scalar};

/// Caller-provided outputs of [`epoch_in_place`], each of length `n` (`scratch`: at least).
pub struct Outputs<'a, N> {
    /// Rank `r_j`.
    pub rank: &'a mut [N],
    /// Trust `t_j`.
    pub trust: &'a mut [N],
    /// Consensus `c_j`.
    pub consensus: &'a mut [N],
    /// Incentive `i_j`.
    pub incentive: &'a mut [N],
    /// Dividends `d_i`.
    pub dividends: &'a mut [N],
    /// Units minted to each node.
    pub minted: &'a mut [u64],
    /// Stake after minting.
    pub stake: &'a mut [u64],
    /// Working space of at least `n` entries (its contents on return are unspecified). Float
    /// runs faster with `2n`, where it keeps `r_j` and `t_j` side by side (one cache line per
    /// weight instead of two); entries past `2n` are not used.
    pub scratch: &'a mut [N],
}

/// When each row was last updated, for [`Params::activity_cutoff`] (SPEC.md §5, "Absent
/// rows"): row `i` is absent when the cutoff is above 0 and `block - last_update[i]` (0 when
/// `last_update[i] > block`) exceeds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Activity<'a> {
    /// The block (the epoch, in the simulator) at which the epoch runs.
    pub block: u64,
    /// `last_update[i]`: the block of node `i`'s last accepted weights row; empty (every row
    /// present) or exactly `n` entries.
    pub last_update: &'a [u64],
}

impl Activity<'_> {
    /// No last updates: every row is present whatever the cutoff.
    pub const ALL_PRESENT: Activity<'static> = Activity {
        block: 0,
        last_update: &[],
    };

    /// Whether row `i` is absent under `cutoff` (never when `cutoff` is 0).
    pub fn absent(&self, cutoff: u64, i: usize) -> bool {
        cutoff > 0
            && self
                .last_update
                .get(i)
                .is_some_and(|&u| self.block.saturating_sub(u) > cutoff)
    }
}

/// Runs one epoch without allocating: reads `stake` (length `n`) and `weights` (at most `n`
/// rows; missing rows are empty), updates `bonds` (exactly `n` rows) in place, writes `out`,
/// and returns the consensus loss `L`. Every row is present: [`epoch_in_place_at`] with
/// [`Activity::ALL_PRESENT`].
///
/// Rows must be sorted by uid with no repeats (`crate::canonicalize` sorts a `Vec` row). On
/// error no bond is touched and `minted` and `stake` are not written: every check runs before
/// the first bond is updated (`rank`, `trust`, `dividends` and `scratch` may hold partial
/// sums and row factors, as the checks run in the same pass as steps 1 to 4; for
/// [`Fx`](deepnode_types::Fx), `rank` may hold `r_j` and `t_j` paired, see below).
///
/// Three passes over the rows: (1) checks, shares, row factors, rank and trust; (2) the bond
/// update and the bond column sums; (3) dividends. Every sum adds its terms in the same order
/// as SPEC.md's row-by-row definition (rows in uid order, a row's entries in uid order),
/// so results do not depend on how rows are stored or merged. A fixed-point backend adds
/// `r_j` and `t_j` as 64-bit fractions paired in one slot of `rank` while every sum stays
/// below 1 (one scattered update per weight instead of two) and otherwise repeats pass 1 with
/// the full sums: the same bits either way. Float adds them side by side in `scratch` when it
/// has `2n` entries, and in `rank` and `trust` otherwise: the same bits either way.
pub fn epoch_in_place<N, W, B>(
    params: &Params<N>,
    stake: &[u64],
    weights: &[W],
    bonds: &mut [B],
    out: Outputs<'_, N>,
) -> Result<N, Error>
where
    N: Scalar,
    W: AsRef<[(Uid, Weight)]>,
    B: BondRowMut<N>,
{
    epoch_in_place_at(params, stake, weights, Activity::ALL_PRESENT, bonds, out)
}

/// [`epoch_in_place`] with the rows' last updates: with `params.activity_cutoff > 0`, a row
/// older than the cutoff ([`Activity::absent`]) adds no rank, trust or bonds, and its node's
/// bonds follow `params.departed` (SPEC.md §5, "Absent rows"). `activity.last_update` must be
/// empty or hold `n` entries ([`Error::BufferLength`] otherwise).
pub fn epoch_in_place_at<N, W, B>(
    params: &Params<N>,
    stake: &[u64],
    weights: &[W],
    activity: Activity<'_>,
    bonds: &mut [B],
    out: Outputs<'_, N>,
) -> Result<N, Error>
where
    N: Scalar,
    W: AsRef<[(Uid, Weight)]>,
    B: BondRowMut<N>,
{
    check_shapes(params, stake, weights, activity, bonds, &out)?;
    let Outputs {
        rank,
        trust,
        consensus,
        incentive,
        dividends,
        minted,
        stake: new_stake,
        scratch,
    } = out;
    // 1-4. `dividends` keeps f_i for the bond update (free until step 10).
    let n = stake.len();
    let total = total_stake(stake);
    rank.fill(N::ZERO);
    trust.fill(N::ZERO);
    let rows = RowsRef {
        first: 0,
        weights,
        stake,
        activity,
        cutoff: params.activity_cutoff,
    };
    let factors = &mut *dividends;
    // A fixed-point backend sums r_j and t_j paired in `rank` while they stay below 1, float
    // side by side in `scratch` when it has 2n entries: one scattered slot per weight instead
    // of two. The same sums, bit for bit.
    let done = if pairs_in_rank::<N>() {
        let mut paired = Paired {
            cols: &mut *rank,
            fits: true,
        };
        rank_and_trust(params, total, rows, bonds, factors, &mut paired)?;
        let fits = paired.fits;
        if fits {
            unpair_columns(rank, trust);
        } else {
            rank.fill(N::ZERO);
        }
        fits
    } else if let Some(pairs) = scratch.get_mut(..n.saturating_mul(2)) {
        pairs.fill(N::ZERO);
        rank_and_trust(params, total, rows, bonds, factors, &mut Adjacent(pairs))?;
        for ((r, t), pair) in rank
            .iter_mut()
            .zip(trust.iter_mut())
            .zip(pairs.chunks_exact(2))
        {
            if let [a, b] = *pair {
                (*r, *t) = (a, b);
            }
        }
        true
    } else {
        false
    };
    if !done {
        rank_and_trust(
            params,
            total,
            rows,
            bonds,
            factors,
            &mut (&mut *rank, &mut *trust),
        )?;
    }

    // 5-7.
    consensus_columns(params, trust, rank, consensus, incentive);
    let (x_sum, loss) = incentive_sums(rank, consensus, incentive);
    normalise_incentive(incentive, x_sum);

    // 8. Bonds, before use. The column sums C_j = sum_k B_kj are accumulated as rows are
    // written, in `scratch` (at least n entries).
    let sums = scratch.get_mut(..n).unwrap_or_default();
    sums.fill(N::ZERO);
    update_bonds(params, rows, bonds, dividends, rank, sums)?;

    // 9-10. `sums` now becomes g_j = i_j / C_j (for a fixed-point backend, two to a slot when
    // every g_j is below 1), and `dividends` (f_i no longer needed) d_i.
    column_factors(sums, incentive);
    let paid = Paid {
        rows,
        withhold: params.departed == Departed::Withhold,
    };
    if let Some(g) = pack_fractions(sums) {
        pay_dividends(paid, bonds, &Halves(g), dividends);
    } else {
        pay_dividends(paid, bonds, &*sums, dividends);
    }

    // 11.
    mint(params, stake, incentive, dividends, minted, new_stake);
    Ok(loss)
}

/// `sum_i stake_i` (exact: at most 2^32 nodes of at most 2^64 units fit u128).
pub(crate) fn total_stake(stake: &[u64]) -> u128 {
    stake
        .iter()
        .fold(0u128, |acc, &x| acc.saturating_add(u128::from(x)))
}

/// A run of consecutive rows of the epoch's input: rows `first..first + stake.len()`.
/// `weights` is the whole list (shorter than `n` when the last rows are empty) and `stake`
/// the run's own stakes.
pub(crate) struct RowsRef<'a, W> {
    /// The uid of the run's first row.
    pub(crate) first: usize,
    /// Every weights row of the epoch (indexed by uid).
    pub(crate) weights: &'a [W],
    /// `stake_i` of the run's rows.
    pub(crate) stake: &'a [u64],
    /// The rows' last updates (indexed by uid).
    pub(crate) activity: Activity<'a>,
    /// `params.activity_cutoff`.
    pub(crate) cutoff: u64,
}

// Copy without the `W: Copy` bound a derive would add (only references are copied).
impl<W> Clone for RowsRef<'_, W> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<W> Copy for RowsRef<'_, W> {}

impl<'a, W: AsRef<[(Uid, Weight)]>> RowsRef<'a, W> {
    /// Weights row `i` (a uid; empty when missing).
    #[inline(always)]
    fn row(&self, i: usize) -> &'a [(Uid, Weight)] {
        self.weights.get(i).map_or(&[][..], AsRef::as_ref)
    }

    /// Whether row `i` (a uid) is absent ([`Activity::absent`]).
    #[inline(always)]
    fn absent(&self, i: usize) -> bool {
        self.activity.absent(self.cutoff, i)
    }
}

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
struct Adjacent<'a, N>(&'a mut [N]);

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
struct Paired<'a, N> {
    cols: &'a mut [N],
    fits: bool,
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
fn unpair_columns<N: Scalar>(rank: &mut [N], trust: &mut [N]) {
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
fn row_factor<N, B>(
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

/// Steps 5 and 6 column by column: `c_j = sigmoid(rho (t_j - kappa))` and `x_j = r_j c_j`
/// (into `incentive`, normalised by [`normalise_incentive`]). Each column on its own.
pub(crate) fn consensus_columns<N: Scalar>(
    params: &Params<N>,
    trust: &[N],
    rank: &[N],
    consensus: &mut [N],
    incentive: &mut [N],
) {
    // Two columns at a time: their sigmoids' multiply chains overlap (the same bits).
    let (c2, c_rest) = consensus.as_chunks_mut::<2>();
    let (t2, t_rest) = trust.as_chunks::<2>();
    for (c, &t) in c2.iter_mut().zip(t2) {
        *c = consensus_of_pair(params, t);
    }
    for (c, &t) in c_rest.iter_mut().zip(t_rest) {
        *c = consensus_of(params, t);
    }
    for ((i, &c), &r) in incentive.iter_mut().zip(consensus.iter()).zip(rank) {
        *i = r.mul(c);
    }
}

/// `sum_j x_j` and the loss `L = sum_j r_j (1/2 - c_j)` (step 7), added in column order.
pub(crate) fn incentive_sums<N: Scalar>(rank: &[N], consensus: &[N], incentive: &[N]) -> (N, N) {
    let half = N::ratio(1, 2);
    let mut x_sum = N::ZERO;
    let mut loss = N::ZERO;
    for ((&x, &c), &r) in incentive.iter().zip(consensus).zip(rank) {
        x_sum = x_sum.add(x);
        loss = loss.add(r.mul(half.sub(c)));
    }
    (x_sum, loss)
}

/// `i_j = x_j / sum x` (all 0 when the sum is 0). Each column on its own.
pub(crate) fn normalise_incentive<N: Scalar>(incentive: &mut [N], x_sum: N) {
    for i in incentive.iter_mut() {
        // x_sum > 0 on this branch, and 0 <= x_j <= x_sum.
        *i = if x_sum > N::ZERO {
            i.div(x_sum)
        } else {
            N::ZERO
        };
    }
}

/// Step 8 for a run of rows (`bonds` and `factors` hold the run's rows): each bond row is
/// merged with `w_ij s_i` (from `f_i` in `factors`); the kept entries are added onto `sums`
/// (length `n`), row after row, as the column sums `C_j = sum_k B_kj` of the run.
pub(crate) fn update_bonds<N, W, B>(
    params: &Params<N>,
    rows: RowsRef<'_, W>,
    bonds: &mut [B],
    factors: &[N],
    rank: &[N],
    sums: &mut [N],
) -> Result<(), Error>
where
    N: Scalar,
    W: AsRef<[(Uid, Weight)]>,
    B: BondRowMut<N>,
{
    let mask = params.mask_self_weights;
    for (k, &f) in factors.iter().enumerate() {
        let i = rows.first.wrapping_add(k);
        let row = rows.row(i);
        // The next row's first columns, up to a whole sparse row (the merge itself does not
        // prefetch along a row).
        for &(j, _) in head(rows.row(i.wrapping_add(1)), 4 * AHEAD) {
            prefetch(sums, j);
        }
        if sums.len() > PREFETCH_MIN {
            fetch_rows_ahead(rows, bonds, k);
        }
        let Some(b) = bonds.get_mut(k) else { break };
        if rows.absent(i) {
            update_absent_row(params, b, i, sums)?;
            continue;
        }
        let columns = Columns { rank, sums };
        update_bond_row(params.bonds, b, row, i, N::unpack_factor(f), mask, columns)?;
    }
    Ok(())
}

/// Step 8 for an absent row `i`: the bond rule with no new entries (cumulative keeps each
/// bond, EMA scales it by `1 - alpha`), then under [`Departed::Decay`] each bond is scaled by
/// `1 - rate`; zeros are dropped. Under [`Departed::Decay`] the kept bonds are added to their
/// column sums `C_j`; under [`Departed::Withhold`] they are left out of them.
fn update_absent_row<N: Scalar, B: BondRowMut<N>>(
    params: &Params<N>,
    bonds: &mut B,
    i: usize,
    sums: &mut [N],
) -> Result<(), Error> {
    let entries = bonds.entries_mut();
    let mut kept = 0usize;
    for k in 0..entries.len() {
        let Some(&(u, b)) = entries.get(k) else {
            break;
        };
        let v = mix(params.bonds, b, N::ZERO, || N::ZERO);
        let v = match params.departed {
            Departed::Withhold => v,
            Departed::Decay { rate } => N::ONE.sub(rate).mul(v),
        };
        match params.departed {
            Departed::Decay { .. } => kept = keep(i, entries, kept, (u, v), sums)?,
            Departed::Withhold => {
                if v > N::ZERO {
                    if let Some(slot) = entries.get_mut(kept) {
                        *slot = (u, v);
                    }
                    kept = kept.wrapping_add(1);
                }
            }
        }
    }
    bonds.resize(kept, (0, N::ZERO));
    Ok(())
}

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
fn row_dividend<N: Scalar, G: ColumnFactors<N> + ?Sized>(entries: &[(Uid, N)], g: &G) -> N {
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
struct Halves<'a, N>(&'a [N]);

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
fn pack_fractions<N: Scalar>(g: &mut [N]) -> Option<&[N]> {
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

/// Step 11: `delta_i = lambda i_i + (1 - lambda) d_i`; `minted_i = floor(emission delta_i)`
/// (any excess over `emission` taken back); `stake_i += minted_i`.
pub(crate) fn mint<N: Scalar>(
    params: &Params<N>,
    stake: &[u64],
    incentive: &[N],
    dividends: &[N],
    minted: &mut [u64],
    new_stake: &mut [u64],
) {
    let keep = params.self_share;
    let pass = N::ONE.sub(keep);
    for (((m, &old), &inc), &div) in minted.iter_mut().zip(stake).zip(incentive).zip(dividends) {
        let delta = keep.mul(inc).add(pass.mul(div));
        // A stake at u64::MAX takes no more: what does not fit is not minted.
        *m = delta
            .of_units(params.emission)
            .min(u64::MAX.saturating_sub(old));
    }
    take_back_excess(minted, params.emission);
    for ((new, &old), &m) in new_stake.iter_mut().zip(stake).zip(&*minted) {
        *new = old.saturating_add(m);
    }
}

/// Steps 3 and 4 for one run of a row's live entries: `r_j += weight_ij f_i`, and
/// `t_j += s_i` where `weight_ij > cutoff`. Uids were checked against `n` (a `get` that
/// fails skips the entry, which cannot happen after the check).
/// `FAR`: the columns are prefetched `AHEAD` entries before their update.
#[inline(always)]
fn scatter_row<N: Scalar, C: RankTrust<N> + ?Sized, const FAR: bool>(
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

/// Whether a weights row's uids are strictly increasing and below `n` (one branch-free pass;
/// [`check_row`] then gives the exact error), and `sum_j weight_ij` over the whole row.
///
/// Strictly increasing uids are below `n` when the last one is, so each entry costs one
/// comparison, with its predecessor.
#[inline(always)]
fn uids_ok_and_sum(row: &[(Uid, Weight)], n: usize) -> (bool, u64) {
    let last_ok = row
        .last()
        .is_none_or(|&(u, _)| usize::try_from(u).is_ok_and(|u| u < n));
    let mut increasing = true;
    let mut prev = -1i64;
    let mut sum = 0u64;
    for &(u, w) in row {
        increasing &= i64::from(u) > prev;
        prev = i64::from(u);
        // Below 2^48 for rows of at most 2^32 entries.
        sum = sum.wrapping_add(u64::from(w));
    }
    (last_ok & increasing, sum)
}

/// Bond row `i`: uids below `n`, strictly increasing, values in `[0, N::MAX]`; a bounded row
/// must hold the union of its old entries and the new ones (counting every non-zero weight of
/// a staked row is an upper bound that needs no shares yet; a zero-stake row brings none).
/// `row` has passed its own check.
fn check_bonds<N: Scalar, B: BondRowMut<N>>(
    params: &Params<N>,
    i: usize,
    b: &B,
    row: &[(Uid, Weight)],
    stake: u64,
    n: usize,
) -> Result<(), Error> {
    let entries = b.entries();
    if same_uids(entries, row) {
        // The steady state: the row's uids, already checked, and the union is the row itself
        // (at most its capacity). Only the values are left.
        let ok = entries
            .iter()
            .fold(true, |ok, &(_, v)| ok & (v >= N::ZERO) & (v <= N::MAX));
        if !ok
            && let Some(&(uid, _)) = entries
                .iter()
                .find(|&&(_, v)| !(v >= N::ZERO && v <= N::MAX))
        {
            return Err(Error::InvalidBond { row: i, uid });
        }
        return Ok(());
    }
    let mut ok = true;
    let mut next = 0u64;
    let n64 = u64::try_from(n).unwrap_or(u64::MAX);
    for &(u, v) in entries {
        let u = u64::from(u);
        ok &= (u >= next) & (u < n64) & (v >= N::ZERO) & (v <= N::MAX);
        next = u.wrapping_add(1);
    }
    if !ok {
        check_row("bonds", i, entries.iter().map(|&(u, _)| u), n)?;
        if let Some(&(uid, _)) = entries
            .iter()
            .find(|&&(_, v)| !(v >= N::ZERO && v <= N::MAX))
        {
            return Err(Error::InvalidBond { row: i, uid });
        }
    }
    if b.capacity() == usize::MAX {
        return Ok(());
    }
    let staked = stake > 0;
    let len = union_len(entries, row, i, params.mask_self_weights, |w| {
        if staked && w > 0 { N::ONE } else { N::ZERO }
    });
    if len > b.capacity() {
        return Err(Error::RowTooLong {
            what: "bonds",
            row: i,
            len,
            max: b.capacity(),
        });
    }
    Ok(())
}

/// Makes `sum minted <= emission` hold whatever the backend's rounding: the excess (never any
/// on the fixed path, where every step rounds down; a few units of float rounding otherwise)
/// is taken back from the largest mintings, the lowest uid first among equals.
fn take_back_excess(minted: &mut [u64], emission: u64) {
    let total = minted
        .iter()
        .fold(0u128, |acc, &m| acc.saturating_add(u128::from(m)));
    let mut excess = total.saturating_sub(u128::from(emission));
    while excess > 0 {
        let Some(top) = minted.iter_mut().reduce(|a, b| if *b > *a { b } else { a }) else {
            break;
        };
        if *top == 0 {
            break;
        }
        let take = u64::try_from(excess).unwrap_or(u64::MAX).min(*top);
        *top = top.saturating_sub(take);
        excess = excess.saturating_sub(u128::from(take));
    }
}

/// The row's entries that count, as two runs: all (and an empty run), or the entries before
/// and after `(i, _)` when self weights are masked. Rows are sorted by uid, so the masked
/// self entry is found by binary search.
fn live(row: &[(Uid, Weight)], i: usize, mask: bool) -> (&[Entry], &[Entry]) {
    let own = if mask {
        Uid::try_from(i)
            .ok()
            .and_then(|i| row.binary_search_by_key(&i, |e| e.0).ok())
    } else {
        None
    };
    match own {
        Some(k) => (
            row.get(..k).unwrap_or_default(),
            row.get(k.saturating_add(1)..).unwrap_or_default(),
        ),
        None => (row, &[][..]),
    }
}

/// One entry of a weights row.
type Entry = (Uid, Weight);

/// The live entries of a row, in uid order.
fn live_iter(
    row: &[(Uid, Weight)],
    i: usize,
    mask: bool,
) -> impl DoubleEndedIterator<Item = &(Uid, Weight)> {
    let (before, after) = live(row, i, mask);
    before.iter().chain(after)
}

/// How many entries ahead of its update a column is prefetched.
const AHEAD: usize = 16;

/// Buffers of at most this many entries are not prefetched (32,768 f64: 256 KiB, well
/// inside one core's L2).
const PREFETCH_MIN: usize = 1 << 15;

/// The first `count` entries of a row (none for a missing row).
fn head(row: &[(Uid, Weight)], count: usize) -> &[(Uid, Weight)] {
    row.get(..count).unwrap_or(row)
}

/// Asks the cache for `buf[j]` ahead of a scattered read-modify-write (x86-64: PREFETCHT0;
/// elsewhere nothing). A hint only: it reads and writes nothing, so no result depends on it.
///
/// Only for buffers of more than [`PREFETCH_MIN`] entries: smaller ones stay in the core's
/// cache, where the hint costs instructions and saves nothing.
#[inline(always)]
fn prefetch<T>(buf: &[T], j: Uid) {
    if let Ok(k) = usize::try_from(j) {
        prefetch_at(buf, k);
    }
}

/// How many rows ahead a row's first cache lines are fetched, where `n` exceeds
/// [`PREFETCH_MIN`] (rows are separate allocations, whose first lines the hardware prefetcher
/// does not see coming). 8 ran fastest of 2, 4 and 8 at 1,000,000 x 32, both backends.
const ROWS_AHEAD: usize = 8;

/// Lines of a row fetched ahead (512 bytes: a whole row of 32 bond entries; the hardware
/// prefetcher follows a longer one).
const ROW_LINES: usize = 8;

/// Asks the cache for the first [`ROW_LINES`] cache lines of `row` (x86-64: PREFETCHT0;
/// elsewhere nothing). A hint only, like [`prefetch`].
#[inline(always)]
fn prefetch_row<T>(row: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = core::mem::size_of_val(row).min(ROW_LINES * 64);
        let start: *const u8 = row.as_ptr().cast();
        for off in (0..bytes).step_by(64) {
            // SAFETY: PREFETCHT0 is a hint: it cannot fault and reads and writes no memory;
            // the address is inside `row` anyway (`off < size_of_val(row)`).
            #[allow(unsafe_code)]
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    start.wrapping_add(off).cast(),
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// [`prefetch_row`] of the weights and bond rows [`ROWS_AHEAD`] after row `k` of a run.
#[inline(always)]
fn fetch_rows_ahead<N, W, B>(rows: RowsRef<'_, W>, bonds: &[B], k: usize)
where
    W: AsRef<[(Uid, Weight)]>,
    B: BondRowMut<N>,
{
    let k = k.wrapping_add(ROWS_AHEAD);
    prefetch_row(rows.row(rows.first.wrapping_add(k)));
    if let Some(b) = bonds.get(k) {
        prefetch_row(b.entries());
    }
}

/// [`prefetch`] of `buf[k]`.
#[inline(always)]
fn prefetch_at<T>(buf: &[T], k: usize) {
    #[cfg(target_arch = "x86_64")]
    if buf.len() > PREFETCH_MIN
        && let Some(x) = buf.get(k)
    {
        let p: *const T = x;
        // SAFETY: PREFETCHT0 is a hint: it cannot fault, reads and writes no memory, and `p`
        // points into `buf` anyway.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (buf, k);
}

/// `sum_j weight_ij` over the live entries (< 2^48 for rows of at most 2^32 entries).
fn row_sum(row: &[(Uid, Weight)], i: usize, mask: bool) -> u64 {
    let (before, after) = live(row, i, mask);
    let sum = |part: &[(Uid, Weight)]| part.iter().map(|&(_, w)| u64::from(w)).sum::<u64>();
    sum(before).saturating_add(sum(after))
}

/// The slot of uid `j`; uids were checked against `n`, so this fails only on a broken
/// invariant, reported rather than hidden.
fn at<N>(buf: &mut [N], j: Uid) -> Result<&mut N, Error> {
    let n = buf.len();
    usize::try_from(j)
        .ok()
        .and_then(|k| buf.get_mut(k))
        .ok_or(Error::UidOutOfRange {
            what: "weights",
            row: 0,
            uid: j,
            n,
        })
}

/// Whether a bond row and a run of weights hold the same uids, in the same slots.
#[inline]
fn same_uids<N>(bonds: &[(Uid, N)], row: &[(Uid, Weight)]) -> bool {
    bonds.len() == row.len()
        && bonds
            .iter()
            .zip(row)
            .fold(true, |same, (&(a, _), &(b, _))| same & (a == b))
}

/// Step 8 for row `i`: merges the bond row with this epoch's `w_ij s_i`, in place.
/// Cumulative adds; EMA mixes with `w_ij s_i / r_j`. Entries at 0 are dropped; the kept ones
/// are added to their column sums, in uid order (each column still adds row after row, so
/// the sums are the same bit for bit however a row is merged).
///
/// Three ways, none allocating once the row has the room: an empty row is written forward; a
/// row whose uids do not change is updated forward in its slots; a row that gains uids is
/// first grown to the union's length and then filled from its end, so each old entry is read
/// before its slot is overwritten.
fn update_bond_row<N: Scalar, B: BondRowMut<N>>(
    mode: BondMode<N>,
    bonds: &mut B,
    row: &[(Uid, Weight)],
    i: usize,
    f: N::Factor,
    mask: bool,
    columns: Columns<'_, N>,
) -> Result<(), Error> {
    let Columns { rank, sums } = columns;
    let value = |w: Weight| N::apply(f, u64::from(w));
    let fresh = || {
        live_iter(row, i, mask)
            .map(move |&(j, w)| (j, value(w)))
            .filter(|&(_, v)| v > N::ZERO)
    };
    let old_len = bonds.entries().len();
    if old_len == 0 {
        // A row without bonds (every row of a first epoch): written forward. It gets at most
        // one entry per weight, and the checks saw the non-zero ones fit its capacity.
        let room = row.len().min(bonds.capacity());
        if !bonds.resize(room, (0, N::ZERO)) {
            return Err(Error::RowTooLong {
                what: "bonds",
                row: i,
                len: room,
                max: bonds.capacity(),
            });
        }
        let entries = bonds.entries_mut();
        let mut kept = 0usize;
        for (j, v) in fresh() {
            let e = (j, mix(mode, N::ZERO, v, || rank_of(rank, j)));
            kept = keep(i, entries, kept, e, sums)?;
        }
        bonds.resize(kept, (0, N::ZERO));
        return Ok(());
    }
    let (before, after) = live(row, i, mask);
    if after.is_empty() && same_uids(bonds.entries(), before) {
        // The steady state: the bond row holds exactly the row's uids, so entry k of one is
        // entry k of the other. Every value is updated in its slot (one loop per bond rule),
        // then the zeros, if any, are dropped.
        let entries = bonds.entries_mut();
        let all_kept = match mode {
            BondMode::Cumulative => {
                update_in_slots(entries, before, sums, |_, b, w| b.add_nonneg(value(w)))
            }
            BondMode::Ema { .. } => update_in_slots(entries, before, sums, |u, b, w| {
                mix(mode, b, value(w), || rank_of(rank, u))
            }),
        };
        if !all_kept {
            let mut kept = 0usize;
            for k in 0..old_len {
                if let Some(&e) = entries.get(k)
                    && e.1 > N::ZERO
                {
                    if let Some(slot) = entries.get_mut(kept) {
                        *slot = e;
                    }
                    kept = kept.wrapping_add(1);
                }
            }
            bonds.resize(kept, (0, N::ZERO));
        }
        return Ok(());
    }
    let len = union_len(bonds.entries(), row, i, mask, value);
    let too_long = |max| Error::RowTooLong {
        what: "bonds",
        row: i,
        len,
        max,
    };
    if len == old_len {
        // No new uid (a steady state): every entry stays in its slot; one forward pass.
        let entries = bonds.entries_mut();
        let mut fresh = fresh().peekable();
        let mut kept = 0usize;
        for k in 0..len {
            let Some(&(u, b)) = entries.get(k) else {
                break;
            };
            let e = match fresh.next_if(|&(j, _)| j == u) {
                Some((j, v)) => (j, mix(mode, b, v, || rank_of(rank, j))),
                None => (u, mix(mode, b, N::ZERO, || N::ZERO)),
            };
            kept = keep(i, entries, kept, e, sums)?;
        }
        bonds.resize(kept, (0, N::ZERO));
        return Ok(());
    }
    if !bonds.resize(len, (0, N::ZERO)) {
        return Err(too_long(bonds.capacity()));
    }
    let entries = bonds.entries_mut();
    // New uids: merged backward. Old entries are in [0, a); the next write goes to w - 1.
    // w - a counts the new uids still to place, so an old entry is read before its slot can
    // be written.
    let (mut a, mut w) = (old_len, len);
    for (j, v) in live_iter(row, i, mask)
        .rev()
        .map(|&(j, w)| (j, value(w)))
        .filter(|&(_, v)| v > N::ZERO)
    {
        let mut old = N::ZERO;
        while let Some(top) = a.checked_sub(1) {
            let Some(&(u, b)) = entries.get(top) else {
                break;
            };
            if u < j {
                break;
            }
            a = top;
            if u == j {
                old = b;
                break;
            }
            // An old entry above every remaining new uid only decays (EMA) or stays.
            put_back(entries, &mut w, (u, mix(mode, b, N::ZERO, || N::ZERO)))
                .ok_or(too_long(len))?;
        }
        put_back(entries, &mut w, (j, mix(mode, old, v, || rank_of(rank, j))))
            .ok_or(too_long(len))?;
    }
    // Now w == a: the old entries below every new uid are already in their slots.
    let mut kept = 0usize;
    for k in 0..len {
        let Some(&(u, b)) = entries.get(k) else {
            break;
        };
        let e = if k < a {
            (u, mix(mode, b, N::ZERO, || N::ZERO))
        } else {
            (u, b)
        };
        kept = keep(i, entries, kept, e, sums)?;
    }
    bonds.resize(kept, (0, N::ZERO));
    Ok(())
}

/// Step 8 on a bond row that holds exactly its weights' uids (`entries[k]` and `row[k]` share
/// uid `j`): `B_ij` becomes `new(j, B_ij, weight_ij)` in its slot and, where above 0, is added
/// to its column sum `C_j` (uids were checked against `n`). Returns whether every new value is
/// above 0 (the caller drops the others). Not inlined: the loop keeps its operands in
/// registers.
#[inline(never)]
fn update_in_slots<N: Scalar>(
    entries: &mut [(Uid, N)],
    row: &[(Uid, Weight)],
    sums: &mut [N],
    new: impl Fn(Uid, N, Weight) -> N,
) -> bool {
    let mut all = true;
    for (e, &(_, w)) in entries.iter_mut().zip(row) {
        let (u, b) = *e;
        let v = new(u, b, w);
        e.1 = v;
        let above = v > N::ZERO;
        all &= above;
        if above && let Some(c) = usize::try_from(u).ok().and_then(|j| sums.get_mut(j)) {
            *c = c.add_nonneg(v);
        }
    }
    all
}

/// Stores a merged entry of row `row` at slot `kept` (never past the slot it was read from)
/// unless it is 0, adds it to its column sum `C_j`, and returns the next free slot. Rows are done in uid
/// order, so each `C_j` adds its rows in the same order whichever way a row was merged.
#[inline(always)]
fn keep<N: Scalar>(
    row: usize,
    entries: &mut [(Uid, N)],
    kept: usize,
    (j, v): (Uid, N),
    sums: &mut [N],
) -> Result<usize, Error> {
    if v > N::ZERO {
        let c = at(sums, j)?;
        *c = c.add_nonneg(v);
        let max = entries.len();
        *entries.get_mut(kept).ok_or(Error::RowTooLong {
            what: "bonds",
            row,
            len: kept.saturating_add(1),
            max,
        })? = (j, v);
        return Ok(kept.saturating_add(1));
    }
    Ok(kept)
}

/// Writes `e` one slot below `*w` and moves `w` down to it; `None` if there is no such slot.
fn put_back<N>(entries: &mut [(Uid, N)], w: &mut usize, e: (Uid, N)) -> Option<()> {
    *w = w.checked_sub(1)?;
    *entries.get_mut(*w)? = e;
    Some(())
}

/// What the bond update reads and writes per column: `r_j` (read by the EMA rule) and the
/// running column sums `C_j`.
struct Columns<'a, N> {
    rank: &'a [N],
    sums: &'a mut [N],
}

/// `r_j` for a uid checked against `n`. Only EMA reads it, and only where `w_ij s_i > 0`,
/// which makes `r_j > 0`; a uid out of range (a broken invariant) reads 0, which [`mix`] turns
/// into a zero share, and the same uid then fails the column-sum slot in `put`.
fn rank_of<N: Scalar>(rank: &[N], j: Uid) -> N {
    usize::try_from(j)
        .ok()
        .and_then(|k| rank.get(k).copied())
        .unwrap_or(N::ZERO)
}

/// The new bond value from the old one and this epoch's `w_ij s_i` (0 where absent). `r_j`
/// is read only by the EMA rule, and only where `fresh > 0`: it is a random access into an
/// `n`-long array, the costliest load of the bond update.
#[inline(always)]
fn mix<N: Scalar>(mode: BondMode<N>, old: N, fresh: N, r: impl FnOnce() -> N) -> N {
    match mode {
        BondMode::Cumulative => old.add_nonneg(fresh),
        BondMode::Ema { alpha } => {
            // r_j >= w_ij s_i > 0 wherever fresh > 0, so the division is by a positive r_j.
            let r = if fresh > N::ZERO { r() } else { N::ZERO };
            let part = if fresh > N::ZERO && r > N::ZERO {
                fresh.div(r)
            } else {
                N::ZERO
            };
            N::ONE.sub(alpha).mul(old).add(alpha.mul(part))
        }
    }
}

/// Entries in the union of a bond row and the weights that bring a non-zero `w_ij s_i`.
pub(crate) fn union_len<N: Scalar>(
    bonds: &[(Uid, N)],
    row: &[(Uid, Weight)],
    i: usize,
    mask: bool,
    fresh: impl Fn(Weight) -> N,
) -> usize {
    let mut count = bonds.len();
    let mut b = bonds.iter().peekable();
    for &(j, w) in live_iter(row, i, mask) {
        if fresh(w) <= N::ZERO {
            continue;
        }
        while b.next_if(|&&(u, _)| u < j).is_some() {}
        if b.next_if(|&&(u, _)| u == j).is_none() {
            count = count.saturating_add(1);
        }
    }
    count
}

/// The checks that need no pass over the rows: `n > 0`, parameters, row and buffer counts.
/// The rows themselves are checked in the first pass of [`epoch_in_place`], before any bond
/// is written.
pub(crate) fn check_shapes<N: Scalar, W: AsRef<[(Uid, Weight)]>, B: BondRowMut<N>>(
    params: &Params<N>,
    stake: &[u64],
    weights: &[W],
    activity: Activity<'_>,
    bonds: &[B],
    out: &Outputs<'_, N>,
) -> Result<(), Error> {
    let n = stake.len();
    if n == 0 {
        return Err(Error::NoNodes);
    }
    check_params(params)?;
    if weights.len() > n {
        return Err(Error::TooManyRows {
            what: "weights",
            rows: weights.len(),
            n,
        });
    }
    let updates = activity.last_update.len();
    if updates != 0 && updates != n {
        return Err(Error::BufferLength {
            name: "last_update",
            len: updates,
            n,
        });
    }
    if bonds.len() != n {
        return Err(Error::BufferLength {
            name: "bonds",
            len: bonds.len(),
            n,
        });
    }
    let lens = [
        ("rank", out.rank.len()),
        ("trust", out.trust.len()),
        ("consensus", out.consensus.len()),
        ("incentive", out.incentive.len()),
        ("dividends", out.dividends.len()),
        ("minted", out.minted.len()),
        ("stake", out.stake.len()),
    ];
    if let Some(&(name, len)) = lens.iter().find(|&&(_, len)| len != n) {
        return Err(Error::BufferLength { name, len, n });
    }
    let len = out.scratch.len();
    if len < n {
        return Err(Error::BufferLength {
            name: "scratch",
            len,
            n,
        });
    }
    Ok(())
}
