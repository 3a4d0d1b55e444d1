//! One epoch, mechanism.md steps 1 to 11, over caller-provided buffers.

use deepnode_types::{BondMode, Params, Uid, Weight};

use crate::bonds::{BondRowMut, RowSink};
use crate::validate::{check_params, check_row};
use crate::{Error, Scalar};

/// Caller-provided outputs of [`epoch_in_place`], each of length `n`.
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
    /// Working space (its contents on return are unspecified).
    pub scratch: &'a mut [N],
}

/// Runs one epoch without allocating: reads `stake` (length `n`) and `weights` (at most `n`
/// rows; missing rows are empty), updates `bonds` (exactly `n` rows) in place, writes `out`,
/// and returns the consensus loss `L`.
///
/// Rows must be sorted by uid with no repeats (`crate::canonicalize` sorts a `Vec` row). On
/// error nothing is written: every check runs before the first bond is touched.
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
    let n = stake.len();
    check_inputs(params, stake, weights, bonds, &out)?;
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
    let mask = params.mask_self_weights;

    // 1. s_i = stake_i / sum(stake), in `scratch` until the bonds are updated.
    let total = stake
        .iter()
        .fold(0u128, |acc, &x| acc.saturating_add(u128::from(x)));
    let shares = &mut *scratch;
    for (s, &x) in shares.iter_mut().zip(stake) {
        *s = if total == 0 {
            N::ZERO
        } else {
            N::share(x, total)
        };
    }

    // 2-4. With f_i = s_i / sum_j weight_ij: r_j = sum_i weight_ij f_i, and
    // t_j = sum_i s_i over the rows where weight_ij / sum > trust_threshold.
    rank.fill(N::ZERO);
    trust.fill(N::ZERO);
    for (i, (row, &s)) in weights.iter().zip(shares.iter()).enumerate() {
        let row = row.as_ref();
        let sum = row_sum(row, i, mask);
        if sum == 0 {
            continue;
        }
        let f = s.factor(sum);
        let cutoff = N::max_untrusted(params.trust_threshold, sum);
        for &(j, w) in live(row, i, mask) {
            let slot = at(rank, j)?;
            *slot = slot.add(N::apply(f, u64::from(w)));
            if u64::from(w) > cutoff {
                let slot = at(trust, j)?;
                *slot = slot.add(s);
            }
        }
    }

    // 5-7. c_j = sigmoid(rho (t_j - kappa)); x_j = r_j c_j; i_j = x_j / sum x;
    // L = sum_j r_j (1/2 - c_j).
    let half = N::ratio(1, 2);
    let mut x_sum = N::ZERO;
    let mut loss = N::ZERO;
    for (((c, i), &t), &r) in consensus
        .iter_mut()
        .zip(incentive.iter_mut())
        .zip(&*trust)
        .zip(&*rank)
    {
        *c = params.rho.mul(t.sub(params.kappa)).sigmoid();
        *i = r.mul(*c);
        x_sum = x_sum.add(*i);
        loss = loss.add(r.mul(half.sub(*c)));
    }
    for i in incentive.iter_mut() {
        // x_sum > 0 on this branch, and 0 <= x_j <= x_sum.
        *i = if x_sum > N::ZERO {
            i.div(x_sum)
        } else {
            N::ZERO
        };
    }

    // 8. Bonds, before use. The column sums C_j = sum_k B_kj are accumulated as rows are
    // written, in `dividends` (free until step 10).
    let col = &mut *dividends;
    col.fill(N::ZERO);
    for (i, (b, &s)) in bonds.iter_mut().zip(shares.iter()).enumerate() {
        let row = weights.get(i).map_or(&[][..], AsRef::as_ref);
        let columns = Columns {
            rank: &*rank,
            sums: &mut *col,
        };
        update_bond_row(params.bonds, b, row, i, s, mask, columns)?;
    }

    // 9-10. d_i = sum_j B_ij g_j with g_j = i_j / C_j; `scratch` now holds g.
    let factor = &mut *scratch;
    for ((g, &c), &inc) in factor.iter_mut().zip(&*col).zip(&*incentive) {
        // An empty column pays no one: beta_ij = 0.
        *g = if c > N::ZERO { inc.div(c) } else { N::ZERO };
    }
    let col = factor;
    for (d, b) in dividends.iter_mut().zip(bonds.iter()) {
        let mut acc = N::ZERO;
        for &(j, v) in b.entries() {
            acc = acc.add(v.mul(*at(col, j)?));
        }
        *d = acc;
    }

    // 11. delta_i = lambda i_i + (1 - lambda) d_i; minted_i = floor(emission delta_i).
    let keep = params.self_share;
    let pass = N::ONE.sub(keep);
    for (((m, &old), &inc), &div) in minted
        .iter_mut()
        .zip(stake)
        .zip(&*incentive)
        .zip(&*dividends)
    {
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
    debug_assert!(n == rank.len());
    Ok(loss)
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

/// The row's entries that count: all, or all but `(i, _)` when self weights are masked.
/// Rows are sorted by uid, so the masked self entry is found by binary search and the live
/// entries are the two slices around it.
fn live(row: &[(Uid, Weight)], i: usize, mask: bool) -> impl Iterator<Item = &(Uid, Weight)> {
    let own = if mask {
        Uid::try_from(i)
            .ok()
            .and_then(|i| row.binary_search_by_key(&i, |e| e.0).ok())
    } else {
        None
    };
    let (before, after) = match own {
        Some(k) => (
            row.get(..k).unwrap_or_default(),
            row.get(k.saturating_add(1)..).unwrap_or_default(),
        ),
        None => (row, &[][..]),
    };
    before.iter().chain(after)
}

/// `sum_j weight_ij` over the live entries (< 2^48 for rows of at most 2^32 entries).
fn row_sum(row: &[(Uid, Weight)], i: usize, mask: bool) -> u64 {
    live(row, i, mask).map(|&(_, w)| u64::from(w)).sum()
}

/// `f_i = s_i / sum_j weight_ij`, or `None` for an all-zero row (whose `w_ij` are all 0).
fn row_factor<N: Scalar>(row: &[(Uid, Weight)], i: usize, s: N, mask: bool) -> Option<N::Factor> {
    let sum = row_sum(row, i, mask);
    (sum > 0).then(|| s.factor(sum))
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

/// Step 8 for row `i`: merges the bond row with this epoch's `w_ij s_i`, in uid order.
/// Cumulative adds; EMA mixes with `w_ij s_i / r_j`. Entries at 0 are dropped; the kept ones
/// are added to their column sums.
fn update_bond_row<N: Scalar, B: BondRowMut<N>>(
    mode: BondMode<N>,
    bonds: &mut B,
    row: &[(Uid, Weight)],
    i: usize,
    s: N,
    mask: bool,
    columns: Columns<'_, N>,
) -> Result<(), Error> {
    let Columns { rank, sums } = columns;
    let f = row_factor(row, i, s, mask);
    let fresh = live(row, i, mask).filter_map(|&(j, w)| {
        let v = f.map_or(N::ZERO, |f| N::apply(f, u64::from(w)));
        (v > N::ZERO).then_some((j, v))
    });
    let hint = bonds.entries().len().saturating_add(row.len());
    let mut result = Ok(());
    bonds.rebuild(hint, |old, sink| {
        let mut put = |j: Uid, v: N| {
            if v > N::ZERO {
                sink.put((j, v));
                match at(sums, j) {
                    Ok(c) => *c = c.add(v),
                    Err(e) => result = Err(e),
                }
            }
        };
        // Driven by this epoch's entries; old entries in between only decay (EMA) or stay.
        let mut old = old.iter().copied();
        let mut pending = old.next();
        for (j, v) in fresh {
            while let Some((u, b)) = pending.filter(|&(u, _)| u < j) {
                put(u, mix(mode, b, N::ZERO, N::ZERO));
                pending = old.next();
            }
            let b = match pending {
                Some((u, b)) if u == j => {
                    pending = old.next();
                    b
                }
                _ => N::ZERO,
            };
            put(j, mix(mode, b, v, rank_of(rank, j)));
        }
        while let Some((u, b)) = pending {
            put(u, mix(mode, b, N::ZERO, N::ZERO));
            pending = old.next();
        }
    });
    result
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

/// The new bond value from the old one and this epoch's `w_ij s_i` (0 where absent).
fn mix<N: Scalar>(mode: BondMode<N>, old: N, fresh: N, r: N) -> N {
    match mode {
        BondMode::Cumulative => old.add(fresh),
        BondMode::Ema { alpha } => {
            // r_j >= w_ij s_i > 0 wherever fresh > 0, so the division is by a positive r_j.
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
    for &(j, w) in live(row, i, mask) {
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

/// Validation of everything, before anything is written.
fn check_inputs<N: Scalar, W: AsRef<[(Uid, Weight)]>, B: BondRowMut<N>>(
    params: &Params<N>,
    stake: &[u64],
    weights: &[W],
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
        ("scratch", out.scratch.len()),
    ];
    if let Some(&(name, len)) = lens.iter().find(|&&(_, len)| len != n) {
        return Err(Error::BufferLength { name, len, n });
    }
    for (i, row) in weights.iter().enumerate() {
        check_row("weights", i, row.as_ref().iter().map(|&(u, _)| u), n)?;
    }
    for (i, b) in bonds.iter().enumerate() {
        check_row("bonds", i, b.entries().iter().map(|&(u, _)| u), n)?;
        if let Some(&(uid, _)) = b
            .entries()
            .iter()
            .find(|&&(_, v)| !(v >= N::ZERO && v <= N::MAX))
        {
            return Err(Error::InvalidBond { row: i, uid });
        }
    }
    // A bounded bond row must hold the union of its old entries and the new ones. Counting
    // every non-zero weight of a staked row is an upper bound that needs no shares yet; a
    // zero-stake row brings no new entries at all.
    for (i, b) in bonds.iter().enumerate() {
        if b.capacity() == usize::MAX {
            continue;
        }
        let row = weights.get(i).map_or(&[][..], AsRef::as_ref);
        let staked = stake.get(i).is_some_and(|&x| x > 0);
        let len = union_len(b.entries(), row, i, params.mask_self_weights, |w| {
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
    }
    Ok(())
}
