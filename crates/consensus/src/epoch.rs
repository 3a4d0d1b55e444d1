//! One epoch, SPEC.md §5 steps 1 to 11, over caller-provided buffers: the order of the
//! passes and the buffers they share (each step lives in its own module).
#![doc = include_str!("../docs/memory.md")]

use deepnode_types::{Departed, Params, Uid, Weight};

use crate::bonds::{BondRowMut, update_bonds};
use crate::dividends::{Halves, Paid, column_factors, pack_fractions, pay_dividends};
use crate::incentive::{consensus_columns, incentive_sums, normalise_incentive};
use crate::mint::mint;
use crate::rank::{Adjacent, Paired, pairs_in_rank, rank_and_trust, unpair_columns};
use crate::rows::RowsRef;
use crate::validate::check_shapes;
use crate::yuma::{is_yuma, yuma_epoch};
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
    /// runs the paper's epoch faster with `2n`, where it keeps `r_j` and `t_j` side by side
    /// (one cache line per weight instead of two); Yuma's median keeps a cursor per row in its
    /// first `n` entries and selects blocks of columns whose scores fit a third of the rest,
    /// one pass over the rows per block, so with `4n` every column is selected (a column with
    /// more voters than that third holds is bisected instead, up to 65 passes; with `n`, every
    /// column) and more space means fewer blocks. The same bits whatever its size.
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
    if is_yuma(params) {
        return yuma_epoch(params, stake, weights, activity, bonds, out);
    }
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
#[inline]
pub(crate) fn total_stake(stake: &[u64]) -> u128 {
    stake
        .iter()
        .fold(0u128, |acc, &x| acc.saturating_add(u128::from(x)))
}
